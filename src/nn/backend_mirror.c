/* backend_mirror.c - a stand-in device for testing: the CPU backend's kernels on
 * memory of their own, marked as a device, so a model on it has the host mirrors,
 * owner flags and transfers of a GPU model (model_device.c) and the whole runtime can
 * be checked against them on a machine without a GPU (debug.device_mirror). AdamW and
 * the gradient norm are adamw.c's and clip.c's rules as plain loops. */
#include "backend.h"

#include <math.h>

static double mirror_sumsq(fm_backend *be, const float *const *x, const size_t *n, int count) {
  (void)be;
  double s = 0.0;
  for (int i = 0; i < count; i++)
    for (size_t j = 0; j < n[i]; j++) s += (double)x[i][j] * x[i][j];
  return s;
}

static void mirror_adamw(fm_backend *be, float *w, float *m, float *v, const float *g, size_t n, float lr,
                         float b1, float b2, float eps, float wd, float c1, float c2, float gs) {
  (void)be;
  for (size_t j = 0; j < n; j++) {
    const float gj = gs * g[j];
    m[j] = b1 * m[j] + (1.0f - b1) * gj;
    v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
    w[j] -= lr * ((m[j] * c1) / (sqrtf(v[j] * c2) + eps) + wd * w[j]);
  }
}

fm_backend *fm_backend_mirror(void) {
  static fm_backend be;
  if (!be.name) {
    be = fm_backend_cpu;
    be.name = "mirror";
    be.device = 1;
    be.sumsq = mirror_sumsq;
    be.adamw = mirror_adamw;
    be.logits_align = 8; /* the GPU's padded logits rows, so that path runs in the tests */
  }
  return &be;
}
