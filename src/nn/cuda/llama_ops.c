/* llama_ops.c - the llama and MoE families' kernels of nn.h on the GPU: the GEMM parts
 * through cuBLAS (fm_cu_gemm, in the context's precision) with the CPU's operands and
 * strides, the element-wise and row parts through the launchers of kernels_llama.h.
 * Each function reads against its CPU twin (gelu.c, linear.c, rmsnorm.c, rope.c, swiglu.c,
 * shared_expert.c, lora.c, router.c, loadbalance.c) line by line. */
#include "context.h"
#include "kernels_llama.h"

#include <stdlib.h>
#include <string.h>

/* ---- gelu.c */
fm_err fm_cu_gelu_forward(fm_cu *cu, float *out, const float *inp, size_t n) {
  FM_CUK(fm_cuk_gelu_forward(out, inp, n, cu->stream), "GELU");
  return FM_OK;
}

fm_err fm_cu_gelu_backward(fm_cu *cu, float *dinp, const float *inp, const float *dout, size_t n) {
  FM_CUK(fm_cuk_gelu_backward(dinp, inp, dout, n, cu->stream), "GELU backward");
  return FM_OK;
}

/* ---- linear.c, nn.Linear layout: w [OC,C] */
fm_err fm_cu_dense_forward(fm_cu *cu, float *out, int ldo, const float *inp, const float *w,
                           const float *b, int N, int C, int OC, int accumulate) {
  if (b) { /* the bias first, then one GEMM with beta = 1 */
    FM_CUK(fm_cuk_bias_rows_ld(out, ldo, b, N, OC, accumulate, cu->stream), "dense bias");
    accumulate = 1;
  }
  return fm_cu_gemm(cu, 0, 1, N, OC, C, 1.0f, inp, C, w, C, accumulate ? 1.0f : 0.0f, out, ldo);
}

fm_err fm_cu_dense_backward(fm_cu *cu, float *dinp, float *dw, float *db, const float *dout,
                            int ldd, const float *inp, const float *w, int N, int C, int OC,
                            int accumulate) {
  if (dinp) FM_CHECK(fm_cu_gemm(cu, 0, 0, N, C, OC, 1.0f, dout, ldd, w, C, accumulate ? 1.0f : 0.0f, dinp, C));
  if (dw) FM_CHECK(fm_cu_gemm(cu, 1, 0, OC, C, N, 1.0f, dout, ldd, inp, C, 1.0f, dw, C));
  if (db) {
    float *s;
    FM_CHECK(fm_cu_scratch(cu, &s, fm_cuk_colsum_scratch(N, OC) * sizeof(float)));
    FM_CUK(fm_cuk_colsum_ld(db, dout, ldd, N, OC, s, cu->stream), "dense bias gradient");
  }
  return FM_OK;
}

/* ---- rmsnorm.c */
fm_err fm_cu_rmsnorm_forward(fm_cu *cu, float *out, float *rstd, const float *inp, const float *w,
                             int N, int C, int ld, float eps) {
  FM_CUK(fm_cuk_rmsnorm_forward(out, rstd, inp, w, N, C, ld, eps, cu->stream), "rmsnorm");
  return FM_OK;
}

fm_err fm_cu_rmsnorm_backward(fm_cu *cu, float *dinp, float *dw, const float *dout,
                              const float *inp, const float *w, const float *rstd, int N, int C,
                              int ld, int accumulate) {
  float *s = NULL;
  if (dw) FM_CHECK(fm_cu_scratch(cu, &s, fm_cuk_colsum_scratch(N, C) * sizeof(float)));
  FM_CUK(fm_cuk_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, ld, accumulate, s, cu->stream),
         "rmsnorm backward");
  return FM_OK;
}

/* ---- rope.c */
fm_err fm_cu_rope_table(fm_cu *cu, float *cos_t, float *sin_t, int ctx, int hs,
                        const fm_model_shape *s) {
  const size_t n = (size_t)ctx * (hs / 2);
  float *h;
  FM_CALLOC(h, 2 * n + 1, "RoPE tables");
  fm_rope_table(h, h + n, ctx, hs, s);
  fm_err e = fm_cu_upload(cu, cos_t, h, n * sizeof(float));
  if (!e) e = fm_cu_upload(cu, sin_t, h + n, n * sizeof(float));
  if (!e) e = fm_cu_sync(cu, "RoPE tables");
  free(h);
  return e;
}

fm_err fm_cu_rope_forward(fm_cu *cu, float *x, const float *cos_t, const float *sin_t, int B,
                          int T, int nh, int hs, int ld) {
  FM_CUK(fm_cuk_rope(x, cos_t, sin_t, B, T, nh, hs, ld, 1.0f, cu->stream), "rope");
  return FM_OK;
}

fm_err fm_cu_rope_backward(fm_cu *cu, float *dx, const float *cos_t, const float *sin_t, int B,
                           int T, int nh, int hs, int ld) {
  FM_CUK(fm_cuk_rope(dx, cos_t, sin_t, B, T, nh, hs, ld, -1.0f, cu->stream), "rope backward");
  return FM_OK;
}

/* ---- swiglu.c */
fm_err fm_cu_swiglu_forward(fm_cu *cu, float *a, const float *gu, int rows, int F) {
  FM_CUK(fm_cuk_swiglu_forward(a, gu, rows, F, cu->stream), "swiglu");
  return FM_OK;
}

fm_err fm_cu_swiglu_backward(fm_cu *cu, float *dgu, const float *gu, const float *da, int rows,
                             int F) {
  FM_CUK(fm_cuk_swiglu_backward(dgu, gu, da, rows, F, cu->stream), "swiglu backward");
  return FM_OK;
}

fm_err fm_cu_swiglu_ffn_forward(fm_cu *cu, float *out, float *gu, float *a, const float *x,
                                const float *wg, const float *wu, const float *wd, int N, int D,
                                int F, int accumulate) {
  FM_CHECK(fm_cu_gemm(cu, 0, 1, N, F, D, 1.0f, x, D, wg, D, 0.0f, gu, 2 * F));
  FM_CHECK(fm_cu_gemm(cu, 0, 1, N, F, D, 1.0f, x, D, wu, D, 0.0f, gu + F, 2 * F));
  FM_CHECK(fm_cu_swiglu_forward(cu, a, gu, N, F));
  return fm_cu_gemm(cu, 0, 1, N, D, F, 1.0f, a, F, wd, F, accumulate ? 1.0f : 0.0f, out, D);
}

fm_err fm_cu_swiglu_ffn_backward(fm_cu *cu, float *dx, float *dwg, float *dwu, float *dwd,
                                 float *da, float *dgu, const float *dout, const float *x,
                                 const float *gu, const float *a, const float *wg, const float *wu,
                                 const float *wd, int N, int D, int F, int accumulate) {
  if (dwd) FM_CHECK(fm_cu_gemm(cu, 1, 0, D, F, N, 1.0f, dout, D, a, F, 1.0f, dwd, F));
  if (!dx && !dwg && !dwu) return FM_OK;
  FM_CHECK(fm_cu_gemm(cu, 0, 0, N, F, D, 1.0f, dout, D, wd, F, 0.0f, da, F));
  FM_CHECK(fm_cu_swiglu_backward(cu, dgu, gu, da, N, F));
  if (dwg) FM_CHECK(fm_cu_gemm(cu, 1, 0, F, D, N, 1.0f, dgu, 2 * F, x, D, 1.0f, dwg, D));
  if (dwu) FM_CHECK(fm_cu_gemm(cu, 1, 0, F, D, N, 1.0f, dgu + F, 2 * F, x, D, 1.0f, dwu, D));
  if (dx) {
    FM_CHECK(fm_cu_gemm(cu, 0, 0, N, D, F, 1.0f, dgu, 2 * F, wg, D, accumulate ? 1.0f : 0.0f, dx, D));
    FM_CHECK(fm_cu_gemm(cu, 0, 0, N, D, F, 1.0f, dgu + F, 2 * F, wu, D, 1.0f, dx, D));
  }
  return FM_OK;
}

/* ---- shared_expert.c */
fm_err fm_cu_shared_expert_forward(fm_cu *cu, float *out, float *y, float *sg, float *gu, float *a,
                                   const float *x, const float *wg, const float *wu,
                                   const float *wd, const float *wsg, int N, int D, int F) {
  FM_CHECK(fm_cu_swiglu_ffn_forward(cu, y, gu, a, x, wg, wu, wd, N, D, F, 0));
  FM_CUK(fm_cuk_gate_combine(out, sg, y, x, wsg, N, D, cu->stream), "shared expert gate");
  return FM_OK;
}

fm_err fm_cu_shared_expert_backward(fm_cu *cu, float *dx, float *dwg, float *dwu, float *dwd,
                                    float *dwsg, float *dy, float *dz, float *da, float *dgu,
                                    const float *dout, const float *x, const float *y,
                                    const float *sg, const float *gu, const float *a,
                                    const float *wg, const float *wu, const float *wd,
                                    const float *wsg, int N, int D, int F) {
  FM_CUK(fm_cuk_gate_backward(dy, dz, dout, y, sg, N, D, cu->stream), "shared expert gate backward");
  /* dz is [N,1]: dwsg [1,D] += dz^T x,  dx [N,D] += dz wsg */
  if (dwsg) FM_CHECK(fm_cu_gemm(cu, 1, 0, 1, D, N, 1.0f, dz, 1, x, D, 1.0f, dwsg, D));
  if (dx) FM_CHECK(fm_cu_gemm(cu, 0, 0, N, D, 1, 1.0f, dz, 1, wsg, D, 1.0f, dx, D));
  return fm_cu_swiglu_ffn_backward(cu, dx, dwg, dwu, dwd, da, dgu, dy, x, gu, a, wg, wu, wd, N, D, F, 1);
}

/* ---- lora.c */
fm_err fm_cu_lora_forward(fm_cu *cu, int layout, int n, int in, int out, int R, float s,
                          const float *x, int ldx, const float *A, const float *B, float *z,
                          float *y, int ldy) {
  const int lin = layout == FM_LORA_LINEAR;
  FM_CHECK(fm_cu_gemm(cu, 0, lin, n, R, in, 1.0f, x, ldx, A, lin ? in : R, 0.0f, z, R));
  return fm_cu_gemm(cu, 0, lin, n, out, R, s, z, R, B, lin ? R : out, 1.0f, y, ldy);
}

fm_err fm_cu_lora_backward(fm_cu *cu, int layout, int n, int in, int out, int R, float s,
                           const float *x, int ldx, const float *z, const float *dy, int ldy,
                           fm_param A, fm_param B, float *dz, float *dx, float beta) {
  if (layout == FM_LORA_LINEAR) {
    if (B.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, out, R, n, s, dy, ldy, z, R, 1.0f, B.g, R));
    FM_CHECK(fm_cu_gemm(cu, 0, 0, n, R, out, s, dy, ldy, B.w, R, 0.0f, dz, R));
    if (A.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, R, in, n, 1.0f, dz, R, x, ldx, 1.0f, A.g, in));
    if (dx) FM_CHECK(fm_cu_gemm(cu, 0, 0, n, in, R, 1.0f, dz, R, A.w, in, beta, dx, ldx));
  } else {
    if (B.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, R, out, n, s, z, R, dy, ldy, 1.0f, B.g, out));
    FM_CHECK(fm_cu_gemm(cu, 0, 1, n, R, out, s, dy, ldy, B.w, out, 0.0f, dz, R));
    if (A.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, in, R, n, 1.0f, x, ldx, dz, R, 1.0f, A.g, R));
    if (dx) FM_CHECK(fm_cu_gemm(cu, 0, 1, n, in, R, 1.0f, dz, R, A.w, R, beta, dx, ldx));
  }
  return FM_OK;
}

/* ---- router.c, loadbalance.c */
fm_err fm_cu_router_forward(fm_cu *cu, int *keff, float *probs, int32_t *picks, float *wts,
                            const float *logits, const uint8_t *allowed, int N, int E, int k,
                            int renorm) {
  if (E < 1 || E > FM_MAX_EXPERTS || k < 1 || k > E)
    FM_ERROR(FM_ERR_INTERNAL, "router with %d experts, top_k %d", E, k);
  uint64_t mask = 0;
  int nallowed = 0;
  for (int e = 0; e < E; e++)
    if (!allowed || allowed[e]) {
      mask |= (uint64_t)1 << e;
      nallowed++;
    }
  if (!nallowed) FM_ERROR(FM_ERR_ARG, "route mask allows none of the %d experts", E);
  *keff = k < nallowed ? k : nallowed;
  FM_CUK(fm_cuk_router_forward(probs, picks, wts, logits, mask, *keff, N, E, k, renorm, cu->stream),
         "router");
  return FM_OK;
}

fm_err fm_cu_router_backward(fm_cu *cu, float *dlogits, const float *dwts, const float *dprobs,
                             const float *probs, const int32_t *picks, const float *wts, int N,
                             int E, int k, int renorm) {
  FM_CUK(fm_cuk_router_backward(dlogits, dwts, dprobs, probs, picks, wts, N, E, k, renorm, cu->stream),
         "router backward");
  return FM_OK;
}

fm_err fm_cu_loadbalance_forward(fm_cu *cu, double *lb, float *f, const float *probs,
                                 const int32_t *picks, int N, int E, int k, float coef) {
  double *s; /* the term, then the experts' parts */
  FM_CHECK(fm_cu_scratch(cu, &s, (size_t)(E + 1) * sizeof(double)));
  FM_CUK(fm_cuk_loadbalance_forward(s, f, s + 1, probs, picks, N, E, k, coef, cu->stream),
         "load balance");
  return fm_cu_download(cu, lb, s, sizeof *lb);
}

fm_err fm_cu_loadbalance_backward(fm_cu *cu, float *dprobs, const float *f, int N, int E,
                                  float coef, float dlb) {
  FM_CUK(fm_cuk_loadbalance_backward(dprobs, f, N, E, coef, dlb, cu->stream), "load balance backward");
  return FM_OK;
}
