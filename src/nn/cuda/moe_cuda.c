/* moe_cuda.c - one MoE feed-forward layer on the GPU: moe.c (and moe_swiglu_lora.c)
 * step for step, its buffers in device memory.
 *   route:    logits = x R^T (cuBLAS), softmax/top-k/weights (router.cu), load balance
 *   dispatch: the picks sorted by expert on the device (moe_dispatch.cu, a stable sort:
 *             each expert's rows in token order, as moe.c's counting sort), x's rows
 *             gathered into xg
 *   experts:  one GEMM per expert and matrix over its contiguous rows; the E + 1 row
 *             offsets come back to the host once per forward (with the load-balance
 *             term, in the same copy), since a cuBLAS call takes its sizes from the
 *             host; the backward reuses them
 *   combine:  each token gathers its picks' outputs in slot order (no scatter-add)
 * The backward's sums over a token's picks (dx, the LoRA base's dh) gather the same
 * way, so nothing is summed with atomics and every run gives the same bits. */
#include "context.h"
#include "kernels_llama.h"

#include <string.h>

fm_err fm_cu_moe_alloc(fm_cu *cu, fm_cu_moe *L, int maxN, const fm_moe_dims *dm) {
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
  size_t nf = 3 * N * E + 2 * N * k + E + 4 * NK * D + 2 * NK * HF + NK * F;
  if (L->swiglu) nf += NK * F;
  if (type == FM_EXPERT_LORA) nf += 2 * N * HF + (L->swiglu ? 6 : 4) * NK * R;
  const size_t ni = N * k + 7 * NK;
  L->sort_bytes = fm_cuk_moe_sort_bytes((int)NK);
  const size_t rb = sizeof(double) + (size_t)(E + 1) * sizeof(int32_t);
  fm_err e = FM_OK;
  if ((e = fm_cu_alloc(cu, &L->farena, nf * sizeof(float), "MoE layer activations")) ||
      (e = fm_cu_alloc(cu, &L->iarena, ni * sizeof(int32_t), "MoE dispatch indices")) ||
      (e = fm_cu_alloc(cu, &L->sort_tmp, L->sort_bytes, "MoE dispatch sort")) ||
      (e = fm_cu_alloc(cu, &L->readback, rb, "MoE row offsets")) ||
      (e = fm_cu_alloc(cu, &L->lbpart, (size_t)E * sizeof(double), "MoE load balance"))) {
    fm_cu_moe_free(L);
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  L->nbytes = nf * sizeof(float) + ni * sizeof(int32_t) + L->sort_bytes + rb + E * sizeof(double);
  float *q = L->farena;
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
  int32_t *iq = L->iarena;
  L->picks = iq, iq += N * k;
  L->tok = iq, iq += NK;
  L->slot = iq, iq += NK;
  L->inv = iq, iq += NK;
  L->key = iq, iq += NK;
  L->val = iq, iq += NK;
  L->skey = iq, iq += NK;
  L->sval = iq;
  L->start = (int32_t *)((char *)L->readback + sizeof(double));
  return FM_OK;
}

void fm_cu_moe_free(fm_cu_moe *L) {
  fm_cu_free(L->farena);
  fm_cu_free(L->iarena);
  fm_cu_free(L->sort_tmp);
  fm_cu_free(L->readback);
  fm_cu_free(L->lbpart);
  memset(L, 0, sizeof *L);
}

fm_err fm_cu_moe_set_mask(fm_cu_moe *L, const uint8_t *allowed) {
  int n = 0;
  for (int e = 0; e < L->E; e++) n += !allowed || allowed[e];
  if (n == 0) FM_ERROR(FM_ERR_ARG, "route mask allows none of the %d experts", L->E);
  for (int e = 0; e < L->E; e++) L->allowed[e] = !allowed || allowed[e] ? 1 : 0;
  L->nallowed = n;
  return FM_OK;
}

/* moe_swiglu_lora.c's forward: LoRA experts (PEFT layout) on the shared SwiGLU FFN */
static fm_err swiglu_lora_forward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, const float *x) {
  const int D = L->D, F = L->F, R = L->r, N = L->N, npos = L->npos, F2 = 2 * F;
  const float sc = L->scale;
  FM_CHECK(fm_cu_gemm(cu, 0, 1, N, F, D, 1.0f, x, D, p->fc_w.w, D, 0.0f, L->hb, F2));
  FM_CHECK(fm_cu_gemm(cu, 0, 1, N, F, D, 1.0f, x, D, p->fup_w.w, D, 0.0f, L->hb + F, F2));
  FM_CUK(fm_cuk_gather_rows(L->h, L->hb, L->tok, npos, F2, cu->stream), "MoE gather");
  for (int e = 0; e < L->E; e++) {
    const int n = L->hstart[e + 1] - L->hstart[e];
    if (!n) continue;
    const size_t s = (size_t)L->hstart[e];
    FM_CHECK(fm_cu_lora_forward(cu, FM_LORA_LINEAR, n, D, F, R, sc, L->xg + s * D, D, p->a1[e].w,
                                p->b1[e].w, L->u + s * R, L->h + s * F2, F2));
    FM_CHECK(fm_cu_lora_forward(cu, FM_LORA_LINEAR, n, D, F, R, sc, L->xg + s * D, D, p->a3[e].w,
                                p->b3[e].w, L->u3 + s * R, L->h + s * F2 + F, F2));
  }
  FM_CHECK(fm_cu_swiglu_forward(cu, L->g, L->h, npos, F));
  FM_CHECK(fm_cu_gemm(cu, 0, 1, npos, D, F, 1.0f, L->g, F, p->pj_w.w, F, 0.0f, L->y, D));
  for (int e = 0; e < L->E; e++) {
    const int n = L->hstart[e + 1] - L->hstart[e];
    if (!n) continue;
    const size_t s = (size_t)L->hstart[e];
    FM_CHECK(fm_cu_lora_forward(cu, FM_LORA_LINEAR, n, F, D, R, sc, L->g + s * F, F, p->a2[e].w,
                                p->b2[e].w, L->v + s * R, L->y + s * D, D));
  }
  return FM_OK;
}

static fm_err experts_forward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, const float *x) {
  const int D = L->D, F = L->F, R = L->r, N = L->N, npos = L->npos;
  if (L->swiglu && L->type == FM_EXPERT_LORA) return swiglu_lora_forward(cu, L, p, x);
  if (L->swiglu) {
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_swiglu_ffn_forward(cu, L->y + s * D, L->h + s * 2 * F, L->g + s * F, L->xg + s * D,
                                        p->efc_w[e].w, p->eup_w[e].w, p->epj_w[e].w, n, D, F, 0));
    }
  } else if (L->type == FM_EXPERT_FULL) {
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_gemm(cu, 0, 0, n, F, D, 1.0f, L->xg + s * D, D, p->efc_w[e].w, F, 0.0f,
                          L->h + s * F, F));
      FM_CHECK(fm_cu_bias_gelu_forward(cu, L->g + s * F, L->h + s * F, p->efc_b[e].w, n, F));
      FM_CHECK(fm_cu_linear_forward(cu, L->y + s * D, L->g + s * F, p->epj_w[e].w, p->epj_b[e].w, n,
                                    F, D, 0));
    }
  } else {
    FM_CHECK(fm_cu_linear_forward(cu, L->hb, x, p->fc_w.w, p->fc_b.w, N, D, F, 0));
    FM_CUK(fm_cuk_gather_rows(L->h, L->hb, L->tok, npos, F, cu->stream), "MoE gather");
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_lora_forward(cu, FM_LORA_CONV1D, n, D, F, R, L->scale, L->xg + s * D, D,
                                  p->a1[e].w, p->b1[e].w, L->u + s * R, L->h + s * F, F));
    }
    FM_CHECK(fm_cu_gelu_forward(cu, L->g, L->h, (size_t)npos * F));
    FM_CHECK(fm_cu_linear_forward(cu, L->y, L->g, p->pj_w.w, p->pj_b.w, npos, F, D, 0));
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_lora_forward(cu, FM_LORA_CONV1D, n, F, D, R, L->scale, L->g + s * F, F,
                                  p->a2[e].w, p->b2[e].w, L->v + s * R, L->y + s * D, D));
    }
  }
  return FM_OK;
}

fm_err fm_cu_moe_forward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, double *lb, float *out,
                         const float *x, int N, float lb_coef) {
  const int D = L->D, E = L->E, k = L->k;
  if (N < 0 || N > L->maxN)
    FM_ERROR(FM_ERR_INTERNAL, "MoE layer made for %d rows was given %d", L->maxN, N);
  L->N = N;
  /* route */
  FM_CHECK(fm_cu_gemm(cu, 0, 1, N, E, D, 1.0f, x, D, p->router.w, D, 0.0f, L->logits, E));
  FM_CHECK(fm_cu_router_forward(cu, &L->keff, L->probs, L->picks, L->wts, L->logits,
                                L->nallowed == E ? NULL : L->allowed, N, E, k, L->renorm));
  FM_CUK(fm_cuk_loadbalance_forward((double *)L->readback, L->f, L->lbpart, L->probs, L->picks, N,
                                    E, k, lb_coef, cu->stream),
         "load balance");
  /* dispatch */
  FM_CUK(fm_cuk_moe_dispatch(L->start, L->tok, L->slot, L->inv, L->picks, N, E, k, L->keff, L->key,
                             L->val, L->skey, L->sval, L->sort_tmp, L->sort_bytes, cu->stream),
         "MoE dispatch");
  L->npos = N * L->keff;
  FM_CUK(fm_cuk_gather_rows(L->xg, x, L->tok, L->npos, D, cu->stream), "MoE gather");
  /* the one read-back of the pass: row offsets and the load-balance term */
  char rb[sizeof(double) + (FM_MAX_EXPERTS + 1) * sizeof(int32_t)];
  FM_CHECK(fm_cu_download(cu, rb, L->readback, sizeof(double) + (size_t)(E + 1) * sizeof(int32_t)));
  memcpy(&L->lb, rb, sizeof(double));
  memcpy(L->hstart, rb + sizeof(double), (size_t)(E + 1) * sizeof(int32_t));
  *lb = L->lb;
  /* experts, combine */
  FM_CHECK(experts_forward(cu, L, p, x));
  FM_CUK(fm_cuk_moe_combine(out, L->y, L->wts, L->inv, N, D, k, L->keff, cu->stream), "MoE combine");
  return FM_OK;
}

/* moe_swiglu_lora.c's backward */
static fm_err swiglu_lora_backward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, float *dx,
                                   const float *x) {
  const int D = L->D, F = L->F, R = L->r, N = L->N, npos = L->npos, F2 = 2 * F;
  const float sc = L->scale;
  if (p->pj_w.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, D, F, npos, 1.0f, L->dy, D, L->g, F, 1.0f, p->pj_w.g, F));
  FM_CHECK(fm_cu_gemm(cu, 0, 0, npos, F, D, 1.0f, L->dy, D, p->pj_w.w, F, 0.0f, L->da, F));
  for (int e = 0; e < L->E; e++) {
    const int n = L->hstart[e + 1] - L->hstart[e];
    if (!n) continue;
    const size_t s = (size_t)L->hstart[e];
    FM_CHECK(fm_cu_lora_backward(cu, FM_LORA_LINEAR, n, F, D, R, sc, L->g + s * F, F, L->v + s * R,
                                 L->dy + s * D, D, p->a2[e], p->b2[e], L->dv + s * R, L->da + s * F,
                                 1.0f));
  }
  FM_CHECK(fm_cu_swiglu_backward(cu, L->dg, L->h, L->da, npos, F));
  for (int e = 0; e < L->E; e++) {
    const int n = L->hstart[e + 1] - L->hstart[e];
    if (!n) continue;
    const size_t s = (size_t)L->hstart[e];
    float *dxg = dx ? L->dxg + s * D : NULL;
    FM_CHECK(fm_cu_lora_backward(cu, FM_LORA_LINEAR, n, D, F, R, sc, L->xg + s * D, D, L->u + s * R,
                                 L->dg + s * F2, F2, p->a1[e], p->b1[e], L->du + s * R, dxg, 0.0f));
    FM_CHECK(fm_cu_lora_backward(cu, FM_LORA_LINEAR, n, D, F, R, sc, L->xg + s * D, D, L->u3 + s * R,
                                 L->dg + s * F2 + F, F2, p->a3[e], p->b3[e], L->du3 + s * R, dxg,
                                 1.0f));
  }
  FM_CUK(fm_cuk_moe_gather_sum(L->dhb, L->dg, L->inv, N, F2, L->keff, 0, cu->stream), "MoE sum");
  if (p->fc_w.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, F, D, N, 1.0f, L->dhb, F2, x, D, 1.0f, p->fc_w.g, D));
  if (p->fup_w.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, F, D, N, 1.0f, L->dhb + F, F2, x, D, 1.0f, p->fup_w.g, D));
  if (dx) {
    FM_CHECK(fm_cu_gemm(cu, 0, 0, N, D, F, 1.0f, L->dhb, F2, p->fc_w.w, D, 1.0f, dx, D));
    FM_CHECK(fm_cu_gemm(cu, 0, 0, N, D, F, 1.0f, L->dhb + F, F2, p->fup_w.w, D, 1.0f, dx, D));
  }
  return FM_OK;
}

static fm_err experts_backward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, float *dx,
                               const float *x) {
  const int D = L->D, F = L->F, R = L->r, N = L->N, npos = L->npos;
  const float sc = L->scale;
  if (L->swiglu && L->type == FM_EXPERT_LORA) return swiglu_lora_backward(cu, L, p, dx, x);
  if (L->swiglu) {
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_swiglu_ffn_backward(cu, dx ? L->dxg + s * D : NULL, p->efc_w[e].g, p->eup_w[e].g,
                                         p->epj_w[e].g, L->da + s * F, L->dg + s * 2 * F, L->dy + s * D,
                                         L->xg + s * D, L->h + s * 2 * F, L->g + s * F, p->efc_w[e].w,
                                         p->eup_w[e].w, p->epj_w[e].w, n, D, F, 0));
    }
  } else if (L->type == FM_EXPERT_FULL) {
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      const int need_dh = dx || p->efc_w[e].g || p->efc_b[e].g;
      FM_CHECK(fm_cu_linear_backward(cu, need_dh ? L->dg + s * F : NULL, p->epj_w[e].g, p->epj_b[e].g,
                                     L->dy + s * D, L->g + s * F, p->epj_w[e].w, n, F, D, 0));
      if (!need_dh) continue;
      FM_CHECK(fm_cu_gelu_backward_bias(cu, L->dg + s * F, L->h + s * F, p->efc_b[e].g, n, F));
      FM_CHECK(fm_cu_linear_backward(cu, dx ? L->dxg + s * D : NULL, p->efc_w[e].g, NULL,
                                     L->dg + s * F, L->xg + s * D, p->efc_w[e].w, n, D, F, 0));
    }
  } else {
    /* c_proj: the base over all rows, then each expert's LoRA update */
    FM_CHECK(fm_cu_linear_backward(cu, L->dg, p->pj_w.g, p->pj_b.g, L->dy, L->g, p->pj_w.w, npos, F,
                                   D, 0));
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_lora_backward(cu, FM_LORA_CONV1D, n, F, D, R, sc, L->g + s * F, F, L->v + s * R,
                                   L->dy + s * D, D, p->a2[e], p->b2[e], L->dv + s * R, L->dg + s * F,
                                   1.0f));
    }
    FM_CHECK(fm_cu_gelu_backward(cu, L->dg, L->h, L->dg, (size_t)npos * F));
    /* c_fc: each expert's LoRA update, then the base, summed over a token's picks */
    for (int e = 0; e < L->E; e++) {
      const int n = L->hstart[e + 1] - L->hstart[e];
      if (!n) continue;
      const size_t s = (size_t)L->hstart[e];
      FM_CHECK(fm_cu_lora_backward(cu, FM_LORA_CONV1D, n, D, F, R, sc, L->xg + s * D, D, L->u + s * R,
                                   L->dg + s * F, F, p->a1[e], p->b1[e], L->du + s * R,
                                   dx ? L->dxg + s * D : NULL, 0.0f));
    }
    FM_CUK(fm_cuk_moe_gather_sum(L->dhb, L->dg, L->inv, N, F, L->keff, 0, cu->stream), "MoE sum");
    FM_CHECK(fm_cu_linear_backward(cu, dx, p->fc_w.g, p->fc_b.g, L->dhb, x, p->fc_w.w, N, D, F, 1));
  }
  return FM_OK;
}

fm_err fm_cu_moe_backward(fm_cu *cu, fm_cu_moe *L, const fm_moe_params *p, float *dx,
                          const float *dout, const float *x, float lb_coef, float dlb) {
  const int D = L->D, E = L->E, k = L->k, N = L->N;
  /* combine: dw = <dout[tok], y[pos]>, dy = w dout[tok] */
  FM_CHECK(FM_CU(cudaMemsetAsync(L->dwts, 0, (size_t)N * k * sizeof(float), cu->stream), "MoE backward"));
  FM_CUK(fm_cuk_moe_combine_backward(L->dy, L->dwts, dout, L->y, L->wts, L->tok, L->slot, L->npos, D,
                                     k, cu->stream),
         "MoE combine backward");
  /* experts, down to dxg (when dx is wanted), then each token's picks summed */
  FM_CHECK(experts_backward(cu, L, p, dx, x));
  if (dx) FM_CUK(fm_cuk_moe_gather_sum(dx, L->dxg, L->inv, N, D, L->keff, 1, cu->stream), "MoE sum");
  /* router: renormalised weights and load balancing, through the softmax */
  FM_CHECK(FM_CU(cudaMemsetAsync(L->dprobs, 0, (size_t)N * E * sizeof(float), cu->stream), "MoE backward"));
  FM_CHECK(fm_cu_loadbalance_backward(cu, L->dprobs, L->f, N, E, lb_coef, dlb));
  FM_CHECK(fm_cu_router_backward(cu, L->dlogits, L->dwts, L->dprobs, L->probs, L->picks, L->wts, N, E,
                                 k, L->renorm));
  if (p->router.g) FM_CHECK(fm_cu_gemm(cu, 1, 0, E, D, N, 1.0f, L->dlogits, E, x, D, 1.0f, p->router.g, D));
  if (dx) FM_CHECK(fm_cu_gemm(cu, 0, 0, N, D, E, 1.0f, L->dlogits, E, p->router.w, D, 1.0f, dx, D));
  return FM_OK;
}

fm_err fm_cu_moe_alloc_like(fm_cu *cu, fm_cu_moe *L, const fm_moe *host) {
  const fm_moe_dims dm = {.D = host->D, .F = host->F, .E = host->E, .k = host->k, .type = host->type,
                          .r = host->r, .swiglu = host->swiglu, .renorm = host->renorm,
                          .alpha = host->scale * (float)host->r};
  FM_CHECK(fm_cu_moe_alloc(cu, L, host->maxN, &dm));
  L->scale = host->scale; /* exactly the host's, not alpha / r recomputed */
  return fm_cu_moe_set_mask(L, host->allowed);
}

fm_err fm_cu_moe_routing_to_host(fm_cu *cu, const fm_cu_moe *L, fm_moe *host) {
  if (host->maxN < L->N || host->E != L->E || host->k != L->k)
    FM_ERROR(FM_ERR_INTERNAL, "host MoE layer (%d rows, %d experts, top %d) does not match the device's "
             "(%d rows, %d experts, top %d)", host->maxN, host->E, host->k, L->N, L->E, L->k);
  const size_t N = (size_t)L->N, E = (size_t)L->E, k = (size_t)L->k;
  FM_CHECK(fm_cu_download(cu, host->probs, L->probs, N * E * sizeof(float)));
  FM_CHECK(fm_cu_download(cu, host->picks, L->picks, N * k * sizeof(int32_t)));
  FM_CHECK(fm_cu_download(cu, host->wts, L->wts, N * k * sizeof(float)));
  FM_CHECK(fm_cu_download(cu, host->f, L->f, E * sizeof(float)));
  host->N = L->N;
  host->keff = L->keff;
  host->npos = L->npos;
  for (int e = 0; e <= L->E; e++) host->start[e] = L->hstart[e];
  for (int e = 0; e < L->E; e++) host->count[e] = L->hstart[e + 1] - L->hstart[e];
  return FM_OK;
}
