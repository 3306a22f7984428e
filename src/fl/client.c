/* client.c - a client's training steps and evaluations, for the strategies. */
#include "fedmoe/fl.h"
#include "fedmoe/toolkit.h"

#include <string.h>

void fm_client_add_routing(fm_client_ctx *cx, int ntok) {
  const fm_model_shape *s = fm_model_get_shape(cx->model);
  int E = s->experts, k = s->top_k;
  for (int l = 0; l < s->layers; l++) {
    if (!(s->moe_mask >> l & 1)) continue;
    const float *p = fm_model_router_probs(cx->model, l);
    const int32_t *picks = fm_model_router_picks(cx->model, l);
    uint64_t *cnt = cx->route_counts + (size_t)l * E;
    double *mass = cx->gate_mass + (size_t)l * E;
    for (int t = 0; t < ntok; t++) {
      for (int e = 0; e < E; e++) mass[e] += p[(size_t)t * E + e];
      for (int j = 0; j < k; j++) {
        int e = picks[(size_t)t * k + j];
        if (e >= 0 && e < E) cnt[e]++;
      }
    }
  }
}

fm_err fm_client_train_step(fm_client_ctx *cx, int split, unsigned class_mask, float lr, double *loss) {
  const fm_config *c = cx->cfg;
  int B = c->train.batch, T = c->train.seq_len;
  const fm_client_data *cd = &cx->data->clients[cx->client];
  FM_CHECK(fm_batch_sample(&cx->data->corpus, &cd->split[split], &cx->batch_rng, B, T, cx->tokens,
                           cx->targets, NULL));
  int nclass = fm_model_nclass(cx->model);
  /* only the classes this step updates get weight gradients */
  for (int k = 0; k < nclass; k++) fm_model_freeze_class(cx->model, k, !(class_mask >> k & 1));
  if (cx->expert_trainable) { /* a budget: only the chosen experts learn */
    int E = fm_model_get_shape(cx->model)->experts;
    for (int i = 0; i < fm_model_ntensors(cx->model); i++) {
      fm_tensor *t = fm_model_tensor(cx->model, i);
      if (t->group == FM_GROUP_EXPERT && !cx->expert_trainable[t->layer * E + t->expert]) t->frozen = 1;
    }
  }
  /* this step's FLOPs: the weight gradients of what it trains only (a frozen base, the
   * classes outside class_mask and experts outside a budget cost none) */
  const double fpt = fm_model_step_flops_per_token(cx->model, T);
  float ce = 0, lb = 0;
  fm_model_zero_grads(cx->model);
  FM_CHECK(fm_model_forward(cx->model, cx->tokens, cx->targets, B, T, &ce, &lb));
  FM_CHECK(fm_model_backward(cx->model));
  if (c->fltk.prox_mu > 0 && cx->global) /* FedProx: the proximal term's gradient joins before clipping */
    fm_prox_apply(cx->model, cx->global, class_mask, c->fltk.prox_mu);
  if (cx->grad_hook) cx->grad_hook(cx->grad_hook_arg, cx->model, class_mask);
  fm_adamw_hparams h = {lr, (float)c->train.beta1, (float)c->train.beta2, (float)c->train.eps,
                        (float)c->train.weight_decay,
                        fm_model_clip_factor(cx->model, class_mask, c->train.grad_clip)};
  for (int k = 0; k < nclass; k++)
    if (class_mask >> k & 1) fm_adamw_step(&cx->opt[k], cx->model, k, &h);
  if (split == FM_SPLIT_TRAIN) fm_client_add_routing(cx, B * T);
  cx->res->tokens += (uint64_t)B * (uint64_t)T;
  cx->res->flops += fpt * B * T;
  if (loss) *loss += ce;
  return FM_OK;
}

fm_err fm_client_eval(fm_client_ctx *cx, int split, double *loss) {
  const fm_config *c = cx->cfg;
  int B = c->train.batch, T = c->train.seq_len;
  const fm_client_data *cd = &cx->data->clients[cx->client];
  /* a fixed stream per client: the same windows every round, so losses compare */
  fm_rng r;
  fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)cx->client, (uint32_t)split, FM_RNG_EVAL);
  double sum = 0;
  for (int b = 0; b < c->train.eval_batches; b++) {
    float ce = 0;
    FM_CHECK(fm_batch_sample(&cx->data->corpus, &cd->split[split], &r, B, T, cx->tokens, cx->targets, NULL));
    FM_CHECK(fm_model_forward(cx->model, cx->tokens, cx->targets, B, T, &ce, NULL));
    sum += ce;
  }
  *loss = sum / c->train.eval_batches;
  return FM_OK;
}

float fm_client_lr(const fm_client_ctx *cx, int k, double base_lr) {
  /* global progress, not per client: every client sees the same schedule in a round */
  const fm_config *c = cx->cfg;
  long K = c->fl.local_steps > 0 ? c->fl.local_steps : 1;
  return fm_lr_at(c, (long)(cx->round - 1) * K + k, (long)c->fl.rounds * K, (float)base_lr);
}

fm_err fm_client_train_round(fm_client_ctx *cx, unsigned class_mask) {
  double loss = 0;
  int K = cx->cfg->fl.local_steps;
  for (int k = 0; k < K; k++)
    FM_CHECK(fm_client_train_step(cx, FM_SPLIT_TRAIN, class_mask, fm_client_lr(cx, k, cx->cfg->train.lr), &loss));
  cx->res->train_loss = K ? loss / K : 0;
  return FM_OK;
}
