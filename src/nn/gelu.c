/* gelu.c - GELU, tanh approximation (GPT-2):
 *   gelu(x) = 0.5 x (1 + tanh(u)),  u = c (x + 0.044715 x^3),  c = sqrt(2/pi)
 * Built with -ffast-math (see local.mk) so that tanhf runs through the vector math
 * library. The cubic is taken of x clamped to [-10, 10]: beyond, tanh(u) is +-1 in
 * float anyway, and no infinity can arise (fast math may assume there is none). */
#include "nn.h"

#include <math.h>

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

static inline float clampx(float v) { return fminf(fmaxf(v, -10.0f), 10.0f); }

/* out[n] = gelu(inp[n]) */
void fm_gelu_forward(float *out, const float *inp, size_t n) {
  const float *restrict x = inp;
  float *restrict o = out;
  for (size_t i = 0; i < n; i++) {
    float v = x[i], c = clampx(v);
    float t = tanhf(GELU_C * (c + GELU_A * c * c * c));
    o[i] = 0.5f * v * (1.0f + t);
  }
}

/* dinp[n] = gelu'(inp[n]) * dout[n]; dinp may be dout (element i is read before written):
 *   gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 0.044715 x^2) */
void fm_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = inp[i], c = clampx(v);
    float t = tanhf(GELU_C * (c + GELU_A * c * c * c));
    float local = 0.5f * (1.0f + t) + 0.5f * c * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * c * c);
    dinp[i] = local * dout[i];
  }
}
