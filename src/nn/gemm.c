/* gemm.c - the one place where fedmoe multiplies matrices: thin wrappers over the
 * BLIS typed API. Row-major operands and transposes are both expressed as strides
 * (row stride, column stride), so no operand is ever copied or transposed. */
#include "nn.h"

#include "fedmoe/nn_threads.h"

#include <blis.h>

static int nn_threads; /* 0: not set yet */

void fm_nn_set_threads(int n) {
  if (n < 1) n = 1;
  nn_threads = n;
  bli_thread_set_num_threads((dim_t)n);
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
  bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &alpha, (float *)A, rsa, csa,
            (float *)B, rsb, csb, &beta, C, ldc, 1);
}
