/* embed.cu - token + position embeddings, forward and a deterministic backward.
 * The token backward sorts the positions by token (CUB's radix sort is stable, so
 * each token's positions stay in order) and then one block per token sums its rows in
 * that order: the same sums as the CPU's loop over positions, in the same order, with
 * no atomics. */
#include "common.cuh"
#include "kernels.h"

#include <cub/device/device_radix_sort.cuh>

__global__ void embed_fwd(float *out, const int32_t *tok, const float *wte, const float *wpe,
                          int T, int D, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  size_t row = i / D;
  int d = (int)(i % D), t = (int)(row % T);
  float v = wte[(size_t)tok[row] * D + d];
  out[i] = wpe ? v + wpe[(size_t)t * D + d] : v;
}

extern "C" int fm_cuk_embed_forward(float *out, const int32_t *tok, const float *wte,
                                    const float *wpe, int B, int T, int D, void *stream) {
  size_t total = (size_t)B * T * D;
  if (total)
    embed_fwd<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(out, tok, wte, wpe, T, D,
                                                                        total);
  return (int)cudaGetLastError();
}

__global__ void embed_bwd_pos(float *dwpe, const float *dout, int B, int T, int D) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)T * D) return;
  float s = 0.0f;
  for (int b = 0; b < B; b++) s += dout[(size_t)b * T * D + i];
  dwpe[i] += s;
}

extern "C" int fm_cuk_embed_backward_pos(float *dwpe, const float *dout, int B, int T, int D,
                                         void *stream) {
  size_t n = (size_t)T * D;
  if (n) embed_bwd_pos<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(dwpe, dout, B, T, D);
  return (int)cudaGetLastError();
}

extern "C" size_t fm_cuk_embed_sort_bytes(int N) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(NULL, bytes, (const int32_t *)NULL, (int32_t *)NULL,
                                  (const int32_t *)NULL, (int32_t *)NULL, N);
  return bytes;
}

__global__ void iota(int32_t *p, int N) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < N) p[i] = i;
}

/* block i: if sorted position i starts a token's run, sum the run's rows in order */
__global__ void embed_bwd_tok(float *dwte, const float *dout, const int32_t *key,
                              const int32_t *order, int N, int D) {
  int i = blockIdx.x;
  if (i > 0 && key[i] == key[i - 1]) return;
  int e = i;
  while (e < N && key[e] == key[i]) e++;
  float *dst = dwte + (size_t)key[i] * D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float s = 0.0f;
    for (int j = i; j < e; j++) s += dout[(size_t)order[j] * D + d];
    dst[d] += s;
  }
}

extern "C" int fm_cuk_embed_backward_tok(float *dwte, const float *dout, const int32_t *tok,
                                         int N, int D, int32_t *key, int32_t *order,
                                         int32_t *pos_in, void *sort_tmp, size_t sort_bytes,
                                         void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (N <= 0) return 0;
  iota<<<fm_blocks(N, 256), 256, 0, st>>>(pos_in, N);
  size_t bytes = sort_bytes;
  cudaError_t rc = cub::DeviceRadixSort::SortPairs(sort_tmp, bytes, tok, key, pos_in, order, N,
                                                   0, 32, st);
  if (rc) return (int)rc;
  embed_bwd_tok<<<N, 128, 0, st>>>(dwte, dout, key, order, N, D);
  return (int)cudaGetLastError();
}
