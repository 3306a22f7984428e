/* ops.c - the element-wise and normalisation kernels of nn.h on the GPU: each function
 * takes the context's stream and scratch and calls its launcher (kernels.h). */
#include "context.h"

#include <math.h>
#include <string.h>

fm_err fm_cu_linear_forward(fm_cu *cu, float *out, const float *inp, const float *w,
                            const float *b, int N, int C, int OC, int accumulate) {
  if (b) { /* the bias first, then one GEMM with beta = 1, as the CPU does */
    FM_CUK(fm_cuk_bias_rows(out, b, N, OC, accumulate, cu->stream), "linear bias");
    accumulate = 1;
  }
  return fm_cu_gemm(cu, 0, 0, N, OC, C, 1.0f, inp, C, w, OC, accumulate ? 1.0f : 0.0f, out, OC);
}

fm_err fm_cu_linear_backward(fm_cu *cu, float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, int N, int C, int OC,
                             int accumulate) {
  if (dinp) FM_CHECK(fm_cu_gemm(cu, 0, 1, N, C, OC, 1.0f, dout, OC, w, OC, accumulate ? 1.0f : 0.0f, dinp, C));
  if (dw) FM_CHECK(fm_cu_gemm(cu, 1, 0, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dw, OC));
  if (db) {
    float *s;
    FM_CHECK(fm_cu_scratch(cu, &s, fm_cuk_colsum_scratch(N, OC) * sizeof(float)));
    FM_CUK(fm_cuk_colsum(db, dout, N, OC, s, cu->stream), "bias gradient");
  }
  return FM_OK;
}

fm_err fm_cu_layernorm_forward(fm_cu *cu, float *out, float *mean, float *rstd, const float *inp,
                               const float *w, const float *b, int N, int C, float eps) {
  FM_CUK(fm_cuk_layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps, cu->stream), "layernorm");
  return FM_OK;
}

fm_err fm_cu_layernorm_backward(fm_cu *cu, float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *mean,
                                const float *rstd, int N, int C) {
  float *s;
  FM_CHECK(fm_cu_scratch(cu, &s, 2 * fm_cuk_colsum_scratch(N, C) * sizeof(float)));
  FM_CUK(fm_cuk_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, s, cu->stream),
         "layernorm backward");
  return FM_OK;
}

fm_err fm_cu_bias_gelu_forward(fm_cu *cu, float *g, float *h, const float *b, int rows, int F) {
  FM_CUK(fm_cuk_bias_gelu_forward(g, h, b, rows, F, cu->stream), "bias + GELU");
  return FM_OK;
}

fm_err fm_cu_gelu_backward_bias(fm_cu *cu, float *dh, const float *h, float *db, int rows, int F) {
  float *s;
  FM_CHECK(fm_cu_scratch(cu, &s, fm_cuk_colsum_scratch(rows, F) * sizeof(float)));
  FM_CUK(fm_cuk_gelu_backward_bias(dh, h, db, rows, F, s, cu->stream), "GELU backward");
  return FM_OK;
}

fm_err fm_cu_embed_forward(fm_cu *cu, float *out, const int32_t *tok, const float *wte,
                           const float *wpe, int B, int T, int D) {
  FM_CUK(fm_cuk_embed_forward(out, tok, wte, wpe, B, T, D, cu->stream), "embedding");
  return FM_OK;
}

fm_err fm_cu_embed_backward(fm_cu *cu, float *dwte, float *dwpe, const float *dout,
                            const int32_t *tok, int B, int T, int D) {
  if (dwpe) FM_CUK(fm_cuk_embed_backward_pos(dwpe, dout, B, T, D, cu->stream), "position gradient");
  if (!dwte) return FM_OK;
  const int N = B * T;
  const size_t sort = fm_cuk_embed_sort_bytes(N), ints = (size_t)N * sizeof(int32_t);
  char *s;
  FM_CHECK(fm_cu_scratch(cu, &s, 3 * ints + sort));
  FM_CUK(fm_cuk_embed_backward_tok(dwte, dout, tok, N, D, (int32_t *)s, (int32_t *)(s + ints),
                                   (int32_t *)(s + 2 * ints), s + 3 * ints, sort, cu->stream),
         "token embedding gradient");
  return FM_OK;
}

/* the cross-entropy on rows of ld values (ld = V: crossentropy.c's layout) */
fm_err fm_cu_crossentropy_forward_ld(fm_cu *cu, double *loss, int *nvalid, float *lse, const float *logits,
                                     int ld, const int32_t *targets, int N, int V) {
  if (!cu->ce_sum) FM_CHECK(fm_cu_alloc(cu, &cu->ce_sum, 2 * sizeof(double), "cross-entropy sum"));
  double *rowloss;
  FM_CHECK(fm_cu_scratch(cu, &rowloss, (size_t)(N > 0 ? N : 1) * sizeof(double)));
  double *dsum = cu->ce_sum;
  int *dcount = (int *)(dsum + 1);
  FM_CUK(fm_cuk_crossentropy_forward(lse, rowloss, dsum, dcount, logits, targets, N, V, ld, cu->stream),
         "cross-entropy");
  double host[2];
  FM_CHECK(fm_cu_download(cu, host, dsum, sizeof host));
  int cnt;
  memcpy(&cnt, &host[1], sizeof cnt);
  *nvalid = cnt;
  *loss = cnt ? host[0] / cnt : 0.0;
  return FM_OK;
}

fm_err fm_cu_crossentropy_forward(fm_cu *cu, double *loss, int *nvalid, float *lse,
                                  const float *logits, const int32_t *targets, int N, int V) {
  return fm_cu_crossentropy_forward_ld(cu, loss, nvalid, lse, logits, V, targets, N, V);
}

fm_err fm_cu_crossentropy_backward_ld(fm_cu *cu, float *dlogits, const float *logits, int ld, const float *lse,
                                      const int32_t *targets, int N, int V, int nvalid, float dloss) {
  FM_CUK(fm_cuk_crossentropy_backward(dlogits, logits, lse, targets, N, V, ld, nvalid, dloss, cu->stream),
         "cross-entropy backward");
  return FM_OK;
}

fm_err fm_cu_crossentropy_backward(fm_cu *cu, float *dlogits, const float *logits,
                                   const float *lse, const int32_t *targets, int N, int V,
                                   int nvalid, float dloss) {
  return fm_cu_crossentropy_backward_ld(cu, dlogits, logits, V, lse, targets, N, V, nvalid, dloss);
}

fm_err fm_cu_adamw(fm_cu *cu, float *w, float *m, float *v, const float *g, size_t n, float lr,
                   float b1, float b2, float eps, float wd, long step, float grad_scale) {
  /* the bias corrections as the CPU computes them: in double, then rounded */
  const float c1 = 1.0f / (float)(1.0 - pow(b1, (double)step));
  const float c2 = 1.0f / (float)(1.0 - pow(b2, (double)step));
  FM_CUK(fm_cuk_adamw(w, m, v, g, n, lr, b1, b2, eps, wd, c1, c2, grad_scale, cu->stream), "AdamW");
  return FM_OK;
}
