/* cuda_nn.h - the CUDA backend of the engine: a device context and the kernels of
 * src/nn/nn.h on GPU memory (private to src/nn and its tests; built with --with-cuda).
 *
 * A context binds this rank to one GPU (its local rank modulo the GPUs it sees, so
 * several ranks may share one), and owns a stream, the cuBLAS handle and a scratch
 * arena. Every function queues work on the context's stream; fm_cu_sync waits for it
 * and turns a failed kernel into an fm_err. GEMMs are cuBLAS's in the context's
 * precision: fp32 (strict fp32 arithmetic), tf32 (tensor cores, fp32 accumulation),
 * bf16 (bf16 inputs, fp32 accumulation and output; the fp32 masters stay as they are).
 * Everything is deterministic: cuBLAS with atomics off, kernels without atomics. */
#ifndef FEDMOE_NN_CUDA_NN_H
#define FEDMOE_NN_CUDA_NN_H

#include "fedmoe/error.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { FM_PREC_FP32, FM_PREC_TF32, FM_PREC_BF16 } fm_precision;

typedef struct fm_cu fm_cu;

/* Open the GPU local_rank mod (visible GPUs); errors name what is missing. */
fm_err fm_cu_open(fm_cu **out, int local_rank, fm_precision prec);
void fm_cu_close(fm_cu *cu);
int fm_cu_device(const fm_cu *cu);
fm_precision fm_cu_precision(const fm_cu *cu);
void fm_cu_set_precision(fm_cu *cu, fm_precision prec);
void *fm_cu_stream(const fm_cu *cu);

/* Device memory: fails with FM_ERR_MEM saying what it was for, how much it needs and
 * how much the GPU has free. *p is zeroed. */
fm_err fm_cu_alloc(fm_cu *cu, void *p, size_t bytes, const char *what);
void fm_cu_free(void *p);
fm_err fm_cu_upload(fm_cu *cu, void *dst, const void *src, size_t bytes);
fm_err fm_cu_download(fm_cu *cu, void *dst, const void *src, size_t bytes);
/* Wait for the queued work; a kernel's failure becomes an error naming `what`. */
fm_err fm_cu_sync(fm_cu *cu, const char *what);
/* Scratch of at least bytes, owned by the context (grown as needed, kept). */
fm_err fm_cu_scratch(fm_cu *cu, void *p, size_t bytes);

/* C[M,N] = alpha op(A) op(B) + beta C, row-major, as fm_gemm (src/nn/gemm.c). */
fm_err fm_cu_gemm(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                  int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* The kernels of nn.h, same arguments (device pointers), same conventions. */
fm_err fm_cu_linear_forward(fm_cu *cu, float *out, const float *inp, const float *w,
                            const float *b, int N, int C, int OC, int accumulate);
fm_err fm_cu_linear_backward(fm_cu *cu, float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, int N, int C, int OC,
                             int accumulate);
fm_err fm_cu_layernorm_forward(fm_cu *cu, float *out, float *mean, float *rstd, const float *inp,
                               const float *w, const float *b, int N, int C, float eps);
fm_err fm_cu_layernorm_backward(fm_cu *cu, float *dinp, float *dw, float *db, const float *dout,
                                const float *inp, const float *w, const float *mean,
                                const float *rstd, int N, int C);
fm_err fm_cu_bias_gelu_forward(fm_cu *cu, float *g, float *h, const float *b, int rows, int F);
fm_err fm_cu_gelu_backward_bias(fm_cu *cu, float *dh, const float *h, float *db, int rows, int F);
/* causal attention core, GQA (attention.c): as nn.h's fm_attention_forward, qkv
 * [B,T,W], W = (H + 2 KVH) hs -> out [B,T,H hs] (written). Two paths, chosen by
 * precision and shape (attention.c says why): fused (flash_attention.cu; att keeps
 * the log-sum-exp of each query row's scaled scores [B,H,T], then a copy of out
 * [B,T,H hs]) and GEMM (cuBLAS score GEMMs, att the probabilities [B,H,T,T] as on the
 * CPU; multi-head only). att holds fm_cu_attention_saved(B, T, H, hs) floats, which
 * fit either. hs <= 128, KVH divides H. Fused in bf16: tensor cores on bf16 tiles,
 * fp32 accumulation and softmax; tf32: TF32 tiles; fp32: exact fp32. */
size_t fm_cu_attention_saved(int B, int T, int H, int hs);
fm_err fm_cu_attention_forward(fm_cu *cu, float *out, float *att, const float *qkv, int B, int T,
                               int H, int KVH, int hs);
/* dqkv [B,T,W] (written, every value) from dout [B,T,H hs]; deterministic (no atomics).
 * scratch: unused on the GPU (may be NULL; the argument keeps the CPU's signature). */
fm_err fm_cu_attention_backward(fm_cu *cu, float *dqkv, float *scratch, const float *dout,
                                const float *qkv, const float *att, int B, int T, int H, int KVH,
                                int hs);
/* The path: 0 by precision and shape (the default; FEDMOE_CUDA_ATTENTION=fused|gemm
 * overrides it), 1 fused, 2 GEMM (multi-head shapes; others stay fused). For tests and
 * figures; a forward and its backward must run on the same path. */
void fm_cu_attention_set_path(int path);
fm_err fm_cu_embed_forward(fm_cu *cu, float *out, const int32_t *tok, const float *wte,
                           const float *wpe, int B, int T, int D);
fm_err fm_cu_embed_backward(fm_cu *cu, float *dwte, float *dwpe, const float *dout,
                            const int32_t *tok, int B, int T, int D);
/* mean cross-entropy over rows with target >= 0 (returned on the host: one scalar
 * download per step); lse [N] kept */
fm_err fm_cu_crossentropy_forward(fm_cu *cu, double *loss, int *nvalid, float *lse,
                                  const float *logits, const int32_t *targets, int N, int V);
fm_err fm_cu_crossentropy_backward(fm_cu *cu, float *dlogits, const float *logits,
                                   const float *lse, const int32_t *targets, int N, int V,
                                   int nvalid, float dloss);
/* the same on logits in rows of ld >= V values (the model's padded head rows; the
 * backward may run in place, dlogits == logits) */
fm_err fm_cu_crossentropy_forward_ld(fm_cu *cu, double *loss, int *nvalid, float *lse, const float *logits,
                                     int ld, const int32_t *targets, int N, int V);
fm_err fm_cu_crossentropy_backward_ld(fm_cu *cu, float *dlogits, const float *logits, int ld, const float *lse,
                                      const int32_t *targets, int N, int V, int nvalid, float dloss);
/* ---- cufast: the LM head fused with the cross-entropy (head.c), chunked over rows so
 * the [N,V] logits are never whole: model_pass.c's fm_model_head_forward and
 * fm_model_head_backward (crossentropy.c's semantics) in one call. x [N,D], W [V,D]
 * (the head: logits = x W^T), targets [N] (< 0: ignored). *loss = the mean over the
 * counted rows (downloaded: the call's one host synchronisation), *nvalid = rows
 * counted, lse [N] (may be NULL). Gradients of dloss * loss: dx [N,D] (written; NULL:
 * not wanted), dW [V,D] (accumulate ? += : =; NULL: not wanted); with neither, the
 * loss alone. bf16 precision: bf16 operands for the GEMMs, fp32 logits and softmax. */
fm_err fm_cu_head_crossentropy(fm_cu *cu, double *loss, int *nvalid, float *lse, float *dx,
                               float *dW, int accumulate, const float *x, const float *W,
                               const int32_t *targets, int N, int D, int V, float dloss);
/* Rows per chunk (tests shrink it to exercise the chunks); 0: logits of at most 256 MiB. */
void fm_cu_head_set_chunk(int rows);

fm_err fm_cu_adamw(fm_cu *cu, float *w, float *m, float *v, const float *g, size_t n, float lr,
                   float b1, float b2, float eps, float wd, long step, float grad_scale);

/* ---- The llama and MoE families' kernels and LoRA (rmsnorm.cu, rope.cu, swiglu.cu,
 * dense.cu, router.cu, moe_dispatch.cu; entry points in llama_ops.c and moe_cuda.c).
 * Each is nn.h's fm_X with the context first and device pointers, except where said:
 * a kernel that returns a value on the CPU returns it through its first argument
 * (host memory), and a route mask `allowed` is a host array of E flags. */
#include "../nn.h"

/* gelu.c's elementwise pair (the LoRA-expert MoE layer's, beside the bias+GELU above) */
fm_err fm_cu_gelu_forward(fm_cu *cu, float *out, const float *inp, size_t n);
fm_err fm_cu_gelu_backward(fm_cu *cu, float *dinp, const float *inp, const float *dout, size_t n);
fm_err fm_cu_dense_forward(fm_cu *cu, float *out, int ldo, const float *inp, const float *w,
                           const float *b, int N, int C, int OC, int accumulate);
fm_err fm_cu_dense_backward(fm_cu *cu, float *dinp, float *dw, float *db, const float *dout,
                            int ldd, const float *inp, const float *w, int N, int C, int OC,
                            int accumulate);
fm_err fm_cu_rmsnorm_forward(fm_cu *cu, float *out, float *rstd, const float *inp, const float *w,
                             int N, int C, int ld, float eps);
fm_err fm_cu_rmsnorm_backward(fm_cu *cu, float *dinp, float *dw, const float *dout,
                              const float *inp, const float *w, const float *rstd, int N, int C,
                              int ld, int accumulate);
/* cos_t, sin_t [ctx, hs/2] (device): fm_rope_table's, computed on the host and uploaded
 * (once per model; waits for the copy) */
fm_err fm_cu_rope_table(fm_cu *cu, float *cos_t, float *sin_t, int ctx, int hs,
                        const fm_model_shape *s);
fm_err fm_cu_rope_forward(fm_cu *cu, float *x, const float *cos_t, const float *sin_t, int B,
                          int T, int nh, int hs, int ld);
fm_err fm_cu_rope_backward(fm_cu *cu, float *dx, const float *cos_t, const float *sin_t, int B,
                           int T, int nh, int hs, int ld);
fm_err fm_cu_swiglu_forward(fm_cu *cu, float *a, const float *gu, int rows, int F);
fm_err fm_cu_swiglu_backward(fm_cu *cu, float *dgu, const float *gu, const float *da, int rows,
                             int F);
fm_err fm_cu_swiglu_ffn_forward(fm_cu *cu, float *out, float *gu, float *a, const float *x,
                                const float *wg, const float *wu, const float *wd, int N, int D,
                                int F, int accumulate);
fm_err fm_cu_swiglu_ffn_backward(fm_cu *cu, float *dx, float *dwg, float *dwu, float *dwd,
                                 float *da, float *dgu, const float *dout, const float *x,
                                 const float *gu, const float *a, const float *wg, const float *wu,
                                 const float *wd, int N, int D, int F, int accumulate);
fm_err fm_cu_shared_expert_forward(fm_cu *cu, float *out, float *y, float *sg, float *gu, float *a,
                                   const float *x, const float *wg, const float *wu,
                                   const float *wd, const float *wsg, int N, int D, int F);
fm_err fm_cu_shared_expert_backward(fm_cu *cu, float *dx, float *dwg, float *dwu, float *dwd,
                                    float *dwsg, float *dy, float *dz, float *da, float *dgu,
                                    const float *dout, const float *x, const float *y,
                                    const float *sg, const float *gu, const float *a,
                                    const float *wg, const float *wu, const float *wd,
                                    const float *wsg, int N, int D, int F);
fm_err fm_cu_lora_forward(fm_cu *cu, int layout, int n, int in, int out, int R, float s,
                          const float *x, int ldx, const float *A, const float *B, float *z,
                          float *y, int ldy);
/* A, B: device weights and gradients (g may be NULL) */
fm_err fm_cu_lora_backward(fm_cu *cu, int layout, int n, int in, int out, int R, float s,
                           const float *x, int ldx, const float *z, const float *dy, int ldy,
                           fm_param A, fm_param B, float *dz, float *dx, float beta);
/* *keff = min(k, allowed experts), known on the host (no synchronisation) */
fm_err fm_cu_router_forward(fm_cu *cu, int *keff, float *probs, int32_t *picks, float *wts,
                            const float *logits, const uint8_t *allowed, int N, int E, int k,
                            int renorm);
fm_err fm_cu_router_backward(fm_cu *cu, float *dlogits, const float *dwts, const float *dprobs,
                             const float *probs, const int32_t *picks, const float *wts, int N,
                             int E, int k, int renorm);
/* *lb (host) = the term; waits for the GPU to read it back */
fm_err fm_cu_loadbalance_forward(fm_cu *cu, double *lb, float *f, const float *probs,
                                 const int32_t *picks, int N, int E, int k, float coef);
fm_err fm_cu_loadbalance_backward(fm_cu *cu, float *dprobs, const float *f, int N, int E,
                                  float coef, float dlb);

/* An MoE layer on the GPU (moe_cuda.c), moe.c's fm_moe with its buffers in device
 * memory: the same dimensions, the same kinds of experts (GELU or SwiGLU, full or
 * LoRA), fm_moe_params holding device pointers. The routing, the dispatch (a stable
 * sort by expert), the combine and the load balance run on the device; the experts'
 * GEMMs are one cuBLAS call per expert and matrix over its contiguous rows, so the
 * E + 1 row offsets (and the load-balance term, in the same copy) are read back to the
 * host once per forward and kept for the backward. */
typedef struct {
  int maxN, D, F, E, k, type, r, swiglu, renorm;
  size_t nbytes; /* device memory held by this layer */
  float scale;   /* LoRA alpha / r */
  uint8_t allowed[FM_MAX_EXPERTS];
  int nallowed;
  /* state of the last forward */
  int N, keff, npos;
  int32_t hstart[FM_MAX_EXPERTS + 1]; /* host copy of start */
  double lb;                          /* the last forward's load-balance term */
  float *logits, *probs, *wts, *f;    /* [N,E] [N,E] [N,k] [E] */
  int32_t *picks;                     /* [N,k] */
  void *readback;                     /* device: double lb, then int32 start[E+1] */
  int32_t *start;                     /* in readback */
  int32_t *tok, *slot, *inv;          /* [N*k]: token and slot of each row; row of each pick */
  int32_t *key, *val, *skey, *sval;   /* [N*k] sort buffers */
  void *sort_tmp;
  size_t sort_bytes;
  double *lbpart; /* [E] */
  float *xg, *h, *g, *y, *hb, *u, *v, *u3, *du3; /* as fm_moe */
  float *dy, *dg, *dxg, *du, *dv, *dhb, *dwts, *dlogits, *dprobs, *da;
  void *farena, *iarena;
} fm_cu_moe;

fm_err fm_cu_moe_alloc(fm_cu *cu, fm_cu_moe *L, int maxN, const fm_moe_dims *dims);
void fm_cu_moe_free(fm_cu_moe *L);
/* allowed[E] (host; NULL: all); fails when no expert is allowed */
fm_err fm_cu_moe_set_mask(fm_cu_moe *L, const uint8_t *allowed);
/* out[N,D] += moe(x[N,D]); *lb (host) = the load-balancing term times lb_coef */
fm_err fm_cu_moe_forward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, double *lb, float *out,
                         const float *x, int N, float lb_coef);
/* backward of the last forward: dx[N,D] += (NULL: skipped); parameter gradients += */
fm_err fm_cu_moe_backward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, float *dx,
                          const float *dout, const float *x, float lb_coef, float dlb);
/* For a model that keeps its host fm_moe layers (dimensions, masks, routing
 * statistics) beside the device ones: a device layer of a host layer's dimensions and
 * mask, and the last forward's routing (probs, picks, f, row offsets, N, keff, npos)
 * copied into the host layer (waits for the GPU). */
fm_err fm_cu_moe_alloc_like(fm_cu *cu, fm_cu_moe *L, const fm_moe *host);
fm_err fm_cu_moe_routing_to_host(fm_cu *cu, const fm_cu_moe *L, fm_moe *host);
/* ---- end of the llama and MoE families' block */

/* ---- client slots (run.client_batch): nn's lora_grouped.c, its arguments
 * (lora_grouped.c, strided-batched cuBLAS GEMMs) */
fm_err fm_cu_lora_grouped_forward(fm_cu *cu, int layout, int G, int n, int in, int out, int R, float s,
                                  const float *x, int ldx, const float *A, size_t sA, const float *B,
                                  size_t sB, float *z, float *y, int ldy);
fm_err fm_cu_lora_grouped_backward(fm_cu *cu, int layout, int G, int n, int in, int out, int R, float s,
                                   const float *x, int ldx, const float *z, const float *dy, int ldy, fm_param A,
                                   fm_param B, size_t sA, size_t sB, float *dz, float *dx, float beta);
/* ---- end of the client slots' block */

#endif
