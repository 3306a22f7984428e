/* adamw.cu - AdamW on one tensor, the rule of src/nn/adamw.c value for value:
 *   g' = grad_scale g; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
 *   w -= lr (m c1 / (sqrt(v c2) + eps) + wd w) */
#include "common.cuh"
#include "kernels.h"

__global__ void adamw(float *w, float *m, float *v, const float *g, size_t n, float lr, float b1,
                      float b2, float eps, float wd, float c1, float c2, float gs) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float gj = gs * g[i];
  float mm = b1 * m[i] + (1.0f - b1) * gj;
  float vv = b2 * v[i] + (1.0f - b2) * gj * gj;
  m[i] = mm;
  v[i] = vv;
  w[i] -= lr * ((mm * c1) / (sqrtf(vv * c2) + eps) + wd * w[i]);
}

extern "C" int fm_cuk_adamw(float *w, float *m, float *v, const float *g, size_t n, float lr,
                            float b1, float b2, float eps, float wd, float c1, float c2,
                            float grad_scale, void *stream) {
  if (n)
    adamw<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(w, m, v, g, n, lr, b1, b2, eps, wd,
                                                                c1, c2, grad_scale);
  return (int)cudaGetLastError();
}
