/* rmsnorm.cu - RMSNorm forward and backward (src/nn/rmsnorm.c), one warp per row of
 * stride ld:  out = x rstd w,  rstd = 1 / sqrt(mean(x^2) + eps);
 * dinp = rstd (dout w - x c), c = rstd^2 mean(dout w x);  dw += sum_n dout x rstd
 * (the last in two fixed-order stages through the scratch, as colsum.cu). */
#include "common.cuh"
#include "kernels.h"
#include "kernels_llama.h"

#define ROWS_PER_BLOCK 8

__global__ void rms_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                            int ld, float eps) {
  int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (row >= N) return;
  const float *x = inp + (size_t)row * ld;
  float s = 0.0f;
  for (int i = lane; i < C; i += FM_WARP) s += x[i] * x[i];
  const float r = 1.0f / sqrtf(fm_warp_sum(s) / (float)C + eps);
  float *o = out + (size_t)row * ld; /* may be inp: each lane rewrites what it read */
  for (int i = lane; i < C; i += FM_WARP) o[i] = x[i] * r * w[i];
  if (lane == 0) rstd[row] = r;
}

extern "C" int fm_cuk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w,
                                      int N, int C, int ld, float eps, void *stream) {
  if (N <= 0) return 0;
  rms_forward<<<fm_blocks(N, ROWS_PER_BLOCK), ROWS_PER_BLOCK * FM_WARP, 0, (cudaStream_t)stream>>>(
      out, rstd, inp, w, N, C, ld, eps);
  return (int)cudaGetLastError();
}

__global__ void rms_backward_input(float *dinp, const float *dout, const float *inp,
                                   const float *w, const float *rstd, int N, int C, int ld,
                                   int accumulate) {
  int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (row >= N) return;
  const float *x = inp + (size_t)row * ld, *d = dout + (size_t)row * ld;
  const float s = rstd[row];
  float ax = 0.0f;
  for (int i = lane; i < C; i += FM_WARP) ax += d[i] * w[i] * x[i];
  const float c = fm_warp_sum(ax) * s * s / (float)C;
  float *di = dinp + (size_t)row * ld; /* may be dout: each lane rewrites what it read */
  for (int i = lane; i < C; i += FM_WARP) {
    float v = s * (d[i] * w[i] - x[i] * c);
    di[i] = accumulate ? di[i] + v : v;
  }
}

/* stage 1 of dw: each thread sums one column over a chunk of rows, in row order */
__global__ void rms_backward_weight(float *part, const float *dout, const float *inp,
                                    const float *rstd, int N, int C, int ld) {
  int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (c >= C) return;
  int n0 = chunk * FM_CU_COLSUM_ROWS, n1 = min(N, n0 + FM_CU_COLSUM_ROWS);
  float sw = 0.0f;
  for (int n = n0; n < n1; n++) sw += dout[(size_t)n * ld + c] * inp[(size_t)n * ld + c] * rstd[n];
  part[(size_t)chunk * C + c] = sw;
}

__global__ void fm_colsum_finish(float *out, const float *part, int nchunks, int C);

extern "C" int fm_cuk_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                       const float *w, const float *rstd, int N, int C, int ld,
                                       int accumulate, float *scratch, void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (N <= 0) return 0;
  if (dw) { /* before dinp, which may overwrite dout */
    int nchunks = (N + FM_CU_COLSUM_ROWS - 1) / FM_CU_COLSUM_ROWS;
    rms_backward_weight<<<dim3(fm_blocks(C, 128), nchunks), 128, 0, st>>>(scratch, dout, inp, rstd,
                                                                          N, C, ld);
    fm_colsum_finish<<<fm_blocks(C, 128), 128, 0, st>>>(dw, scratch, nchunks, C);
  }
  if (dinp)
    rms_backward_input<<<fm_blocks(N, ROWS_PER_BLOCK), ROWS_PER_BLOCK * FM_WARP, 0, st>>>(
        dinp, dout, inp, w, rstd, N, C, ld, accumulate);
  return (int)cudaGetLastError();
}
