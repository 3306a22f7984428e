/* gemm.c - the one place where fedmoe multiplies matrices: thin wrappers over the
 * BLIS expert API. Row-major operands and transposes are both expressed as strides
 * (row stride, column stride), so no operand is ever copied or transposed. */
#include "nn.h"

#include "fedmoe/nn_threads.h"

#include <blis.h>

static int nn_threads; /* 0: not set yet */

/* BLIS has two paths: the packed one (operands copied into cache-sized panels, then
 * the micro-kernel) and, when any of M, N, K is under a threshold (on zen3 M < 512,
 * N < 200 or K < 240: nearly every GEMM of a D=128 model), a "small/unpacked" one
 * that reads the operands in place. Measured on this machine (AMD EPYC, one thread,
 * best of 100): the small path wins by 1.5-5x on skinny shapes (router N = 4, LoRA
 * rank 8, attention blocks with 32 columns), and loses 10-30% on the model's main
 * GEMMs (experts 1024 x 512 x 128: packed 71-81 GFLOP/s, small 53-66; weight
 * gradients with row strides of a multiple of 512 bytes fall to 40-63 on the small
 * path, whose unpacked reads meet cache-set conflicts, and stay at 72-76 packed).
 * So each GEMM takes the packed path when M and N are at least 64 and K at least
 * 32, the small one otherwise. */
static rntm_t rntm_small, rntm_packed;

static int packed_shape(int M, int N, int K) { return M >= 64 && N >= 64 && K >= 32; }

void fm_nn_set_threads(int n) {
  if (n < 1) n = 1;
  nn_threads = n;
  bli_thread_set_num_threads((dim_t)n);
  bli_rntm_init(&rntm_small);
  bli_rntm_set_num_threads((dim_t)n, &rntm_small);
  rntm_packed = rntm_small;
  bli_rntm_disable_l3_sup(&rntm_packed);
}

int fm_nn_threads(void) { return nn_threads ? nn_threads : 1; }

/* C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C.
 * Row-major A [M,K] with row stride lda is (rs = lda, cs = 1); used transposed, the
 * stored [K,M] matrix is read as (rs = 1, cs = lda). Same for B. */
void fm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (!nn_threads) fm_nn_set_threads(1);
  if (K <= 0) { /* nothing to multiply: C = beta C */
    for (int i = 0; i < M; i++) {
      float *restrict c = C + (size_t)i * ldc;
      if (beta == 0.0f)
        for (int j = 0; j < N; j++) c[j] = 0.0f;
      else
        for (int j = 0; j < N; j++) c[j] *= beta;
    }
    return;
  }
  inc_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
  inc_t rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
  if (M == 1) {
    /* one row (a decoding step's token): C^T = op(B)^T op(A)^T, a matrix-vector product.
     * BLIS's gemv streams the matrix once; its gemm paths, at M = 1, reach 6-9 GB/s on
     * a 768 x 50257 matrix where gemv reaches 17-28 (one thread, this machine) */
    bli_sgemv_ex(BLIS_NO_TRANSPOSE, BLIS_NO_CONJUGATE, N, K, &alpha, (float *)B, csb, rsb, (float *)A, csa, &beta,
                 C, 1, NULL, &rntm_small);
    return;
  }
  bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &alpha, (float *)A, rsa, csa,
               (float *)B, rsb, csb, &beta, C, ldc, 1, NULL,
               packed_shape(M, N, K) ? &rntm_packed : &rntm_small);
}
