/* vecops.cu - the backend's vector helpers on the GPU: y += x, and the sum of squares
 * of the gradient norm in a fixed order (a fixed grid, each thread its fixed strided
 * elements, a fixed tree in each block, then the block partials summed in block order
 * by one thread), so the same gradients give the same norm bits every time. */
#include "common.cuh"
#include "kernels.h"

#define SUMSQ_BLOCKS 128
#define SUMSQ_THREADS 256

__global__ void add_kernel(float *y, const float *x, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] += x[i];
}

extern "C" int fm_cuk_add(float *y, const float *x, size_t n, void *stream) {
  if (n) add_kernel<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>(y, x, n);
  return (int)cudaGetLastError();
}

__global__ void sumsq_partial(double *part, const float *x, size_t n) {
  __shared__ double shm[SUMSQ_THREADS];
  double s = 0.0;
  for (size_t i = (size_t)blockIdx.x * SUMSQ_THREADS + threadIdx.x; i < n; i += (size_t)SUMSQ_BLOCKS * SUMSQ_THREADS)
    s += (double)x[i] * (double)x[i];
  shm[threadIdx.x] = s;
  __syncthreads();
  for (int o = SUMSQ_THREADS / 2; o > 0; o /= 2) {
    if (threadIdx.x < o) shm[threadIdx.x] += shm[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) part[blockIdx.x] = shm[0];
}

__global__ void sumsq_total(double *acc, const double *part) {
  double s = 0.0;
  for (int b = 0; b < SUMSQ_BLOCKS; b++) s += part[b];
  *acc += s;
}

extern "C" size_t fm_cuk_sumsq_scratch(void) { return SUMSQ_BLOCKS; }

extern "C" int fm_cuk_sumsq(double *acc, const float *x, size_t n, double *scratch, void *stream) {
  if (!n) return (int)cudaGetLastError();
  sumsq_partial<<<SUMSQ_BLOCKS, SUMSQ_THREADS, 0, (cudaStream_t)stream>>>(scratch, x, n);
  sumsq_total<<<1, 1, 0, (cudaStream_t)stream>>>(acc, scratch);
  return (int)cudaGetLastError();
}
