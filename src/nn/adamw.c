/* adamw.c - AdamW (Loshchilov & Hutter) over one sharing class:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  t = step count of this optimizer
 *   w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + lr wd w   (wd on decay tensors)
 * with g the gradient times h->grad_scale (gradient clipping folded into this pass).
 * The state (m, v) is laid out like the class buffer, so it is saved and restored
 * with it; tensors frozen now are skipped and their state is left as it is. */
#include "model_impl.h"
#include "vmath.h"

#include "fedmoe/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fm_err fm_adamw_create(fm_adamw *o, size_t n) {
  memset(o, 0, sizeof *o);
  FM_CALLOC(o->m, n ? n : 1, "AdamW first moments");
  if (fm_calloc(&o->v, n ? n : 1, sizeof *o->v, "AdamW second moments")) {
    free(o->m);
    o->m = NULL;
    return fm_error_trace(__FILE__, __LINE__, __func__, FM_ERR_MEM);
  }
  o->n = n;
  return FM_OK;
}

void fm_adamw_free(fm_adamw *o) {
  free(o->m);
  free(o->v);
  memset(o, 0, sizeof *o);
}

void fm_adamw_reset(fm_adamw *o) {
  if (o->n) {
    memset(o->m, 0, o->n * sizeof *o->m);
    memset(o->v, 0, o->n * sizeof *o->v);
  }
  o->step = 0;
}

FM_VEC void fm_adamw_step(fm_adamw *o, fm_model *m, int cls, const fm_adamw_hparams *h) {
  if (cls < 0 || cls >= fm_model_nclass(m) || fm_model_class_numel(m, cls) != o->n)
    fm_fatal(fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_INTERNAL,
                          "AdamW state of %zu values used on class %d of %zu values", o->n, cls,
                          fm_model_class_numel(m, cls)));
  if (!(h->grad_scale >= 0.0f)) /* 0 when the gradient norm overflowed (clip factor) */
    fm_fatal(fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_INTERNAL, "AdamW with grad_scale %g",
                          (double)h->grad_scale));
  if (fm_model_on_device(m)) { /* model_device.c: the same rule on the device's copies */
    fm_adamw_step_device(o, m, cls, h);
    return;
  }
  FM_PROF_BEGIN(t0);
  o->step++;
  const float b1 = h->beta1, b2 = h->beta2, eps = h->eps, lr = h->lr, gs = h->grad_scale;
  const float c1 = 1.0f / (float)(1.0 - pow(h->beta1, (double)o->step));
  const float c2 = 1.0f / (float)(1.0 - pow(h->beta2, (double)o->step));
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    if (t->cls != cls || t->frozen) continue;
    const float wd = t->decay ? h->weight_decay : 0.0f;
    float *restrict w = t->w, *restrict mm = o->m + t->offset, *restrict vv = o->v + t->offset;
    const float *restrict g = t->g;
    for (size_t j = 0; j < t->numel; j++) {
      float gj = gs * g[j];
      mm[j] = b1 * mm[j] + (1.0f - b1) * gj;
      vv[j] = b2 * vv[j] + (1.0f - b2) * gj * gj;
      float mhat = mm[j] * c1, vhat = vv[j] * c2;
      w[j] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * w[j]);
    }
  }
  FM_PROF_END(t0, FM_PROF_OPTIMIZER, FM_PROF_BWD);
}
