/* lora.c - a rank-R update on a linear map:  y += s (x A) B  (s = alpha / R).
 * Two layouts, as the base matrix is stored:
 *   FM_LORA_CONV1D (GPT-2, W [in,out]):     A [in,R], B [R,out],  y += s (x A) B
 *   FM_LORA_LINEAR (nn.Linear, W [out,in]):  A [R,in], B [out,R],  y += s (x A^T) B^T
 *                                            (PEFT's lora_A / lora_B weights)
 * x [n,in] and y [n,out] have row strides ldx, ldy; z = x A [n,R] is kept for the
 * backward. */
#include "nn.h"

void fm_lora_forward(int layout, int n, int in, int out, int R, float s, const float *x, int ldx,
                     const float *A, const float *B, float *z, float *y, int ldy) {
  const int lin = layout == FM_LORA_LINEAR;
  fm_gemm(0, lin, n, R, in, 1.0f, x, ldx, A, lin ? in : R, 0.0f, z, R);
  fm_gemm(0, lin, n, out, R, s, z, R, B, lin ? R : out, 1.0f, y, ldy);
}

/* From dy [n,out] (ldy): dB += s z^T dy (or its transpose), dz = s dy B^T [n,R],
 * dA += x^T dz (or its transpose) and, when dx is wanted, dx [n,in] (ldx) =
 * beta dx + dz A^T. A.g, B.g may be NULL (frozen). */
void fm_lora_backward(int layout, int n, int in, int out, int R, float s, const float *x, int ldx,
                      const float *z, const float *dy, int ldy, fm_param A, fm_param B, float *dz,
                      float *dx, float beta) {
  if (layout == FM_LORA_LINEAR) {
    if (B.g) fm_gemm(1, 0, out, R, n, s, dy, ldy, z, R, 1.0f, B.g, R);
    fm_gemm(0, 0, n, R, out, s, dy, ldy, B.w, R, 0.0f, dz, R);
    if (A.g) fm_gemm(1, 0, R, in, n, 1.0f, dz, R, x, ldx, 1.0f, A.g, in);
    if (dx) fm_gemm(0, 0, n, in, R, 1.0f, dz, R, A.w, in, beta, dx, ldx);
  } else {
    if (B.g) fm_gemm(1, 0, R, out, n, s, z, R, dy, ldy, 1.0f, B.g, out);
    fm_gemm(0, 1, n, R, out, s, dy, ldy, B.w, out, 0.0f, dz, R);
    if (A.g) fm_gemm(1, 0, in, R, n, 1.0f, x, ldx, dz, R, 1.0f, A.g, R);
    if (dx) fm_gemm(0, 1, n, in, R, 1.0f, dz, R, A.w, R, beta, dx, ldx);
  }
}
