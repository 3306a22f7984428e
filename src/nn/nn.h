/* nn.h - the kernels of the model engine (private to src/nn and its tests).
 *
 * Every kernel is a forward/backward pair over row-major float32 arrays; the shapes
 * are in the comments. Conventions:
 *   - N is the number of token rows (B*T), D the model width, H the heads.
 *   - Backward kernels ADD into parameter gradients (dw, db), which may be NULL
 *     (frozen tensor: that gradient is not computed at all).
 *   - Input gradients (dinp) are added when the comment says "+=" and written
 *     when it says "=". A NULL dinp skips the input gradient. */
#ifndef FEDMOE_NN_PRIVATE_H
#define FEDMOE_NN_PRIVATE_H

#include "fedmoe/error.h"
#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"

#include <stddef.h>
#include <stdint.h>

/* ---- gemm.c: C[M,N] = alpha op(A)[M,K] op(B)[K,N] + beta C, row-major, through BLIS.
 * ta = 0: A stored [M,K] (row stride lda); ta = 1: A stored [K,M], used transposed.
 * Same for tb with B. Transposes are strides, never copies. */
void fm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* ---- linear.c: out[N,OC] (+)= inp[N,C] @ w[C,OC] + b[OC] (b may be NULL) */
void fm_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                       int OC, int accumulate);
/* dinp[N,C] (+)= dout @ w^T;  dw[C,OC] += inp^T @ dout;  db[OC] += column sums of dout */
void fm_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int C, int OC, int accumulate);

/* ---- layernorm.c: out[N,C] = (inp - mean) * rstd * w + b (GPT-2: eps 1e-5); keeps mean[N], rstd[N] */
void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C, float eps);
/* dinp[N,C] += ;  dw[C] += ;  db[C] += */
void fm_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, int N, int C);

/* ---- gelu.c: tanh approximation, elementwise over n values */
void fm_gelu_forward(float *out, const float *inp, size_t n);
/* dinp[n] = gelu'(inp) * dout (written; dinp may alias dout) */
void fm_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);
/* h [rows,F] += b (b may be NULL), g = gelu(h): the c_fc bias and GELU in one pass */
void fm_bias_gelu_forward(float *g, float *h, const float *b, int rows, int F);
/* dh [rows,F] *= gelu'(h) in place; db[F] += its column sums (db may be NULL) */
void fm_gelu_backward_bias(float *dh, const float *h, float *db, int rows, int F);

/* ---- ffn.c: the dense feed-forward part, out[N,D] += gelu(x @ fc_w + fc_b) @ pj_w + pj_b
 * fc_w [D,F], fc_b [F], pj_w [F,D], pj_b [D] (GPT-2: F = 4D); keeps h [N,F] (pre-GELU), g [N,F] */
void fm_ffn_forward(float *out, float *h, float *g, const float *x, const float *fc_w,
                    const float *fc_b, const float *pj_w, const float *pj_b, int N, int D, int F);
/* dx[N,D] += (NULL: skipped); parameter gradients +=; dg [N,F] is scratch */
void fm_ffn_backward(float *dx, float *dfc_w, float *dfc_b, float *dpj_w, float *dpj_b, float *dg,
                     const float *dout, const float *x, const float *h, const float *g,
                     const float *fc_w, const float *pj_w, int N, int D, int F);

/* ---- attention.c: causal multi-head attention core (without the projections), GQA.
 * qkv [B,T,W]: H query heads, KVH key heads, KVH value heads of hs values each,
 * W = (H + 2 KVH) hs (GPT-2: q | k | v with KVH = H, hs = D/H); query head h uses
 * key/value head h / (H/KVH). -> out [B,T,H hs] (written);
 * att [B,H,T,T]: softmax probabilities, lower triangle (entries above the diagonal
 * are either zero or never written; they are never read). */
void fm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int KVH,
                          int hs);
/* dqkv [B,T,W] (written) from dout [B,T,H hs]; scratch [min(T,block) * T] floats */
void fm_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int H, int KVH, int hs);
/* Row-block size of the triangular blocking (tests shrink it to exercise the blocks). */
int fm_attention_block(void);
void fm_attention_set_block(int rows);
size_t fm_attention_scratch(int T);
/* Floats an attention's `att` takes, for the CPU (the probabilities [B,H,T,T]) and for
 * a GPU backend alike (whose fused kernels keep there the log-sum-exp [B,H,T] and a
 * copy of the output [B,T,H hs] instead): the larger of the two. */
size_t fm_attention_saved(int B, int T, int H, int hs);

/* ---- embed.c: out[B,T,D] = wte[tok[b,t]] + wpe[t] */
void fm_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                      int T, int D);
/* dwte[V,D] += , dwpe[C,D] += (either may be NULL) */
void fm_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                       int T, int D);

/* ---- crossentropy.c: mean over rows with target >= 0 of -log softmax(logits)[target].
 * logits [N,V], targets [N]; keeps lse [N] (log-sum-exp); *nvalid = rows counted. */
double fm_crossentropy_forward(float *lse, const float *logits, const int32_t *targets, int N,
                               int V, int *nvalid);
/* dlogits[N,V] = dloss * (softmax - onehot) / nvalid on counted rows, 0 elsewhere (written) */
void fm_crossentropy_backward(float *dlogits, const float *logits, const float *lse,
                              const int32_t *targets, int N, int V, int nvalid, float dloss);

/* ---- router.c: softmax over the allowed experts, top-k (ties to the lower index),
 * weights renormalised over the k picks (renorm) or the picks' probabilities.
 * logits [N,E] -> probs [N,E] (0 for experts not allowed), picks [N,k] (-1 in slots
 * beyond keff = min(k, allowed)), wts [N,k]. allowed NULL: all. Returns keff. */
int fm_router_forward(float *probs, int32_t *picks, float *wts, const float *logits,
                      const uint8_t *allowed, int N, int E, int k, int renorm);
/* dlogits[N,E] (written) from dwts [N,k] (gradient of the weights) and
 * dprobs [N,E] (an extra gradient on probs, e.g. load balancing; may be NULL) */
void fm_router_backward(float *dlogits, const float *dwts, const float *dprobs, const float *probs,
                        const int32_t *picks, const float *wts, int N, int E, int k, int renorm);

/* ---- loadbalance.c: coef * E * sum_e f_e P_e with f_e = share of rows whose top-1
 * (picks[n*k]) is e (kept in f [E], a constant) and P_e = mean_n probs[n,e]. */
double fm_loadbalance_forward(float *f, const float *probs, const int32_t *picks, int N, int E,
                              int k, float coef);
/* dprobs[N,E] += dlb * coef * E * f_e / N */
void fm_loadbalance_backward(float *dprobs, const float *f, int N, int E, float coef, float dlb);

/* ---- moe.c: one MoE feed-forward layer (router, dispatch, experts, combine). */
typedef struct {
  const float *w;
  float *g; /* NULL: no gradient wanted */
} fm_param;

typedef struct {
  fm_param router;                 /* [E,D] */
  fm_param eup_w[FM_MAX_EXPERTS];  /* SwiGLU experts: up [F,D]; efc_w gate [F,D], epj_w down [D,F] */
  /* SwiGLU LoRA experts: base gate fc_w [F,D], up fup_w [F,D], down pj_w [D,F] (nn.Linear);
   * adapters in PEFT's layout, A [r,in] and B [out,r]: a1/b1 on gate, a3/b3 on up,
   * a2/b2 on down */
  fm_param fup_w;
  fm_param a3[FM_MAX_EXPERTS], b3[FM_MAX_EXPERTS];
  fm_param fc_w, fc_b, pj_w, pj_b; /* base FFN under LoRA experts: [D,4D] [4D] [4D,D] [D] */
  /* full experts: e's FFN; LoRA experts: a1 [D,r], b1 [r,4D] on c_fc, a2 [4D,r], b2 [r,D] */
  fm_param efc_w[FM_MAX_EXPERTS], efc_b[FM_MAX_EXPERTS], epj_w[FM_MAX_EXPERTS],
      epj_b[FM_MAX_EXPERTS];
  fm_param a1[FM_MAX_EXPERTS], b1[FM_MAX_EXPERTS], a2[FM_MAX_EXPERTS], b2[FM_MAX_EXPERTS];
} fm_moe_params;

/* An MoE layer's dimensions: width D, expert inner size F (0: 4D), E experts, top k,
 * expert type and LoRA rank/alpha, swiglu (llama family experts), renorm (router.c). */
typedef struct {
  int D, F, E, k, type, r, swiglu, renorm;
  float alpha;
} fm_moe_dims;

typedef struct {
  int maxN, D, F, E, k, type, r, swiglu, renorm;
  size_t nbytes; /* held by this layer */
  float scale; /* LoRA alpha / r */
  uint8_t allowed[FM_MAX_EXPERTS];
  int nallowed;
  /* state of the last forward */
  int N, keff, npos;
  float *logits, *probs, *wts, *f; /* [N,E] [N,E] [N,k] [E] */
  int32_t *picks;                  /* [N,k] */
  int32_t *count, *start;          /* [E], [E+1]: rows of expert e are start[e]..start[e+1) */
  int32_t *tok, *slot;             /* [N*k] token and slot of each dispatched row */
  float *xg, *h, *g, *y;           /* [N*k,D] [N*k,F] (SwiGLU: gate|up [N*k,2F]) [N*k,F] [N*k,D] */
  float *hb, *u, *v;               /* LoRA: base c_fc output [N,F] (SwiGLU: gate|up [N,2F]); x A1 [N*k,r]; g A2 [N*k,r] */
  float *u3, *du3;                 /* SwiGLU LoRA: x A3 [N*k,r] and its gradient */
  /* backward scratch */
  float *dy, *dg, *dxg, *du, *dv, *dhb, *dwts, *dlogits, *dprobs, *da; /* da: SwiGLU [N*k,F] */
} fm_moe;

fm_err fm_moe_alloc(fm_moe *L, int maxN, const fm_moe_dims *dims);
/* the bytes fm_moe_alloc takes for maxN rows (a device layer takes about as much) */
size_t fm_moe_bytes(int maxN, const fm_moe_dims *dims);
void fm_moe_free(fm_moe *L);
/* allowed[E] (NULL: all); fails when no expert is allowed */
fm_err fm_moe_set_mask(fm_moe *L, const uint8_t *allowed);
/* out[N,D] += moe(x[N,D]); returns the load-balancing term times lb_coef. */
double fm_moe_forward(fm_moe *L, const fm_moe_params *p, float *out, const float *x, int N,
                      float lb_coef);
/* Backward of the last forward: dx[N,D] += (NULL: skipped); parameter gradients +=.
 * dout is the gradient of out, dlb that of the returned load-balancing term. */
void fm_moe_backward(fm_moe *L, const fm_moe_params *p, float *dx, const float *dout,
                     const float *x, float lb_coef, float dlb);
/* moe_swiglu_lora.c: the expert part of fm_moe_forward/backward for LoRA experts on a
 * shared SwiGLU FFN: y [npos,D] from the dispatched rows; backward from dy [npos,D]
 * to dxg [npos,D] (LoRA terms, when dx is wanted) and dx += the base FFN's part. */
void fm_moe_swiglu_lora_forward(fm_moe *L, const fm_moe_params *p, const float *x);
void fm_moe_swiglu_lora_backward(fm_moe *L, const fm_moe_params *p, float *dx, const float *x);

/* ---- linear.c, nn.Linear layout (llama family): weights [out, in].
 * out[N,OC] (row stride ldo) (+)= inp[N,C] @ w[OC,C]^T + b[OC] (b may be NULL) */
void fm_dense_forward(float *out, int ldo, const float *inp, const float *w, const float *b, int N,
                      int C, int OC, int accumulate);
/* dout [N,OC] (row stride ldd): dinp[N,C] (+)= dout w; dw[OC,C] +=; db[OC] += (each may be NULL) */
void fm_dense_backward(float *dinp, float *dw, float *db, const float *dout, int ldd, const float *inp,
                       const float *w, int N, int C, int OC, int accumulate);

/* ---- rmsnorm.c: out[N,C] = inp rstd w, rstd = 1/sqrt(mean(inp^2) + eps); rows of
 * stride ld (in, out and the gradients); keeps rstd[N] */
void fm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, int ld,
                        float eps);
/* dinp[N,C] += (accumulate) or = (dinp may then be dout); dw[C] += (either may be NULL) */
void fm_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                         const float *rstd, int N, int C, int ld, int accumulate);

/* ---- rope.c: rotary embeddings, rotate-half layout. inv_freq [hs/2] from the shape's
 * rope_theta and rope_type (llama3 scaling); tables cos, sin [ctx, hs/2]. */
void fm_rope_freqs(double *inv_freq, int hs, const fm_model_shape *s);
void fm_rope_table(float *cos_t, float *sin_t, int ctx, int hs, const fm_model_shape *s);
/* x [B,T, nh heads of hs] with row stride ld, rotated in place by position t */
void fm_rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hs,
                     int ld);
/* the gradient of the rotated values turned into that of the inputs, in place */
void fm_rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hs,
                      int ld);

/* ---- swiglu.c: a[rows,F] = silu(gu[:, :F]) * gu[:, F:] (gu [rows,2F]: gate | up) */
void fm_swiglu_forward(float *a, const float *gu, int rows, int F);
/* dgu[rows,2F] (written) from da[rows,F] */
void fm_swiglu_backward(float *dgu, const float *gu, const float *da, int rows, int F);
/* SwiGLU FFN: out[N,D] (+)= (silu(x wg^T) * (x wu^T)) wd^T; wg, wu [F,D], wd [D,F];
 * keeps gu [N,2F], a [N,F] */
void fm_swiglu_ffn_forward(float *out, float *gu, float *a, const float *x, const float *wg,
                           const float *wu, const float *wd, int N, int D, int F, int accumulate);
/* dx[N,D] (+)= (NULL: skipped); dwg, dwu, dwd += (each may be NULL); da [N,F] and
 * dgu [N,2F] are scratch */
void fm_swiglu_ffn_backward(float *dx, float *dwg, float *dwu, float *dwd, float *da, float *dgu,
                            const float *dout, const float *x, const float *gu, const float *a,
                            const float *wg, const float *wu, const float *wd, int N, int D, int F,
                            int accumulate);

/* ---- shared_expert.c: out[N,D] += sigmoid(x wsg^T) swiglu_ffn(x), wsg [1,D];
 * keeps y [N,D] (the FFN's output), sg [N] (the gate), gu [N,2F], a [N,F] */
void fm_shared_expert_forward(float *out, float *y, float *sg, float *gu, float *a, const float *x,
                              const float *wg, const float *wu, const float *wd, const float *wsg,
                              int N, int D, int F);
/* dx[N,D] += (NULL: skipped); parameter gradients += (each may be NULL);
 * scratch dy [N,D], dz [N], da [N,F], dgu [N,2F] */
void fm_shared_expert_backward(float *dx, float *dwg, float *dwu, float *dwd, float *dwsg, float *dy,
                               float *dz, float *da, float *dgu, const float *dout, const float *x,
                               const float *y, const float *sg, const float *gu, const float *a,
                               const float *wg, const float *wu, const float *wd, const float *wsg,
                               int N, int D, int F);

/* ---- lora.c: y[n,out] (row stride ldy) += s (x A) B, x [n,in] (ldx), z = x A [n,R] kept.
 * FM_LORA_CONV1D: A [in,R], B [R,out] (GPT-2); FM_LORA_LINEAR: A [R,in], B [out,R] (PEFT) */
enum { FM_LORA_CONV1D, FM_LORA_LINEAR };
void fm_lora_forward(int layout, int n, int in, int out, int R, float s, const float *x, int ldx,
                     const float *A, const float *B, float *z, float *y, int ldy);
/* dA, dB += (A.g, B.g may be NULL); dz [n,R] scratch; dx [n,in] (ldx) = beta dx + ... (NULL: skipped) */
void fm_lora_backward(int layout, int n, int in, int out, int R, float s, const float *x, int ldx,
                      const float *z, const float *dy, int ldy, fm_param A, fm_param B, float *dz,
                      float *dx, float beta);

/* ---- lora_grouped.c: G groups of n rows, group g with its own pair (A + g sA, B + g sB,
 * gradients at the same strides): rows g*n.. of x, y, z, dy, dz, dx; otherwise lora.c's */
void fm_lora_grouped_forward(int layout, int G, int n, int in, int out, int R, float s, const float *x,
                             int ldx, const float *A, size_t sA, const float *B, size_t sB, float *z,
                             float *y, int ldy);
void fm_lora_grouped_backward(int layout, int G, int n, int in, int out, int R, float s, const float *x,
                              int ldx, const float *z, const float *dy, int ldy, fm_param A, fm_param B,
                              size_t sA, size_t sB, float *dz, float *dx, float beta);

/* ---- model_shape.c: the architecture as data */
/* Shape checks for a hand-made shape (errors are FM_ERR_CONFIG naming the key). */
fm_err fm_shape_check(const fm_model_shape *s);
/* The tensors of a model of shape s in their fixed order (name, group, layer, expert,
 * shape, numel, decay; the rest zero). out NULL: just count. Returns the count. */
int fm_shape_tensors(const fm_model_shape *s, fm_tensor *out);

/* ---- profile.c: per-kernel timers, active only while fm_prof_on (one test per call).
 *   FM_PROF_BEGIN(t0); ...kernel...; FM_PROF_END(t0, FM_PROF_ATTN_CORE, FM_PROF_FWD); */
extern int fm_prof_on;
double fm_prof_now(void);
void fm_prof_add(int kind, int pass, double t0);
#define FM_PROF_BEGIN(t0) double t0 = fm_prof_on ? fm_prof_now() : 0.0
#define FM_PROF_END(t0, kind, pass) \
  do {                              \
    if (fm_prof_on) fm_prof_add((kind), (pass), (t0)); \
  } while (0)
/* time one statement (or braced block) as part `kind` of pass `pass` */
#define PROF(kind, pass, ...)                         \
  do {                                                \
    FM_PROF_BEGIN(t0_);                               \
    __VA_ARGS__;                                      \
    FM_PROF_END(t0_, FM_PROF_##kind, FM_PROF_##pass); \
  } while (0)

#endif
