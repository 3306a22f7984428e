/* shared_expert.c - Qwen2-MoE's shared expert: a SwiGLU FFN that every token passes
 * through, scaled by a sigmoid gate of the token,
 *   out += sigmoid(x . wsg) * ffn_s(x),   wsg [1,D] (shared_expert_gate.weight).
 * Keeps y = ffn_s(x) [N,D] and the gate values sg [N] for the backward. */
#include "nn.h"
#include "vmath.h"

FM_VEC static void gate_combine(float *out, float *sg, const float *y, const float *x,
                                const float *wsg, int N, int D) {
  for (int n = 0; n < N; n++) {
    const float z = fm_vdot(x + (size_t)n * D, wsg, D);
    const float s = 1.0f / (1.0f + fm_vexpf(-z));
    const float *restrict yn = y + (size_t)n * D;
    float *restrict o = out + (size_t)n * D;
    for (int i = 0; i < D; i++) o[i] += s * yn[i];
    sg[n] = s;
  }
}

/* out[N,D] += sigmoid(x wsg^T) ffn(x); keeps y [N,D], sg [N], gu [N,2F], a [N,F] */
void fm_shared_expert_forward(float *out, float *y, float *sg, float *gu, float *a, const float *x,
                              const float *wg, const float *wu, const float *wd, const float *wsg,
                              int N, int D, int F) {
  fm_swiglu_ffn_forward(y, gu, a, x, wg, wu, wd, N, D, F, 0);
  gate_combine(out, sg, y, x, wsg, N, D);
}

/* With z = x . wsg, s = sigmoid(z):  dz = <dout, y> s (1 - s),  dy = s dout;
 * dwsg += sum_n dz x,  dx += dz wsg + the FFN's dx.
 * dx [N,D] += (NULL: skipped); parameter gradients += (each may be NULL);
 * scratch: dy [N,D], dz [N], da [N,F], dgu [N,2F] */
FM_VEC static void gate_backward(float *dy, float *dz, const float *dout, const float *y,
                                 const float *sg, int N, int D) {
  for (int n = 0; n < N; n++) {
    const float *restrict d = dout + (size_t)n * D, *restrict yn = y + (size_t)n * D;
    float *restrict o = dy + (size_t)n * D;
    const float s = sg[n];
    dz[n] = fm_vdot(d, yn, D) * s * (1.0f - s);
    for (int i = 0; i < D; i++) o[i] = s * d[i];
  }
}

void fm_shared_expert_backward(float *dx, float *dwg, float *dwu, float *dwd, float *dwsg, float *dy,
                               float *dz, float *da, float *dgu, const float *dout, const float *x,
                               const float *y, const float *sg, const float *gu, const float *a,
                               const float *wg, const float *wu, const float *wd, const float *wsg,
                               int N, int D, int F) {
  gate_backward(dy, dz, dout, y, sg, N, D);
  /* dz is [N,1]: dwsg [1,D] += dz^T x,  dx [N,D] += dz wsg */
  if (dwsg) fm_gemm(1, 0, 1, D, N, 1.0f, dz, 1, x, D, 1.0f, dwsg, D);
  if (dx) fm_gemm(0, 0, N, D, 1, 1.0f, dz, 1, wsg, D, 1.0f, dx, D);
  fm_swiglu_ffn_backward(dx, dwg, dwu, dwd, da, dgu, dy, x, gu, a, wg, wu, wd, N, D, F, 1);
}
