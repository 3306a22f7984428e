/* dense.cu - the row-strided pieces of the nn.Linear-layout dense map (src/nn/linear.c's
 * fm_dense_*): the bias broadcast into rows of stride ldo, and the bias gradient as
 * column sums of rows of stride ld, in colsum.cu's two fixed-order stages (chunks of
 * FM_CU_COLSUM_ROWS rows summed in row order, then the chunks in chunk order). */
#include "common.cuh"
#include "kernels.h"
#include "kernels_llama.h"

__global__ void bias_rows_ld(float *out, int ldo, const float *b, int N, int OC, int accumulate) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)N * OC) return;
  size_t n = i / OC;
  int j = (int)(i % OC);
  float *o = out + n * ldo + j;
  *o = accumulate ? *o + b[j] : b[j];
}

extern "C" int fm_cuk_bias_rows_ld(float *out, int ldo, const float *b, int N, int OC,
                                   int accumulate, void *stream) {
  size_t total = (size_t)N * OC;
  if (!total) return 0;
  bias_rows_ld<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(out, ldo, b, N, OC,
                                                                        accumulate);
  return (int)cudaGetLastError();
}

__global__ void colsum_ld_chunks(float *part, const float *in, int ld, int N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (c >= C) return;
  int n0 = chunk * FM_CU_COLSUM_ROWS, n1 = min(N, n0 + FM_CU_COLSUM_ROWS);
  float s = 0.0f;
  for (int n = n0; n < n1; n++) s += in[(size_t)n * ld + c];
  part[(size_t)chunk * C + c] = s;
}

__global__ void fm_colsum_finish(float *out, const float *part, int nchunks, int C);

extern "C" int fm_cuk_colsum_ld(float *out, const float *in, int ld, int N, int C, float *scratch,
                                void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (N <= 0 || C <= 0) return 0;
  int nchunks = (N + FM_CU_COLSUM_ROWS - 1) / FM_CU_COLSUM_ROWS;
  colsum_ld_chunks<<<dim3(fm_blocks(C, 128), nchunks), 128, 0, st>>>(scratch, in, ld, N, C);
  fm_colsum_finish<<<fm_blocks(C, 128), 128, 0, st>>>(out, scratch, nchunks, C);
  return (int)cudaGetLastError();
}
