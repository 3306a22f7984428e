/* ditto.c - Ditto (Li, Hu, Beirami, Smith, ICML 2021): beside the usual update of the
 * global model, each client trains a personal model v of the shared tensors on the
 * objective F_k(v) + lambda/2 ||v - w||^2, w the global model it received this round
 * (Algorithm 1). The personal model never leaves the client: the aggregate is
 * fedavg's, bit for bit.
 *
 * Each personal step is an AdamW step on F_k followed by the proximal step of the
 * term in AdamW's metric (fm_prox_step), rather than the term's gradient
 * lambda (v - w) fed to AdamW: AdamW normalises its steps, so with the gradient the
 * pull does not grow with lambda (on the tiny test model, lambda 1e6 left v at 8% of
 * lambda 0's distance from w, oscillating a few learning rates around it); the
 * proximal step has the same fixed points (grad F_k + lambda (v - w) = 0), is stable
 * for any lambda, gives v = w as lambda grows and nothing at lambda 0.
 *
 * What a client holds: v alone, 4 bytes per shared value, allocated when it first
 * trains (starting from the global model it receives then; the paper's v^0 = w^0 is
 * the same for the clients of round 1). The personal steps use fresh AdamW state each
 * round, as the global update does, so no moments are kept. They sample the batches
 * the global update sampled (the same stream from its start): with lambda 0 and
 * fl.ditto_steps = fl.local_steps a round of them is a round of strategy local. */
#include "toolkit_run.h"

#include <string.h>

/* v into the model's shared tensors */
static void put_personal(const fm_toolkit *tk, const float *v) {
  for (int s = 0; s < tk->nseg; s++)
    memcpy(tk->seg_tensor[s]->w, v + tk->seg_off[s], tk->seg_tensor[s]->numel * sizeof(float));
}

int fm_ditto_load(const fm_toolkit *tk, int client) {
  if (!tk->ditto || !tk->pv[client]) return 0;
  put_personal(tk, tk->pv[client]);
  return 1;
}

fm_err fm_ditto_update(fm_toolkit *tk, const fm_client_ctx *cx, unsigned shared_mask) {
  if (!tk->ditto) return FM_OK;
  const fm_config *c = tk->cfg;
  size_t n = tk->seg_off[tk->nseg];
  float **v = &tk->pv[cx->client];
  if (!*v) { /* first time: the global model this client received */
    FM_CALLOC(*v, n + 1, "Ditto personal model");
    for (int s = 0; s < tk->nseg; s++) {
      const fm_tensor *t = tk->seg_tensor[s];
      memcpy(*v + tk->seg_off[s], cx->global[t->cls] + t->offset, t->numel * sizeof(float));
    }
  }
  if (!tk->ditto_counts) { /* scratch for the personal steps' routing figures */
    const fm_model_shape *sh = fm_model_get_shape(cx->model);
    size_t LE = (size_t)sh->layers * (size_t)sh->experts;
    FM_CALLOC(tk->ditto_counts, LE, "Ditto routing counts");
    FM_CALLOC(tk->ditto_mass, LE, "Ditto gate mass");
  }
  put_personal(tk, *v);
  fm_client_ctx p = *cx;
  p.global = NULL; /* no FedProx term: lambda's is the one */
  p.grad_hook = NULL; /* nor SCAFFOLD's correction, which is the global update's */
  p.route_counts = tk->ditto_counts; /* the round's routing figures stay the global update's */
  p.gate_mass = tk->ditto_mass;
  fm_rng_init(&p.batch_rng, (uint64_t)c->run.seed, (uint32_t)cx->client, (uint32_t)cx->round, FM_RNG_BATCH);
  for (int k = 0; k < fm_model_nclass(cx->model); k++)
    if (shared_mask >> k & 1) fm_adamw_reset(&cx->opt[k]);
  int S = tk->ditto_steps, K = c->fl.local_steps;
  double loss = 0;
  for (int k = 0; k < S; k++) { /* the learning rates of the round's span of the schedule */
    float lr = fm_client_lr(&p, K > 0 ? (int)((long)k * K / S) : k, c->train.lr);
    FM_CHECK(fm_client_train_step(&p, FM_SPLIT_TRAIN, shared_mask, lr, &loss));
    for (int j = 0; j < fm_model_nclass(cx->model); j++)
      if (shared_mask >> j & 1)
        fm_prox_step(cx->model, j, &cx->opt[j], cx->global[j], c->fltk.ditto_lambda, lr, c->train.beta2,
                     c->train.eps);
  }
  for (int s = 0; s < tk->nseg; s++)
    memcpy(*v + tk->seg_off[s], tk->seg_tensor[s]->w, tk->seg_tensor[s]->numel * sizeof(float));
  return FM_OK;
}
