/* lora_grouped.c - nn's lora_grouped.c on the GPU: the LoRA pairs of G client slots
 * over their own rows (run.client_batch), each of lora.c's GEMMs issued once as a
 * strided batch over the groups (cuBLAS's strided-batched GEMM, in the context's
 * precision) instead of G small GEMMs: group g is rows g*n.. of x, z, y (dy, dz,
 * dx) and the pair A + g*sA, B + g*sB (gradients at the same strides). */
#include "context.h"

/* gemm.c's */
fm_err fm_cu_gemm_strided(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha,
                          const float *A, int lda, long long sa, const float *B, int ldb,
                          long long sb, float beta, float *C, int ldc, long long sc, int count);

fm_err fm_cu_lora_grouped_forward(fm_cu *cu, int layout, int G, int n, int in, int out, int R, float s,
                                  const float *x, int ldx, const float *A, size_t sA, const float *B,
                                  size_t sB, float *z, float *y, int ldy) {
  if (G < 1 || n < 1) return FM_OK;
  const int lin = layout == FM_LORA_LINEAR;
  const long long sx = (long long)n * ldx, sz = (long long)n * R, sy = (long long)n * ldy;
  /* z_g [n,R] = x_g A_g;  y_g [n,out] += s z_g B_g */
  FM_CHECK(fm_cu_gemm_strided(cu, 0, lin, n, R, in, 1.0f, x, ldx, sx, A, lin ? in : R, (long long)sA, 0.0f, z,
                              R, sz, G));
  return fm_cu_gemm_strided(cu, 0, lin, n, out, R, s, z, R, sz, B, lin ? R : out, (long long)sB, 1.0f, y, ldy,
                            sy, G);
}

fm_err fm_cu_lora_grouped_backward(fm_cu *cu, int layout, int G, int n, int in, int out, int R, float s,
                                   const float *x, int ldx, const float *z, const float *dy, int ldy, fm_param A,
                                   fm_param B, size_t sA, size_t sB, float *dz, float *dx, float beta) {
  if (G < 1 || n < 1) return FM_OK;
  const long long sx = (long long)n * ldx, sz = (long long)n * R, sy = (long long)n * ldy;
  const long long a = (long long)sA, b = (long long)sB;
  if (layout == FM_LORA_LINEAR) { /* A [R,in], B [out,R] */
    if (B.g) FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, out, R, n, s, dy, ldy, sy, z, R, sz, 1.0f, B.g, R, b, G));
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 0, n, R, out, s, dy, ldy, sy, B.w, R, b, 0.0f, dz, R, sz, G));
    if (A.g) FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, R, in, n, 1.0f, dz, R, sz, x, ldx, sx, 1.0f, A.g, in, a, G));
    if (dx) FM_CHECK(fm_cu_gemm_strided(cu, 0, 0, n, in, R, 1.0f, dz, R, sz, A.w, in, a, beta, dx, ldx, sx, G));
  } else { /* A [in,R], B [R,out] */
    if (B.g) FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, R, out, n, s, z, R, sz, dy, ldy, sy, 1.0f, B.g, out, b, G));
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 1, n, R, out, s, dy, ldy, sy, B.w, out, b, 0.0f, dz, R, sz, G));
    if (A.g) FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, in, R, n, 1.0f, x, ldx, sx, dz, R, sz, 1.0f, A.g, R, a, G));
    if (dx) FM_CHECK(fm_cu_gemm_strided(cu, 0, 1, n, in, R, 1.0f, dz, R, sz, A.w, R, a, beta, dx, ldx, sx, G));
  }
  return FM_OK;
}
