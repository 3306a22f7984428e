/* convert.cu - fp32 to bf16 (round to nearest even) for bf16 GEMM inputs; the master
 * weights and every accumulation stay fp32. */
#include "common.cuh"
#include "kernels.h"

#include <cuda_bf16.h>

__global__ void to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = __float2bfloat16_rn(src[i]);
}

extern "C" int fm_cuk_to_bf16(void *dst, const float *src, size_t n, void *stream) {
  if (n) to_bf16<<<fm_blocks(n, 256), 256, 0, (cudaStream_t)stream>>>((__nv_bfloat16 *)dst, src, n);
  return (int)cudaGetLastError();
}
