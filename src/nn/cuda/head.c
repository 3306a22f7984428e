/* head.c - the LM head fused with the cross-entropy, chunked over rows, so the [N,V]
 * logits (1.6 GB at 8 x 1024 tokens and GPT-2's 50257 words) never exist whole:
 *   for each chunk of R rows:  Z = x[rows] W^T          (cuBLAS, into scratch [R,V])
 *                              lse, row losses, dZ      (head_crossentropy.cu, one read
 *                                                        of Z for the loss, one for dZ)
 *                              dW (+)= dZ^T x[rows]     (cuBLAS, chunks in row order)
 *                              dx[rows] = dZ W          (cuBLAS)
 * It is model_pass.c's fm_model_head_forward + fm_model_head_backward in one call, with
 * crossentropy.c's semantics (mean over rows with target >= 0). In bf16 precision x, W
 * and dZ are bf16 copies and the GEMMs run on bf16 operands (fp32 accumulation and
 * output; the logits stay fp32): dZ is written as bf16 by the row kernel itself, so
 * the rounding costs no pass. Deterministic: fixed-order row sums, dW summed over the
 * chunks in order, cuBLAS without atomics. */
#include "context.h"

#include <string.h>

static int chunk_rows = 0; /* 0: by size (fm_cu_head_set_chunk) */

void fm_cu_head_set_chunk(int rows) { chunk_rows = rows > 0 ? rows : 0; }

/* rows a chunk: logits of at most 256 MiB (fp32), so scratch stays bounded; a
 * multiple of 128 rows (the GEMMs' tiles) when that large */
static int chunk_for(int N, int V) {
  long r = chunk_rows > 0 ? chunk_rows : (long)((256L << 20) / (4L * V));
  if (!chunk_rows && r > 128) r -= r % 128;
  if (r < 16) r = 16;
  if (r > N) r = N;
  return (int)r;
}

/* row-major C[M,N] = alpha op(A) op(B) + beta C on bf16 operands, fp32 C (gemm.c's swap) */
static fm_err gemm_bf16(fm_cu *cu, int ta, int tb, int M, int N, int K, const void *A, int lda,
                        const void *B, int ldb, float beta, float *C, int ldc) {
  const float alpha = 1.0f;
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  return FM_CUBLAS(cublasGemmEx(cu->blas, opB, opA, N, M, K, &alpha, B, CUDA_R_16BF, ldb, A,
                                CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
                   "bf16 gemm of the head");
}

static size_t up(size_t b) { return (b + 255) / 256 * 256; }

fm_err fm_cu_head_crossentropy(fm_cu *cu, double *loss, int *nvalid, float *lse, float *dx,
                               float *dW, int accumulate, const float *x, const float *W,
                               const int32_t *targets, int N, int D, int V, float dloss) {
  if (N <= 0 || D <= 0 || V <= 0)
    FM_ERROR(FM_ERR_ARG, "GPU head: %d rows, width %d, vocabulary %d", N, D, V);
  const int bf = cu->prec == FM_PREC_BF16, grads = dx || dW, R = chunk_for(N, V);
  /* scratch: logits [R,ld] fp32 | dZ [R,ld] bf16 | x, W bf16 | row losses [N] | sum, count;
   * rows of ld = V rounded up to 8 values, so every row starts 16-byte aligned as the
   * tensor-core GEMMs want (the padding is never read) */
  const int ld = (V + 7) / 8 * 8;
  const size_t zb = up((size_t)R * ld * 4), dzb = bf && grads ? up((size_t)R * ld * 2) : 0,
               xb = bf ? up((size_t)N * D * 2) : 0, wb = bf ? up((size_t)V * D * 2) : 0,
               rb = up((size_t)N * sizeof(double)), sb = up(sizeof(double) + sizeof(int));
  unsigned char *s;
  FM_CHECK(fm_cu_scratch(cu, &s, zb + dzb + xb + wb + rb + sb));
  float *z = (float *)s;
  void *dz = bf && grads ? (void *)(s + zb) : (void *)z; /* fp32: in place */
  uint16_t *xh = (uint16_t *)(s + zb + dzb), *wh = (uint16_t *)(s + zb + dzb + xb);
  double *rowloss = (double *)(s + zb + dzb + xb + wb), *dsum = (double *)(s + zb + dzb + xb + wb + rb);
  int *dcount = (int *)(dsum + 1);
  FM_CUK(fm_cuk_head_count(dcount, targets, N, cu->stream), "count the targets");
  if (bf) {
    FM_CUK(fm_cuk_to_bf16(xh, x, (size_t)N * D, cu->stream), "head input to bf16");
    FM_CUK(fm_cuk_to_bf16(wh, W, (size_t)V * D, cu->stream), "head weights to bf16");
  }
  for (int c0 = 0; c0 < N; c0 += R) {
    const int r = N - c0 < R ? N - c0 : R;
    if (bf)
      FM_CHECK(gemm_bf16(cu, 0, 1, r, V, D, xh + (size_t)c0 * D, D, wh, D, 0.0f, z, ld));
    else
      FM_CHECK(fm_cu_gemm(cu, 0, 1, r, V, D, 1.0f, x + (size_t)c0 * D, D, W, D, 0.0f, z, ld));
    FM_CUK(fm_cuk_head_rows(lse ? lse + c0 : NULL, rowloss + c0, grads ? dz : NULL, bf, z,
                            targets + c0, r, V, ld, dcount, dloss, cu->stream),
           "cross-entropy rows");
    if (!grads) continue;
    const float beta = c0 > 0 || accumulate ? 1.0f : 0.0f;
    if (bf) {
      if (dW) FM_CHECK(gemm_bf16(cu, 1, 0, V, D, r, dz, ld, xh + (size_t)c0 * D, D, beta, dW, D));
      if (dx) FM_CHECK(gemm_bf16(cu, 0, 0, r, D, V, dz, ld, wh, D, 0.0f, dx + (size_t)c0 * D, D));
    } else {
      if (dW) FM_CHECK(fm_cu_gemm(cu, 1, 0, V, D, r, 1.0f, z, ld, x + (size_t)c0 * D, D, beta, dW, D));
      if (dx) FM_CHECK(fm_cu_gemm(cu, 0, 0, r, D, V, 1.0f, z, ld, W, D, 0.0f, dx + (size_t)c0 * D, D));
    }
  }
  FM_CUK(fm_cuk_head_total(dsum, rowloss, N, cu->stream), "sum the losses");
  unsigned char host[sizeof(double) + sizeof(int)];
  FM_CHECK(fm_cu_download(cu, host, dsum, sizeof host));
  double sum;
  int cnt;
  memcpy(&sum, host, sizeof sum);
  memcpy(&cnt, host + sizeof sum, sizeof cnt);
  *nvalid = cnt;
  *loss = cnt ? sum / cnt : 0.0;
  return FM_OK;
}
