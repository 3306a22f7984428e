/* gemm.c - row-major GEMMs on cuBLAS (column-major), in the context's precision.
 *
 * A row-major [r,c] matrix with leading dimension ld is, in memory, the column-major
 * [c,r] matrix with the same ld: its transpose. So C = op(A) op(B) (row-major) is
 * C^T = op(B)^T op(A)^T (column-major), which is cuBLAS's gemm with the operands
 * swapped and the same transpose flags; no copy, no transpose pass. */
#include "context.h"

#include <stdint.h>

static cublasComputeType_t compute_type(fm_precision p) {
  return p == FM_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
         : p == FM_PREC_BF16 ? CUBLAS_COMPUTE_32F
                             : CUBLAS_COMPUTE_32F_PEDANTIC;
}

/* values spanned by a stored row-major matrix of rows x cols with leading dim ld */
static size_t span(int rows, int cols, int ld) {
  return rows > 0 && cols > 0 ? (size_t)(rows - 1) * (size_t)ld + (size_t)cols : 0;
}

fm_err fm_cu_gemm(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return FM_OK;
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const void *a = A, *b = B;
  cudaDataType_t in = CUDA_R_32F;
  if (cu->prec == FM_PREC_BF16 && K > 0) {
    size_t na = ta ? span(K, M, lda) : span(M, K, lda), nb = tb ? span(N, K, ldb) : span(K, N, ldb);
    na = (na + 127) / 128 * 128; /* B's copy 256-byte aligned: tensor cores need aligned operands */
    FM_CHECK(fm_cu_grow(cu, &cu->bf16, &cu->bf16_bytes, (na + nb) * sizeof(uint16_t) /* bf16 */,
                        "bf16 GEMM inputs"));
    uint16_t *ha = cu->bf16, *hb = ha + na; /* bf16 bit patterns */
    FM_CUK(fm_cuk_to_bf16(ha, A, na, cu->stream), "bf16 copy of a GEMM input");
    FM_CUK(fm_cuk_to_bf16(hb, B, nb, cu->stream), "bf16 copy of a GEMM input");
    a = ha;
    b = hb;
    in = CUDA_R_16BF;
  }
  return FM_CUBLAS(cublasGemmEx(cu->blas, opB, opA, N, M, K, &alpha, b, in, ldb, a, in, lda, &beta,
                                C, CUDA_R_32F, ldc, compute_type(cu->prec), CUBLAS_GEMM_DEFAULT),
                   "gemm");
}

/* For the attention core: a batch of count GEMMs at constant strides (fp32 inputs;
 * bf16 runs these in tf32, the scores' precision). */
fm_err fm_cu_gemm_strided(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha,
                          const float *A, int lda, long long sa, const float *B, int ldb,
                          long long sb, float beta, float *C, int ldc, long long sc, int count) {
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  fm_precision p = cu->prec == FM_PREC_BF16 ? FM_PREC_TF32 : cu->prec;
  return FM_CUBLAS(cublasGemmStridedBatchedEx(cu->blas, opB, opA, N, M, K, &alpha, B, CUDA_R_32F,
                                              ldb, sb, A, CUDA_R_32F, lda, sa, &beta, C, CUDA_R_32F,
                                              ldc, sc, count, compute_type(p), CUBLAS_GEMM_DEFAULT),
                   "strided batched gemm");
}
