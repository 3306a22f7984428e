/* moe_dispatch.cu - MoE dispatch and combine on the device, without host round trips
 * and without atomics.
 * Dispatch: the N keff (token, slot) pairs, i = n keff + j in token order, are sorted
 * by expert with CUB's stable radix sort, so expert e's rows are a contiguous block
 * in token order - the order of moe.c's counting sort. start[e] is the first sorted
 * place of e (a binary search), and inv maps a pair back to its place.
 * Combine: each token gathers its keff expert outputs in slot order (no scatter); the
 * backward's sums over a token's picks (dx, the LoRA base's dh) gather the same way. */
#include "common.cuh"
#include "kernels_llama.h"

#include <cub/device/device_radix_sort.cuh>

extern "C" size_t fm_cuk_moe_sort_bytes(int npos) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(NULL, bytes, (const int32_t *)NULL, (int32_t *)NULL,
                                  (const int32_t *)NULL, (int32_t *)NULL, npos);
  return bytes;
}

__global__ void moe_keys(int32_t *key, int32_t *val, const int32_t *picks, int k, int keff,
                         int npos) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= npos) return;
  key[i] = picks[(size_t)(i / keff) * k + i % keff];
  val[i] = i;
}

__global__ void moe_index(int32_t *tok, int32_t *slot, int32_t *inv, const int32_t *sval, int keff,
                          int npos) {
  int pos = blockIdx.x * blockDim.x + threadIdx.x;
  if (pos >= npos) return;
  const int v = sval[pos];
  tok[pos] = v / keff;
  slot[pos] = v % keff;
  inv[v] = pos;
}

/* start[e] = the first place whose expert is >= e (start[E] = npos) */
__global__ void moe_starts(int32_t *start, const int32_t *skey, int npos, int E) {
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e > E) return;
  int lo = 0, hi = npos;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (skey[mid] < e)
      lo = mid + 1;
    else
      hi = mid;
  }
  start[e] = lo;
}

extern "C" int fm_cuk_moe_dispatch(int32_t *start, int32_t *tok, int32_t *slot, int32_t *inv,
                                   const int32_t *picks, int N, int E, int k, int keff,
                                   int32_t *key, int32_t *val, int32_t *skey, int32_t *sval,
                                   void *sort_tmp, size_t sort_bytes, void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  const int npos = N * keff;
  int bits = 1;
  while ((1 << bits) < E) bits++;
  if (npos > 0) {
    moe_keys<<<fm_blocks(npos, 256), 256, 0, st>>>(key, val, picks, k, keff, npos);
    size_t need = 0;
    cub::DeviceRadixSort::SortPairs(NULL, need, key, skey, val, sval, npos, 0, bits, st);
    if (need > sort_bytes) return (int)cudaErrorInvalidValue;
    cudaError_t rc =
        cub::DeviceRadixSort::SortPairs(sort_tmp, need, key, skey, val, sval, npos, 0, bits, st);
    if (rc) return (int)rc;
    moe_index<<<fm_blocks(npos, 256), 256, 0, st>>>(tok, slot, inv, sval, keff, npos);
  }
  moe_starts<<<fm_blocks(E + 1, 128), 128, 0, st>>>(start, skey, npos, E);
  return (int)cudaGetLastError();
}

__global__ void gather_rows(float *dst, const float *src, const int32_t *idx, int W, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const size_t pos = i / W;
  dst[i] = src[(size_t)idx[pos] * W + i % W];
}

extern "C" int fm_cuk_gather_rows(float *dst, const float *src, const int32_t *idx, int npos, int W,
                                  void *stream) {
  const size_t total = (size_t)npos * W;
  if (total)
    gather_rows<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(dst, src, idx, W, total);
  return (int)cudaGetLastError();
}

__global__ void moe_combine(float *out, const float *y, const float *wts, const int32_t *inv, int D,
                            int k, int keff, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const size_t n = i / D;
  const int d = (int)(i % D);
  float o = out[i];
  for (int j = 0; j < keff; j++)
    o += wts[n * k + j] * y[(size_t)inv[n * keff + j] * D + d];
  out[i] = o;
}

extern "C" int fm_cuk_moe_combine(float *out, const float *y, const float *wts, const int32_t *inv,
                                  int N, int D, int k, int keff, void *stream) {
  const size_t total = (size_t)N * D;
  if (total)
    moe_combine<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(out, y, wts, inv, D, k,
                                                                          keff, total);
  return (int)cudaGetLastError();
}

#define ROWS_PER_BLOCK 8

/* one warp per dispatched row: the weight's gradient <dout[tok], y[pos]> (fixed tree)
 * and the expert output's gradient w dout[tok] */
__global__ void moe_combine_bwd(float *dy, float *dwts, const float *dout, const float *y,
                                const float *wts, const int32_t *tok, const int32_t *slot, int npos,
                                int D, int k) {
  const int pos = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (pos >= npos) return;
  const size_t ws = (size_t)tok[pos] * k + slot[pos];
  const float w = wts[ws];
  const float *d = dout + (size_t)tok[pos] * D, *yp = y + (size_t)pos * D;
  float *o = dy + (size_t)pos * D;
  float dot = 0.0f;
  for (int i = lane; i < D; i += FM_WARP) {
    dot += d[i] * yp[i];
    o[i] = w * d[i];
  }
  dot = fm_warp_sum(dot);
  if (lane == 0) dwts[ws] = dot;
}

extern "C" int fm_cuk_moe_combine_backward(float *dy, float *dwts, const float *dout,
                                           const float *y, const float *wts, const int32_t *tok,
                                           const int32_t *slot, int npos, int D, int k,
                                           void *stream) {
  if (npos > 0)
    moe_combine_bwd<<<fm_blocks(npos, ROWS_PER_BLOCK), ROWS_PER_BLOCK * FM_WARP, 0,
                      (cudaStream_t)stream>>>(dy, dwts, dout, y, wts, tok, slot, npos, D, k);
  return (int)cudaGetLastError();
}

__global__ void moe_gather_sum(float *acc, const float *src, const int32_t *inv, int W, int keff,
                               int accumulate, size_t total) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const size_t n = i / W;
  const int c = (int)(i % W);
  float s = accumulate ? acc[i] : 0.0f;
  for (int j = 0; j < keff; j++) s += src[(size_t)inv[n * keff + j] * W + c];
  acc[i] = s;
}

extern "C" int fm_cuk_moe_gather_sum(float *acc, const float *src, const int32_t *inv, int N, int W,
                                     int keff, int accumulate, void *stream) {
  const size_t total = (size_t)N * W;
  if (total)
    moe_gather_sum<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(acc, src, inv, W, keff,
                                                                             accumulate, total);
  return (int)cudaGetLastError();
}
