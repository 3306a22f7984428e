/* prox.c - FedProx's proximal term on the shared tensors (Li et al., MLSys 2020).
 *
 * Loss term mu/2 ||w - w_global||^2 over the tensors a step trains that the server
 * aggregates; its gradient mu (w - w_global) joins the model's before clipping and the
 * optimizer, as the term is part of the local objective. Private classes have no
 * global values and get none. */
#include "fedmoe/toolkit.h"

#include <math.h>

double fm_prox_apply(fm_model *m, float *const *global, unsigned class_mask, double mu) {
  double loss = 0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (t->cls < 0 || !(class_mask >> t->cls & 1) || !global[t->cls] || t->frozen || !t->g) continue;
    const float *g0 = global[t->cls] + t->offset;
    float *restrict g = t->g;
    const float *w = t->w;
    for (size_t k = 0; k < t->numel; k++) {
      double d = (double)w[k] - (double)g0[k];
      loss += d * d;
      g[k] += (float)(mu * d);
    }
  }
  return 0.5 * mu * loss;
}

/* Ditto's proximal step: the exact minimiser, per value, of lambda/2 (u - g)^2 plus
 * AdamW's quadratic model of the step just taken, (u - w)^2 / (2 e) with
 * e = lr / (sqrt(vhat) + eps) the step size AdamW gave the value:
 *   u = (w + e lambda g) / (1 + e lambda).
 * vhat is read from the optimizer state after its step (bias-corrected at its step
 * count). Tensors t of class cls [numel]: w = t->w, g = global[cls] + t->offset,
 * v = o->v + t->offset. Frozen tensors (the step did not move them) are left. */
void fm_prox_step(fm_model *m, int cls, const fm_adamw *o, const float *global, double lambda, double lr,
                  double beta2, double eps) {
  if (lambda <= 0 || o->step <= 0) return;
  double c2 = 1.0 / (1.0 - pow(beta2, (double)o->step));
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (t->cls != cls || t->frozen) continue;
    float *restrict w = t->w;
    const float *g = global + t->offset, *v = o->v + t->offset;
    for (size_t k = 0; k < t->numel; k++) {
      double el = lr / (sqrt((double)v[k] * c2) + eps) * lambda;
      w[k] = (float)(((double)w[k] + el * (double)g[k]) / (1 + el));
    }
  }
}
