/* cmd_eval.c - `fedmoe eval --checkpoint RUNFILE --text FILE [--client N]`: the mean
 * next-token cross-entropy (nats) of the model in the run file's latest checkpoint
 * over a text file.
 *
 * FILE is read through the run's tokenizer (model.tokenizer of its configuration;
 * bytes by default) and its ids cut into consecutive, non-overlapping blocks of
 * model.context + 1 tokens (a last partial block is dropped); in each block the first context bytes predict the
 * next ones, and the figure is the mean over every prediction of every block.
 * The model is the run's own: its resolved configuration (the run file's root
 * attribute `config`) gives the shape and the strategy, whose classifier says which
 * tensors the checkpoint holds as shared and which per client. Strategies with
 * private classes (local, comigs) evaluate one client's model, client 0 unless
 * --client says otherwise; CoMiGS's client also gets its route mask (generalists and
 * its own specialists only, as comigs_begin sets it). Rank 0 reads and computes; the
 * other ranks only agree on the outcome. */
#include "cli.h"

#include "fedmoe/data.h"
#include "fedmoe/fl.h"
#include "fedmoe/io.h"
#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EVAL_BATCH = 16 }; /* blocks per forward pass */

/* The client to evaluate: fm_cli has no --client slot yet (src/cli.c is not this
 * file's); until it has, the default client 0 is used. */
static const char *client_arg(const fm_cli *cli) { return cli->client; }

static int has_private_class(const fm_strategy *st) {
  for (int c = 0; c < st->nclass; c++)
    if (!st->shared[c]) return 1;
  return 0;
}

/* CoMiGS: experts at and past generalists + the client's specialists are switched
 * off (the same rule as comigs_begin in src/strategies/comigs.c). */
static fm_err comigs_mask(fm_model *m, const fm_config *c, int client) {
  const fm_intlist *spec = &c->comigs.specialists;
  const int active = c->comigs.generalists + (spec->n ? spec->v[client % spec->n] : 0);
  const fm_model_shape *s = fm_model_get_shape(m);
  uint8_t allowed[FM_MAX_EXPERTS];
  for (int e = 0; e < s->experts; e++) allowed[e] = e < active;
  for (int l = 0; l < s->layers; l++)
    if (s->moe_mask >> l & 1) FM_CHECK(fm_model_set_route_mask(m, l, allowed));
  return FM_OK;
}

/* Mean cross-entropy of m over the blocks of the text's ids; model.context = T. */
static fm_err eval_blocks(fm_model *m, const int32_t *text, size_t len, int T, double *mean,
                          long *nblocks) {
  const size_t blk = (size_t)T + 1;
  const long nb = (long)(len / blk);
  int32_t *tok = NULL, *tgt = NULL;
  FM_CALLOC(tok, (size_t)EVAL_BATCH * T, "eval tokens");
  fm_err err = fm_calloc(&tgt, (size_t)EVAL_BATCH * T, sizeof *tgt, "eval targets");
  double sum = 0.0;
  for (long b0 = 0; !err && b0 < nb; b0 += EVAL_BATCH) {
    const int nbat = nb - b0 < EVAL_BATCH ? (int)(nb - b0) : EVAL_BATCH;
    for (int b = 0; b < nbat; b++) {
      const int32_t *p = text + (size_t)(b0 + b) * blk;
      for (int t = 0; t < T; t++) {
        tok[(size_t)b * T + t] = p[t];
        tgt[(size_t)b * T + t] = p[t + 1];
      }
    }
    float ce = 0;
    err = fm_model_forward(m, tok, tgt, nbat, T, &ce, NULL);
    sum += (double)ce * nbat; /* every block has T predictions: mean of means */
  }
  free(tok);
  free(tgt);
  FM_CHECK(err);
  *mean = sum / (double)nb;
  *nblocks = nb;
  return FM_OK;
}

static fm_err eval_rank0(const fm_cli *cli) {
  if (!cli->checkpoint) FM_ERROR(FM_ERR_ARG, "'fedmoe eval' needs --checkpoint RUNFILE");
  if (!cli->text) FM_ERROR(FM_ERR_ARG, "'fedmoe eval' needs --text FILE");
  char *cfg_text = NULL, *text = NULL;
  size_t len = 0;
  fm_config cfg;
  fm_model *m = NULL;
  int have_cfg = 0;
  fm_err err = fm_runfile_read_config(cli->checkpoint, &cfg_text);
  if (!err) err = fm_config_init(&cfg);
  if (!err) {
    have_cfg = 1;
    char where[64];
    snprintf(where, sizeof where, "%s:/config", cli->checkpoint);
    err = fm_config_parse(&cfg, cfg_text, where);
  }
  fm_model_shape shape;
  if (!err) err = fm_model_shape_from_config(&cfg, &shape);
  const fm_strategy *st = err ? NULL : fm_strategy_get(cfg.fl.strategy);
  if (!err && !st)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: unknown strategy in the stored configuration",
                       cli->checkpoint);
  int client = -1;
  if (!err && has_private_class(st)) {
    client = 0;
    const char *arg = client_arg(cli);
    if (arg) {
      char *end;
      long v = strtol(arg, &end, 10);
      if (end == arg || *end || v < 0 || v >= cfg.fl.clients)
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_ARG,
                           "--client %s: the run has clients 0..%d", arg, cfg.fl.clients - 1);
      else
        client = (int)v;
    }
  }
  /* the text, as the run's tokenizer reads it, checked before any model work */
  fm_tokenizer *tok = NULL;
  fm_ids ids = {0};
  char spec[FM_PATH_MAX];
  if (!err) {
    fm_tokenizer_spec(&cfg, spec, sizeof spec);
    err = fm_tokenizer_open(&tok, spec);
  }
  if (!err) err = fm_read_file(cli->text, &text, &len);
  if (!err && (err = fm_tokenizer_encode(tok, (const uint8_t *)text, len, &ids))) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_error_message());
    err = fm_error_set(__FILE__, __LINE__, __func__, err, "--text %s: %s", cli->text, msg);
  }
  const int bytes = tok && fm_tokenizer_kind(tok) == FM_TOK_BYTES;
  if (!err && ids.n < (size_t)shape.context + 1)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA,
                       "--text %s: %zu %s, shorter than one block of model.context + 1 = %d", cli->text,
                       ids.n, bytes ? "bytes" : "tokens", shape.context + 1);
  for (size_t i = 0; !err && i < ids.n; i++)
    if (ids.v[i] >= shape.vocab)
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA,
                         "--text %s: %s %d at %s %zu is outside the model's vocabulary 0..%d", cli->text,
                         bytes ? "byte" : "token", ids.v[i], bytes ? "offset" : "position", i, shape.vocab - 1);
  fm_tokenizer_free(tok);
  int round = -1, allocated = 1;
  if (!err) err = fm_model_create(&m, &shape, EVAL_BATCH, shape.context, st->nclass, st->classify, &cfg);
  if (!err) err = fm_model_init(m, (uint64_t)cfg.run.seed);
  if (!err) err = fm_checkpoint_load(cli->checkpoint, m, st->shared, client, &round, &allocated);
  if (!err && client >= 0 && !strcmp(st->name, "comigs")) err = comigs_mask(m, &cfg, client);
  double mean = 0;
  long nb = 0;
  if (!err) {
    fm_nn_set_threads(cfg.run.threads);
    err = eval_blocks(m, ids.v, ids.n, shape.context, &mean, &nb);
  }
  if (!err) {
    printf("eval %s round %d strategy %s", cli->checkpoint, round, st->name);
    if (client >= 0) printf(" client %d%s", client, allocated ? "" : " (never trained: initial values)");
    printf("\ntext %s: %ld blocks of %d %s, %ld predictions\n", cli->text, nb, shape.context + 1,
           bytes ? "bytes" : "tokens", nb * shape.context);
    printf("cross_entropy %.6f nats\n", mean);
    fflush(stdout);
  }
  fm_model_free(m);
  fm_ids_free(&ids);
  free(text);
  free(cfg_text);
  if (have_cfg) fm_config_free(&cfg);
  return err;
}

fm_err fm_cmd_eval(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_err err = rank == 0 ? eval_rank0(cli) : FM_OK;
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
