/* gelu.c - GELU, tanh approximation (GPT-2):
 *   gelu(x) = 0.5 x (1 + tanh(u)),  u = c (x + 0.044715 x^3),  c = sqrt(2/pi)
 * tanh is vmath.h's inline one, so both loops vectorise (8 wide in the AVX2 clone).
 * The cubic is taken of x clamped to [-10, 10]: beyond, tanh(u) is +-1 in float
 * anyway, and no infinity arises. */
#include "nn.h"
#include "vmath.h"

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

static inline float clampx(float v) {
  v = v < -10.0f ? -10.0f : v;
  return v > 10.0f ? 10.0f : v;
}

/* out[n] = gelu(inp[n]) */
FM_VEC void fm_gelu_forward(float *out, const float *inp, size_t n) {
  const float *restrict x = inp;
  float *restrict o = out;
  for (size_t i = 0; i < n; i++) {
    float v = x[i], c = clampx(v);
    float t = fm_vtanhf(GELU_C * (c + GELU_A * c * c * c));
    o[i] = 0.5f * v * (1.0f + t);
  }
}

/* dinp[n] = gelu'(inp[n]) * dout[n]; dinp may be dout (in place):
 *   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2) */
static inline float gelu_grad(float v) {
  float c = clampx(v);
  float t = fm_vtanhf(GELU_C * (c + GELU_A * c * c * c));
  return 0.5f * (1.0f + t) + 0.5f * c * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * c * c);
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
