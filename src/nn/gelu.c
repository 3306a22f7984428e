/* gelu.c - GELU, tanh approximation (GPT-2):
 *   gelu(x) = 0.5 x (1 + tanh(u)),  u = c (x + 0.044715 x^3),  c = sqrt(2/pi)
 * computed as x s with s = 0.5 (1 + tanh u) = 1 / (1 + exp(-2u)), the logistic of 2u:
 * one exp and one division per value, no sign cases (vmath.h's exp is inline, so both
 * loops vectorise, 8 wide in the AVX2 clone). The cubic is taken of x clamped to
 * [-10, 10]: beyond, s is 0 or 1 in float anyway, and no infinity arises. */
#include "nn.h"
#include "vmath.h"

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

static inline float clampx(float v) {
  v = v < -10.0f ? -10.0f : v;
  return v > 10.0f ? 10.0f : v;
}

/* s = 0.5 (1 + tanh u) for x clamped to c */
static inline float half_one_plus_tanh(float c) {
  return 1.0f / (1.0f + fm_vexpf(-2.0f * GELU_C * (c + GELU_A * c * c * c)));
}

/* out[n] = gelu(inp[n]) */
FM_VEC void fm_gelu_forward(float *out, const float *inp, size_t n) {
  const float *restrict x = inp;
  float *restrict o = out;
  for (size_t i = 0; i < n; i++) o[i] = x[i] * half_one_plus_tanh(clampx(x[i]));
}

/* dinp[n] = gelu'(inp[n]) * dout[n]; dinp may be dout (in place):
 *   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2)
 *            = s + 2 x s (1 - s) c (1 + 3 0.044715 x^2)   (t = 2s - 1, 1 - t^2 = 4 s (1 - s)) */
static inline float gelu_grad(float v) {
  float c = clampx(v), s = half_one_plus_tanh(c);
  return s + 2.0f * c * s * (1.0f - s) * GELU_C * (1.0f + 3.0f * GELU_A * c * c);
}

FM_VEC void fm_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  const float *restrict x = inp;
  if (dinp == dout) { /* the two cases apart, so that each loop has no aliasing to check */
    float *restrict d = dinp;
    for (size_t i = 0; i < n; i++) d[i] *= gelu_grad(x[i]);
  } else {
    float *restrict d = dinp;
    const float *restrict g = dout;
    for (size_t i = 0; i < n; i++) d[i] = gelu_grad(x[i]) * g[i];
  }
}

/* The c_fc bias and the GELU in one pass over the rows of h [rows,F] (after the GEMM
 * h = x W): h += b (h stays the pre-activation the backward needs), g = gelu(h).
 * One read and two writes of h's size instead of the bias pass, the GEMM's beta = 1
 * read and the GELU's pass. b may be NULL. */
FM_VEC void fm_bias_gelu_forward(float *g, float *h, const float *b, int rows, int F) {
  for (int r = 0; r < rows; r++) {
    float *restrict hr = h + (size_t)r * F, *restrict gr = g + (size_t)r * F;
    if (b)
      for (int j = 0; j < F; j++) hr[j] += b[j];
    for (int j = 0; j < F; j++) gr[j] = hr[j] * half_one_plus_tanh(clampx(hr[j]));
  }
}

/* dh [rows,F] *= gelu'(h), in place, and db[F] += the column sums of the result (the
 * c_fc bias gradient, in the same pass; db may be NULL). */
FM_VEC void fm_gelu_backward_bias(float *dh, const float *h, float *db, int rows, int F) {
  for (int r = 0; r < rows; r++) {
    float *restrict d = dh + (size_t)r * F;
    const float *restrict x = h + (size_t)r * F;
    for (int j = 0; j < F; j++) d[j] *= gelu_grad(x[j]);
    if (db) {
      float *restrict acc = db;
      for (int j = 0; j < F; j++) acc[j] += d[j];
    }
  }
}
