/* rope.c - rotary position embeddings (llama family), in the rotate-half layout:
 * a head of hs values is two halves, and pair i (0 <= i < hs/2) is (x_i, x_{i+hs/2}),
 * turned by the angle t f_i at position t:
 *   out_i = x_i cos - x_{i+hs/2} sin,   out_{i+hs/2} = x_{i+hs/2} cos + x_i sin.
 * Frequencies f_i = theta^(-2i/hs); with llama3 scaling, as Llama 3.1 defines it
 * (wavelength w = 2 pi / f against the original context c0):
 *   w < c0 / high_freq_factor: f unchanged;  w > c0 / low_freq_factor: f / factor;
 *   between: (1 - a) f / factor + a f with a = (c0 / w - low) / (high - low).
 * The angles' cos and sin are tabulated once per model, [context, hs/2]. */
#include "nn.h"
#include "vmath.h"

#include <math.h>

/* inv_freq[hs/2] of shape s (rope_theta, rope_type and the llama3 parameters) */
void fm_rope_freqs(double *inv_freq, int hs, const fm_model_shape *s) {
  const double theta = s->rope_theta > 0 ? s->rope_theta : 10000.0;
  for (int i = 0; i < hs / 2; i++) {
    double f = pow(theta, -(2.0 * i) / hs);
    if (s->rope_type == FM_ROPE_LLAMA3) {
      const double c0 = s->rope_orig_ctx, lo = s->rope_low_freq, hi = s->rope_high_freq;
      const double w = 2.0 * M_PI / f, factor = s->rope_factor;
      if (w > c0 / lo)
        f /= factor;
      else if (w >= c0 / hi) {
        double a = (c0 / w - lo) / (hi - lo);
        f = (1.0 - a) * f / factor + a * f;
      }
    }
    inv_freq[i] = f;
  }
}

/* cos, sin [ctx, hs/2] at positions 0..ctx-1 */
void fm_rope_table(float *cos_t, float *sin_t, int ctx, int hs, const fm_model_shape *s) {
  double f[FM_MAX_HEAD_DIM / 2];
  fm_rope_freqs(f, hs, s);
  const int h2 = hs / 2;
  for (int t = 0; t < ctx; t++)
    for (int i = 0; i < h2; i++) {
      /* the angle in float, as the reference implementations form it (f in float
       * times the position), then cos and sin in double */
      const float ang = (float)t * (float)f[i];
      cos_t[(size_t)t * h2 + i] = (float)cos((double)ang);
      sin_t[(size_t)t * h2 + i] = (float)sin((double)ang);
    }
}

/* x [B,T, nh heads of hs] (row stride ld) rotated in place: dir +1 forward, -1 the
 * inverse (the backward of a rotation is its transpose, the rotation by -angle). */
FM_VEC static void rotate(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh,
                          int hs, int ld, float dir) {
  const int h2 = hs / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float *restrict c = cos_t + (size_t)t * h2, *restrict sn = sin_t + (size_t)t * h2;
      float *row = x + ((size_t)b * T + t) * ld;
      for (int h = 0; h < nh; h++) {
        float *restrict x1 = row + (size_t)h * hs, *restrict x2 = x1 + h2;
        for (int i = 0; i < h2; i++) {
          const float a = x1[i], z = x2[i], si = dir * sn[i];
          x1[i] = a * c[i] - z * si;
          x2[i] = z * c[i] + a * si;
        }
      }
    }
}

void fm_rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hs,
                     int ld) {
  rotate(x, cos_t, sin_t, B, T, nh, hs, ld, 1.0f);
}

/* dx in place: the gradient of the rotated values becomes that of the inputs */
void fm_rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hs,
                      int ld) {
  rotate(dx, cos_t, sin_t, B, T, nh, hs, ld, -1.0f);
}
