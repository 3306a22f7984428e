/* head_crossentropy.cu - the row kernels of the fused LM head + cross-entropy (head.c):
 * on one chunk of logits rows, the log-sum-exp in one read (an online max and sum per
 * thread, then a fixed tree), each row's loss in double, and the gradient of the mean
 * loss w.r.t. the logits written over them (fp32) or beside them as bf16 for the
 * tensor-core GEMMs. The scale dloss / (rows counted) is read on the device, so the
 * whole head runs without a host round trip until the loss is downloaded. */
#include "common.cuh"
#include "kernels.h"

#include <cuda_bf16.h>

#define HEAD_THREADS 512

namespace {

/* one block: *dcount = #targets >= 0 (thread i counts rows i, i + blockDim, ...) */
__global__ void head_count(int *dcount, const int32_t *targets, int N) {
  __shared__ int c[HEAD_THREADS];
  int k = 0;
  for (int n = threadIdx.x; n < N; n += blockDim.x) k += targets[n] >= 0;
  c[threadIdx.x] = k;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h /= 2) {
    if ((int)threadIdx.x < h) c[threadIdx.x] += c[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) *dcount = c[0];
}

/* one block: *dsum = sum of rowloss[N] in a fixed order */
__global__ void head_total(double *dsum, const double *rowloss, int N) {
  __shared__ double s[HEAD_THREADS];
  double a = 0.0;
  for (int n = threadIdx.x; n < N; n += blockDim.x) a += rowloss[n];
  s[threadIdx.x] = a;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h /= 2) {
    if ((int)threadIdx.x < h) s[threadIdx.x] += s[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) *dsum = s[0];
}

__device__ __forceinline__ void put(float *d, float v) { *d = v; }
__device__ __forceinline__ void put(__nv_bfloat16 *d, float v) { *d = __float2bfloat16_rn(v); }

/* one block a row of the chunk: logits z [rows, V] (fp32, row stride ld, as dz); lse[row], rowloss[row];
 * with dz (not NULL): dz = scale (softmax(z) - onehot(target)), 0 on ignored rows */
template <typename D>
__global__ void __launch_bounds__(HEAD_THREADS)
    head_rows(float *lse, double *rowloss, D *dz, const float *z, const int32_t *targets, int V,
              int ld, const int *dcount, float dloss) {
  __shared__ float shm[32];
  const int n = blockIdx.x, t = targets[n];
  const float *zr = z + (size_t)n * ld;
  const float zt = threadIdx.x == 0 && t >= 0 ? zr[t] : 0.0f; /* before dz may overwrite it */
  float m = -INFINITY, s = 0.0f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) { /* online: one exp an element */
    const float v = zr[j];
    if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  const float mx = fm_block_max(m, shm);
  s = m == -INFINITY ? 0.0f : s * expf(m - mx);
  s = fm_block_sum(s, shm);
  const float l = mx + logf(s);
  if (threadIdx.x == 0) {
    if (lse) lse[n] = l;
    rowloss[n] = t >= 0 ? (double)l - (double)zt : 0.0;
  }
  if (!dz) return;
  const int cnt = *dcount;
  const float scale = t >= 0 && cnt ? dloss / (float)cnt : 0.0f;
  D *dr = dz + (size_t)n * ld;
  for (int j = threadIdx.x; j < V; j += blockDim.x)
    put(dr + j, scale * expf(zr[j] - l) - (j == t ? scale : 0.0f));
}

} // namespace

extern "C" int fm_cuk_head_count(int *dcount, const int32_t *targets, int N, void *stream) {
  head_count<<<1, HEAD_THREADS, 0, (cudaStream_t)stream>>>(dcount, targets, N);
  return (int)cudaGetLastError();
}

extern "C" int fm_cuk_head_rows(float *lse, double *rowloss, void *dz, int dz_bf16, const float *z,
                                const int32_t *targets, int rows, int V, int ld,
                                const int *dcount, float dloss, void *stream) {
  if (rows <= 0) return 0;
  cudaStream_t st = (cudaStream_t)stream;
  if (dz_bf16)
    head_rows<__nv_bfloat16><<<rows, HEAD_THREADS, 0, st>>>(lse, rowloss, (__nv_bfloat16 *)dz, z,
                                                            targets, V, ld, dcount, dloss);
  else
    head_rows<float><<<rows, HEAD_THREADS, 0, st>>>(lse, rowloss, (float *)dz, z, targets, V, ld,
                                                    dcount, dloss);
  return (int)cudaGetLastError();
}

extern "C" int fm_cuk_head_total(double *dsum, const double *rowloss, int N, void *stream) {
  head_total<<<1, HEAD_THREADS, 0, (cudaStream_t)stream>>>(dsum, rowloss, N);
  return (int)cudaGetLastError();
}
