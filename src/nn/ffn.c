/* ffn.c - the dense feed-forward part of a block: c_fc, GELU, c_proj. */
#include "nn.h"

/* out[N,D] += gelu(x[N,D] @ fc_w[D,F] + fc_b) @ pj_w[F,D] + pj_b (GPT-2: F = 4D)
 * keeps h [N,F] (before GELU) and g [N,F] (after) */
void fm_ffn_forward(float *out, float *h, float *g, const float *x, const float *fc_w,
                    const float *fc_b, const float *pj_w, const float *pj_b, int N, int D, int F) {
  fm_gemm(0, 0, N, F, D, 1.0f, x, D, fc_w, F, 0.0f, h, F);
  fm_bias_gelu_forward(g, h, fc_b, N, F);
  fm_linear_forward(out, g, pj_w, pj_b, N, F, D, 1);
}

/* dout [N,D] -> dx [N,D] += (NULL: skipped), parameter gradients +=; dg [N,F] scratch */
void fm_ffn_backward(float *dx, float *dfc_w, float *dfc_b, float *dpj_w, float *dpj_b, float *dg,
                     const float *dout, const float *x, const float *h, const float *g,
                     const float *fc_w, const float *pj_w, int N, int D, int F) {
  int need_dh = dx || dfc_w || dfc_b;
  fm_linear_backward(need_dh ? dg : NULL, dpj_w, dpj_b, dout, g, pj_w, N, F, D, 0);
  if (!need_dh) return;
  fm_gelu_backward_bias(dg, h, dfc_b, N, F);
  fm_linear_backward(dx, dfc_w, NULL, dg, x, fc_w, N, D, F, 1);
}
