/* kernels.h - the CUDA kernels of the engine, as C-callable launchers (src/nn/cuda).
 *
 * Each launcher mirrors the CPU kernel of the same name in src/nn/nn.h: same
 * arguments, same shapes, same "+=" / "=" conventions, but every pointer is device
 * memory and the work is queued on `stream` (a cudaStream_t passed as void*, so this
 * header needs no CUDA header). Launchers return the CUDA error of the launch (0 when
 * queued); errors of the kernels themselves surface at the next synchronisation.
 *
 * Determinism: no floating-point atomics anywhere. Column sums (bias and norm weight
 * gradients) go in two fixed-order stages through `scratch`, the embedding backward
 * sums each token's rows in position order after a stable radix sort, and reductions
 * inside a row use a fixed tree. The same inputs give bitwise the same outputs on
 * every run and every GPU of one model. */
#ifndef FEDMOE_NN_CUDA_KERNELS_H
#define FEDMOE_NN_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Rows per chunk of the two-stage column sums, and the scratch they need. */
#define FM_CU_COLSUM_ROWS 64
size_t fm_cuk_colsum_scratch(int N, int C); /* floats */

/* out[C] += sum over n of in[n, C] (row stride C) */
int fm_cuk_colsum(float *out, const float *in, int N, int C, float *scratch, void *stream);
/* out[N,C] (+)= b[C] broadcast over the rows (accumulate 0: written) */
int fm_cuk_bias_rows(float *out, const float *b, int N, int C, int accumulate, void *stream);

/* layernorm: out = (inp - mean) rstd w + b; keeps mean[N], rstd[N] */
int fm_cuk_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int N, int C, float eps, void *stream);
/* dinp[N,C] += (may be NULL); dw[C] += , db[C] += (each may be NULL; scratch holds
 * 2 x fm_cuk_colsum_scratch(N, C) floats) */
int fm_cuk_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C, float *scratch, void *stream);

/* GELU, tanh approximation, elementwise */
int fm_cuk_gelu_forward(float *out, const float *inp, size_t n, void *stream);
/* dinp[n] = gelu'(inp) dout (written; dinp may alias dout) */
int fm_cuk_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, void *stream);
/* h[rows,F] += b (b may be NULL); g = gelu(h) */
int fm_cuk_bias_gelu_forward(float *g, float *h, const float *b, int rows, int F, void *stream);
/* dh[rows,F] *= gelu'(h) in place; db[F] += its column sums (may be NULL) */
int fm_cuk_gelu_backward_bias(float *dh, const float *h, float *db, int rows, int F,
                              float *scratch, void *stream);

/* cross-entropy over logits [N,V] in rows of ld >= V values: lse[N]; rowloss[N] =
 * lse - logit[target] (0 where target < 0); *dsum (one device double) = the sum of
 * rowloss in a fixed order, *dcount (one device int) = rows counted. The mean is
 * *dsum / *dcount, taken by the caller. */
int fm_cuk_crossentropy_forward(float *lse, double *rowloss, double *dsum, int *dcount,
                                const float *logits, const int32_t *targets, int N, int V, int ld,
                                void *stream);
/* dlogits[N,V] = dloss / nvalid (softmax - onehot) on counted rows, 0 elsewhere; rows of
 * ld values in both; in place allowed */
int fm_cuk_crossentropy_backward(float *dlogits, const float *logits, const float *lse,
                                 const int32_t *targets, int N, int V, int ld, int nvalid, float dloss,
                                 void *stream);

/* causal softmax of score rows in place (softmax.cu, for attention.c's GEMM path):
 * att[R = B*H*T rows][T], row r's position is r mod T; entries above the diagonal
 * become 0 */
int fm_cuk_causal_softmax(float *att, int rows, int T, float scale, void *stream);
/* softmax backward in place: datt = att * (datt - sum_j datt att) * scale, same rows */
int fm_cuk_causal_softmax_backward(float *datt, const float *att, int rows, int T, float scale,
                                   void *stream);

/* The fused causal attention core (flash_attention.cu), GQA, nn.h's layout: qkv
 * [B,T,W], W = (H + 2 KVH) hs, query head h reads key/value head h / (H/KVH).
 * forward: out [B,T,H hs] and its copy ocopy (written); lse [B,H,T] (written) the
 * natural log-sum-exp of each row's scaled scores. backward: dqkv [B,T,W] (written,
 * every value) from dout [B,T,H hs], with o the forward's output and Dv [B,H,T]
 * scratch. mode 0: exact fp32; 1: tensor cores on TF32-rounded tiles (WMMA); 2: on
 * bf16 tiles, register-resident (mma.sync), which read bf16 copies of qkv and dout
 * (qkvh, douth: fm_cuk_to_bf16; unused by the other modes);
 * fp32 accumulation and softmax. hs <= FM_CU_ATTENTION_MAX_HS, H a multiple of KVH. */
#define FM_CU_ATTENTION_MAX_HS 128
int fm_cuk_attention_forward(float *out, float *ocopy, float *lse, const float *qkv,
                             const void *qkvh, int B, int T, int H, int KVH, int hs, int mode,
                             void *stream);
int fm_cuk_attention_backward(float *dqkv, float *Dv, const float *dout, const float *qkv,
                              const void *douth, const void *qkvh, const float *o,
                              const float *lse, int B, int T, int H, int KVH, int hs, int mode,
                              void *stream);
/* mode 2's kernels (flash_attention_mma.cu), called by the two above: the forward and,
 * with Dv already computed, the two backward kernels */
int fm_cuk_attention_forward_mma(float *out, float *ocopy, float *lse, const void *qkvh, int B,
                                 int T, int H, int KVH, int hs, void *stream);
int fm_cuk_attention_backward_mma(float *dqkv, const float *Dv, const void *douth,
                                  const void *qkvh, const float *lse, int B, int T, int H, int KVH,
                                  int hs, void *stream);

/* The fused LM head + cross-entropy's row kernels (head_crossentropy.cu, driven by
 * head.c). *dcount (device) = rows with target >= 0. On a chunk of rows: lse[rows]
 * (may be NULL), rowloss[rows] = lse - z[target] (0 where target < 0); z and dz [rows,V]
 * with row stride ld; with dz (not
 * NULL): dz = dloss / *dcount (softmax(z) - onehot) on counted rows, 0 elsewhere, as
 * bf16 (dz_bf16) or fp32 (dz may be z itself). *dsum = the sum of rowloss[N], fixed order. */
int fm_cuk_head_count(int *dcount, const int32_t *targets, int N, void *stream);
int fm_cuk_head_rows(float *lse, double *rowloss, void *dz, int dz_bf16, const float *z,
                     const int32_t *targets, int rows, int V, int ld, const int *dcount,
                     float dloss, void *stream);
int fm_cuk_head_total(double *dsum, const double *rowloss, int N, void *stream);
/* bf16 copies (bf16_copy.cu): out[n] = in[n] rounded (out: n bf16 values); out
 * [rows, cols] bf16 in rows of ldo = in [rows, cols] fp32 in rows of ldi, rounded */
int fm_cuk_to_bf16(void *out, const float *in, size_t n, void *stream);
int fm_cuk_to_bf16_2d(void *out, int ldo, const float *in, int ldi, int rows, int cols, void *stream);

/* out[B,T,D] = wte[tok] + wpe[t] (wpe may be NULL: no learned positions) */
int fm_cuk_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe,
                         int B, int T, int D, void *stream);
/* dwpe[T,D] += sum over b of dout[b,t] (may be NULL) */
int fm_cuk_embed_backward_pos(float *dwpe, const float *dout, int B, int T, int D, void *stream);
/* dwte[V,D] += the rows of dout[N,D] of each token, summed in position order.
 * order[N] and key[N] are scratch; sort_tmp of sort_bytes (fm_cuk_embed_sort_bytes). */
size_t fm_cuk_embed_sort_bytes(int N);
int fm_cuk_embed_backward_tok(float *dwte, const float *dout, const int32_t *tok, int N, int D,
                              int32_t *key, int32_t *order, int32_t *pos_in, void *sort_tmp,
                              size_t sort_bytes, void *stream);

/* AdamW on n values (one tensor), the CPU rule exactly (c1, c2 the bias corrections) */
int fm_cuk_adamw(float *w, float *m, float *v, const float *g, size_t n, float lr, float b1,
                 float b2, float eps, float wd, float c1, float c2, float grad_scale, void *stream);

/* ---- the backend's helpers (vecops.cu; helper "backend") */
/* y[n] += x[n] */
int fm_cuk_add(float *y, const float *x, size_t n, void *stream);
/* *acc (one device double) += sum of x[n]^2 in a fixed order; scratch holds
 * fm_cuk_sumsq_scratch() doubles */
size_t fm_cuk_sumsq_scratch(void);
int fm_cuk_sumsq(double *acc, const float *x, size_t n, double *scratch, void *stream);

#ifdef __cplusplus
}
#endif
#endif
