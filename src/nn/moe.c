/* moe.c - one Mixture-of-Experts feed-forward layer.
 *
 * Forward over x [N,D]:
 *   route:    logits = x R^T [N,E]; probs, picks [N,k], weights [N,k] (router.c)
 *   dispatch: the (token, slot) pairs are sorted by expert with a counting sort; the
 *             rows of x they need are gathered into xg [npos,D], expert e's rows being
 *             the contiguous block start[e]..start[e+1)
 *   experts:  one GEMM per expert and matrix over its own rows only; an expert a token
 *             did not pick costs that token nothing
 *   combine:  out[tok] += w * y[pos] (scatter-add)
 * Full experts: y = gelu(xg Wfc_e + bfc_e) Wpj_e + bpj_e (GPT-2), or the SiLU-gated
 *   y = down_e(silu(gate_e(xg)) * up_e(xg)) of the llama family (swiglu.c).
 * Weights: renormalised over the picks or the plain probabilities (renorm, router.c).
 * LoRA experts on the shared base FFN (s = alpha / r):
 *   h = x Wfc + bfc + s (xg A1_e) B1_e   (the base part once per token, not per pick)
 *   y = gelu(h) Wpj + bpj + s (gelu(h) A2_e) B2_e   (the base part in one GEMM of npos rows)
 * Backward runs the same blocks in reverse, with the weights' gradients through the
 * router: dw = <dout, y>, then router.c's backward, plus the load-balancing term. */
#include "nn.h"

#include <stdlib.h>
#include <string.h>

/* the arena sizes of a layer for maxN rows: floats and indices */
static void arena_sizes(size_t N, const fm_moe_dims *dm, size_t *nf, size_t *ni) {
  const size_t D = (size_t)dm->D, E = (size_t)dm->E, k = (size_t)dm->k, NK = N * k;
  const size_t F = (size_t)(dm->F > 0 ? dm->F : 4 * dm->D), R = dm->type == FM_EXPERT_LORA ? (size_t)dm->r : 0;
  const size_t HF = dm->swiglu ? 2 * F : F; /* h, dg: GELU's input, or gate | up */
  *nf = 3 * N * E + 2 * N * k + E + 3 * NK * D + 2 * NK * HF + NK * F + NK * D;
  if (dm->swiglu) *nf += NK * F;
  if (dm->type == FM_EXPERT_LORA) *nf += 2 * N * HF + (dm->swiglu ? 6 : 4) * NK * R;
  *ni = N * k + E + (E + 1) + 2 * NK;
}

size_t fm_moe_bytes(int maxN, const fm_moe_dims *dm) {
  size_t nf, ni;
  arena_sizes((size_t)maxN, dm, &nf, &ni);
  return nf * sizeof(float) + ni * sizeof(int32_t);
}

fm_err fm_moe_alloc(fm_moe *L, int maxN, const fm_moe_dims *dm) {
  memset(L, 0, sizeof *L);
  const int D = dm->D, E = dm->E, k = dm->k, type = dm->type, r = dm->r;
  if (E < 1 || E > FM_MAX_EXPERTS || k < 1 || k > E)
    FM_ERROR(FM_ERR_INTERNAL, "MoE layer with %d experts, top_k %d", E, k);
  L->maxN = maxN;
  L->D = D;
  L->F = dm->F > 0 ? dm->F : 4 * D;
  L->swiglu = dm->swiglu;
  L->renorm = dm->renorm;
  L->E = E;
  L->k = k;
  L->type = type;
  L->r = type == FM_EXPERT_LORA ? r : 0;
  L->scale = type == FM_EXPERT_LORA ? dm->alpha / (float)r : 0.0f;
  for (int e = 0; e < E; e++) L->allowed[e] = 1;
  L->nallowed = E;
  const size_t N = (size_t)maxN, NK = N * k, F = (size_t)L->F, R = (size_t)L->r;
  const size_t HF = L->swiglu ? 2 * F : F;
  size_t nf, ni; /* one arena for the floats, one for the indices */
  arena_sizes(N, dm, &nf, &ni);
  float *fa;
  int32_t *ia;
  FM_CALLOC(fa, nf, "MoE layer activations");
  if (fm_calloc(&ia, ni, sizeof *ia, "MoE dispatch indices")) {
    free(fa);
    return fm_error_trace(__FILE__, __LINE__, __func__, FM_ERR_MEM);
  }
  L->nbytes = nf * sizeof(float) + ni * sizeof(int32_t);
  float *q = fa;
#define TAKE(ptr, n) (ptr = q, q += (n))
  TAKE(L->logits, N * E);
  TAKE(L->probs, N * E);
  TAKE(L->dprobs, N * E);
  TAKE(L->wts, N * k);
  TAKE(L->dwts, N * k);
  TAKE(L->f, (size_t)E);
  TAKE(L->xg, NK * D);
  TAKE(L->y, NK * D);
  TAKE(L->dy, NK * D);
  TAKE(L->dxg, NK * D);
  TAKE(L->h, NK * HF);
  TAKE(L->g, NK * F);
  TAKE(L->dg, NK * HF);
  if (L->swiglu) TAKE(L->da, NK * F);
  L->dlogits = L->logits; /* the logits are not needed once probs are known */
  if (type == FM_EXPERT_LORA) {
    TAKE(L->hb, N * HF);
    TAKE(L->dhb, N * HF);
    TAKE(L->u, NK * R);
    TAKE(L->v, NK * R);
    TAKE(L->du, NK * R);
    TAKE(L->dv, NK * R);
    if (L->swiglu) {
      TAKE(L->u3, NK * R);
      TAKE(L->du3, NK * R);
    }
  }
#undef TAKE
  L->picks = ia;
  L->count = L->picks + N * k;
  L->start = L->count + E;
  L->tok = L->start + E + 1;
  L->slot = L->tok + NK;
  return FM_OK;
}

void fm_moe_free(fm_moe *L) {
  free(L->logits);
  free(L->picks);
  memset(L, 0, sizeof *L);
}

fm_err fm_moe_set_mask(fm_moe *L, const uint8_t *allowed) {
  int n = 0;
  for (int e = 0; e < L->E; e++) n += !allowed || allowed[e];
  if (n == 0) FM_ERROR(FM_ERR_ARG, "route mask allows none of the %d experts", L->E);
  for (int e = 0; e < L->E; e++) L->allowed[e] = !allowed || allowed[e] ? 1 : 0;
  L->nallowed = n;
  return FM_OK;
}

/* counting sort of the (token, slot) picks by expert: start[], tok[], slot[] */
static void dispatch(fm_moe *L, int N) {
  const int E = L->E, k = L->k, keff = L->keff;
  int32_t *restrict count = L->count, *restrict start = L->start;
  for (int e = 0; e < E; e++) count[e] = 0;
  for (int n = 0; n < N; n++)
    for (int j = 0; j < keff; j++) count[L->picks[(size_t)n * k + j]]++;
  start[0] = 0;
  for (int e = 0; e < E; e++) start[e + 1] = start[e] + count[e];
  for (int e = 0; e < E; e++) count[e] = start[e]; /* now the fill cursors */
  for (int n = 0; n < N; n++)
    for (int j = 0; j < keff; j++) {
      int pos = count[L->picks[(size_t)n * k + j]]++;
      L->tok[pos] = n;
      L->slot[pos] = j;
    }
  for (int e = 0; e < E; e++) count[e] = start[e + 1] - start[e];
  L->npos = start[E];
}

double fm_moe_forward(fm_moe *L, const fm_moe_params *p, float *out, const float *x, int N,
                      float lb_coef) {
  const int D = L->D, E = L->E, k = L->k, F = L->F, R = L->r;
  L->N = N;
  /* route */
  double lb = 0.0;
  PROF(ROUTER, FWD, {
    fm_gemm(0, 1, N, E, D, 1.0f, x, D, p->router.w, D, 0.0f, L->logits, E);
    L->keff = fm_router_forward(L->probs, L->picks, L->wts, L->logits,
                                L->nallowed == E ? NULL : L->allowed, N, E, k, L->renorm);
    lb = fm_loadbalance_forward(L->f, L->probs, L->picks, N, E, k, lb_coef);
  });
  /* dispatch */
  FM_PROF_BEGIN(t_disp);
  dispatch(L, N);
  const int npos = L->npos;
  for (int pos = 0; pos < npos; pos++)
    memcpy(L->xg + (size_t)pos * D, x + (size_t)L->tok[pos] * D, (size_t)D * sizeof(float));
  FM_PROF_END(t_disp, FM_PROF_DISPATCH, FM_PROF_FWD);
  /* experts */
  FM_PROF_BEGIN(t_exp);
  if (L->swiglu && L->type == FM_EXPERT_LORA) {
    fm_moe_swiglu_lora_forward(L, p, x);
  } else if (L->swiglu) {
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      fm_swiglu_ffn_forward(L->y + s * D, L->h + s * 2 * F, L->g + s * F, L->xg + s * D,
                            p->efc_w[e].w, p->eup_w[e].w, p->epj_w[e].w, n, D, F, 0);
    }
  } else if (L->type == FM_EXPERT_FULL) {
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      fm_gemm(0, 0, n, F, D, 1.0f, L->xg + s * D, D, p->efc_w[e].w, F, 0.0f, L->h + s * F, F);
      fm_bias_gelu_forward(L->g + s * F, L->h + s * F, p->efc_b[e].w, n, F);
      fm_linear_forward(L->y + s * D, L->g + s * F, p->epj_w[e].w, p->epj_b[e].w, n, F, D, 0);
    }
  } else {
    fm_linear_forward(L->hb, x, p->fc_w.w, p->fc_b.w, N, D, F, 0);
    for (int pos = 0; pos < npos; pos++)
      memcpy(L->h + (size_t)pos * F, L->hb + (size_t)L->tok[pos] * F, (size_t)F * sizeof(float));
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      fm_lora_forward(FM_LORA_CONV1D, n, D, F, R, L->scale, L->xg + s * D, D, p->a1[e].w, p->b1[e].w,
                      L->u + s * R, L->h + s * F, F);
    }
    fm_gelu_forward(L->g, L->h, (size_t)npos * F);
    fm_linear_forward(L->y, L->g, p->pj_w.w, p->pj_b.w, npos, F, D, 0);
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      fm_lora_forward(FM_LORA_CONV1D, n, F, D, R, L->scale, L->g + s * F, F, p->a2[e].w, p->b2[e].w,
                      L->v + s * R, L->y + s * D, D);
    }
  }
  FM_PROF_END(t_exp, FM_PROF_FFN, FM_PROF_FWD);
  /* combine */
  FM_PROF_BEGIN(t_comb);
  for (int pos = 0; pos < npos; pos++) {
    const int n = L->tok[pos];
    const float w = L->wts[(size_t)n * k + L->slot[pos]];
    const float *restrict y = L->y + (size_t)pos * D;
    float *restrict o = out + (size_t)n * D;
    for (int i = 0; i < D; i++) o[i] += w * y[i];
  }
  FM_PROF_END(t_comb, FM_PROF_DISPATCH, FM_PROF_FWD);
  return lb;
}

/* Backward of one expert's LoRA term y += s (x A) B over its n rows (lora.c, GPT-2's
 * layout), with z = x A [n,R] kept from the forward; x [n,in], dy [n,out]. */
static void lora_backward(int n, int in, int out, int R, float s, const float *x, const float *z,
                          const float *dy, fm_param A, fm_param B, float *dz, float *dx, float beta) {
  fm_lora_backward(FM_LORA_CONV1D, n, in, out, R, s, x, in, z, dy, out, A, B, dz, dx, beta);
}

void fm_moe_backward(fm_moe *L, const fm_moe_params *p, float *dx, const float *dout,
                     const float *x, float lb_coef, float dlb) {
  const int D = L->D, E = L->E, k = L->k, F = L->F, R = L->r, N = L->N, npos = L->npos;
  const float sc = L->scale;
  /* combine: dw = <dout[tok], y[pos]>, dy = w dout[tok] */
  FM_PROF_BEGIN(t_comb);
  memset(L->dwts, 0, (size_t)N * k * sizeof(float));
  for (int pos = 0; pos < npos; pos++) {
    const int n = L->tok[pos];
    const size_t ws = (size_t)n * k + L->slot[pos];
    const float w = L->wts[ws];
    const float *restrict d = dout + (size_t)n * D, *restrict y = L->y + (size_t)pos * D;
    float *restrict dy = L->dy + (size_t)pos * D;
    float dot = 0.0f;
    for (int i = 0; i < D; i++) {
      dot += d[i] * y[i];
      dy[i] = w * d[i];
    }
    L->dwts[ws] = dot;
  }
  FM_PROF_END(t_comb, FM_PROF_DISPATCH, FM_PROF_BWD);
  FM_PROF_BEGIN(t_exp);
  /* experts, down to dxg [npos,D] (only when dx is wanted) */
  if (L->swiglu && L->type == FM_EXPERT_LORA) {
    fm_moe_swiglu_lora_backward(L, p, dx, x);
  } else if (L->swiglu) {
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      fm_swiglu_ffn_backward(dx ? L->dxg + s * D : NULL, p->efc_w[e].g, p->eup_w[e].g, p->epj_w[e].g,
                             L->da + s * F, L->dg + s * 2 * F, L->dy + s * D, L->xg + s * D,
                             L->h + s * 2 * F, L->g + s * F, p->efc_w[e].w, p->eup_w[e].w,
                             p->epj_w[e].w, n, D, F, 0);
    }
  } else if (L->type == FM_EXPERT_FULL) {
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      int need_dh = dx || p->efc_w[e].g || p->efc_b[e].g;
      fm_linear_backward(need_dh ? L->dg + s * F : NULL, p->epj_w[e].g, p->epj_b[e].g, L->dy + s * D,
                         L->g + s * F, p->epj_w[e].w, n, F, D, 0);
      if (!need_dh) continue;
      fm_gelu_backward_bias(L->dg + s * F, L->h + s * F, p->efc_b[e].g, n, F);
      fm_linear_backward(dx ? L->dxg + s * D : NULL, p->efc_w[e].g, NULL, L->dg + s * F,
                         L->xg + s * D, p->efc_w[e].w, n, D, F, 0);
    }
  } else {
    /* c_proj: base over all rows, then each expert's LoRA update */
    fm_linear_backward(L->dg, p->pj_w.g, p->pj_b.g, L->dy, L->g, p->pj_w.w, npos, F, D, 0);
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      lora_backward(n, F, D, R, sc, L->g + s * F, L->v + s * R, L->dy + s * D, p->a2[e], p->b2[e],
                    L->dv + s * R, L->dg + s * F, 1.0f);
    }
    fm_gelu_backward(L->dg, L->h, L->dg, (size_t)npos * F); /* now dh */
    /* c_fc: each expert's LoRA update, then the base, summed over a token's picks */
    for (int e = 0; e < E; e++) {
      int n = L->count[e];
      if (!n) continue;
      size_t s = (size_t)L->start[e];
      lora_backward(n, D, F, R, sc, L->xg + s * D, L->u + s * R, L->dg + s * F, p->a1[e], p->b1[e],
                    L->du + s * R, dx ? L->dxg + s * D : NULL, 0.0f);
    }
    memset(L->dhb, 0, (size_t)N * F * sizeof(float));
    for (int pos = 0; pos < npos; pos++) {
      const float *restrict dh = L->dg + (size_t)pos * F;
      float *restrict acc = L->dhb + (size_t)L->tok[pos] * F;
      for (int i = 0; i < F; i++) acc[i] += dh[i];
    }
    fm_linear_backward(dx, p->fc_w.g, p->fc_b.g, L->dhb, x, p->fc_w.w, N, D, F, 1);
  }
  FM_PROF_END(t_exp, FM_PROF_FFN, FM_PROF_BWD);
  FM_PROF_BEGIN(t_disp);
  if (dx)
    for (int pos = 0; pos < npos; pos++) {
      const float *restrict d = L->dxg + (size_t)pos * D;
      float *restrict o = dx + (size_t)L->tok[pos] * D;
      for (int i = 0; i < D; i++) o[i] += d[i];
    }
  FM_PROF_END(t_disp, FM_PROF_DISPATCH, FM_PROF_BWD);
  /* router: renormalised weights and load balancing, through the softmax */
  FM_PROF_BEGIN(t_rt);
  memset(L->dprobs, 0, (size_t)N * E * sizeof(float));
  fm_loadbalance_backward(L->dprobs, L->f, N, E, lb_coef, dlb);
  fm_router_backward(L->dlogits, L->dwts, L->dprobs, L->probs, L->picks, L->wts, N, E, k, L->renorm);
  if (p->router.g) fm_gemm(1, 0, E, D, N, 1.0f, L->dlogits, E, x, D, 1.0f, p->router.g, D);
  if (dx) fm_gemm(0, 0, N, D, E, 1.0f, L->dlogits, E, p->router.w, D, 1.0f, dx, D);
  FM_PROF_END(t_rt, FM_PROF_ROUTER, FM_PROF_BWD);
}
