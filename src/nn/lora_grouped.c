/* lora_grouped.c - lora.c's rank-R update for G groups of rows at once, each group
 * with a pair of its own: the LoRA pairs of G clients that share one frozen base
 * (run.client_batch). Group g is rows g*n..(g+1)*n-1 of x, y, z (and dy, dz, dx)
 * and the pair A + g*sA, B + g*sB (their gradients at the same strides):
 *   y_g += s (x_g A_g) B_g   (FM_LORA_CONV1D; FM_LORA_LINEAR as in lora.c)
 * On the CPU a loop over the groups; a device backend runs each of lora.c's GEMMs
 * once as a strided batch over the groups. */
#include "nn.h"

void fm_lora_grouped_forward(int layout, int G, int n, int in, int out, int R, float s, const float *x,
                             int ldx, const float *A, size_t sA, const float *B, size_t sB, float *z,
                             float *y, int ldy) {
  for (int g = 0; g < G; g++) {
    const size_t r = (size_t)g * n;
    fm_lora_forward(layout, n, in, out, R, s, x + r * ldx, ldx, A + g * sA, B + g * sB, z + r * R,
                    y + r * ldy, ldy);
  }
}

void fm_lora_grouped_backward(int layout, int G, int n, int in, int out, int R, float s, const float *x,
                              int ldx, const float *z, const float *dy, int ldy, fm_param A, fm_param B,
                              size_t sA, size_t sB, float *dz, float *dx, float beta) {
  for (int g = 0; g < G; g++) {
    const size_t r = (size_t)g * n;
    fm_param Ag = {A.w + g * sA, A.g ? A.g + g * sA : NULL}, Bg = {B.w + g * sB, B.g ? B.g + g * sB : NULL};
    fm_lora_backward(layout, n, in, out, R, s, x + r * ldx, ldx, z + r * R, dy + r * ldy, ldy, Ag, Bg,
                     dz + r * R, dx ? dx + r * ldx : NULL, beta);
  }
}
