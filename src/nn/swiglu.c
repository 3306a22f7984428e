/* swiglu.c - the SiLU-gated feed-forward part of the llama family:
 *   ffn(x) = down(silu(gate(x)) * up(x)),  silu(z) = z sigmoid(z),
 * with gate, up [F,D] and down [D,F] in nn.Linear layout ([out, in], y = x W^T).
 * The gate and up projections of a row are kept side by side, gu [rows, 2F]: the
 * gate part in columns 0..F-1, the up part in F..2F-1. sigmoid uses vmath.h's exp,
 * so the loops vectorise. */
#include "nn.h"
#include "vmath.h"

static inline float sigm(float z) { return 1.0f / (1.0f + fm_vexpf(-z)); }

/* a[rows,F] = silu(gu[:, :F]) * gu[:, F:] */
FM_VEC void fm_swiglu_forward(float *a, const float *gu, int rows, int F) {
  for (int r = 0; r < rows; r++) {
    const float *restrict g = gu + (size_t)r * 2 * F, *restrict u = g + F;
    float *restrict o = a + (size_t)r * F;
    for (int i = 0; i < F; i++) o[i] = g[i] * sigm(g[i]) * u[i];
  }
}

/* dgu[rows,2F] (written) from da[rows,F]:
 *   dgate = da u silu'(g),  silu'(g) = s (1 + g (1 - s)), s = sigmoid(g);  dup = da silu(g) */
FM_VEC void fm_swiglu_backward(float *dgu, const float *gu, const float *da, int rows, int F) {
  for (int r = 0; r < rows; r++) {
    const float *restrict g = gu + (size_t)r * 2 * F, *restrict u = g + F;
    const float *restrict d = da + (size_t)r * F;
    float *restrict dg = dgu + (size_t)r * 2 * F, *restrict du = dg + F;
    for (int i = 0; i < F; i++) {
      const float s = sigm(g[i]);
      dg[i] = d[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
      du[i] = d[i] * g[i] * s;
    }
  }
}

/* out[N,D] (+)= down(silu(x wg^T) * (x wu^T)); keeps gu [N,2F] and a [N,F] */
void fm_swiglu_ffn_forward(float *out, float *gu, float *a, const float *x, const float *wg,
                           const float *wu, const float *wd, int N, int D, int F, int accumulate) {
  fm_gemm(0, 1, N, F, D, 1.0f, x, D, wg, D, 0.0f, gu, 2 * F);
  fm_gemm(0, 1, N, F, D, 1.0f, x, D, wu, D, 0.0f, gu + F, 2 * F);
  fm_swiglu_forward(a, gu, N, F);
  fm_gemm(0, 1, N, D, F, 1.0f, a, F, wd, F, accumulate ? 1.0f : 0.0f, out, D);
}

/* dout [N,D] -> dx [N,D] (+)= (NULL: skipped); dwg, dwu [F,D], dwd [D,F] += (each may
 * be NULL); scratch: da [N,F], dgu [N,2F] */
void fm_swiglu_ffn_backward(float *dx, float *dwg, float *dwu, float *dwd, float *da, float *dgu,
                            const float *dout, const float *x, const float *gu, const float *a,
                            const float *wg, const float *wu, const float *wd, int N, int D, int F,
                            int accumulate) {
  if (dwd) fm_gemm(1, 0, D, F, N, 1.0f, dout, D, a, F, 1.0f, dwd, F);
  if (!dx && !dwg && !dwu) return;
  fm_gemm(0, 0, N, F, D, 1.0f, dout, D, wd, F, 0.0f, da, F);
  fm_swiglu_backward(dgu, gu, da, N, F);
  if (dwg) fm_gemm(1, 0, F, D, N, 1.0f, dgu, 2 * F, x, D, 1.0f, dwg, D);
  if (dwu) fm_gemm(1, 0, F, D, N, 1.0f, dgu + F, 2 * F, x, D, 1.0f, dwu, D);
  if (dx) {
    fm_gemm(0, 0, N, D, F, 1.0f, dgu, 2 * F, wg, D, accumulate ? 1.0f : 0.0f, dx, D);
    fm_gemm(0, 0, N, D, F, 1.0f, dgu + F, 2 * F, wu, D, 1.0f, dx, D);
  }
}
