/* swiglu.cu - the SiLU-gated unit of the llama family (src/nn/swiglu.c) and the
 * sigmoid gate of Qwen2-MoE's shared expert (src/nn/shared_expert.c).
 *   a = silu(g) u, silu(g) = g s, s = sigmoid(g), gu [rows, 2F] = gate | up;
 *   dgate = da u s (1 + g (1 - s)),  dup = da g s.
 * The gate's dot products are one warp per row (a fixed tree). */
#include "common.cuh"
#include "kernels_llama.h"

__device__ __forceinline__ float sigm(float z) { return 1.0f / (1.0f + expf(-z)); }

__global__ void swiglu_fwd(float *a, const float *gu, int F, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const size_t r = i / F;
  const int c = (int)(i % F);
  const float g = gu[r * 2 * F + c], u = gu[r * 2 * F + F + c];
  a[i] = g * sigm(g) * u;
}

__global__ void swiglu_bwd(float *dgu, const float *gu, const float *da, int F, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const size_t r = i / F;
  const int c = (int)(i % F);
  const float g = gu[r * 2 * F + c], u = gu[r * 2 * F + F + c], d = da[i], s = sigm(g);
  dgu[r * 2 * F + c] = d * u * s * (1.0f + g * (1.0f - s));
  dgu[r * 2 * F + F + c] = d * g * s;
}

extern "C" int fm_cuk_swiglu_forward(float *a, const float *gu, int rows, int F, void *stream) {
  const size_t total = (size_t)rows * F;
  if (total) swiglu_fwd<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(a, gu, F, total);
  return (int)cudaGetLastError();
}

extern "C" int fm_cuk_swiglu_backward(float *dgu, const float *gu, const float *da, int rows, int F,
                                      void *stream) {
  const size_t total = (size_t)rows * F;
  if (total)
    swiglu_bwd<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(dgu, gu, da, F, total);
  return (int)cudaGetLastError();
}

#define ROWS_PER_BLOCK 8

__global__ void gate_combine(float *out, float *sg, const float *y, const float *x,
                             const float *wsg, int N, int D) {
  int n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (n >= N) return;
  const float *xn = x + (size_t)n * D, *yn = y + (size_t)n * D;
  float z = 0.0f;
  for (int i = lane; i < D; i += FM_WARP) z += xn[i] * wsg[i];
  const float s = sigm(fm_warp_sum(z));
  float *o = out + (size_t)n * D;
  for (int i = lane; i < D; i += FM_WARP) o[i] += s * yn[i];
  if (lane == 0) sg[n] = s;
}

__global__ void gate_bwd(float *dy, float *dz, const float *dout, const float *y, const float *sg,
                         int N, int D) {
  int n = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (n >= N) return;
  const float *d = dout + (size_t)n * D, *yn = y + (size_t)n * D;
  const float s = sg[n];
  float dot = 0.0f;
  for (int i = lane; i < D; i += FM_WARP) dot += d[i] * yn[i];
  dot = fm_warp_sum(dot);
  float *o = dy + (size_t)n * D;
  for (int i = lane; i < D; i += FM_WARP) o[i] = s * d[i];
  if (lane == 0) dz[n] = dot * s * (1.0f - s);
}

extern "C" int fm_cuk_gate_combine(float *out, float *sg, const float *y, const float *x,
                                   const float *wsg, int N, int D, void *stream) {
  if (N > 0)
    gate_combine<<<fm_blocks(N, ROWS_PER_BLOCK), ROWS_PER_BLOCK * FM_WARP, 0, (cudaStream_t)stream>>>(
        out, sg, y, x, wsg, N, D);
  return (int)cudaGetLastError();
}

extern "C" int fm_cuk_gate_backward(float *dy, float *dz, const float *dout, const float *y,
                                    const float *sg, int N, int D, void *stream) {
  if (N > 0)
    gate_bwd<<<fm_blocks(N, ROWS_PER_BLOCK), ROWS_PER_BLOCK * FM_WARP, 0, (cudaStream_t)stream>>>(
        dy, dz, dout, y, sg, N, D);
  return (int)cudaGetLastError();
}
