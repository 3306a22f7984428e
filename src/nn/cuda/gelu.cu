/* gelu.cu - GELU, tanh approximation (GPT-2), as src/nn/gelu.c:
 *   gelu(x) = x logistic(2u), u = c (x + 0.044715 x^3), c = sqrt(2/pi)
 *   gelu'(x) = s + 2 x s (1 - s) c (1 + 3 0.044715 x^2), s = logistic(2u) */
#include "common.cuh"
#include "kernels.h"

#define GELU_C 0.7978845608028654f
#define GELU_A 0.044715f

__device__ __forceinline__ float logistic2u(float x) {
  return 1.0f / (1.0f + __expf(-2.0f * GELU_C * (x + GELU_A * x * x * x)));
}
__device__ __forceinline__ float gelu_grad(float x) {
  float s = logistic2u(x);
  return s + 2.0f * x * s * (1.0f - s) * GELU_C * (1.0f + 3.0f * GELU_A * x * x);
}

__global__ void gelu_fwd(float *out, const float *inp, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = inp[i] * logistic2u(inp[i]);
}
__global__ void gelu_bwd(float *dinp, const float *inp, const float *dout, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dinp[i] = gelu_grad(inp[i]) * dout[i];
}
__global__ void bias_gelu_fwd(float *g, float *h, const float *b, size_t n, int F) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float x = h[i] + (b ? b[i % F] : 0.0f);
  h[i] = x;
  g[i] = x * logistic2u(x);
}
__global__ void gelu_bwd_inplace(float *dh, const float *h, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dh[i] *= gelu_grad(h[i]);
}

extern "C" int fm_cuk_gelu_forward(float *out, const float *inp, size_t n, void *stream) {
  if (n) gelu_fwd<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(out, inp, n);
  return (int)cudaGetLastError();
}
extern "C" int fm_cuk_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n,
                                    void *stream) {
  if (n) gelu_bwd<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(dinp, inp, dout, n);
  return (int)cudaGetLastError();
}
extern "C" int fm_cuk_bias_gelu_forward(float *g, float *h, const float *b, int rows, int F,
                                        void *stream) {
  size_t n = (size_t)rows * F;
  if (n) bias_gelu_fwd<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(g, h, b, n, F);
  return (int)cudaGetLastError();
}
extern "C" int fm_cuk_gelu_backward_bias(float *dh, const float *h, float *db, int rows, int F,
                                         float *scratch, void *stream) {
  size_t n = (size_t)rows * F;
  if (!n) return 0;
  gelu_bwd_inplace<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(dh, h, n);
  int rc = (int)cudaGetLastError();
  if (rc || !db) return rc;
  return fm_cuk_colsum(db, dh, rows, F, scratch, stream);
}
