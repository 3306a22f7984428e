/* layernorm.c - LayerNorm over the last dimension (eps 1e-5), with weight and bias. */
#include "nn.h"
#include "vmath.h"

#include <math.h>

#define LN_EPS 1e-5f

/* out[N,C] = (inp - mean) * rstd * w + b; keeps mean[N] and rstd[N] for backward */
FM_VEC void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C) {
  for (int n = 0; n < N; n++) {
    const float *restrict x = inp + (size_t)n * C;
    float *restrict o = out + (size_t)n * C;
    float m = 0.0f, v = 0.0f;
    for (int i = 0; i < C; i++) m += x[i];
    m /= (float)C;
    for (int i = 0; i < C; i++) v += (x[i] - m) * (x[i] - m); /* two passes: no cancellation */
    v /= (float)C;
    float s = 1.0f / sqrtf(v + LN_EPS);
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
      float sum_d = 0.0f, sum_dx = 0.0f;
      for (int i = 0; i < C; i++) {
        float dxh = d[i] * w[i];
        sum_d += dxh;
        sum_dx += dxh * (x[i] - m) * s;
      }
      sum_d /= (float)C;
      sum_dx /= (float)C;
      float *restrict di = dinp + (size_t)n * C;
      for (int i = 0; i < C; i++) di[i] += s * (d[i] * w[i] - sum_d - (x[i] - m) * s * sum_dx);
    }
  }
}
