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
/* causal attention core, GQA, fused (flash_attention.cu): as nn.h's
 * fm_attention_forward, qkv [B,T,W], W = (H + 2 KVH) hs -> out [B,T,H hs] (written).
 * att holds what the backward needs in place of the CPU's [B,H,T,T] probabilities:
 * fm_cu_attention_saved(B, T, H, hs) floats, the log-sum-exp of each query row's
 * scaled scores [B,H,T], then a copy of out [B,T,H hs]. hs <= 128, KVH divides H.
 * bf16 and tf32 precisions: tensor cores on tiles rounded to bf16 / TF32 with fp32
 * accumulation and an fp32 softmax; fp32: exact fp32 arithmetic. */
size_t fm_cu_attention_saved(int B, int T, int H, int hs);
fm_err fm_cu_attention_forward(fm_cu *cu, float *out, float *att, const float *qkv, int B, int T,
                               int H, int KVH, int hs);
/* dqkv [B,T,W] (written, every value) from dout [B,T,H hs]; deterministic (no atomics).
 * scratch: unused on the GPU (may be NULL; the argument keeps the CPU's signature). */
fm_err fm_cu_attention_backward(fm_cu *cu, float *dqkv, float *scratch, const float *dout,
                                const float *qkv, const float *att, int B, int T, int H, int KVH,
                                int hs);
/* bf16 runs on register-resident mma.sync tiles; on (tests): the WMMA kernels instead */
void fm_cu_attention_use_wmma(int on);
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

#endif
