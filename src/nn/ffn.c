/* ffn.c - the dense feed-forward part of a block: c_fc, GELU, c_proj. */
#include "nn.h"

/* out[N,D] += gelu(x[N,D] @ fc_w[D,4D] + fc_b) @ pj_w[4D,D] + pj_b
 * keeps h [N,4D] (before GELU) and g [N,4D] (after) */
void fm_ffn_forward(float *out, float *h, float *g, const float *x, const float *fc_w,
                    const float *fc_b, const float *pj_w, const float *pj_b, int N, int D) {
  fm_gemm(0, 0, N, 4 * D, D, 1.0f, x, D, fc_w, 4 * D, 0.0f, h, 4 * D);
  fm_bias_gelu_forward(g, h, fc_b, N, 4 * D);
  fm_linear_forward(out, g, pj_w, pj_b, N, 4 * D, D, 1);
}

/* dout [N,D] -> dx [N,D] += (NULL: skipped), parameter gradients +=; dg [N,4D] scratch */
void fm_ffn_backward(float *dx, float *dfc_w, float *dfc_b, float *dpj_w, float *dpj_b, float *dg,
                     const float *dout, const float *x, const float *h, const float *g,
                     const float *fc_w, const float *pj_w, int N, int D) {
  int need_dh = dx || dfc_w || dfc_b;
  fm_linear_backward(need_dh ? dg : NULL, dpj_w, dpj_b, dout, g, pj_w, N, 4 * D, D, 0);
  if (!need_dh) return;
  fm_gelu_backward_bias(dg, h, dfc_b, N, 4 * D);
  fm_linear_backward(dx, dfc_w, NULL, dg, x, fc_w, N, D, 4 * D, 1);
}
