/* gemm.c - the one place where fedmoe multiplies matrices: thin wrappers over the
 * BLIS typed API. Row-major operands and transposes are both expressed as strides
 * (row stride, column stride), so no operand is ever copied or transposed. */
#include "nn.h"

#include "fedmoe/nn_threads.h"

#include <blis.h>
#include <stdlib.h>
#include <string.h>

static int nn_threads; /* 0: not set yet */

void fm_nn_set_threads(int n) {
  if (n < 1) n = 1;
  nn_threads = n;
  bli_thread_set_num_threads((dim_t)n);
}

int fm_nn_threads(void) { return nn_threads ? nn_threads : 1; }

/* Weight gradients dW[M,N] += X^T dY are GEMMs whose operands are both read along K
 * with their row strides; BLIS packs them row after row, and when a stride is a
 * multiple of 512 bytes those rows fall in the same few cache sets: measured on this
 * machine (AMD EPYC, AVX2 kernels, one thread), X^T [256 x 1024] dY [1024 x 1024] runs
 * at 36 GFLOP/s with strides 256 and 1024 and at 64 with 272 and 1040. For such
 * GEMMs with a long K the operands with such a stride are first copied with a padded
 * stride (2 reads and 1 write per element, against 2 M or 2 N flops per element).
 * The copies live in one buffer kept for the process (grown, never shrunk): the
 * engine runs one pass at a time per process. */
enum { PAD_EVERY = 128, PAD_MIN_K = 256, PAD = 16 };
static float *pad_buf;
static size_t pad_cap;

static int padded_operands(const float **A, int *lda, const float **B, int *ldb, int M, int N, int K) {
  const int pa = *lda % PAD_EVERY == 0, pb = *ldb % PAD_EVERY == 0;
  const int la = M + PAD, lb = N + PAD;
  const size_t need = (pa ? (size_t)K * la : 0) + (pb ? (size_t)K * lb : 0);
  if (need > pad_cap) {
    float *nb = realloc(pad_buf, need * sizeof *nb);
    if (!nb) return 0; /* no room: multiply unpadded */
    pad_buf = nb;
    pad_cap = need;
  }
  float *q = pad_buf;
  if (pa) {
    for (int k = 0; k < K; k++) memcpy(q + (size_t)k * la, *A + (size_t)k * *lda, (size_t)M * sizeof *q);
    *A = q;
    *lda = la;
    q += (size_t)K * la;
  }
  if (pb) {
    for (int k = 0; k < K; k++) memcpy(q + (size_t)k * lb, *B + (size_t)k * *ldb, (size_t)N * sizeof *q);
    *B = q;
    *ldb = lb;
  }
  return 1;
}

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
  if (ta && !tb && K >= PAD_MIN_K && (lda % PAD_EVERY == 0 || ldb % PAD_EVERY == 0))
    padded_operands(&A, &lda, &B, &ldb, M, N, K); /* A, B: the copies, where made */
  inc_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
  inc_t rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
  bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &alpha, (float *)A, rsa, csa,
            (float *)B, rsb, csb, &beta, C, ldc, 1);
}
