/* clip.c - global gradient norm and the clipping factor over a set of sharing
 * classes (bit c of mask: class c), counting only the tensors not frozen now. The
 * gradients are not rescaled here: AdamW takes the factor (grad_scale). */
#include "model_impl.h"
#include "vmath.h"

#include <math.h>

static int selected(const fm_tensor *t, unsigned mask) {
  return t->cls >= 0 && t->cls < 32 && ((mask >> t->cls) & 1u) && t->g && !t->frozen;
}

FM_VEC double fm_model_grad_norm(fm_model *m, unsigned mask) {
  if (fm_model_on_device(m)) return fm_model_grad_norm_device(m, mask); /* model_device.c */
  double ss = 0.0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    if (!selected(t, mask)) continue;
    const float *restrict g = t->g;
    double acc[FM_LANES] = {0}; /* lanes, so that the loop vectorises (vmath.h) */
    size_t j = 0;
    for (; j + FM_LANES <= t->numel; j += FM_LANES)
      for (int l = 0; l < FM_LANES; l++) acc[l] += (double)g[j + l] * g[j + l];
    for (int l = 0; j < t->numel; j++, l++) acc[l] += (double)g[j] * g[j];
    for (int l = 0; l < FM_LANES; l++) ss += acc[l];
  }
  return sqrt(ss);
}

float fm_model_clip_factor(fm_model *m, unsigned mask, double max_norm) {
  if (!(max_norm > 0.0)) return 1.0f;
  FM_PROF_BEGIN(t0);
  double norm = fm_model_grad_norm(m, mask);
  FM_PROF_END(t0, FM_PROF_OPTIMIZER, FM_PROF_BWD);
  return norm > max_norm ? (float)(max_norm / norm) : 1.0f;
}
