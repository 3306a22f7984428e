/* backend_cpu.c - the CPU backend: nn.h's kernels on host memory, called as they are.
 * Each operation is a direct call (the table adds one indirect call per kernel and
 * nothing else: no copies, no allocations). Nothing is queued, so nothing fails
 * later and sync has nothing to report. */
#include "backend.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static fm_err cpu_refuse(fm_backend *be, const fm_model_shape *s) {
  (void)be, (void)s;
  return FM_OK;
}

static size_t cpu_attention_saved(fm_backend *be, int B, int T, int H, int hs) {
  (void)be;
  return fm_attention_saved(B, T, H, hs);
}

static size_t cpu_mem_free(fm_backend *be) {
  (void)be;
  return SIZE_MAX;
}

static fm_err cpu_alloc(fm_backend *be, void *pptr, size_t bytes, const char *what) {
  (void)be;
  void *q = NULL;
  FM_CHECK(fm_calloc(&q, bytes ? bytes : 1, 1, what));
  memcpy(pptr, &q, sizeof q);
  return FM_OK;
}

static void cpu_free(fm_backend *be, void *p) { (void)be, free(p); }
static void cpu_copy(fm_backend *be, void *dst, const void *src, size_t bytes) {
  (void)be;
  if (bytes) memcpy(dst, src, bytes);
}
static void cpu_zero(fm_backend *be, void *p, size_t bytes) {
  (void)be;
  if (bytes) memset(p, 0, bytes);
}
static void cpu_copy_rows(fm_backend *be, float *dst, int ldd, const float *src, int lds, int rows, int cols) {
  (void)be;
  for (int n = 0; n < rows; n++)
    memcpy(dst + (size_t)n * ldd, src + (size_t)n * lds, (size_t)cols * sizeof(float));
}
static void cpu_add(fm_backend *be, float *dst, const float *src, size_t n) {
  (void)be;
  for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
static fm_err cpu_sync(fm_backend *be, const char *what) {
  (void)be, (void)what;
  return FM_OK;
}

static void cpu_gemm(fm_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  (void)be;
  fm_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
static void cpu_linear_forward(fm_backend *be, float *out, const float *inp, const float *w, const float *b,
                               int N, int C, int OC, int accumulate) {
  (void)be;
  fm_linear_forward(out, inp, w, b, N, C, OC, accumulate);
}
static void cpu_linear_backward(fm_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, int N, int C, int OC, int accumulate) {
  (void)be;
  fm_linear_backward(dinp, dw, db, dout, inp, w, N, C, OC, accumulate);
}
static void cpu_layernorm_forward(fm_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                  const float *w, const float *b, int N, int C, float eps) {
  (void)be;
  fm_layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
}
static void cpu_layernorm_backward(fm_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                   const float *inp, const float *w, const float *mean, const float *rstd,
                                   int N, int C) {
  (void)be;
  fm_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}
static void cpu_ffn_forward(fm_backend *be, float *out, float *h, float *g, const float *x, const float *fc_w,
                            const float *fc_b, const float *pj_w, const float *pj_b, int N, int D, int F) {
  (void)be;
  fm_ffn_forward(out, h, g, x, fc_w, fc_b, pj_w, pj_b, N, D, F);
}
static void cpu_ffn_backward(fm_backend *be, float *dx, float *dfc_w, float *dfc_b, float *dpj_w,
                             float *dpj_b, float *dg, const float *dout, const float *x, const float *h,
                             const float *g, const float *fc_w, const float *pj_w, int N, int D, int F) {
  (void)be;
  fm_ffn_backward(dx, dfc_w, dfc_b, dpj_w, dpj_b, dg, dout, x, h, g, fc_w, pj_w, N, D, F);
}
static void cpu_attention_forward(fm_backend *be, float *out, float *att, const float *qkv, int B, int T,
                                  int H, int KVH, int hs) {
  (void)be;
  fm_attention_forward(out, att, qkv, B, T, H, KVH, hs);
}
static void cpu_attention_backward(fm_backend *be, float *dqkv, float *scratch, const float *dout,
                                   const float *qkv, const float *att, int B, int T, int H, int KVH, int hs) {
  (void)be;
  fm_attention_backward(dqkv, scratch, dout, qkv, att, B, T, H, KVH, hs);
}
static void cpu_embed_forward(fm_backend *be, float *out, const int32_t *tok, const float *wte,
                              const float *wpe, int B, int T, int D) {
  (void)be;
  fm_embed_forward(out, tok, wte, wpe, B, T, D);
}
static void cpu_embed_backward(fm_backend *be, float *dwte, float *dwpe, const float *dout,
                               const int32_t *tok, int B, int T, int D) {
  (void)be;
  fm_embed_backward(dwte, dwpe, dout, tok, B, T, D);
}
/* rows of ld > V values (the stand-in device's padded logits): crossentropy.c on each
 * row, the forward's sum in row order as crossentropy.c's own */
static double cpu_crossentropy_forward(fm_backend *be, float *lse, const float *logits, int ld,
                                       const int32_t *targets, int N, int V, int *nvalid) {
  (void)be;
  if (ld == V) return fm_crossentropy_forward(lse, logits, targets, N, V, nvalid);
  double sum = 0.0;
  int cnt = 0;
  for (int n = 0; n < N; n++) {
    int k;
    double l = fm_crossentropy_forward(lse + n, logits + (size_t)n * ld, targets + n, 1, V, &k);
    sum += k ? l : 0.0;
    cnt += k;
  }
  *nvalid = cnt;
  return cnt ? sum / cnt : 0.0;
}
static void cpu_crossentropy_backward(fm_backend *be, float *dlogits, const float *logits, int ld, const float *lse,
                                      const int32_t *targets, int N, int V, int nvalid, float dloss) {
  (void)be;
  if (ld == V && dlogits != logits) {
    fm_crossentropy_backward(dlogits, logits, lse, targets, N, V, nvalid, dloss);
    return;
  }
  /* in place: each row goes through a copy, as crossentropy.c's rows must not alias */
  float *row = malloc((size_t)V * sizeof *row);
  if (!row) fm_fatal(FM_ERR_MEM);
  for (int n = 0; n < N; n++) {
    memcpy(row, logits + (size_t)n * ld, (size_t)V * sizeof *row);
    fm_crossentropy_backward(dlogits + (size_t)n * ld, row, lse + n, targets + n, 1, V, nvalid, dloss);
  }
  free(row);
}
static void cpu_lora_forward(fm_backend *be, int layout, int n, int in, int out, int R, float s,
                             const float *x, int ldx, const float *A, const float *B, float *z, float *y,
                             int ldy) {
  (void)be;
  fm_lora_forward(layout, n, in, out, R, s, x, ldx, A, B, z, y, ldy);
}
static void cpu_lora_backward(fm_backend *be, int layout, int n, int in, int out, int R, float s,
                              const float *x, int ldx, const float *z, const float *dy, int ldy, fm_param A,
                              fm_param B, float *dz, float *dx, float beta) {
  (void)be;
  fm_lora_backward(layout, n, in, out, R, s, x, ldx, z, dy, ldy, A, B, dz, dx, beta);
}
static void cpu_lora_grouped_forward(fm_backend *be, int layout, int G, int n, int in, int out, int R,
                                     float s, const float *x, int ldx, const float *A, size_t sA,
                                     const float *B, size_t sB, float *z, float *y, int ldy) {
  (void)be;
  fm_lora_grouped_forward(layout, G, n, in, out, R, s, x, ldx, A, sA, B, sB, z, y, ldy);
}
static void cpu_lora_grouped_backward(fm_backend *be, int layout, int G, int n, int in, int out, int R,
                                      float s, const float *x, int ldx, const float *z, const float *dy,
                                      int ldy, fm_param A, fm_param B, size_t sA, size_t sB, float *dz,
                                      float *dx, float beta) {
  (void)be;
  fm_lora_grouped_backward(layout, G, n, in, out, R, s, x, ldx, z, dy, ldy, A, B, sA, sB, dz, dx, beta);
}
static void cpu_dense_forward(fm_backend *be, float *out, int ldo, const float *inp, const float *w,
                              const float *b, int N, int C, int OC, int accumulate) {
  (void)be;
  fm_dense_forward(out, ldo, inp, w, b, N, C, OC, accumulate);
}
static void cpu_dense_backward(fm_backend *be, float *dinp, float *dw, float *db, const float *dout, int ldd,
                               const float *inp, const float *w, int N, int C, int OC, int accumulate) {
  (void)be;
  fm_dense_backward(dinp, dw, db, dout, ldd, inp, w, N, C, OC, accumulate);
}
static void cpu_rmsnorm_forward(fm_backend *be, float *out, float *rstd, const float *inp, const float *w,
                                int N, int C, int ld, float eps) {
  (void)be;
  fm_rmsnorm_forward(out, rstd, inp, w, N, C, ld, eps);
}
static void cpu_rmsnorm_backward(fm_backend *be, float *dinp, float *dw, const float *dout, const float *inp,
                                 const float *w, const float *rstd, int N, int C, int ld, int accumulate) {
  (void)be;
  fm_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, ld, accumulate);
}
static void cpu_rope_forward(fm_backend *be, float *x, const float *cos_t, const float *sin_t, int B, int T,
                             int nh, int hs, int ld) {
  (void)be;
  fm_rope_forward(x, cos_t, sin_t, B, T, nh, hs, ld);
}
static void cpu_rope_backward(fm_backend *be, float *dx, const float *cos_t, const float *sin_t, int B, int T,
                              int nh, int hs, int ld) {
  (void)be;
  fm_rope_backward(dx, cos_t, sin_t, B, T, nh, hs, ld);
}
static void cpu_swiglu_ffn_forward(fm_backend *be, float *out, float *gu, float *a, const float *x,
                                   const float *wg, const float *wu, const float *wd, int N, int D, int F,
                                   int accumulate) {
  (void)be;
  fm_swiglu_ffn_forward(out, gu, a, x, wg, wu, wd, N, D, F, accumulate);
}
static void cpu_swiglu_ffn_backward(fm_backend *be, float *dx, float *dwg, float *dwu, float *dwd, float *da,
                                    float *dgu, const float *dout, const float *x, const float *gu,
                                    const float *a, const float *wg, const float *wu, const float *wd, int N,
                                    int D, int F, int accumulate) {
  (void)be;
  fm_swiglu_ffn_backward(dx, dwg, dwu, dwd, da, dgu, dout, x, gu, a, wg, wu, wd, N, D, F, accumulate);
}
static void cpu_shared_expert_forward(fm_backend *be, float *out, float *y, float *sg, float *gu, float *a,
                                      const float *x, const float *wg, const float *wu, const float *wd,
                                      const float *wsg, int N, int D, int F) {
  (void)be;
  fm_shared_expert_forward(out, y, sg, gu, a, x, wg, wu, wd, wsg, N, D, F);
}
static void cpu_shared_expert_backward(fm_backend *be, float *dx, float *dwg, float *dwu, float *dwd,
                                       float *dwsg, float *dy, float *dz, float *da, float *dgu,
                                       const float *dout, const float *x, const float *y, const float *sg,
                                       const float *gu, const float *a, const float *wg, const float *wu,
                                       const float *wd, const float *wsg, int N, int D, int F) {
  (void)be;
  fm_shared_expert_backward(dx, dwg, dwu, dwd, dwsg, dy, dz, da, dgu, dout, x, y, sg, gu, a, wg, wu, wd,
                            wsg, N, D, F);
}
static double cpu_moe_forward(fm_backend *be, fm_moe *L, void *dev, const fm_moe_params *p, float *out,
                              const float *x, int N, float lb_coef) {
  (void)be, (void)dev;
  return fm_moe_forward(L, p, out, x, N, lb_coef);
}
static void cpu_moe_backward(fm_backend *be, fm_moe *L, void *dev, const fm_moe_params *p, float *dx,
                             const float *dout, const float *x, float lb_coef, float dlb) {
  (void)be, (void)dev;
  fm_moe_backward(L, p, dx, dout, x, lb_coef, dlb);
}

fm_backend fm_backend_cpu = {
  .name = "cpu",
  .device = 0,
  .refuse = cpu_refuse,
  .attention_saved = cpu_attention_saved,
  .mem_free = cpu_mem_free,
  .alloc = cpu_alloc,
  .free = cpu_free,
  .upload = cpu_copy,
  .download = cpu_copy,
  .copy = cpu_copy,
  .zero = cpu_zero,
  .copy_rows = cpu_copy_rows,
  .add = cpu_add,
  .sync = cpu_sync,
  .sumsq = NULL, /* clip.c */
  .adamw = NULL, /* adamw.c */
  .gemm = cpu_gemm,
  .linear_forward = cpu_linear_forward,
  .linear_backward = cpu_linear_backward,
  .layernorm_forward = cpu_layernorm_forward,
  .layernorm_backward = cpu_layernorm_backward,
  .ffn_forward = cpu_ffn_forward,
  .ffn_backward = cpu_ffn_backward,
  .attention_forward = cpu_attention_forward,
  .attention_backward = cpu_attention_backward,
  .embed_forward = cpu_embed_forward,
  .embed_backward = cpu_embed_backward,
  .crossentropy_forward = cpu_crossentropy_forward,
  .crossentropy_backward = cpu_crossentropy_backward,
  .lora_forward = cpu_lora_forward,
  .lora_backward = cpu_lora_backward,
  .lora_grouped_forward = cpu_lora_grouped_forward,
  .lora_grouped_backward = cpu_lora_grouped_backward,
  .dense_forward = cpu_dense_forward,
  .dense_backward = cpu_dense_backward,
  .rmsnorm_forward = cpu_rmsnorm_forward,
  .rmsnorm_backward = cpu_rmsnorm_backward,
  .rope_forward = cpu_rope_forward,
  .rope_backward = cpu_rope_backward,
  .swiglu_ffn_forward = cpu_swiglu_ffn_forward,
  .swiglu_ffn_backward = cpu_swiglu_ffn_backward,
  .shared_expert_forward = cpu_shared_expert_forward,
  .shared_expert_backward = cpu_shared_expert_backward,
  .moe_forward = cpu_moe_forward,
  .moe_backward = cpu_moe_backward,
};

static fm_backend *default_backend = &fm_backend_cpu;

fm_backend *fm_backend_default(void) { return default_backend; }
void fm_backend_set_default(fm_backend *be) { default_backend = be ? be : &fm_backend_cpu; }
void fm_model_set_default_backend(fm_backend *be) { fm_backend_set_default(be); }
