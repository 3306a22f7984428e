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

/* ---- layernorm.c: out[N,C] = (inp - mean) * rstd * w + b, eps 1e-5; keeps mean[N], rstd[N] */
void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, int N, int C);
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
 * fc_w [D,4D], fc_b [4D], pj_w [4D,D], pj_b [D]; keeps h [N,4D] (pre-GELU), g [N,4D] */
void fm_ffn_forward(float *out, float *h, float *g, const float *x, const float *fc_w,
                    const float *fc_b, const float *pj_w, const float *pj_b, int N, int D);
/* dx[N,D] += (NULL: skipped); parameter gradients +=; dg [N,4D] is scratch */
void fm_ffn_backward(float *dx, float *dfc_w, float *dfc_b, float *dpj_w, float *dpj_b, float *dg,
                     const float *dout, const float *x, const float *h, const float *g,
                     const float *fc_w, const float *pj_w, int N, int D);

/* ---- attention.c: causal multi-head attention core (without the projections).
 * qkv [B,T,3D] (q | k | v, H heads of D/H each) -> out [B,T,D] (written);
 * att [B,H,T,T]: softmax probabilities, lower triangle (entries above the diagonal
 * are either zero or never written; they are never read). */
void fm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int D, int H);
/* dqkv [B,T,3D] (written) from dout [B,T,D]; scratch [min(T,block) * T] floats */
void fm_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int D, int H);
/* Row-block size of the triangular blocking (tests shrink it to exercise the blocks). */
int fm_attention_block(void);
void fm_attention_set_block(int rows);
size_t fm_attention_scratch(int T);

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
 * weights renormalised over the k picks.
 * logits [N,E] -> probs [N,E] (0 for experts not allowed), picks [N,k] (-1 in slots
 * beyond keff = min(k, allowed)), wts [N,k]. allowed NULL: all. Returns keff. */
int fm_router_forward(float *probs, int32_t *picks, float *wts, const float *logits,
                      const uint8_t *allowed, int N, int E, int k);
/* dlogits[N,E] (written) from dwts [N,k] (gradient of the renormalised weights) and
 * dprobs [N,E] (an extra gradient on probs, e.g. load balancing; may be NULL) */
void fm_router_backward(float *dlogits, const float *dwts, const float *dprobs, const float *probs,
                        const int32_t *picks, const float *wts, int N, int E, int k);

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
  fm_param fc_w, fc_b, pj_w, pj_b; /* base FFN under LoRA experts: [D,4D] [4D] [4D,D] [D] */
  /* full experts: e's FFN; LoRA experts: a1 [D,r], b1 [r,4D] on c_fc, a2 [4D,r], b2 [r,D] */
  fm_param efc_w[FM_MAX_EXPERTS], efc_b[FM_MAX_EXPERTS], epj_w[FM_MAX_EXPERTS],
      epj_b[FM_MAX_EXPERTS];
  fm_param a1[FM_MAX_EXPERTS], b1[FM_MAX_EXPERTS], a2[FM_MAX_EXPERTS], b2[FM_MAX_EXPERTS];
} fm_moe_params;

typedef struct {
  int maxN, D, E, k, type, r;
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
  float *xg, *h, *g, *y;           /* [N*k,D] [N*k,4D] [N*k,4D] [N*k,D] */
  float *hb, *u, *v;               /* LoRA: base c_fc output [N,4D]; x A1 [N*k,r]; g A2 [N*k,r] */
  /* backward scratch */
  float *dy, *dg, *dxg, *du, *dv, *dhb, *dwts, *dlogits, *dprobs;
} fm_moe;

fm_err fm_moe_alloc(fm_moe *L, int maxN, int D, int E, int k, int type, int r, float alpha);
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
