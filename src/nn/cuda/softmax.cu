/* softmax.cu - the causal softmax of attention scores and its backward, one warp per
 * row of [B*H*T, T]. The score GEMMs are cuBLAS's (attention.c); these are the passes
 * between them. Entries above the diagonal are written as 0, so the probability GEMM
 * may read whole rows. */
#include "common.cuh"
#include "kernels.h"

__global__ void causal_softmax(float *att, int rows, int T, float scale) {
  int r = blockIdx.x * (blockDim.x / FM_WARP) + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (r >= rows) return;
  int t = r % T;
  float *a = att + (size_t)r * T;
  float mx = -INFINITY;
  for (int j = lane; j <= t; j += FM_WARP) mx = fmaxf(mx, scale * a[j]);
  mx = fm_warp_max(mx);
  float s = 0.0f;
  for (int j = lane; j <= t; j += FM_WARP) s += expf(scale * a[j] - mx);
  s = fm_warp_sum(s);
  float inv = 1.0f / s;
  for (int j = lane; j < T; j += FM_WARP) a[j] = j <= t ? expf(scale * a[j] - mx) * inv : 0.0f;
}

__global__ void causal_softmax_bwd(float *datt, const float *att, int rows, int T, float scale) {
  int r = blockIdx.x * (blockDim.x / FM_WARP) + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (r >= rows) return;
  int t = r % T;
  float *d = datt + (size_t)r * T;
  const float *a = att + (size_t)r * T;
  float s = 0.0f;
  for (int j = lane; j <= t; j += FM_WARP) s += d[j] * a[j];
  s = fm_warp_sum(s);
  for (int j = lane; j < T; j += FM_WARP) d[j] = j <= t ? scale * a[j] * (d[j] - s) : 0.0f;
}

extern "C" int fm_cuk_causal_softmax(float *att, int rows, int T, float scale, void *stream) {
  if (rows > 0)
    causal_softmax<<<fm_blocks(rows, 8), 8 * FM_WARP, 0, (cudaStream_t)stream>>>(att, rows, T,
                                                                                 scale);
  return (int)cudaGetLastError();
}
extern "C" int fm_cuk_causal_softmax_backward(float *datt, const float *att, int rows, int T,
                                              float scale, void *stream) {
  if (rows > 0)
    causal_softmax_bwd<<<fm_blocks(rows, 8), 8 * FM_WARP, 0, (cudaStream_t)stream>>>(
        datt, att, rows, T, scale);
  return (int)cudaGetLastError();
}
