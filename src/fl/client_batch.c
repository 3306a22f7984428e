/* client_batch.c - run.client_batch: several clients of a host trained at once.
 *
 * Clients that share a frozen base and differ only in their LoRA pairs and routers
 * (model.train = lora: attention adapters, LoRA experts) train together on a model of
 * client slots (src/nn/model_slots.c): one forward and backward over all their batches
 * per local step, each slot with its own pairs, routing, loss, clipping and AdamW
 * state. Each client samples exactly the batches it would
 * alone (its own stream) and sees the same learning rate, so its result is what
 * training it alone gives, up to the rounding of taller GEMMs. */
#include "fedmoe/fl.h"

#include <stdlib.h>
#include <string.h>

fm_err fm_client_batch_check(const fm_config *c) {
  if (c->run.client_batch <= 1) return FM_OK;
  if (c->model.train != FM_TRAIN_LORA)
    FM_CONFIG_ERROR(c, "run.client_batch", "%d clients at once share a frozen base: it needs model.train = lora",
                    c->run.client_batch);
  if (c->fl.strategy != FM_STRAT_FEDAVG && c->fl.strategy != FM_STRAT_LOCAL)
    FM_CONFIG_ERROR(c, "run.client_batch", "is for fl.strategy = fedavg or local, not %s (set run.client_batch "
                    "= 1)", fm_strategy_get(c->fl.strategy)->name);
  /* what trains is model.train = lora's (a LoRA pair or a router: fm_scope_check) */
  /* what hooks a client's gradients or keeps per-client training state */
  const char *hook = c->fltk.scaffold ? "fl.scaffold" : c->fltk.prox_mu > 0 ? "fl.prox_mu"
                     : c->fltk.ditto ? "fl.ditto" : NULL;
  if (hook)
    FM_CONFIG_ERROR(c, "run.client_batch", "%d clients at once do not support %s, which works on each client's "
                    "gradients or trains a second model (set run.client_batch = 1)", c->run.client_batch, hook);
  return FM_OK;
}

fm_err fm_client_train_group(fm_client_ctx *const *cx, int n, unsigned class_mask, int32_t *tokens,
                             int32_t *targets) {
  fm_model *m = cx[0]->model;
  const fm_config *c = cx[0]->cfg;
  const int B = c->train.batch, T = c->train.seq_len, K = c->fl.local_steps, slots = fm_model_nslot(m);
  const size_t bt = (size_t)B * T;
  if (n < 1 || n > slots) FM_ERROR(FM_ERR_INTERNAL, "a group of %d clients on %d slots", n, slots);
  /* idle slots: valid tokens, no targets (no loss, no gradient) */
  for (size_t j = (size_t)n * bt; j < (size_t)slots * bt; j++) tokens[j] = 0, targets[j] = -1;
  double loss[256] = {0};
  float ce[256];
  const int nclass = fm_model_nclass(m);
  fm_err err = FM_OK;
  for (int k = 0; k < K && !err; k++) {
    for (int g = 0; g < n; g++) {
      const fm_client_data *cd = &cx[g]->data->clients[cx[g]->client];
      FM_CHECK(fm_batch_sample(&cx[g]->data->corpus, &cd->split[FM_SPLIT_TRAIN], &cx[g]->batch_rng, B, T,
                               tokens + g * bt, targets + g * bt, NULL));
    }
    for (int q = 0; q < nclass; q++) fm_model_freeze_class(m, q, !(class_mask >> q & 1));
    const double fpt = fm_model_step_flops_per_token(m, T); /* a client's step, as fm_client_train_step */
    fm_model_zero_grads(m);
    FM_CHECK(fm_model_forward_slots(m, tokens, targets, B, T, n, ce));
    FM_CHECK(fm_model_backward(m));
    const float lr = fm_client_lr(cx[0], k, c->train.lr); /* the same schedule for every client */
    for (int g = 0; g < n && !err; g++) {
      err = fm_model_set_slot(m, g);
      if (err) break;
      fm_adamw_hparams h = {lr, (float)c->train.beta1, (float)c->train.beta2, (float)c->train.eps,
                            (float)c->train.weight_decay, fm_model_clip_factor(m, class_mask, c->train.grad_clip)};
      for (int q = 0; q < nclass; q++)
        if (class_mask >> q & 1) fm_adamw_step(&cx[g]->opt[q], m, q, &h);
      fm_client_add_routing(cx[g], (int)bt); /* slot g's part of the forward */
      cx[g]->res->tokens += (uint64_t)bt;
      cx[g]->res->flops += fpt * (double)bt;
      loss[g] += ce[g];
    }
  }
  fm_err e0 = fm_model_set_slot(m, 0);
  FM_CHECK(err);
  FM_CHECK(e0);
  for (int g = 0; g < n; g++) cx[g]->res->train_loss = K ? loss[g] / K : 0;
  return FM_OK;
}

fm_err fm_client_eval_group(fm_client_ctx *const *cx, int n, int split, int32_t *tokens, int32_t *targets,
                            double *loss) {
  fm_model *m = cx[0]->model;
  const fm_config *c = cx[0]->cfg;
  const int B = c->train.batch, T = c->train.seq_len, slots = fm_model_nslot(m);
  const size_t bt = (size_t)B * T;
  if (n < 1 || n > slots) FM_ERROR(FM_ERR_INTERNAL, "a group of %d clients on %d slots", n, slots);
  for (size_t j = (size_t)n * bt; j < (size_t)slots * bt; j++) tokens[j] = 0, targets[j] = -1;
  fm_rng rng[256];
  double sum[256] = {0};
  float ce[256];
  for (int g = 0; g < n; g++) /* fm_client_eval's stream of each client */
    fm_rng_init(&rng[g], (uint64_t)c->run.seed, (uint32_t)cx[g]->client, (uint32_t)split, FM_RNG_EVAL);
  for (int b = 0; b < c->train.eval_batches; b++) {
    for (int g = 0; g < n; g++) {
      const fm_client_data *cd = &cx[g]->data->clients[cx[g]->client];
      FM_CHECK(fm_batch_sample(&cx[g]->data->corpus, &cd->split[split], &rng[g], B, T, tokens + g * bt,
                               targets + g * bt, NULL));
    }
    FM_CHECK(fm_model_forward_slots(m, tokens, targets, B, T, n, ce));
    for (int g = 0; g < n; g++) sum[g] += ce[g];
  }
  for (int g = 0; g < n; g++) loss[g] = sum[g] / c->train.eval_batches;
  return FM_OK;
}
