/* backend_cuda.c - the backend table (src/nn/backend.h) on one GPU: each operation
 * calls the fm_cu_* kernel of cuda_nn.h with the same arguments, on the context's
 * stream. The first failure is kept in be->err and later operations are skipped
 * until sync reports it. The dense FFN is composed here from GPU kernels exactly as
 * ffn.c composes it from CPU ones. An MoE layer has a device twin (fm_cu_moe) beside
 * the model's host fm_moe, which keeps the routing the runtime reads.
 * An nn.h kernel without a GPU twin yet is NULL, and refuse() names the model
 * feature that would need it, before anything is allocated. */
#include "backend_cuda.h"

#include "../backend.h"
#include "context.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  fm_cu *cu;
  double *acc;     /* the gradient norm's device sum (one double) */
  double *partial; /* and its block partials */
} cuda_ctx;

#define CU(be) (((cuda_ctx *)(be)->ctx)->cu)
/* run one fm_err call unless an earlier one failed; keep its failure */
#define RUN(be, call)        \
  do {                       \
    if (!(be)->err) (be)->err = (call); \
  } while (0)

static fm_err cuda_refuse(fm_backend *be, const fm_model_shape *s) {
  const char *need = NULL;
  if (s->moe_mask && !be->moe_forward)
    need = "MoE blocks (model.moe_layers: the router, dispatch and combine kernels)";
  else if (s->family != FM_FAMILY_GPT2 && (!be->rmsnorm_forward || !be->rope_forward || !be->dense_forward ||
                                           !be->swiglu_ffn_forward))
    need = "the llama family (model.family: its RMSNorm, RoPE, SwiGLU and nn.Linear kernels)";
  else if ((s->family == FM_FAMILY_GPT2 ? s->d / s->heads : s->head_dim) > FM_CU_ATTENTION_MAX_HS)
    need = "attention heads of more than 128 values (model.head_dim, or model.d_model / model.heads)";
  else if (s->shared_ffn > 0 && !be->shared_expert_forward)
    need = "the shared expert (model.shared_ffn)";
  else if (s->attn_lora_rank > 0 && !be->lora_forward)
    need = "attention LoRA (model.attn_lora_rank)";
  if (need)
    FM_ERROR(FM_ERR_CONFIG, "run.device = cuda: %s does not run on the GPU yet; use run.device = cpu", need);
  return FM_OK;
}

/* what either path of the GPU attention core keeps (attention.c) */
static size_t cuda_attention_saved(fm_backend *be, int B, int T, int H, int hs) {
  (void)be;
  return fm_cu_attention_saved(B, T, H, hs);
}

static size_t cuda_mem_free(fm_backend *be) {
  (void)be;
  size_t freeb = 0, total = 0;
  if (cudaMemGetInfo(&freeb, &total) != cudaSuccess) { /* unknown: let the allocations say */
    cudaGetLastError();
    return SIZE_MAX;
  }
  return freeb;
}

static fm_err cuda_alloc(fm_backend *be, void *pptr, size_t bytes, const char *what) {
  return fm_cu_alloc(CU(be), pptr, bytes, what);
}
static void cuda_free(fm_backend *be, void *p) {
  (void)be;
  if (p) fm_cu_free(p);
}
static void cuda_upload(fm_backend *be, void *dst, const void *src, size_t bytes) {
  if (bytes) RUN(be, fm_cu_upload(CU(be), dst, src, bytes));
}
static void cuda_download(fm_backend *be, void *dst, const void *src, size_t bytes) {
  if (bytes) RUN(be, fm_cu_download(CU(be), dst, src, bytes));
}
static void cuda_copy(fm_backend *be, void *dst, const void *src, size_t bytes) {
  if (bytes)
    RUN(be, FM_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, CU(be)->stream), "device copy"));
}
static void cuda_zero(fm_backend *be, void *p, size_t bytes) {
  if (bytes) RUN(be, FM_CU(cudaMemsetAsync(p, 0, bytes, CU(be)->stream), "clear device memory"));
}
static void cuda_copy_rows(fm_backend *be, float *dst, int ldd, const float *src, int lds, int rows, int cols) {
  if (rows > 0 && cols > 0)
    RUN(be, FM_CU(cudaMemcpy2DAsync(dst, (size_t)ldd * sizeof(float), src, (size_t)lds * sizeof(float),
                                    (size_t)cols * sizeof(float), (size_t)rows, cudaMemcpyDeviceToDevice,
                                    CU(be)->stream),
                  "strided device copy"));
}
static fm_err add_(fm_cu *cu, float *dst, const float *src, size_t n) {
  FM_CUK(fm_cuk_add(dst, src, n, cu->stream), "add");
  return FM_OK;
}
static void cuda_add(fm_backend *be, float *dst, const float *src, size_t n) { RUN(be, add_(CU(be), dst, src, n)); }

static fm_err cuda_sync(fm_backend *be, const char *what) {
  fm_err e = be->err;
  be->err = FM_OK;
  if (e) { /* the queued work is still waited for, so nothing runs behind the caller */
    cudaStreamSynchronize(CU(be)->stream);
    cudaGetLastError();
    return e;
  }
  return fm_cu_sync(CU(be), what);
}

static fm_err sumsq_(fm_backend *be, const float *const *x, const size_t *n, int count, double *out) {
  cuda_ctx *c = be->ctx;
  fm_cu *cu = c->cu;
  if (!c->acc) {
    FM_CHECK(fm_cu_alloc(cu, &c->acc, sizeof(double), "gradient norm sum"));
    FM_CHECK(fm_cu_alloc(cu, &c->partial, fm_cuk_sumsq_scratch() * sizeof(double), "gradient norm partials"));
  }
  FM_CHECK(FM_CU(cudaMemsetAsync(c->acc, 0, sizeof(double), cu->stream), "clear the gradient norm"));
  for (int i = 0; i < count; i++) FM_CUK(fm_cuk_sumsq(c->acc, x[i], n[i], c->partial, cu->stream), "gradient norm");
  return fm_cu_download(cu, out, c->acc, sizeof(double));
}
static double cuda_sumsq(fm_backend *be, const float *const *x, const size_t *n, int count) {
  double s = 0.0;
  RUN(be, sumsq_(be, x, n, count, &s));
  return s;
}

static fm_err adamw_(fm_cu *cu, float *w, float *m, float *v, const float *g, size_t n, float lr, float b1,
                     float b2, float eps, float wd, float c1, float c2, float gs) {
  FM_CUK(fm_cuk_adamw(w, m, v, g, n, lr, b1, b2, eps, wd, c1, c2, gs, cu->stream), "AdamW");
  return FM_OK;
}
static void cuda_adamw(fm_backend *be, float *w, float *m, float *v, const float *g, size_t n, float lr,
                       float b1, float b2, float eps, float wd, float c1, float c2, float grad_scale) {
  RUN(be, adamw_(CU(be), w, m, v, g, n, lr, b1, b2, eps, wd, c1, c2, grad_scale));
}

static void cuda_gemm(fm_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
  RUN(be, fm_cu_gemm(CU(be), ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}
static void cuda_linear_forward(fm_backend *be, float *out, const float *inp, const float *w, const float *b,
                                int N, int C, int OC, int accumulate) {
  RUN(be, fm_cu_linear_forward(CU(be), out, inp, w, b, N, C, OC, accumulate));
}
static void cuda_linear_backward(fm_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, int N, int C, int OC, int accumulate) {
  RUN(be, fm_cu_linear_backward(CU(be), dinp, dw, db, dout, inp, w, N, C, OC, accumulate));
}
static void cuda_layernorm_forward(fm_backend *be, float *out, float *mean, float *rstd, const float *inp,
                                   const float *w, const float *b, int N, int C, float eps) {
  RUN(be, fm_cu_layernorm_forward(CU(be), out, mean, rstd, inp, w, b, N, C, eps));
}
static void cuda_layernorm_backward(fm_backend *be, float *dinp, float *dw, float *db, const float *dout,
                                    const float *inp, const float *w, const float *mean, const float *rstd,
                                    int N, int C) {
  RUN(be, fm_cu_layernorm_backward(CU(be), dinp, dw, db, dout, inp, w, mean, rstd, N, C));
}

/* ffn.c's composition: h = x fc_w; g = gelu(h + fc_b); out += g pj_w + pj_b */
static fm_err ffn_forward_(fm_cu *cu, float *out, float *h, float *g, const float *x, const float *fc_w,
                           const float *fc_b, const float *pj_w, const float *pj_b, int N, int D, int F) {
  FM_CHECK(fm_cu_gemm(cu, 0, 0, N, F, D, 1.0f, x, D, fc_w, F, 0.0f, h, F));
  FM_CHECK(fm_cu_bias_gelu_forward(cu, g, h, fc_b, N, F));
  return fm_cu_linear_forward(cu, out, g, pj_w, pj_b, N, F, D, 1);
}
static void cuda_ffn_forward(fm_backend *be, float *out, float *h, float *g, const float *x, const float *fc_w,
                             const float *fc_b, const float *pj_w, const float *pj_b, int N, int D, int F) {
  RUN(be, ffn_forward_(CU(be), out, h, g, x, fc_w, fc_b, pj_w, pj_b, N, D, F));
}
static fm_err ffn_backward_(fm_cu *cu, float *dx, float *dfc_w, float *dfc_b, float *dpj_w, float *dpj_b,
                            float *dg, const float *dout, const float *x, const float *h, const float *g,
                            const float *fc_w, const float *pj_w, int N, int D, int F) {
  const int need_dh = dx || dfc_w || dfc_b;
  FM_CHECK(fm_cu_linear_backward(cu, need_dh ? dg : NULL, dpj_w, dpj_b, dout, g, pj_w, N, F, D, 0));
  if (!need_dh) return FM_OK;
  FM_CHECK(fm_cu_gelu_backward_bias(cu, dg, h, dfc_b, N, F));
  return fm_cu_linear_backward(cu, dx, dfc_w, NULL, dg, x, fc_w, N, D, F, 1);
}
static void cuda_ffn_backward(fm_backend *be, float *dx, float *dfc_w, float *dfc_b, float *dpj_w,
                              float *dpj_b, float *dg, const float *dout, const float *x, const float *h,
                              const float *g, const float *fc_w, const float *pj_w, int N, int D, int F) {
  RUN(be, ffn_backward_(CU(be), dx, dfc_w, dfc_b, dpj_w, dpj_b, dg, dout, x, h, g, fc_w, pj_w, N, D, F));
}

/* the attention core: attention.c (fused or GEMM path); att holds fm_attention_saved
 * floats, which fit either path's layout */
static void cuda_attention_forward(fm_backend *be, float *out, float *att, const float *qkv, int B, int T,
                                   int H, int KVH, int hs) {
  RUN(be, fm_cu_attention_forward(CU(be), out, att, qkv, B, T, H, KVH, hs));
}
static void cuda_attention_backward(fm_backend *be, float *dqkv, float *scratch, const float *dout,
                                    const float *qkv, const float *att, int B, int T, int H, int KVH, int hs) {
  RUN(be, fm_cu_attention_backward(CU(be), dqkv, scratch, dout, qkv, att, B, T, H, KVH, hs));
}
static void cuda_embed_forward(fm_backend *be, float *out, const int32_t *tok, const float *wte,
                               const float *wpe, int B, int T, int D) {
  RUN(be, fm_cu_embed_forward(CU(be), out, tok, wte, wpe, B, T, D));
}
static void cuda_embed_backward(fm_backend *be, float *dwte, float *dwpe, const float *dout,
                                const int32_t *tok, int B, int T, int D) {
  RUN(be, fm_cu_embed_backward(CU(be), dwte, dwpe, dout, tok, B, T, D));
}
static double cuda_crossentropy_forward(fm_backend *be, float *lse, const float *logits, int ld,
                                        const int32_t *targets, int N, int V, int *nvalid) {
  double loss = 0.0;
  *nvalid = 0;
  RUN(be, fm_cu_crossentropy_forward_ld(CU(be), &loss, nvalid, lse, logits, ld, targets, N, V));
  return loss;
}
static void cuda_crossentropy_backward(fm_backend *be, float *dlogits, const float *logits, int ld, const float *lse,
                                       const int32_t *targets, int N, int V, int nvalid, float dloss) {
  RUN(be, fm_cu_crossentropy_backward_ld(CU(be), dlogits, logits, ld, lse, targets, N, V, nvalid, dloss));
}

static void cuda_lora_forward(fm_backend *be, int layout, int n, int in, int out, int R, float s,
                              const float *x, int ldx, const float *A, const float *B, float *z, float *y,
                              int ldy) {
  RUN(be, fm_cu_lora_forward(CU(be), layout, n, in, out, R, s, x, ldx, A, B, z, y, ldy));
}
static void cuda_lora_backward(fm_backend *be, int layout, int n, int in, int out, int R, float s,
                               const float *x, int ldx, const float *z, const float *dy, int ldy, fm_param A,
                               fm_param B, float *dz, float *dx, float beta) {
  RUN(be, fm_cu_lora_backward(CU(be), layout, n, in, out, R, s, x, ldx, z, dy, ldy, A, B, dz, dx, beta));
}

static void cuda_lora_grouped_forward(fm_backend *be, int layout, int G, int n, int in, int out, int R,
                                      float s, const float *x, int ldx, const float *A, size_t sA,
                                      const float *B, size_t sB, float *z, float *y, int ldy) {
  RUN(be, fm_cu_lora_grouped_forward(CU(be), layout, G, n, in, out, R, s, x, ldx, A, sA, B, sB, z, y, ldy));
}
static void cuda_lora_grouped_backward(fm_backend *be, int layout, int G, int n, int in, int out, int R,
                                       float s, const float *x, int ldx, const float *z, const float *dy,
                                       int ldy, fm_param A, fm_param B, size_t sA, size_t sB, float *dz,
                                       float *dx, float beta) {
  RUN(be, fm_cu_lora_grouped_backward(CU(be), layout, G, n, in, out, R, s, x, ldx, z, dy, ldy, A, B, sA, sB, dz,
                                      dx, beta));
}

/* ---- the llama family, the shared expert and the MoE layer (llama_ops.c, moe_cuda.c) */
static void cuda_dense_forward(fm_backend *be, float *out, int ldo, const float *inp, const float *w,
                               const float *b, int N, int C, int OC, int accumulate) {
  RUN(be, fm_cu_dense_forward(CU(be), out, ldo, inp, w, b, N, C, OC, accumulate));
}
static void cuda_dense_backward(fm_backend *be, float *dinp, float *dw, float *db, const float *dout, int ldd,
                                const float *inp, const float *w, int N, int C, int OC, int accumulate) {
  RUN(be, fm_cu_dense_backward(CU(be), dinp, dw, db, dout, ldd, inp, w, N, C, OC, accumulate));
}
static void cuda_rmsnorm_forward(fm_backend *be, float *out, float *rstd, const float *inp, const float *w,
                                 int N, int C, int ld, float eps) {
  RUN(be, fm_cu_rmsnorm_forward(CU(be), out, rstd, inp, w, N, C, ld, eps));
}
static void cuda_rmsnorm_backward(fm_backend *be, float *dinp, float *dw, const float *dout, const float *inp,
                                  const float *w, const float *rstd, int N, int C, int ld, int accumulate) {
  RUN(be, fm_cu_rmsnorm_backward(CU(be), dinp, dw, dout, inp, w, rstd, N, C, ld, accumulate));
}
static void cuda_rope_forward(fm_backend *be, float *x, const float *cos_t, const float *sin_t, int B, int T,
                              int nh, int hs, int ld) {
  RUN(be, fm_cu_rope_forward(CU(be), x, cos_t, sin_t, B, T, nh, hs, ld));
}
static void cuda_rope_backward(fm_backend *be, float *dx, const float *cos_t, const float *sin_t, int B, int T,
                               int nh, int hs, int ld) {
  RUN(be, fm_cu_rope_backward(CU(be), dx, cos_t, sin_t, B, T, nh, hs, ld));
}
static void cuda_swiglu_ffn_forward(fm_backend *be, float *out, float *gu, float *a, const float *x,
                                    const float *wg, const float *wu, const float *wd, int N, int D, int F,
                                    int accumulate) {
  RUN(be, fm_cu_swiglu_ffn_forward(CU(be), out, gu, a, x, wg, wu, wd, N, D, F, accumulate));
}
static void cuda_swiglu_ffn_backward(fm_backend *be, float *dx, float *dwg, float *dwu, float *dwd, float *da,
                                     float *dgu, const float *dout, const float *x, const float *gu,
                                     const float *a, const float *wg, const float *wu, const float *wd, int N,
                                     int D, int F, int accumulate) {
  RUN(be, fm_cu_swiglu_ffn_backward(CU(be), dx, dwg, dwu, dwd, da, dgu, dout, x, gu, a, wg, wu, wd, N, D, F,
                                    accumulate));
}
static void cuda_shared_expert_forward(fm_backend *be, float *out, float *y, float *sg, float *gu, float *a,
                                       const float *x, const float *wg, const float *wu, const float *wd,
                                       const float *wsg, int N, int D, int F) {
  RUN(be, fm_cu_shared_expert_forward(CU(be), out, y, sg, gu, a, x, wg, wu, wd, wsg, N, D, F));
}
static void cuda_shared_expert_backward(fm_backend *be, float *dx, float *dwg, float *dwu, float *dwd,
                                        float *dwsg, float *dy, float *dz, float *da, float *dgu,
                                        const float *dout, const float *x, const float *y, const float *sg,
                                        const float *gu, const float *a, const float *wg, const float *wu,
                                        const float *wd, const float *wsg, int N, int D, int F) {
  RUN(be, fm_cu_shared_expert_backward(CU(be), dx, dwg, dwu, dwd, dwsg, dy, dz, da, dgu, dout, x, y, sg, gu, a,
                                       wg, wu, wd, wsg, N, D, F));
}

/* the LM head fused with the cross-entropy (head.c); used when FEDMOE_CUDA_HEAD=fused
 * (the GEMM and cross-entropy kernels otherwise: which is faster depends on the
 * shape, and the unfused path is the one measured in docs/gpu.md) */
static double cuda_head_crossentropy(fm_backend *be, int *nvalid, float *lse, float *dx, float *dW, int accumulate,
                                     const float *x, const float *W, const int32_t *targets, int N, int D, int V,
                                     float dloss) {
  double loss = 0.0;
  *nvalid = 0;
  RUN(be, fm_cu_head_crossentropy(CU(be), &loss, nvalid, lse, dx, dW, accumulate, x, W, targets, N, D, V, dloss));
  return loss;
}

/* an MoE layer: the device's fm_cu_moe beside the model's host fm_moe */
static fm_err cuda_moe_create(fm_backend *be, const fm_moe *L, void **dev) {
  fm_cu_moe *d;
  FM_CALLOC(d, 1, "GPU MoE layer");
  fm_err e = fm_cu_moe_alloc_like(CU(be), d, L);
  if (e) {
    fm_cu_moe_free(d);
    free(d);
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  *dev = d;
  return FM_OK;
}
static void cuda_moe_destroy(fm_backend *be, void *dev) {
  (void)be;
  fm_cu_moe_free(dev);
  free(dev);
}
static fm_err cuda_moe_set_mask(fm_backend *be, void *dev, const uint8_t *allowed) {
  (void)be;
  return fm_cu_moe_set_mask(dev, allowed);
}
static fm_err cuda_moe_routing(fm_backend *be, void *dev, fm_moe *L) {
  FM_CHECK(be->sync(be, "the forward pass")); /* an earlier failure first */
  return fm_cu_moe_routing_to_host(CU(be), dev, L);
}
static double cuda_moe_forward(fm_backend *be, fm_moe *L, void *dev, const fm_moe_params *p, float *out,
                               const float *x, int N, float lb_coef) {
  (void)L;
  double lb = 0.0;
  RUN(be, fm_cu_moe_forward(CU(be), dev, p, &lb, out, x, N, lb_coef));
  return lb;
}
static void cuda_moe_backward(fm_backend *be, fm_moe *L, void *dev, const fm_moe_params *p, float *dx,
                              const float *dout, const float *x, float lb_coef, float dlb) {
  (void)L;
  RUN(be, fm_cu_moe_backward(CU(be), dev, p, dx, dout, x, lb_coef, dlb));
}

static const fm_backend cuda_table = {
  .name = "cuda",
  .device = 1,
  .refuse = cuda_refuse,
  .attention_saved = cuda_attention_saved,
  .mem_free = cuda_mem_free,
  .alloc = cuda_alloc,
  .free = cuda_free,
  .upload = cuda_upload,
  .download = cuda_download,
  .copy = cuda_copy,
  .zero = cuda_zero,
  .copy_rows = cuda_copy_rows,
  .add = cuda_add,
  .sync = cuda_sync,
  .sumsq = cuda_sumsq,
  .adamw = cuda_adamw,
  .gemm = cuda_gemm,
  .linear_forward = cuda_linear_forward,
  .linear_backward = cuda_linear_backward,
  .layernorm_forward = cuda_layernorm_forward,
  .layernorm_backward = cuda_layernorm_backward,
  .ffn_forward = cuda_ffn_forward,
  .ffn_backward = cuda_ffn_backward,
  .attention_forward = cuda_attention_forward,
  .attention_backward = cuda_attention_backward,
  .embed_forward = cuda_embed_forward,
  .embed_backward = cuda_embed_backward,
  .crossentropy_forward = cuda_crossentropy_forward,
  .crossentropy_backward = cuda_crossentropy_backward,
  .lora_forward = cuda_lora_forward,
  .lora_backward = cuda_lora_backward,
  .lora_grouped_forward = cuda_lora_grouped_forward,
  .lora_grouped_backward = cuda_lora_grouped_backward,
  .dense_forward = cuda_dense_forward,
  .dense_backward = cuda_dense_backward,
  .rmsnorm_forward = cuda_rmsnorm_forward,
  .rmsnorm_backward = cuda_rmsnorm_backward,
  .rope_forward = cuda_rope_forward,
  .rope_backward = cuda_rope_backward,
  .swiglu_ffn_forward = cuda_swiglu_ffn_forward,
  .swiglu_ffn_backward = cuda_swiglu_ffn_backward,
  .shared_expert_forward = cuda_shared_expert_forward,
  .shared_expert_backward = cuda_shared_expert_backward,
  .moe_create = cuda_moe_create,
  .moe_destroy = cuda_moe_destroy,
  .moe_set_mask = cuda_moe_set_mask,
  .moe_routing = cuda_moe_routing,
  .moe_forward = cuda_moe_forward,
  .moe_backward = cuda_moe_backward,
};

fm_err fm_cuda_backend_open(fm_backend **out, int local_rank, int prec) {
  *out = NULL;
  if (prec < FM_PREC_FP32 || prec > FM_PREC_BF16) FM_ERROR(FM_ERR_CONFIG, "GPU precision %d", prec);
  cuda_ctx *c;
  FM_CALLOC(c, 1, "CUDA backend");
  fm_err e = fm_cu_open(&c->cu, local_rank, (fm_precision)prec);
  fm_backend *be = NULL;
  if (!e) e = fm_calloc(&be, 1, sizeof *be, "CUDA backend");
  if (e) {
    if (c->cu) fm_cu_close(c->cu);
    free(c);
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  *be = cuda_table;
  be->ctx = c;
  if (c->cu->head == 1) be->head_crossentropy = cuda_head_crossentropy;
  /* logits rows padded to 8 values (32 bytes), for cuBLAS's aligned kernels: slower
   * than rows of V on the H200 with GPT-2's vocabulary (docs/gpu.md), so not the
   * default */
  if (c->cu->head == 2) be->logits_align = 8;
  *out = be;
  return FM_OK;
}

void fm_cuda_backend_close(fm_backend *be) {
  if (!be) return;
  cuda_ctx *c = be->ctx;
  fm_cu_free(c->acc);
  fm_cu_free(c->partial);
  fm_cu_close(c->cu);
  free(c);
  free(be);
}

fm_cu *fm_cuda_backend_context(fm_backend *be) { return CU(be); }

int fm_cuda_backend_gpu(fm_backend *be) { return CU(be)->device; }
