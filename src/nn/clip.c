/* clip.c - global gradient norm and clipping over a set of sharing classes
 * (bit c of mask: class c), counting only the tensors not frozen now. */
#include "nn.h"

#include <math.h>

static int selected(const fm_tensor *t, unsigned mask) {
  return t->cls >= 0 && t->cls < 32 && ((mask >> t->cls) & 1u) && t->g && !t->frozen;
}

double fm_model_grad_norm(fm_model *m, unsigned mask) {
  double ss = 0.0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    if (!selected(t, mask)) continue;
    const float *restrict g = t->g;
    double acc = 0.0;
    for (size_t j = 0; j < t->numel; j++) acc += (double)g[j] * g[j];
    ss += acc;
  }
  return sqrt(ss);
}

double fm_model_clip_grads(fm_model *m, unsigned mask, double max_norm) {
  FM_PROF_BEGIN(t0);
  double norm = fm_model_grad_norm(m, mask);
  if (!(max_norm > 0.0) || !(norm > max_norm)) {
    FM_PROF_END(t0, FM_PROF_OPTIMIZER, FM_PROF_BWD);
    return norm;
  }
  const float scale = (float)(max_norm / norm);
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (!selected(t, mask)) continue;
    float *restrict g = t->g;
    for (size_t j = 0; j < t->numel; j++) g[j] *= scale;
  }
  FM_PROF_END(t0, FM_PROF_OPTIMIZER, FM_PROF_BWD);
  return norm;
}
