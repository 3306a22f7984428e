/* bf16_copy.cu - a row-major fp32 matrix rounded to a bf16 copy (round to nearest
 * even), rows of ldo values: gemm.c's bf16 operands. */
#include "common.cuh"
#include "kernels.h"

#include <cuda_bf16.h>

namespace {

/* one thread per element, rows along blockIdx.y (in steps of gridDim.y) */
__global__ void to_bf16_2d(__nv_bfloat16 *out, int ldo, const float *in, int ldi, int rows, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  for (int r = blockIdx.y; r < rows; r += gridDim.y)
    out[(size_t)r * ldo + j] = __float2bfloat16_rn(in[(size_t)r * ldi + j]);
}

} // namespace

extern "C" int fm_cuk_to_bf16_2d(void *out, int ldo, const float *in, int ldi, int rows, int cols, void *stream) {
  if (rows <= 0 || cols <= 0) return 0;
  dim3 grid((unsigned)((cols + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
  to_bf16_2d<<<grid, 256, 0, (cudaStream_t)stream>>>((__nv_bfloat16 *)out, ldo, in, ldi, rows, cols);
  return (int)cudaGetLastError();
}
