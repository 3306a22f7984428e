/* cmd_model.c - the model `fedmoe eval` and `fedmoe export` work on: a run file's
 * latest checkpoint or a Hugging Face folder (--model DIR).
 *
 * A checkpoint's model is the run's own: its resolved configuration (the run file's
 * root attribute `config`) gives the shape and the strategy, whose classifier says
 * which tensors the checkpoint holds as shared and which per client. Strategies with
 * private classes (local, comigs) give one client's model, client 0 unless --client
 * says otherwise; CoMiGS's client also gets its route mask (generalists and its own
 * specialists only, as comigs_begin sets it). A strategy whose server keeps a model
 * of its own (fedbiot's full model: the frozen bottom blocks and the aggregated
 * adapter, the model the paper scores) gives that model, from /server. Frozen tensors are not in checkpoints:
 * they are the run's initial values, so a run started from model.init reads them from
 * that folder again (it must still be there). */
#include "cli.h"

#include "fedmoe/fl.h"
#include "fedmoe/hf.h"
#include "fedmoe/io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_private_class(const fm_strategy *st) {
  for (int c = 0; c < st->nclass; c++)
    if (!st->shared[c]) return 1;
  return 0;
}

/* CoMiGS: experts at and past generalists + the client's specialists are switched
 * off (the same rule as comigs_begin in src/strategies/comigs.c). */
static fm_err comigs_mask(fm_cli_model *cm, const fm_config *c, int client) {
  fm_model *m = cm->m;
  const fm_intlist *spec = &c->comigs.specialists;
  const int active = c->comigs.generalists + (spec->n ? spec->v[client % spec->n] : 0);
  cm->active_experts = active;
  const fm_model_shape *s = fm_model_get_shape(m);
  uint8_t allowed[FM_MAX_EXPERTS];
  for (int e = 0; e < s->experts; e++) allowed[e] = e < active;
  for (int l = 0; l < s->layers; l++)
    if (s->moe_mask >> l & 1) FM_CHECK(fm_model_set_route_mask(m, l, allowed));
  return FM_OK;
}

static fm_err prepare_checkpoint(const fm_cli *cli, fm_cli_model *cm) {
  char *cfg_text = NULL;
  fm_err err = fm_runfile_read_config(cli->checkpoint, &cfg_text);
  if (!err) err = fm_config_init(&cm->cfg);
  if (!err) {
    cm->have_cfg = 1;
    char where[FM_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:/config", cli->checkpoint);
    err = fm_config_parse(&cm->cfg, cfg_text, where);
    /* run files from before model.norm_topk: their models always renormalised the
     * top-k weights (auto now leaves a top-1 weight unnormalised) */
    if (!err && !strstr(cfg_text, "\nnorm_topk")) cm->cfg.model.norm_topk = FM_TRI_TRUE;
  }
  free(cfg_text);
  FM_CHECK(err);
  FM_CHECK(fm_model_shape_from_config(&cm->cfg, &cm->shape));
  cm->st = fm_strategy_get(cm->cfg.fl.strategy);
  if (!cm->st) FM_ERROR(FM_ERR_FORMAT, "%s: unknown strategy in the stored configuration", cli->checkpoint);
  if (has_private_class(cm->st)) {
    cm->client = 0;
    if (cli->client) {
      char *end;
      long v = strtol(cli->client, &end, 10);
      if (end == cli->client || *end || v < 0 || v >= cm->cfg.fl.clients)
        FM_ERROR(FM_ERR_ARG, "--client %s: the run has clients 0..%d", cli->client, cm->cfg.fl.clients - 1);
      cm->client = (int)v;
    }
  } else if (cli->client) {
    FM_ERROR(FM_ERR_ARG, "--client %s: strategy %s keeps no per-client state; the checkpoint holds one global "
             "model", cli->client, cm->st->name);
  }
  return FM_OK;
}

fm_err fm_cli_model_prepare(const fm_cli *cli, fm_cli_model *cm) {
  memset(cm, 0, sizeof *cm);
  cm->client = -1;
  cm->round = -1;
  cm->allocated = 1;
  if (cli->model && cli->checkpoint)
    FM_ERROR(FM_ERR_ARG, "--model and --checkpoint both given: score one model at a time");
  if (cli->model) {
    if (cli->client) FM_ERROR(FM_ERR_ARG, "--client is for --checkpoint run files, not --model folders");
    cm->source = cli->model;
    cm->folder = 1;
    fm_hf_config hc;
    FM_CHECK(fm_hf_config_read(cli->model, &hc));
    FM_CHECK(fm_hf_check_built(&hc, cli->model));
    cm->shape = hc.s;
    return FM_OK;
  }
  if (!cli->checkpoint) FM_ERROR(FM_ERR_ARG, "'fedmoe %s' needs --checkpoint RUNFILE%s", cli->command,
                                 !strcmp(cli->command, "export") ? "" : " or --model DIR");
  cm->source = cli->checkpoint;
  FM_CHECK(prepare_checkpoint(cli, cm));
  return FM_OK;
}

fm_err fm_cli_model_create(fm_cli_model *cm, int B, int T) {
  if (cm->folder) {
    FM_CHECK(fm_hf_check_memory(fm_hf_param_bytes(&cm->shape), 0, cm->source, "its weights as float32"));
    FM_CHECK(fm_model_create(&cm->m, &cm->shape, B, T, 1, NULL, NULL));
    FM_CHECK(fm_model_init(cm->m, 0));
    FM_CHECK(fm_hf_load(cm->m, cm->source, FM_UPCYCLE_NONE));
    return FM_OK;
  }
  const fm_config *c = &cm->cfg;
  if (cm->st->server_model) { /* fedbiot: the server's full model, one class, every tensor stored */
    cm->server = 1;
    FM_CHECK(fm_model_create(&cm->m, &cm->shape, B, T, 1, NULL, NULL));
    FM_CHECK(fm_model_init(cm->m, (uint64_t)c->run.seed));
    FM_CHECK(fm_checkpoint_load_server(cm->source, cm->m, &cm->round));
    return FM_OK;
  }
  fm_scope sc = {cm->st, c};
  FM_CHECK(fm_model_create(&cm->m, &cm->shape, B, T, cm->st->nclass, fm_scope_classify, &sc));
  FM_CHECK(fm_model_init(cm->m, (uint64_t)c->run.seed));
  if (c->model.init[0] && !cm->st->client_shape) FM_CHECK(fm_hf_load(cm->m, c->model.init, c->model.upcycle));
  FM_CHECK(fm_checkpoint_load(cm->source, cm->m, cm->st->shared, cm->client, &cm->round, &cm->allocated));
  if (cm->client >= 0 && !strcmp(cm->st->name, "comigs")) FM_CHECK(comigs_mask(cm, c, cm->client));
  return FM_OK;
}

void fm_cli_model_free(fm_cli_model *cm) {
  fm_model_free(cm->m);
  cm->m = NULL;
  if (cm->have_cfg) fm_config_free(&cm->cfg);
  cm->have_cfg = 0;
}
