/* test_cuda_moe.c - the MoE layer on the GPU (fm_cu_moe) against the CPU's fm_moe
 * (needs a GPU: make check-cuda), on the configurations the engine runs: Mixtral-like
 * (SwiGLU experts, top-2, renormalised weights), OLMoE-like (64 experts, top-8, plain
 * probabilities), Qwen2-MoE-like (with the gated shared expert), GPT-2's GELU experts,
 * LoRA experts on a GELU and on a SwiGLU base, and route masks (one leaving fewer
 * experts than k). Output, load-balance term, input gradient and every parameter
 * gradient to 1e-5 relative in fp32; a second forward and a second backward give
 * bitwise the same results. */
#include "nn.h"

#include "cuda_check.h"

#define TOL 1e-5

typedef struct {
  float *h, *hg, *d, *dg; /* host weight and gradient, device weight and gradient */
  size_t n;
  const char *name;
  int e;
} tensor;

typedef struct {
  fm_moe_params hp, dp; /* host and device pointers */
  tensor t[8 * FM_MAX_EXPERTS + 16];
  int nt;
  unsigned seed;
} params;

static void add(params *P, fm_param *hp, fm_param *dp, const char *name, int e, size_t n, float scale,
                int grad) {
  tensor *t = &P->t[P->nt++];
  t->n = n, t->name = name, t->e = e;
  t->h = host_rand(n, P->seed++, scale);
  t->d = dev_floats(t->h, n);
  if (grad) {
    t->hg = calloc(n, sizeof(float));
    t->dg = dev_floats(NULL, n);
  }
  *hp = (fm_param){t->h, t->hg};
  *dp = (fm_param){t->d, t->dg};
}

#define ADD(field, e, n, scale, grad) add(P, &P->hp.field, &P->dp.field, #field, (e), (n), (scale), (grad))

static void make_params(params *P, const fm_moe_dims *dm, int F, int base_grad, int router_grad) {
  const size_t D = dm->D, E = dm->E, r = dm->r;
  ADD(router, -1, E * D, 0.5f, router_grad);
  for (int e = 0; e < (int)E; e++) {
    if (dm->type == FM_EXPERT_FULL && dm->swiglu) {
      ADD(efc_w[e], e, F * D, 0.3f, 1);
      ADD(eup_w[e], e, F * D, 0.3f, 1);
      ADD(epj_w[e], e, D * F, 0.3f, 1);
    } else if (dm->type == FM_EXPERT_FULL) {
      ADD(efc_w[e], e, D * F, 0.3f, 1);
      ADD(efc_b[e], e, F, 0.3f, 1);
      ADD(epj_w[e], e, F * D, 0.3f, 1);
      ADD(epj_b[e], e, D, 0.3f, 1);
    } else if (dm->swiglu) { /* PEFT layout: A [r,in], B [out,r] */
      ADD(a1[e], e, r * D, 0.3f, 1);
      ADD(b1[e], e, F * r, 0.3f, 1);
      ADD(a3[e], e, r * D, 0.3f, 1);
      ADD(b3[e], e, F * r, 0.3f, 1);
      ADD(a2[e], e, r * F, 0.3f, 1);
      ADD(b2[e], e, D * r, 0.3f, 1);
    } else { /* GPT-2 layout: A [in,r], B [r,out] */
      ADD(a1[e], e, D * r, 0.3f, 1);
      ADD(b1[e], e, r * F, 0.3f, 1);
      ADD(a2[e], e, F * r, 0.3f, 1);
      ADD(b2[e], e, r * D, 0.3f, 1);
    }
  }
  if (dm->type == FM_EXPERT_LORA && dm->swiglu) {
    ADD(fc_w, -1, F * D, 0.3f, base_grad);
    ADD(fup_w, -1, F * D, 0.3f, base_grad);
    ADD(pj_w, -1, D * F, 0.3f, base_grad);
  } else if (dm->type == FM_EXPERT_LORA) {
    ADD(fc_w, -1, D * F, 0.3f, base_grad);
    ADD(fc_b, -1, F, 0.3f, base_grad);
    ADD(pj_w, -1, F * D, 0.3f, base_grad);
    ADD(pj_b, -1, D, 0.3f, base_grad);
  }
}

/* Qwen2-MoE's shared expert beside the routed ones: weights and buffers, host and device */
typedef struct {
  int F;
  float *w[4], *g[4], *dw[4], *dg[4]; /* gate, up, down, gate vector: host w/g, device w/g */
  float *buf[8], *dbuf[8];            /* y sg gu a dy dz da dgu */
} shared;

static void shared_make(shared *S, int N, int D, int F, unsigned seed) {
  const size_t n[4] = {(size_t)F * D, (size_t)F * D, (size_t)D * F, (size_t)D};
  const size_t b[8] = {(size_t)N * D, N, (size_t)N * 2 * F, (size_t)N * F, (size_t)N * D, N,
                       (size_t)N * F, (size_t)N * 2 * F};
  S->F = F;
  for (int i = 0; i < 4; i++) {
    S->w[i] = host_rand(n[i], seed + i, 0.3f), S->g[i] = calloc(n[i], 4);
    S->dw[i] = dev_floats(S->w[i], n[i]), S->dg[i] = dev_floats(NULL, n[i]);
  }
  for (int i = 0; i < 8; i++) S->buf[i] = calloc(b[i], 4), S->dbuf[i] = dev_floats(NULL, b[i]);
}

/* The smallest relative gap, over the rows, between a row's j-th and (j+1)-th largest
 * routing probabilities for j < keff: the GPU's logits differ from the CPU's in the
 * last bits, so a near tie there could pick other experts; the test draws inputs
 * without one. */
static double route_gap(const float *x, const float *R, const uint8_t *mask, int N, int D, int E, int k) {
  float *z = calloc((size_t)N * E, 4), *p = calloc((size_t)N * E, 4), *w = calloc((size_t)N * k, 4);
  int32_t *pk = calloc((size_t)N * k, 4);
  fm_gemm(0, 1, N, E, D, 1.0f, x, D, R, D, 0.0f, z, E);
  const int keff = fm_router_forward(p, pk, w, z, mask, N, E, k, 0);
  double gap = 1.0;
  for (int n = 0; n < N; n++)
    for (int j = 0; j < keff; j++) {
      const float pj = p[(size_t)n * E + pk[(size_t)n * k + j]];
      float next = 0.0f; /* the largest probability below pick j that is not a pick before it */
      for (int e = 0; e < E; e++) {
        int before = 0;
        for (int i = 0; i <= j; i++) before |= pk[(size_t)n * k + i] == e;
        const float pe = p[(size_t)n * E + e];
        if (!before && pe > next) next = pe;
      }
      const double g = (pj - next) / pj;
      if (g < gap) gap = g;
    }
  free(z), free(p), free(w), free(pk);
  return gap;
}

/* flags: NO_DX (the input gradient not wanted), FROZEN_ROUTER (no router gradient) */
enum { NO_DX = 1, FROZEN_ROUTER = 2 };

static void moe_case(const char *name, fm_moe_dims dm, int N, const uint8_t *mask, int sharedF,
                     int base_grad, unsigned seed, int flags) {
  CU_ASSERT_FATAL(cu != NULL);
  const int D = dm.D, F = dm.F > 0 ? dm.F : 4 * D;
  const size_t nd = (size_t)N * D;
  const float coef = 0.01f, dlb = 1.0f;
  printf("\n    %s: N %d D %d F %d E %d k %d%s", name, N, D, F, dm.E, dm.k, mask ? " (masked)" : "");
  params *P = calloc(1, sizeof *P);
  P->seed = seed;
  make_params(P, &dm, F, base_grad, !(flags & FROZEN_ROUTER));
  shared S;
  if (sharedF) shared_make(&S, N, D, sharedF, seed + 1000);
  float *x = host_rand(nd, seed + 1, 1);
  for (unsigned redraw = 1; route_gap(x, P->hp.router.w, mask, N, D, dm.E, dm.k) < 1e-4; redraw++) {
    free(x);
    x = host_rand(nd, seed + 1 + 7919 * redraw, 1);
  }
  float *dout = host_rand(nd, seed + 2, 1), *out = host_rand(nd, seed + 3, 1),
        *dx = host_rand(nd, seed + 4, 1);
  float *out0 = host_copy(out, nd), *dx0 = host_copy(dx, nd);
  /* the CPU */
  fm_moe L;
  CU_ASSERT_FATAL(fm_moe_alloc(&L, N, &dm) == FM_OK);
  if (mask) CU_ASSERT_FATAL(fm_moe_set_mask(&L, mask) == FM_OK);
  const double lb = fm_moe_forward(&L, &P->hp, out, x, N, coef);
  if (sharedF)
    fm_shared_expert_forward(out, S.buf[0], S.buf[1], S.buf[2], S.buf[3], x, S.w[0], S.w[1], S.w[2], S.w[3],
                             N, D, sharedF);
  fm_moe_backward(&L, &P->hp, flags & NO_DX ? NULL : dx, dout, x, coef, dlb);
  if (sharedF)
    fm_shared_expert_backward(dx, S.g[0], S.g[1], S.g[2], S.g[3], S.buf[4], S.buf[5], S.buf[6], S.buf[7],
                              dout, x, S.buf[0], S.buf[1], S.buf[2], S.buf[3], S.w[0], S.w[1], S.w[2],
                              S.w[3], N, D, sharedF);
  /* the GPU: forward twice (bitwise the same), then the backward twice */
  fm_cu_moe G;
  if (mask) { /* made from the host layer, whose mask it takes */
    CU_ASSERT_FATAL(fm_cu_moe_alloc_like(cu, &G, &L) == FM_OK);
  } else {
    CU_ASSERT_FATAL(fm_cu_moe_alloc(cu, &G, N, &dm) == FM_OK);
  }
  float *gx = dev_floats(x, nd), *gd = dev_floats(dout, nd), *gout[2], *gdx[2];
  double glb[2] = {0, 0};
  for (int run = 0; run < 2; run++) {
    gout[run] = dev_floats(out0, nd);
    fm_err e = fm_cu_moe_forward(cu, &G, &P->dp, &glb[run], gout[run], gx, N, coef);
    if (e) printf("\n    forward: %s\n", fm_error_message());
    CU_ASSERT_FATAL(e == FM_OK);
    if (sharedF)
      CU_ASSERT(fm_cu_shared_expert_forward(cu, gout[run], S.dbuf[0], S.dbuf[1], S.dbuf[2], S.dbuf[3], gx,
                                            S.dw[0], S.dw[1], S.dw[2], S.dw[3], N, D, sharedF) == FM_OK);
  }
  /* the routing, read back into a host layer, is the CPU's */
  fm_moe H;
  CU_ASSERT_FATAL(fm_moe_alloc(&H, N, &dm) == FM_OK);
  CU_ASSERT_FATAL(fm_cu_moe_routing_to_host(cu, &G, &H) == FM_OK);
  CU_ASSERT_EQUAL(H.keff, L.keff);
  CU_ASSERT_EQUAL(H.npos, L.npos);
  for (int e = 0; e <= dm.E; e++)
    if (H.start[e] != L.start[e]) {
      printf("\n    expert %d starts at row %d on the GPU, %d on the CPU\n", e, H.start[e], L.start[e]);
      CU_FAIL("dispatch offsets differ");
      break;
    }
  for (size_t i = 0; i < (size_t)N * dm.k; i++)
    if (H.picks[i] != L.picks[i]) {
      printf("\n    pick %zu (row %zu) is expert %d on the GPU, %d on the CPU\n", i, i / dm.k, H.picks[i],
             L.picks[i]);
      CU_FAIL("routing picks differ");
      break;
    }
  CU_ASSERT(close_to("probs", G.probs, L.probs, (size_t)N * dm.E, TOL));
  CU_ASSERT(close_to("weights", G.wts, L.wts, (size_t)N * dm.k, TOL));
  CU_ASSERT(close_to("top-1 shares", G.f, L.f, dm.E, 1e-7));
  fm_moe_free(&H);
  if (!(fabs(glb[0] - lb) <= 1e-6 * fabs(lb))) printf("\n    load balance %.9g (GPU) vs %.9g (CPU)\n", glb[0], lb);
  FM_ASSERT_CLOSE(glb[0], lb, 1e-6, 0);
  CU_ASSERT(glb[0] == glb[1]);
  CLOSE(gout[0], out, nd, TOL);
  SAME_BITS(gout[0], gout[1], nd);
  float **first = calloc(P->nt + 4, sizeof *first);
  for (int run = 0; run < 2; run++) {
    for (int i = 0; i < P->nt; i++)
      if (P->t[i].dg) dev_zero(P->t[i].dg, P->t[i].n);
    if (sharedF)
      for (int i = 0; i < 4; i++) dev_zero(S.dg[i], i < 3 ? (size_t)sharedF * D : (size_t)D);
    gdx[run] = dev_floats(dx0, nd);
    fm_err e = fm_cu_moe_backward(cu, &G, &P->dp, flags & NO_DX ? NULL : gdx[run], gd, gx, coef, dlb);
    if (e) printf("\n    backward: %s\n", fm_error_message());
    CU_ASSERT_FATAL(e == FM_OK);
    if (sharedF)
      CU_ASSERT(fm_cu_shared_expert_backward(cu, gdx[run], S.dg[0], S.dg[1], S.dg[2], S.dg[3], S.dbuf[4],
                                             S.dbuf[5], S.dbuf[6], S.dbuf[7], gd, gx, S.dbuf[0], S.dbuf[1],
                                             S.dbuf[2], S.dbuf[3], S.dw[0], S.dw[1], S.dw[2], S.dw[3], N, D,
                                             sharedF) == FM_OK);
    for (int i = 0; i < P->nt; i++) {
      tensor *t = &P->t[i];
      if (!t->dg) continue;
      if (run == 0) {
        if (!close_to(t->name, t->dg, t->hg, t->n, TOL)) {
          printf("    (expert %d, %d rows)\n", t->e, t->e >= 0 ? L.count[t->e] : N);
          CU_FAIL("parameter gradient");
        }
        first[i] = download(t->dg, t->n);
      } else {
        CU_ASSERT(same_bits_host(t->name, t->dg, first[i], t->n));
      }
    }
    if (sharedF)
      for (int i = 0; i < 4; i++) {
        const size_t n = i < 3 ? (size_t)sharedF * D : (size_t)D;
        if (run == 0) {
          CU_ASSERT(close_to("shared expert gradient", S.dg[i], S.g[i], n, TOL));
          first[P->nt + i] = download(S.dg[i], n);
        } else {
          CU_ASSERT(same_bits_host("shared expert gradient", S.dg[i], first[P->nt + i], n));
        }
      }
  }
  CLOSE(gdx[0], dx, nd, TOL);
  SAME_BITS(gdx[0], gdx[1], nd);
  fm_cu_moe_free(&G);
  fm_moe_free(&L);
}

static fm_moe_dims dims(int D, int F, int E, int k, int type, int r, int swiglu, int renorm, float alpha) {
  fm_moe_dims d = {D, F, E, k, type, r, swiglu, renorm, alpha};
  return d;
}

static void mixtral(void) { moe_case("Mixtral-like", dims(48, 80, 8, 2, FM_EXPERT_FULL, 0, 1, 1, 0), 61, NULL, 0, 1, 1, 0); }
static void olmoe(void) { moe_case("OLMoE-like", dims(40, 24, 64, 8, FM_EXPERT_FULL, 0, 1, 0, 0), 45, NULL, 0, 1, 2000, 0); }
static void qwen2moe(void) {
  moe_case("Qwen2-MoE-like", dims(48, 32, 16, 4, FM_EXPERT_FULL, 0, 1, 0, 0), 57, NULL, 88, 1, 4000, 0);
}
static void gelu_experts(void) {
  moe_case("GPT-2 GELU experts", dims(40, 0, 4, 2, FM_EXPERT_FULL, 0, 0, 1, 0), 37, NULL, 0, 1, 6000, 0);
}
static void gelu_lora(void) {
  moe_case("LoRA experts on GELU", dims(40, 0, 4, 2, FM_EXPERT_LORA, 4, 0, 1, 8.0f), 37, NULL, 0, 1, 7000, 0);
  moe_case("LoRA experts on GELU, frozen base and router, no input gradient",
           dims(40, 0, 4, 2, FM_EXPERT_LORA, 4, 0, 1, 8.0f), 37, NULL, 0, 0, 7500, NO_DX | FROZEN_ROUTER);
}
static void swiglu_lora(void) {
  static const uint8_t mask[6] = {1, 0, 1, 1, 0, 1};
  moe_case("LoRA experts on SwiGLU", dims(48, 64, 6, 2, FM_EXPERT_LORA, 3, 1, 0, 6.0f), 43, mask, 0, 0, 8000, 0);
  moe_case("LoRA experts on SwiGLU, base trained", dims(36, 50, 5, 2, FM_EXPERT_LORA, 2, 1, 1, 4.0f), 31,
           NULL, 0, 1, 8500, 0);
  moe_case("LoRA experts on SwiGLU, frozen router, no input gradient",
           dims(40, 56, 6, 2, FM_EXPERT_LORA, 4, 1, 0, 8.0f), 35, NULL, 0, 0, 8700, NO_DX | FROZEN_ROUTER);
}
static void mask_below_k(void) {
  static const uint8_t mask[4] = {0, 1, 0, 1};
  moe_case("masked to fewer than k", dims(32, 40, 4, 3, FM_EXPERT_FULL, 0, 1, 1, 0), 29, mask, 0, 1, 9000, 0);
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"Mixtral-like MoE layer", mixtral},
                                  {"OLMoE-like MoE layer", olmoe},
                                  {"Qwen2-MoE-like layer with shared expert", qwen2moe},
                                  {"GELU experts", gelu_experts},
                                  {"LoRA experts on GELU", gelu_lora},
                                  {"LoRA experts on SwiGLU", swiglu_lora},
                                  {"route mask leaving fewer than k experts", mask_below_k},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("cuda MoE layer against the CPU", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
