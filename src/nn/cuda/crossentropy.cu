/* crossentropy.cu - softmax cross-entropy over the vocabulary, as src/nn/crossentropy.c:
 * one block per row for the log-sum-exp; the rows' losses summed in double, in row
 * order through a fixed tree, so the mean is the same on every run. */
#include "common.cuh"
#include "kernels.h"

#define CE_THREADS 256

__global__ void ce_rows(float *lse, double *rowloss, const float *logits, const int32_t *targets,
                        int V, int ld) {
  __shared__ float shm[32];
  const int n = blockIdx.x;
  const float *z = logits + (size_t)n * ld;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, z[j]);
  mx = fm_block_max(mx, shm);
  float s = 0.0f;
  for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(z[j] - mx);
  s = fm_block_sum(s, shm);
  if (threadIdx.x == 0) {
    float l = mx + logf(s);
    lse[n] = l;
    int t = targets[n];
    rowloss[n] = t >= 0 ? (double)l - (double)z[t] : 0.0;
  }
}

/* one block: thread i sums rows i, i + blockDim, ... in order; then a fixed tree */
__global__ void ce_total(double *dsum, int *dcount, const double *rowloss,
                         const int32_t *targets, int N) {
  __shared__ double s[CE_THREADS];
  __shared__ int c[CE_THREADS];
  double a = 0.0;
  int k = 0;
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    a += rowloss[n];
    k += targets[n] >= 0;
  }
  s[threadIdx.x] = a;
  c[threadIdx.x] = k;
  __syncthreads();
  for (int h = blockDim.x / 2; h > 0; h /= 2) {
    if ((int)threadIdx.x < h) {
      s[threadIdx.x] += s[threadIdx.x + h];
      c[threadIdx.x] += c[threadIdx.x + h];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *dsum = s[0];
    *dcount = c[0];
  }
}

extern "C" int fm_cuk_crossentropy_forward(float *lse, double *rowloss, double *dsum, int *dcount,
                                           const float *logits, const int32_t *targets, int N,
                                           int V, int ld, void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (N > 0) ce_rows<<<N, CE_THREADS, 0, st>>>(lse, rowloss, logits, targets, V, ld);
  ce_total<<<1, CE_THREADS, 0, st>>>(dsum, dcount, rowloss, targets, N);
  return (int)cudaGetLastError();
}

/* in place allowed (dlogits == logits): each thread reads the value it then writes */
__global__ void ce_backward(float *dlogits, const float *logits, const float *lse,
                            const int32_t *targets, int V, int ld, float scale) {
  const int n = blockIdx.x, t = targets[n];
  const float *z = logits + (size_t)n * ld;
  float *d = dlogits + (size_t)n * ld;
  const float l = lse[n];
  for (int j = threadIdx.x; j < V; j += blockDim.x)
    d[j] = t < 0 ? 0.0f : scale * expf(z[j] - l) - (j == t ? scale : 0.0f);
}

extern "C" int fm_cuk_crossentropy_backward(float *dlogits, const float *logits,
                                            const float *lse, const int32_t *targets, int N,
                                            int V, int ld, int nvalid, float dloss, void *stream) {
  const float scale = nvalid ? dloss / (float)nvalid : 0.0f;
  if (N > 0)
    ce_backward<<<N, CE_THREADS, 0, (cudaStream_t)stream>>>(dlogits, logits, lse, targets, V, ld,
                                                             scale);
  return (int)cudaGetLastError();
}
