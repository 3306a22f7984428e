/* rmsnorm.c - RMSNorm over the last dimension (llama family), with a weight and no
 * bias, all in float32:  out = x rstd w,  rstd = 1 / sqrt(mean(x^2) + eps).
 * Rows have a stride ld >= C, so the kernel also normalises a slice of a wider row
 * (OLMoE's q and k norms work on the q and k parts of the qkv rows). */
#include "nn.h"
#include "vmath.h"

#include <math.h>

/* out[N,C] (row stride ld) = inp rstd w;  keeps rstd[N] */
FM_VEC void fm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                               int ld, float eps) {
  for (int n = 0; n < N; n++) {
    const float *restrict x = inp + (size_t)n * ld;
    float *restrict o = out + (size_t)n * ld;
    const float s = 1.0f / sqrtf(fm_vdot(x, x, C) / (float)C + eps);
    for (int i = 0; i < C; i++) o[i] = x[i] * s * w[i];
    rstd[n] = s;
  }
}

/* With xhat = x rstd and dxhat = dout w:
 *   dinp = rstd (dxhat - xhat mean(dxhat xhat)),  dw += sum_n dout xhat.
 * dinp[N,C] (row stride ld, as inp and dout) += when accumulate, = otherwise; dinp
 * may then be dout itself (a row's sums are taken before it is written). dinp or dw
 * may be NULL. */
FM_VEC void fm_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                                const float *w, const float *rstd, int N, int C, int ld,
                                int accumulate) {
  for (int n = 0; n < N; n++) {
    const float *restrict x = inp + (size_t)n * ld;
    const float *d = dout + (size_t)n * ld;
    const float s = rstd[n];
    if (dw) {
      float *restrict acc = dw;
      for (int i = 0; i < C; i++) acc[i] += d[i] * x[i] * s;
    }
    if (!dinp) continue;
    float ax[FM_LANES] = {0};
    int i = 0;
    for (; i + FM_LANES <= C; i += FM_LANES)
      for (int l = 0; l < FM_LANES; l++) ax[l] += d[i + l] * w[i + l] * x[i + l];
    for (int l = 0; i < C; i++, l++) ax[l] += d[i] * w[i] * x[i];
    const float c = fm_lanes_sum(ax) * s * s / (float)C; /* mean(dxhat xhat) / rstd */
    float *di = dinp + (size_t)n * ld;
    if (accumulate)
      for (int j = 0; j < C; j++) di[j] += s * (d[j] * w[j] - x[j] * c);
    else
      for (int j = 0; j < C; j++) di[j] = s * (d[j] * w[j] - x[j] * c);
  }
}
