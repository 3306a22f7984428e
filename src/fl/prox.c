/* prox.c - FedProx's proximal term on the shared tensors (Li et al., MLSys 2020).
 *
 * Loss term mu/2 ||w - w_global||^2 over the tensors a step trains that the server
 * aggregates; its gradient mu (w - w_global) joins the model's before clipping and the
 * optimizer, as the term is part of the local objective. Private classes have no
 * global values and get none. */
#include "fedmoe/toolkit.h"

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
