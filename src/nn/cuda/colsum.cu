/* colsum.cu - column sums in two fixed-order stages (bias gradients), and the bias
 * broadcast of the linear forward. Stage 1: each thread sums one column over a chunk of
 * FM_CU_COLSUM_ROWS rows, in row order; stage 2: one thread per column adds the chunks'
 * sums in chunk order. Deterministic, and parallel enough to keep HBM busy. */
#include "common.cuh"
#include "kernels.h"

extern "C" size_t fm_cuk_colsum_scratch(int N, int C) {
  return (size_t)((N + FM_CU_COLSUM_ROWS - 1) / FM_CU_COLSUM_ROWS) * (size_t)C;
}

__global__ void colsum_chunks(float *part, const float *in, int N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (c >= C) return;
  int n0 = chunk * FM_CU_COLSUM_ROWS, n1 = min(N, n0 + FM_CU_COLSUM_ROWS);
  float s = 0.0f;
  for (int n = n0; n < n1; n++) s += in[(size_t)n * C + c];
  part[(size_t)chunk * C + c] = s;
}

/* out[c] += sum over chunks of part[chunk, c], in chunk order (also used by layernorm.cu) */
__global__ void fm_colsum_finish(float *out, const float *part, int nchunks, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.0f;
  for (int k = 0; k < nchunks; k++) s += part[(size_t)k * C + c];
  out[c] += s;
}

extern "C" int fm_cuk_colsum(float *out, const float *in, int N, int C, float *scratch,
                             void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  int nchunks = (N + FM_CU_COLSUM_ROWS - 1) / FM_CU_COLSUM_ROWS;
  if (N <= 0 || C <= 0) return 0;
  dim3 grid(fm_blocks(C, 128), nchunks);
  colsum_chunks<<<grid, 128, 0, st>>>(scratch, in, N, C);
  fm_colsum_finish<<<fm_blocks(C, 128), 128, 0, st>>>(out, scratch, nchunks, C);
  return (int)cudaGetLastError();
}

__global__ void bias_rows(float *out, const float *b, size_t total, int C, int accumulate) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= total) return;
  float v = b[i % C];
  out[i] = accumulate ? out[i] + v : v;
}

extern "C" int fm_cuk_bias_rows(float *out, const float *b, int N, int C, int accumulate,
                                void *stream) {
  size_t total = (size_t)N * C;
  if (!total) return 0;
  bias_rows<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(out, b, total, C, accumulate);
  return (int)cudaGetLastError();
}
