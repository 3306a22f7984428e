/* gelu.c - GELU, tanh approximation (GPT-2):
 *   gelu(x) = 0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi). */
#include "nn.h"

#include <math.h>

#define GELU_C 0.7978845608028654f /* sqrt(2/pi) */

/* out[n] = gelu(inp[n]) */
void fm_gelu_forward(float *out, const float *inp, size_t n) {
  const float *restrict x = inp;
  float *restrict o = out;
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    float t = tanhf(GELU_C * (v + 0.044715f * v * v * v));
    o[i] = 0.5f * v * (1.0f + t);
  }
}

/* dinp[n] = gelu'(inp[n]) * dout[n]; dinp may be dout (element i is read before written) */
void fm_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
  for (size_t i = 0; i < n; i++) {
    float v = inp[i];
    float u = GELU_C * (v + 0.044715f * v * v * v);
    float t = tanhf(u);
    float sech2 = 1.0f - t * t;
    float local = 0.5f * (1.0f + t) + 0.5f * v * sech2 * GELU_C * (1.0f + 3.0f * 0.044715f * v * v);
    dinp[i] = local * dout[i];
  }
}
