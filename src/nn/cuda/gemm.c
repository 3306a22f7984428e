/* gemm.c - row-major GEMMs on cuBLAS (column-major), in the context's precision.
 *
 * A row-major [r,c] matrix with leading dimension ld is, in memory, the column-major
 * [c,r] matrix with the same ld: its transpose. So C = op(A) op(B) (row-major) is
 * C^T = op(B)^T op(A)^T (column-major), which is cuBLAS's gemm with the operands
 * swapped and the same transpose flags; no copy, no transpose pass.
 * bf16: cuBLAS rounds the fp32 inputs to bf16 inside its tensor-core kernels
 * (CUBLAS_COMPUTE_32F_FAST_16BF) and accumulates in fp32; measured as fast as making
 * bf16 copies first, and it needs no buffers. */
#include "context.h"

static cublasComputeType_t compute_type(fm_precision p) {
  return p == FM_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
         : p == FM_PREC_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
                             : CUBLAS_COMPUTE_32F_PEDANTIC;
}

static size_t pad8(int n) { return ((size_t)n + 7) / 8 * 8; }

/* bf16 on copies: A and B rounded to bf16 copies (rows padded to 8 values, 16-byte
 * aligned whatever the shape), then a GEMM on bf16 operands with fp32 accumulation and
 * output; the same rounding of the inputs as cuBLAS's FAST_16BF on fp32 operands. By
 * default only for a transposed operand whose rows are not a multiple of 8 values (the
 * head's weight gradient, dlogits^T x, with GPT-2's 50257 words), where cuBLAS has only
 * slow unaligned kernels (copying the untransposed one too, for dx, was slower);
 * everywhere (FEDMOE_CUDA_GEMM=copy) the copies cost more than they save on the H200
 * (LoRA, MoE and SmolLM slower), FEDMOE_CUDA_GEMM=fast never copies. */
static fm_err gemm_copies(fm_cu *cu, cublasOperation_t opA, cublasOperation_t opB, int ta, int tb, int M,
                          int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                          float beta, float *C, int ldc) {
  const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N; /* row-major shapes */
  const size_t la = pad8(ac), lb = pad8(bc), abytes = (size_t)ar * la * 2 + 256;
  FM_CHECK(fm_cu_grow(cu, &cu->gemm_buf, &cu->gemm_bytes, abytes + (size_t)br * lb * 2, "bf16 GEMM operands"));
  unsigned char *a16 = cu->gemm_buf, *b16 = a16 + abytes / 256 * 256;
  FM_CUK(fm_cuk_to_bf16_2d(a16, (int)la, A, lda, ar, ac, cu->stream), "GEMM operand to bf16");
  FM_CUK(fm_cuk_to_bf16_2d(b16, (int)lb, B, ldb, br, bc, cu->stream), "GEMM operand to bf16");
  return FM_CUBLAS(cublasGemmEx(cu->blas, opB, opA, N, M, K, &alpha, b16, CUDA_R_16BF, (int)lb, a16, CUDA_R_16BF,
                                (int)la, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "bf16 gemm");
}

fm_err fm_cu_gemm(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return FM_OK;
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (cu->prec == FM_PREC_BF16 && K > 0 &&
      (cu->gemm_copy > 0 || (cu->gemm_copy == 0 && ((ta && lda % 8) || (tb && ldb % 8)))))
    return gemm_copies(cu, opA, opB, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return FM_CUBLAS(cublasGemmEx(cu->blas, opB, opA, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F,
                                lda, &beta, C, CUDA_R_32F, ldc, compute_type(cu->prec),
                                CUBLAS_GEMM_DEFAULT),
                   "gemm");
}

/* For the attention core: a batch of count GEMMs at constant strides, fp32 in memory,
 * in the context's precision. */
fm_err fm_cu_gemm_strided(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha,
                          const float *A, int lda, long long sa, const float *B, int ldb,
                          long long sb, float beta, float *C, int ldc, long long sc, int count) {
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  return FM_CUBLAS(cublasGemmStridedBatchedEx(cu->blas, opB, opA, N, M, K, &alpha, B, CUDA_R_32F,
                                              ldb, sb, A, CUDA_R_32F, lda, sa, &beta, C, CUDA_R_32F,
                                              ldc, sc, count, compute_type(cu->prec), CUBLAS_GEMM_DEFAULT),
                   "strided batched gemm");
}
