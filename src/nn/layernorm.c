/* layernorm.c - LayerNorm over the last dimension (GPT-2's eps is 1e-5), with weight and bias. */
#include "nn.h"
#include "vmath.h"

#include <math.h>

/* out[N,C] = (inp - mean) * rstd * w + b; keeps mean[N] and rstd[N] for backward */
FM_VEC void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps) {
  for (int n = 0; n < N; n++) {
    const float *restrict x = inp + (size_t)n * C;
    float *restrict o = out + (size_t)n * C;
    const float m = fm_vsum(x, C) / (float)C;
    float acc[FM_LANES] = {0}; /* the variance in a second pass: no cancellation */
    int i = 0;
    for (; i + FM_LANES <= C; i += FM_LANES)
      for (int l = 0; l < FM_LANES; l++) acc[l] += (x[i + l] - m) * (x[i + l] - m);
    for (int l = 0; i < C; i++, l++) acc[l] += (x[i] - m) * (x[i] - m);
    const float v = fm_lanes_sum(acc) / (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
    mean[n] = m;
    rstd[n] = s;
  }
}

/* With xhat = (x - mean) rstd and dxhat = dout * w:
 *   dinp = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
 * dinp[N,C] +=, dw[C] += sum_n dout xhat, db[C] += sum_n dout (each may be NULL) */
FM_VEC void fm_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *restrict x = inp + (size_t)n * C;
    const float *restrict d = dout + (size_t)n * C;
    const float m = mean[n], s = rstd[n];
    if (db) {
      float *restrict acc = db;
      for (int i = 0; i < C; i++) acc[i] += d[i];
    }
    if (dw) {
      float *restrict acc = dw;
      for (int i = 0; i < C; i++) acc[i] += d[i] * (x[i] - m) * s;
    }
    if (dinp) {
      /* sum_d = mean dxhat, sum_dx = mean dxhat xhat, xhat = (x - m) s */
      float ad[FM_LANES] = {0}, ax[FM_LANES] = {0};
      int i = 0;
      for (; i + FM_LANES <= C; i += FM_LANES)
        for (int l = 0; l < FM_LANES; l++) {
          float dxh = d[i + l] * w[i + l];
          ad[l] += dxh;
          ax[l] += dxh * (x[i + l] - m);
        }
      for (int l = 0; i < C; i++, l++) {
        float dxh = d[i] * w[i];
        ad[l] += dxh;
        ax[l] += dxh * (x[i] - m);
      }
      const float sum_d = fm_lanes_sum(ad) / (float)C, sum_dx = fm_lanes_sum(ax) * s / (float)C;
      float *restrict di = dinp + (size_t)n * C;
      for (int i = 0; i < C; i++) di[i] += s * (d[i] * w[i] - sum_d - (x[i] - m) * s * sum_dx);
    }
  }
}
