/* bf16_copy.cu - fp32 arrays rounded to bf16 copies (round to nearest even): a whole
 * array (the attention's and the head's inputs), or a row-major matrix into rows of
 * ldo values (gemm.c's bf16 operands). */
#include "common.cuh"
#include "kernels.h"

#include <cuda_bf16.h>

namespace {

/* a grid-stride walk over n values */
__global__ void to_bf16(__nv_bfloat16 *out, const float *in, size_t n) {
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    out[i] = __float2bfloat16_rn(in[i]);
}

/* one thread per element, rows along blockIdx.y (in steps of gridDim.y) */
__global__ void to_bf16_2d(__nv_bfloat16 *out, int ldo, const float *in, int ldi, int rows, int cols) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= cols) return;
  for (int r = blockIdx.y; r < rows; r += gridDim.y)
    out[(size_t)r * ldo + j] = __float2bfloat16_rn(in[(size_t)r * ldi + j]);
}

} // namespace

extern "C" int fm_cuk_to_bf16(void *out, const float *in, size_t n, void *stream) {
  if (n == 0) return 0;
  size_t blocks = fm_blocks(n, 256);
  if (blocks > 65535) blocks = 65535;
  to_bf16<<<(unsigned)blocks, 256, 0, (cudaStream_t)stream>>>((__nv_bfloat16 *)out, in, n);
  return (int)cudaGetLastError();
}

extern "C" int fm_cuk_to_bf16_2d(void *out, int ldo, const float *in, int ldi, int rows, int cols, void *stream) {
  if (rows <= 0 || cols <= 0) return 0;
  dim3 grid((unsigned)((cols + 255) / 256), (unsigned)(rows < 65535 ? rows : 65535));
  to_bf16_2d<<<grid, 256, 0, (cudaStream_t)stream>>>((__nv_bfloat16 *)out, ldo, in, ldi, rows, cols);
  return (int)cudaGetLastError();
}
