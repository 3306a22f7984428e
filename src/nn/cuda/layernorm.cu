/* layernorm.cu - LayerNorm forward and backward, one warp per row, as
 * src/nn/layernorm.c: the mean first, then the variance about it (no cancellation). */
#include "common.cuh"
#include "kernels.h"

__global__ void ln_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, int N, int C, float eps) {
  int row = blockIdx.x * (blockDim.x / FM_WARP) + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (row >= N) return;
  const float *x = inp + (size_t)row * C;
  float s = 0.0f;
  for (int i = lane; i < C; i += FM_WARP) s += x[i];
  float m = fm_warp_sum(s) / (float)C;
  float v = 0.0f;
  for (int i = lane; i < C; i += FM_WARP) v += (x[i] - m) * (x[i] - m);
  float r = rsqrtf(fm_warp_sum(v) / (float)C + eps);
  float *o = out + (size_t)row * C;
  for (int i = lane; i < C; i += FM_WARP) o[i] = (x[i] - m) * r * w[i] + b[i];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

extern "C" int fm_cuk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                        const float *w, const float *b, int N, int C, float eps,
                                        void *stream) {
  if (N <= 0) return 0;
  ln_forward<<<fm_blocks(N, 8), 8 * FM_WARP, 0, (cudaStream_t)stream>>>(out, mean, rstd, inp, w,
                                                                          b, N, C, eps);
  return (int)cudaGetLastError();
}

/* dinp = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dout w */
__global__ void ln_backward_input(float *dinp, const float *dout, const float *inp,
                                  const float *w, const float *mean, const float *rstd, int N,
                                  int C) {
  int row = blockIdx.x * (blockDim.x / FM_WARP) + threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  if (row >= N) return;
  const float *x = inp + (size_t)row * C, *d = dout + (size_t)row * C;
  const float m = mean[row], r = rstd[row];
  float ad = 0.0f, ax = 0.0f;
  for (int i = lane; i < C; i += FM_WARP) {
    float dxh = d[i] * w[i];
    ad += dxh;
    ax += dxh * (x[i] - m);
  }
  ad = fm_warp_sum(ad) / (float)C;
  ax = fm_warp_sum(ax) * r / (float)C;
  float *di = dinp + (size_t)row * C;
  for (int i = lane; i < C; i += FM_WARP) {
    float xhat = (x[i] - m) * r;
    di[i] += r * (d[i] * w[i] - ad - xhat * ax);
  }
}

/* stage 1 of dw = sum_n dout xhat and db = sum_n dout over a chunk of rows */
__global__ void ln_backward_params(float *pw, float *pb, const float *dout, const float *inp,
                                   const float *mean, const float *rstd, int N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x, chunk = blockIdx.y;
  if (c >= C) return;
  int n0 = chunk * FM_CU_COLSUM_ROWS, n1 = min(N, n0 + FM_CU_COLSUM_ROWS);
  float sw = 0.0f, sb = 0.0f;
  for (int n = n0; n < n1; n++) {
    float d = dout[(size_t)n * C + c];
    sb += d;
    sw += d * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
  }
  if (pw) pw[(size_t)chunk * C + c] = sw;
  if (pb) pb[(size_t)chunk * C + c] = sb;
}

__global__ void fm_colsum_finish(float *out, const float *part, int nchunks, int C);

extern "C" int fm_cuk_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                         const float *inp, const float *w, const float *mean,
                                         const float *rstd, int N, int C, float *scratch,
                                         void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (N <= 0) return 0;
  if (dw || db) {
    int nchunks = (N + FM_CU_COLSUM_ROWS - 1) / FM_CU_COLSUM_ROWS;
    float *pw = dw ? scratch : NULL, *pb = db ? scratch + fm_cuk_colsum_scratch(N, C) : NULL;
    ln_backward_params<<<dim3(fm_blocks(C, 128), nchunks), 128, 0, st>>>(pw, pb, dout, inp, mean,
                                                                         rstd, N, C);
    if (dw) fm_colsum_finish<<<fm_blocks(C, 128), 128, 0, st>>>(dw, pw, nchunks, C);
    if (db) fm_colsum_finish<<<fm_blocks(C, 128), 128, 0, st>>>(db, pb, nchunks, C);
  }
  if (dinp)
    ln_backward_input<<<fm_blocks(N, 8), 8 * FM_WARP, 0, st>>>(dinp, dout, inp, w, mean, rstd, N,
                                                                C);
  return (int)cudaGetLastError();
}
