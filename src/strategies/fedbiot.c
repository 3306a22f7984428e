/* fedbiot.c - FedBiOT: clients fine-tune an adapter (the top blocks) on a compressed
 * emulator of the bottom blocks; the server aligns the emulator to the full model on
 * its public data (docs/strategies.md, fedbiot).
 *
 * The server holds the full model of L blocks: the pretrained model of model.init,
 * which fedbiot requires (FedBiOT compresses a pretrained model; compressing random
 * weights tells nothing). It builds the emulator
 * by layer dropout - keep a share `keep` of the L - a bottom blocks, evenly spaced,
 * the first always - and aligns it. Clients get a model of nkeep + a blocks: the
 * emulator (frozen on clients) and the adapter (trained, averaged by tokens).
 * Alignment: MSE between the emulator's output and the full bottom's output (the
 * input of the first adapter block) plus the LM loss of emulator + adapter, the
 * adapter and the embeddings frozen, fedbiot.align_steps steps after every
 * aggregation (0: offsite tuning, never re-aligned).
 *
 * What the server keeps across rounds: the full model (its bottom blocks never
 * change, its adapter is the global one; in every checkpoint as /server), the
 * emulator (a shared class, in /shared) and the alignment's AdamW state
 * (fedbiot/emulator_adam/{m,v,step}), so that a resumed run goes on bit for bit. */
#include "fedmoe/fl.h"
#include "fedmoe/hf.h"
#include "fedmoe/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ADAPTER = 0, EMULATOR = 1 };

typedef struct {
  int L, a, nkeep;
  int map[FM_MAX_LAYERS]; /* client block j -> full block */
} layout_t;

static void layout(const fm_config *c, layout_t *l) {
  l->L = c->model.layers;
  l->a = c->fedbiot.adapter_layers;
  int bottom = l->L - l->a;
  l->nkeep = (int)lround(c->fedbiot.keep * bottom);
  if (l->nkeep < 1) l->nkeep = 1;
  if (l->nkeep > bottom) l->nkeep = bottom;
  /* evenly spaced from the first block to the last bottom block */
  for (int j = 0; j < l->nkeep; j++)
    l->map[j] = l->nkeep == 1 ? 0 : (int)lround((double)j * (bottom - 1) / (l->nkeep - 1));
  for (int i = 0; i < l->a; i++) l->map[l->nkeep + i] = bottom + i;
}

static int classify_fedbiot(const fm_tensor *t, void *ctx) {
  layout_t l;
  layout(ctx, &l);
  if (t->layer >= l.nkeep) return ADAPTER;                       /* the top blocks */
  if (t->layer < 0 && t->group == FM_GROUP_NORM) return ADAPTER; /* ln_f */
  return EMULATOR;                                               /* bottom blocks, embeddings */
}

static fm_err fedbiot_shape(const fm_config *c, fm_model_shape *s) {
  layout_t l;
  layout(c, &l);
  uint64_t mask = 0;
  for (int j = 0; j < l.nkeep + l.a; j++)
    if (s->moe_mask >> l.map[j] & 1) mask |= 1ull << j;
  s->layers = l.nkeep + l.a;
  s->moe_mask = mask;
  return FM_OK;
}

static double fedbiot_contribution(const fm_client_ctx *cx, const fm_tensor *t, double token_weight) {
  return t->cls == ADAPTER ? token_weight : 0; /* the emulator comes from the server only */
}

/* the emulator stays frozen: only the adapter learns */
static fm_err fedbiot_update(fm_client_ctx *cx) { return fm_client_train_round(cx, 1u << ADAPTER); }

/* ---- the server ---- */

typedef struct {
  layout_t l;
  fm_model *full;
  fm_adamw opt_emul; /* the alignment's, over the emulator class */
  int32_t *tok, *tgt;
  float *target, *dh;
  double *stage; /* [emulator numel] the AdamW state as float64, for checkpoints */
  const fm_dataset *data;
} server_t;

/* The full model's tensor behind a client-model tensor (same name, block renumbered).
 * A block tensor's name is "{prefix}.{j}.{rest}": "h.{j}." for gpt2, "layers.{j}." for
 * the llama family. */
static fm_tensor *full_twin(server_t *sv, const fm_tensor *t) {
  if (t->layer < 0) return fm_model_find(sv->full, t->name);
  const char *dot = strchr(t->name, '.');
  const char *rest = dot ? strchr(dot + 1, '.') : NULL;
  if (!rest) return NULL;
  char name[96];
  snprintf(name, sizeof name, "%.*s.%d%s", (int)(dot - t->name), t->name, sv->l.map[t->layer], rest);
  return fm_model_find(sv->full, name);
}

/* Copy between the client-shaped model and the full one: to_full copies the tensors
 * of class cls into the full model, else from it. */
static fm_err copy_class(server_t *sv, fm_model *m, int cls, int to_full) {
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (cls >= 0 && t->cls != cls) continue;
    fm_tensor *f = full_twin(sv, t);
    if (!f || f->numel != t->numel) FM_ERROR(FM_ERR_INTERNAL, "fedbiot: no full-model twin of %s", t->name);
    if (to_full) memcpy(f->w, t->w, t->numel * sizeof(float));
    else memcpy(t->w, f->w, t->numel * sizeof(float));
  }
  return FM_OK;
}

static fm_err adamw_on(fm_model *m, fm_adamw *o, int cls, double lr, const fm_config *c) {
  fm_adamw_hparams h = {(float)lr, (float)c->train.beta1, (float)c->train.beta2, (float)c->train.eps,
                        (float)c->train.weight_decay, fm_model_clip_factor(m, 1u << cls, c->train.grad_clip)};
  fm_adamw_step(o, m, cls, &h);
  return FM_OK;
}

/* One alignment step: MSE(emulator output, full bottom output) + LM loss, on a
 * public batch; only the emulator's blocks learn. */
static fm_err align_step(server_t *sv, fm_model *m, const fm_config *c, fm_rng *rng, double *mse_out) {
  int B = c->train.batch, T = c->train.seq_len, D = c->model.d_model, N = B * T;
  FM_CHECK(fm_batch_sample(&sv->data->corpus, &sv->data->public_split, rng, B, T, sv->tok, sv->tgt, NULL));
  float ce;
  FM_CHECK(fm_model_forward(sv->full, sv->tok, sv->tgt, B, T, &ce, NULL));
  memcpy(sv->target, fm_model_hidden(sv->full, sv->l.L - sv->l.a), (size_t)N * D * sizeof(float));
  fm_model_freeze_class(m, ADAPTER, 1);
  fm_model_freeze_class(m, EMULATOR, 0);
  fm_model_freeze_group(m, FM_GROUP_EMBED, -1, 1); /* shared with the full model's head */
  FM_CHECK(fm_model_forward(m, sv->tok, sv->tgt, B, T, &ce, NULL));
  const float *h = fm_model_hidden(m, sv->l.nkeep);
  double mse = 0;
  for (size_t i = 0; i < (size_t)N * D; i++) {
    double d = (double)h[i] - sv->target[i];
    mse += d * d;
    sv->dh[i] = (float)(2.0 * d / ((double)N * D));
  }
  fm_model_zero_grads(m);
  FM_CHECK(fm_model_backward_inject(m, sv->l.nkeep, sv->dh));
  FM_CHECK(adamw_on(m, &sv->opt_emul, EMULATOR, c->fedbiot.align_lr, c));
  if (mse_out) *mse_out = mse / ((double)N * D);
  return FM_OK;
}

static fm_err align(server_t *sv, fm_model *m, const fm_config *c, int round) {
  fm_rng rng;
  fm_rng_init(&rng, (uint64_t)c->run.seed, FM_RNG_SERVER, (uint32_t)round, FM_RNG_STRATEGY);
  for (int s = 0; s < c->fedbiot.align_steps; s++) FM_CHECK(align_step(sv, m, c, &rng, NULL));
  return FM_OK;
}

static void server_free(void *state) {
  server_t *sv = state;
  if (!sv) return;
  if (sv->full) fm_model_free(sv->full);
  fm_adamw_free(&sv->opt_emul);
  free(sv->tok); free(sv->tgt); free(sv->target); free(sv->dh); free(sv->stage);
  free(sv);
}

static fm_err server_init_impl(server_t *sv, fm_model *m, const fm_config *c, const fm_dataset *data) {
  layout(c, &sv->l);
  sv->data = data;
  int B = c->train.batch, T = c->train.seq_len, D = c->model.d_model;
  FM_CALLOC(sv->tok, (size_t)B * T, "fedbiot batch");
  FM_CALLOC(sv->tgt, (size_t)B * T, "fedbiot batch");
  FM_CALLOC(sv->target, (size_t)B * T * D, "fedbiot alignment target");
  FM_CALLOC(sv->dh, (size_t)B * T * D, "fedbiot alignment gradient");
  if (data->public_split.tokens < (uint64_t)T + 1)
    FM_CONFIG_ERROR(c, "data.public_frac", "the server's public split holds %llu bytes, fewer than one "
                    "sequence of %d", (unsigned long long)data->public_split.tokens, T + 1);
  fm_model_shape full;
  FM_CHECK(fm_model_shape_from_config(c, &full));
  FM_CHECK(fm_model_create(&sv->full, &full, B, T, 1, NULL, NULL));
  FM_CHECK(fm_model_init(sv->full, (uint64_t)c->run.seed));
  FM_CHECK(fm_adamw_create(&sv->opt_emul, fm_model_class_numel(m, EMULATOR)));
  FM_CALLOC(sv->stage, fm_model_class_numel(m, EMULATOR) + 1, "fedbiot checkpoint staging");
  /* the pretrained model (config.c refuses fedbiot without model.init) */
  FM_CHECK(fm_hf_load(sv->full, c->model.init, c->model.upcycle));
  /* the emulator and adapter start as the full model's blocks; then align */
  FM_CHECK(copy_class(sv, m, -1, 0));
  FM_CHECK(align(sv, m, c, 0));
  return FM_OK;
}

static fm_err server_init(void **state, fm_model *m, const fm_config *c, const fm_dataset *data) {
  server_t *sv;
  FM_CALLOC(sv, 1, "fedbiot server");
  *state = sv;
  FM_CHECK(server_init_impl(sv, m, c, data));
  return FM_OK;
}

static fm_err server_step(void *state, fm_model *m, const fm_config *c, int round) {
  FM_CHECK(align(state, m, c, round));
  return FM_OK;
}

/* The aggregated adapter on the full model, on the clients' test splits (the same
 * windows the clients evaluate on). */
static fm_err server_eval(void *state, fm_model *m, const fm_config *c, const fm_dataset *data,
                          const int *clients, int n, double *loss) {
  server_t *sv = state;
  FM_CHECK(copy_class(sv, m, ADAPTER, 1));
  int B = c->train.batch, T = c->train.seq_len;
  double sum = 0;
  for (int j = 0; j < n; j++) {
    fm_rng r;
    fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)clients[j], FM_SPLIT_TEST, FM_RNG_EVAL);
    const fm_split *sp = &data->clients[clients[j]].split[FM_SPLIT_TEST];
    double cl = 0;
    for (int b = 0; b < c->train.eval_batches; b++) {
      float ce;
      FM_CHECK(fm_batch_sample(&data->corpus, sp, &r, B, T, sv->tok, sv->tgt, NULL));
      FM_CHECK(fm_model_forward(sv->full, sv->tok, sv->tgt, B, T, &ce, NULL));
      cl += ce;
    }
    sum += cl / c->train.eval_batches;
  }
  *loss = n ? sum / n : NAN;
  return FM_OK;
}

/* The full model with the aggregated adapter: what the paper scores, saved in the
 * checkpoints for `fedmoe eval` (the clients' model is the emulator). */
static fm_err server_model(void *state, fm_model *m, fm_model **full) {
  server_t *sv = state;
  FM_CHECK(copy_class(sv, m, ADAPTER, 1));
  *full = sv->full;
  return FM_OK;
}

/* The alignment's AdamW state into the checkpoint (float64: exact for float values
 * and step counts). Collective: sv is NULL on the ranks other than 0, which write
 * nothing but take part; every write is made whatever happened before, so that no
 * rank leaves the others in one. */
static const char *const adam_paths[2] = {"fedbiot/emulator_adam/m", "fedbiot/emulator_adam/v"};

static fm_err server_checkpoint(void *state, fm_model *m, fm_runfile *rf) {
  server_t *sv = state;
  size_t n = fm_model_class_numel(m, EMULATOR);
  double step = sv ? (double)sv->opt_emul.step : 0;
  fm_err err = FM_OK;
  for (int k = 0; k < 2; k++) {
    const float *src = sv ? (k ? sv->opt_emul.v : sv->opt_emul.m) : NULL;
    for (size_t i = 0; src && i < n; i++) sv->stage[i] = src[i];
    fm_err e = fm_runfile_write_state(rf, adam_paths[k], sv ? sv->stage : &step, n);
    if (!err) err = e;
  }
  fm_err e = fm_runfile_write_state(rf, "fedbiot/emulator_adam/step", &step, 1);
  return err ? err : e;
}

/* ... and back on resume. The full model needs nothing: server_init loaded model.init
 * again, and its adapter is the restored global one (copied in before every use). */
static fm_err server_restore(void *state, fm_model *m, fm_runfile *rf) {
  server_t *sv = state;
  size_t n = fm_model_class_numel(m, EMULATOR);
  double step = 0;
  fm_err err = FM_OK;
  for (int k = 0; k < 2; k++) {
    fm_err e = fm_runfile_read_state(rf, adam_paths[k], "fl.strategy", sv ? sv->stage : &step, n);
    float *dst = sv ? (k ? sv->opt_emul.v : sv->opt_emul.m) : NULL;
    for (size_t i = 0; !e && dst && i < n; i++) dst[i] = (float)sv->stage[i];
    if (!err) err = e;
  }
  fm_err e = fm_runfile_read_state(rf, "fedbiot/emulator_adam/step", "fl.strategy", &step, 1);
  if (!err) err = e;
  if (!err && sv) sv->opt_emul.step = (long)step;
  return err;
}

static double server_ckpt_bytes(const fm_model *m) { return 16.0 * (double)fm_model_class_numel(m, EMULATOR) + 8; }

const fm_strategy fm_strategy_fedbiot = {
  .name = "fedbiot",
  .nclass = 2,
  .shared = {1, 1},
  .classify = classify_fedbiot,
  .local_update = fedbiot_update,
  .contribution = fedbiot_contribution,
  .client_shape = fedbiot_shape,
  .server_init = server_init,
  .server_step = server_step,
  .server_eval = server_eval,
  .server_free = server_free,
  .server_model = server_model,
  .server_checkpoint = server_checkpoint,
  .server_restore = server_restore,
  .server_ckpt_bytes = server_ckpt_bytes,
};
