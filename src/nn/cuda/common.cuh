/* common.cuh - helpers shared by the CUDA kernels: launch geometry and the fixed-order
 * reductions inside a warp and a block (no atomics: the same tree every time). */
#ifndef FEDMOE_NN_CUDA_COMMON_CUH
#define FEDMOE_NN_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#define FM_WARP 32

static inline unsigned fm_blocks(size_t n, unsigned threads) {
  return (unsigned)((n + threads - 1) / threads);
}

/* sum over the 32 lanes, butterfly: every lane ends with the same value */
__device__ __forceinline__ float fm_warp_sum(float v) {
  for (int o = FM_WARP / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float fm_warp_max(float v) {
  for (int o = FM_WARP / 2; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* block-wide sum / max (blockDim.x a multiple of 32, at most 1024); every thread gets
 * the result. shm holds 32 floats. */
__device__ __forceinline__ float fm_block_sum(float v, float *shm) {
  int lane = threadIdx.x % FM_WARP, wid = threadIdx.x / FM_WARP, nw = blockDim.x / FM_WARP;
  v = fm_warp_sum(v);
  __syncthreads();
  if (lane == 0) shm[wid] = v;
  __syncthreads();
  v = lane < nw ? shm[lane] : 0.0f;
  return fm_warp_sum(v);
}
__device__ __forceinline__ float fm_block_max(float v, float *shm) {
  int lane = threadIdx.x % FM_WARP, wid = threadIdx.x / FM_WARP, nw = blockDim.x / FM_WARP;
  v = fm_warp_max(v);
  __syncthreads();
  if (lane == 0) shm[wid] = v;
  __syncthreads();
  v = lane < nw ? shm[lane] : -INFINITY;
  return fm_warp_max(v);
}

#endif
