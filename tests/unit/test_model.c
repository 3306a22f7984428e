/* test_model.c - the whole model: shape and configuration errors, the tensor table,
 * sharing classes, deterministic initialisation, whole-model gradients by finite
 * differences, freezing, routing, AdamW, the learning-rate schedule, clipping, FLOPs.
 *
 * Whole-model finite differences (double precision, float32 model): the loss is
 * ce + lb of fm_model_forward; for every tensor the analytic gradient is compared
 * along a random unit direction within that tensor and on a few single entries,
 * with a step of 1e-2 (float32 rounding of the loss, ~3e-7, then contributes ~2e-5).
 * Top-k routing is piecewise constant: a perturbation that changes any token's picks
 * in any MoE block would compare across a jump, so such perturbations are detected
 * (the picks of every MoE block are compared with the unperturbed ones) and skipped;
 * the test asserts that only a few were. The seeds give routing margins large enough
 * that this is rare. */
#include "cunit_main.h"

#include "fedmoe/config.h"
#include "fedmoe/model.h"
#include "fedmoe/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-2
#define RTOL 2e-2
#define ATOL 1e-3

static fm_model_shape tiny(uint64_t moe_mask, int type) {
  fm_model_shape s = {.vocab = 32, .context = 8, .d = 16, .heads = 2, .layers = 2,
                      .moe_mask = moe_mask, .experts = 4, .top_k = 2, .expert_type = type,
                      .lora_rank = 4, .lora_alpha = 8.0f, .init_std = 0.3f, .load_balance = 0.05f,
                      .norm_topk = 1};
  return s;
}

static void batch(int B, int T, int V, uint64_t seed, int32_t *tok, int32_t *tgt) {
  fm_rng r;
  fm_rng_init(&r, seed, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < B * T; i++) {
    tok[i] = (int32_t)fm_rng_below(&r, V);
    tgt[i] = (int32_t)fm_rng_below(&r, V);
  }
  tgt[1] = -1; /* one ignored target */
}

static fm_model *make(const fm_model_shape *s, int B, int T, int nclass, fm_classify_fn f,
                      uint64_t seed) {
  fm_model *m = NULL;
  fm_err e = fm_model_create(&m, s, B, T, nclass, f, NULL);
  CU_ASSERT_EQUAL(e, FM_OK);
  if (e) {
    printf("\n  create: %s", fm_error_message());
    return NULL;
  }
  CU_ASSERT_EQUAL(fm_model_init(m, seed), FM_OK);
  return m;
}

static int by_group(const fm_tensor *t, void *ctx) {
  switch (t->group) {
  case FM_GROUP_NORM: return FM_CLASS_FROZEN;
  case FM_GROUP_EXPERT: return 1;
  case FM_GROUP_ROUTER: return 2;
  default: return 0;
  }
}

static int embed_norm_frozen(const fm_tensor *t, void *ctx) {
  return t->group == FM_GROUP_EMBED || t->group == FM_GROUP_NORM ? FM_CLASS_FROZEN : 0;
}

/* ---- shape from the configuration ---- */
static void expect_shape_error(const char *set1, const char *set2, const char *key) {
  fm_config c;
  fm_model_shape s;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_set(&c, set1, "test"), FM_OK);
  if (set2) CU_ASSERT_EQUAL(fm_config_set(&c, set2, "test"), FM_OK);
  CU_ASSERT_EQUAL(fm_model_shape_from_config(&c, &s), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), key));
  fm_config_free(&c);
}

static void test_shape_config(void) {
  fm_config c;
  fm_model_shape s;
  fm_config_init(&c);
  CU_ASSERT_EQUAL_FATAL(fm_model_shape_from_config(&c, &s), FM_OK);
  CU_ASSERT_EQUAL(s.moe_mask, (uint64_t)3); /* default: "all" of 2 blocks */
  CU_ASSERT_EQUAL(s.d, c.model.d_model);
  fm_config_set(&c, "model.layers=4", "test");
  fm_config_set(&c, "model.moe_layers= 0, 2 ", "test");
  CU_ASSERT_EQUAL(fm_model_shape_from_config(&c, &s), FM_OK);
  CU_ASSERT_EQUAL(s.moe_mask, (uint64_t)5);
  fm_config_set(&c, "model.moe_layers=none", "test");
  CU_ASSERT_EQUAL(fm_model_shape_from_config(&c, &s), FM_OK);
  CU_ASSERT_EQUAL(s.moe_mask, (uint64_t)0);
  fm_config_free(&c);
  expect_shape_error("model.moe_layers=0,x", NULL, "model.moe_layers");
  expect_shape_error("model.moe_layers=1,", NULL, "model.moe_layers");
  expect_shape_error("model.moe_layers=some", NULL, "model.moe_layers");
  expect_shape_error("model.moe_layers=2", NULL, "model.moe_layers"); /* 2 blocks: 0, 1 */
  expect_shape_error("model.moe_layers=1,1", NULL, "model.moe_layers");
  expect_shape_error("model.heads=5", NULL, "model.heads");
  expect_shape_error("model.top_k=5", "model.experts=4", "model.top_k");
}

static void test_create_errors(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  fm_model *m = NULL;
  CU_ASSERT_EQUAL(fm_model_create(&m, &s, 2, 9, 1, NULL, NULL), FM_ERR_CONFIG); /* T > context */
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "train.seq_len"));
  CU_ASSERT_PTR_NULL(m);
  s.heads = 3;
  CU_ASSERT_EQUAL(fm_model_create(&m, &s, 2, 8, 1, NULL, NULL), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "model.heads"));
  s = tiny(3, FM_EXPERT_FULL);
  s.top_k = 5;
  CU_ASSERT_EQUAL(fm_model_create(&m, &s, 2, 8, 1, NULL, NULL), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "model.top_k"));
  s = tiny(4, FM_EXPERT_FULL); /* block 2 of 2 */
  CU_ASSERT_EQUAL(fm_model_create(&m, &s, 2, 8, 1, NULL, NULL), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "model.moe_layers"));
  s = tiny(3, FM_EXPERT_FULL);
  CU_ASSERT_EQUAL(fm_model_create(&m, &s, 2, 8, 0, NULL, NULL), FM_ERR_ARG); /* no class */
  CU_ASSERT_EQUAL(fm_model_create(&m, &s, 2, 8, 2, by_group, NULL), FM_ERR_ARG); /* class 2 */
  CU_ASSERT_PTR_NULL(m);
  /* forward and routing-mask errors */
  m = make(&s, 2, 8, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int32_t tok[24] = {0}, tgt[24] = {0};
  float ce;
  CU_ASSERT_EQUAL(fm_model_backward(m), FM_ERR_INTERNAL); /* no forward yet */
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 3, 8, &ce, NULL), FM_ERR_ARG);
  tok[5] = 32;
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 2, 8, &ce, NULL), FM_ERR_DATA);
  tok[5] = 0;
  tgt[3] = 40;
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 2, 8, &ce, NULL), FM_ERR_DATA);
  uint8_t none[4] = {0, 0, 0, 0};
  CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 0, none), FM_ERR_ARG);
  CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 2, NULL), FM_ERR_ARG);
  fm_model_free(m);
  s = tiny(2, FM_EXPERT_FULL);
  m = make(&s, 2, 8, 1, NULL, 1);
  CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 0, NULL), FM_ERR_ARG); /* block 0 is dense */
  CU_ASSERT_PTR_NULL(fm_model_router_probs(m, 0));
  fm_model_free(m);
}

/* ---- the tensor table ---- */
static void test_tensor_table(void) {
  fm_model_shape s = tiny(2, FM_EXPERT_LORA); /* block 0 dense, block 1 LoRA MoE */
  fm_model *m = make(&s, 1, 4, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  static const char *names[] = {
    "wte", "wpe", "h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.weight",
    "h.0.attn.c_attn.bias", "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias", "h.0.ln_2.weight",
    "h.0.ln_2.bias", "h.0.mlp.c_fc.weight", "h.0.mlp.c_fc.bias", "h.0.mlp.c_proj.weight",
    "h.0.mlp.c_proj.bias", "h.1.ln_1.weight", "h.1.ln_1.bias", "h.1.attn.c_attn.weight",
    "h.1.attn.c_attn.bias", "h.1.attn.c_proj.weight", "h.1.attn.c_proj.bias", "h.1.ln_2.weight",
    "h.1.ln_2.bias", "h.1.mlp.c_fc.weight", "h.1.mlp.c_fc.bias", "h.1.mlp.c_proj.weight",
    "h.1.mlp.c_proj.bias", "h.1.moe.router.weight", "h.1.moe.experts.0.c_fc.lora_A",
    "h.1.moe.experts.0.c_fc.lora_B", "h.1.moe.experts.0.c_proj.lora_A",
    "h.1.moe.experts.0.c_proj.lora_B"};
  const int nn = (int)(sizeof names / sizeof *names);
  CU_ASSERT_EQUAL(fm_model_ntensors(m), nn - 4 + 4 * 4 + 2);
  for (int i = 0; i < nn; i++) CU_ASSERT_STRING_EQUAL(fm_model_tensor(m, i)->name, names[i]);
  CU_ASSERT_STRING_EQUAL(fm_model_tensor(m, fm_model_ntensors(m) - 1)->name, "ln_f.bias");
  const fm_tensor *t = fm_model_find(m, "h.0.attn.c_attn.weight");
  CU_ASSERT(t && t->rows == 16 && t->cols == 48 && t->decay && t->group == FM_GROUP_ATTN && t->layer == 0);
  t = fm_model_find(m, "h.1.moe.experts.3.c_proj.lora_A");
  CU_ASSERT(t && t->rows == 64 && t->cols == 4 && t->expert == 3 && t->group == FM_GROUP_EXPERT);
  t = fm_model_find(m, "h.1.moe.router.weight");
  CU_ASSERT(t && t->rows == 4 && t->cols == 16 && t->group == FM_GROUP_ROUTER && t->expert == -1);
  t = fm_model_find(m, "h.1.mlp.c_fc.bias");
  CU_ASSERT(t && t->rows == 1 && t->cols == 64 && !t->decay && t->group == FM_GROUP_FFN);
  t = fm_model_find(m, "ln_f.weight");
  CU_ASSERT(t && t->layer == -1 && !t->decay && t->group == FM_GROUP_NORM);
  CU_ASSERT(fm_model_find(m, "wte")->decay && fm_model_find(m, "wte")->group == FM_GROUP_EMBED);
  CU_ASSERT_PTR_NULL(fm_model_find(m, "h.0.moe.router.weight"));
  fm_model_free(m);
  /* full experts: no base FFN in the MoE block */
  s = tiny(2, FM_EXPERT_FULL);
  m = make(&s, 1, 4, 1, NULL, 1);
  CU_ASSERT_PTR_NULL(fm_model_find(m, "h.1.mlp.c_fc.weight"));
  CU_ASSERT_PTR_NOT_NULL(fm_model_find(m, "h.1.moe.experts.3.c_proj.bias"));
  fm_model_free(m);
}

/* ---- sharing classes ---- */
static void test_classes(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  fm_model *m = make(&s, 1, 4, 3, by_group, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(fm_model_nclass(m), 3);
  size_t total = 0, seen = 0;
  for (int c = FM_CLASS_FROZEN; c < 3; c++) {
    size_t next = 0;
    float *w = fm_model_class_params(m, c), *g = fm_model_class_grads(m, c);
    for (int i = 0; i < fm_model_ntensors(m); i++) {
      const fm_tensor *t = fm_model_tensor(m, i);
      if (t->cls != c) continue;
      CU_ASSERT_EQUAL(t->offset, next); /* contiguous, in tensor order */
      CU_ASSERT_PTR_EQUAL(t->w, w + t->offset);
      if (c == FM_CLASS_FROZEN) CU_ASSERT_PTR_NULL(t->g) else CU_ASSERT_PTR_EQUAL(t->g, g + t->offset);
      next += t->numel;
      seen += t->numel;
    }
    CU_ASSERT_EQUAL(next, fm_model_class_numel(m, c)); /* complete */
    total += fm_model_class_numel(m, c);
  }
  CU_ASSERT_PTR_NULL(fm_model_class_grads(m, FM_CLASS_FROZEN));
  size_t all = 0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    all += t->numel;
    int want = t->group == FM_GROUP_NORM ? FM_CLASS_FROZEN : t->group == FM_GROUP_EXPERT ? 1
               : t->group == FM_GROUP_ROUTER ? 2 : 0;
    CU_ASSERT_EQUAL(t->cls, want);
  }
  CU_ASSERT_EQUAL(total, all);
  CU_ASSERT_EQUAL(seen, all);
  /* class 2 is both routers, one after the other */
  CU_ASSERT_EQUAL(fm_model_class_numel(m, 2), 2 * 4 * 16);
  /* a backward writes no gradient outside the trainable classes, and frozen weights stay */
  int32_t tok[4], tgt[4];
  batch(1, 4, 32, 5, tok, tgt);
  size_t nf = fm_model_class_numel(m, FM_CLASS_FROZEN);
  float *before = malloc(nf * sizeof(float));
  memcpy(before, fm_model_class_params(m, FM_CLASS_FROZEN), nf * sizeof(float));
  fm_model_zero_grads(m);
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 1, 4, NULL, NULL), FM_OK);
  CU_ASSERT_EQUAL(fm_model_backward(m), FM_OK);
  CU_ASSERT_EQUAL(memcmp(before, fm_model_class_params(m, FM_CLASS_FROZEN), nf * sizeof(float)), 0);
  double g1 = 0;
  for (size_t j = 0; j < fm_model_class_numel(m, 1); j++) g1 += fabs(fm_model_class_grads(m, 1)[j]);
  CU_ASSERT(g1 > 0);
  free(before);
  fm_model_free(m);
}

/* ---- initialisation ---- */
static void test_init(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_LORA);
  fm_model *a = make(&s, 1, 4, 1, NULL, 42), *b = make(&s, 1, 4, 3, by_group, 42);
  fm_model *c = make(&s, 1, 4, 1, NULL, 43);
  fm_model_shape s3 = tiny(0, FM_EXPERT_FULL);
  s3.layers = 3;
  fm_model *d = make(&s3, 2, 8, 1, NULL, 42);
  CU_ASSERT_FATAL(a && b && c && d);
  for (int i = 0; i < fm_model_ntensors(a); i++) {
    const fm_tensor *ta = fm_model_tensor(a, i), *tb = fm_model_find(b, ta->name);
    CU_ASSERT_FATAL(tb != NULL);
    CU_ASSERT_EQUAL(memcmp(ta->w, tb->w, ta->numel * sizeof(float)), 0); /* classes do not matter */
  }
  /* the same name and shape in another model: the same values */
  const char *same[] = {"wte", "wpe", "h.1.attn.c_attn.weight", "h.0.mlp.c_fc.weight"};
  for (int i = 0; i < 4; i++)
    CU_ASSERT_EQUAL(memcmp(fm_model_find(a, same[i])->w, fm_model_find(d, same[i])->w,
                           fm_model_find(a, same[i])->numel * sizeof(float)), 0);
  /* another seed: other values; two tensors of one model: other values */
  CU_ASSERT_NOT_EQUAL(memcmp(fm_model_find(a, "wte")->w, fm_model_find(c, "wte")->w, 64), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(fm_model_find(a, "h.0.attn.c_attn.weight")->w,
                             fm_model_find(a, "h.1.attn.c_attn.weight")->w, 64), 0);
  for (int i = 0; i < fm_model_ntensors(a); i++) {
    const fm_tensor *t = fm_model_tensor(a, i);
    double sum = 0, sq = 0;
    for (size_t j = 0; j < t->numel; j++) {
      sum += t->w[j];
      sq += (double)t->w[j] * t->w[j];
    }
    double sd = sqrt(sq / t->numel);
    if (strstr(t->name, ".bias") || strstr(t->name, "lora_B")) {
      CU_ASSERT_EQUAL(sq, 0.0);
    } else if (t->group == FM_GROUP_NORM) {
      CU_ASSERT_EQUAL(sum, (double)t->numel);
      CU_ASSERT_EQUAL(sq, (double)t->numel);
    } else if (t->numel >= 256) {
      double want = strstr(t->name, "c_proj.weight") ? 0.3 / sqrt(4.0) : 0.3;
      if (fabs(sd - want) > 0.15 * want) printf("\n  %s: std %g, want %g", t->name, sd, want);
      CU_ASSERT(fabs(sd - want) <= 0.15 * want);
    }
  }
  fm_model_free(a);
  fm_model_free(b);
  fm_model_free(c);
  fm_model_free(d);
}

/* ---- whole-model finite differences ---- */
typedef struct {
  fm_model *m;
  int B, T;
  int32_t *tok, *tgt;
  int32_t *ref[FM_MAX_LAYERS];
  size_t nref[FM_MAX_LAYERS];
} model_ctx;

static double model_loss(model_ctx *x) {
  float ce = 0, lb = 0;
  fm_model_forward(x->m, x->tok, x->tgt, x->B, x->T, &ce, &lb);
  return (double)ce + lb;
}

static int routing_same(model_ctx *x) {
  for (int l = 0; l < fm_model_get_shape(x->m)->layers; l++)
    if (x->ref[l] && memcmp(x->ref[l], fm_model_router_picks(x->m, l), x->nref[l])) return 0;
  return 1;
}

static int close_enough(double fd, double an) {
  return fabs(fd - an) <= ATOL + RTOL * fmax(fabs(fd), fabs(an));
}

/* Gradient check of every trainable tensor; returns the number of mismatches. */
static int model_fd(fm_model *m, int B, int T, uint64_t seed, const char *what) {
  const fm_model_shape *s = fm_model_get_shape(m);
  model_ctx x = {.m = m, .B = B, .T = T};
  x.tok = malloc(B * T * sizeof(int32_t));
  x.tgt = malloc(B * T * sizeof(int32_t));
  batch(B, T, s->vocab, seed, x.tok, x.tgt);
  fm_model_zero_grads(m);
  model_loss(&x);
  CU_ASSERT_EQUAL(fm_model_backward(m), FM_OK);
  for (int l = 0; l < s->layers; l++)
    if (fm_model_router_picks(m, l)) {
      x.nref[l] = (size_t)B * T * s->top_k * sizeof(int32_t);
      x.ref[l] = malloc(x.nref[l]);
      memcpy(x.ref[l], fm_model_router_picks(m, l), x.nref[l]);
    }
  fm_rng r;
  fm_rng_init(&r, seed, 1, 0, FM_RNG_TEST);
  int bad = 0, skipped = 0, checked = 0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (!t->g || t->frozen) continue;
    const size_t n = t->numel;
    float *w0 = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    memcpy(w0, t->w, n * sizeof(float));
    double nv = 0, gv = 0;
    for (size_t j = 0; j < n; j++) {
      v[j] = (float)fm_rng_normal(&r);
      nv += (double)v[j] * v[j];
    }
    nv = sqrt(nv);
    for (size_t j = 0; j < n; j++) {
      v[j] /= (float)nv;
      gv += (double)t->g[j] * v[j];
    }
    /* a random direction within the tensor, then three single entries */
    for (int probe = 0; probe < 4; probe++) {
      size_t j = probe ? (size_t)fm_rng_below(&r, n) : 0;
      double lp, lm, h;
      int ok;
      if (!probe) {
        for (size_t q = 0; q < n; q++) t->w[q] = w0[q] + (float)EPS * v[q];
        lp = model_loss(&x);
        ok = routing_same(&x);
        for (size_t q = 0; q < n; q++) t->w[q] = w0[q] - (float)EPS * v[q];
        lm = model_loss(&x);
        ok = ok && routing_same(&x);
        h = 2 * EPS;
      } else {
        t->w[j] = (float)(w0[j] + EPS);
        h = (double)t->w[j] - w0[j];
        lp = model_loss(&x);
        ok = routing_same(&x);
        t->w[j] = (float)(w0[j] - EPS);
        h += (double)w0[j] - t->w[j];
        lm = model_loss(&x);
        ok = ok && routing_same(&x);
      }
      memcpy(t->w, w0, n * sizeof(float));
      if (!ok) {
        skipped++;
        continue;
      }
      checked++;
      double fd = (lp - lm) / h, an = probe ? t->g[j] : gv;
      if (!close_enough(fd, an)) {
        if (bad < 8)
          printf("\n  %s %s %s%zu: finite difference %.6g, backward %.6g", what, t->name,
                 probe ? "entry " : "direction ", probe ? j : 0, fd, an);
        bad++;
      }
    }
    free(w0);
    free(v);
  }
  if (getenv("FM_TEST_VERBOSE")) printf("\n  %s: %d checked, %d skipped", what, checked, skipped);
  CU_ASSERT(checked > 0);
  CU_ASSERT(skipped * 20 <= checked);
  CU_ASSERT_EQUAL(bad, 0);
  for (int l = 0; l < s->layers; l++) free(x.ref[l]);
  free(x.tok);
  free(x.tgt);
  return bad;
}

static void test_fd_dense(void) {
  fm_model_shape s = tiny(0, FM_EXPERT_FULL);
  fm_model *m = make(&s, 2, 8, 1, NULL, 7);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  model_fd(m, 2, 8, 11, "dense");
  model_fd(m, 1, 5, 12, "dense, shorter batch");
  fm_model_free(m);
}

static void test_fd_moe_full(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  fm_model *m = make(&s, 2, 8, 1, NULL, 7);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  model_fd(m, 2, 8, 11, "moe full");
  fm_model_free(m);
}

/* LoRA B starts at zero, where its A has no gradient: make B non-zero first */
static void lora_b_nonzero(fm_model *m, uint64_t seed) {
  fm_rng r;
  fm_rng_init(&r, seed, 2, 0, FM_RNG_TEST);
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (strstr(t->name, "lora_B"))
      for (size_t j = 0; j < t->numel; j++) t->w[j] = 0.3f * (float)fm_rng_normal(&r);
  }
}

static void test_fd_moe_lora(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_LORA);
  fm_model *m = make(&s, 2, 8, 1, NULL, 7);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  lora_b_nonzero(m, 3);
  model_fd(m, 2, 8, 11, "moe lora");
  fm_model_free(m);
  /* mixed: block 0 dense, block 1 LoRA MoE */
  s = tiny(2, FM_EXPERT_LORA);
  m = make(&s, 2, 8, 1, NULL, 8);
  lora_b_nonzero(m, 4);
  model_fd(m, 2, 8, 13, "dense + lora");
  fm_model_free(m);
}

/* gpt2 with FFN sizes other than 4D (a checkpoint's n_inner): dense blocks ffn wide,
 * the LoRA experts' base expert_ffn wide */
static void test_fd_gpt2_ffn(void) {
  fm_model_shape s = tiny(2, FM_EXPERT_LORA);
  s.ffn = 40;
  s.expert_ffn = 24;
  fm_model *m = make(&s, 2, 8, 1, NULL, 8);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const fm_tensor *t = fm_model_find(m, "h.0.mlp.c_fc.weight");
  CU_ASSERT(t && t->rows == 16 && t->cols == 40);
  t = fm_model_find(m, "h.1.mlp.c_proj.weight");
  CU_ASSERT(t && t->rows == 24 && t->cols == 16);
  t = fm_model_find(m, "h.1.moe.experts.0.c_fc.lora_B");
  CU_ASSERT(t && t->rows == 4 && t->cols == 24);
  lora_b_nonzero(m, 4);
  model_fd(m, 2, 8, 13, "gpt2 ffn 40, experts 24");
  fm_model_free(m);
}

static void test_fd_masked(void) {
  static const uint8_t m0[4] = {1, 0, 1, 1}, m1[4] = {0, 1, 0, 0};
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  s.top_k = 2;
  fm_model *m = make(&s, 2, 8, 1, NULL, 9);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 0, m0), FM_OK);
  CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 1, m1), FM_OK); /* one expert: k becomes 1 */
  model_fd(m, 2, 8, 14, "moe masked");
  /* the gradient reaches no expert that is not allowed */
  for (int e = 0; e < 4; e++) {
    char name[64];
    snprintf(name, sizeof name, "h.0.moe.experts.%d.c_fc.weight", e);
    const fm_tensor *t = fm_model_find(m, name);
    double a = 0;
    for (size_t j = 0; j < t->numel; j++) a += fabs(t->g[j]);
    CU_ASSERT(m0[e] ? a > 0 : a == 0);
  }
  fm_model_free(m);
  s = tiny(3, FM_EXPERT_LORA);
  m = make(&s, 2, 8, 1, NULL, 9);
  lora_b_nonzero(m, 5);
  CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 1, m0), FM_OK);
  model_fd(m, 2, 8, 16, "lora masked");
  fm_model_free(m);
}

/* ---- routing accessors ---- */
static void test_routing(void) {
  static const uint8_t mask[4] = {1, 1, 0, 1}, one[4] = {0, 0, 1, 0};
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  fm_model *m = make(&s, 2, 8, 1, NULL, 21);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int32_t tok[16], tgt[16];
  batch(2, 8, 32, 22, tok, tgt);
  for (int round = 0; round < 3; round++) {
    const uint8_t *allowed = round == 0 ? NULL : round == 1 ? mask : one;
    CU_ASSERT_EQUAL(fm_model_set_route_mask(m, 1, allowed), FM_OK);
    CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 2, 8, NULL, NULL), FM_OK);
    for (int l = 0; l < 2; l++) {
      const float *p = fm_model_router_probs(m, l);
      const int32_t *pk = fm_model_router_picks(m, l);
      CU_ASSERT_FATAL(p && pk);
      const uint8_t *a = l == 1 ? allowed : NULL;
      int nallowed = 0;
      for (int e = 0; e < 4; e++) nallowed += !a || a[e];
      int k = nallowed < 2 ? nallowed : 2;
      for (int n = 0; n < 16; n++) {
        double sum = 0;
        for (int e = 0; e < 4; e++) {
          sum += p[n * 4 + e];
          if (a && !a[e]) CU_ASSERT_EQUAL(p[n * 4 + e], 0.0f);
        }
        FM_ASSERT_CLOSE(sum, 1.0, 1e-5, 0);
        for (int j = 0; j < 2; j++) {
          int e = pk[n * 2 + j];
          if (j >= k) {
            CU_ASSERT_EQUAL(e, -1);
            continue;
          }
          CU_ASSERT(e >= 0 && e < 4 && (!a || a[e]));
          if (j) CU_ASSERT(e != pk[n * 2] && p[n * 4 + e] <= p[n * 4 + pk[n * 2]]);
          for (int o = 0; o < 4; o++) /* nothing unpicked is more probable */
            if (o != pk[n * 2] && (k < 2 || o != pk[n * 2 + 1])) CU_ASSERT(p[n * 4 + o] <= p[n * 4 + e]);
        }
      }
    }
  }
  fm_model_free(m);
}

/* ---- a shorter batch gives what a model made for it gives ---- */
static void test_partial_batch(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_LORA);
  fm_model *big = make(&s, 3, 8, 1, NULL, 31), *small = make(&s, 2, 5, 1, NULL, 31);
  CU_ASSERT_FATAL(big && small);
  lora_b_nonzero(big, 6);
  lora_b_nonzero(small, 6);
  int32_t tok[24], tgt[24];
  batch(3, 8, 32, 32, tok, tgt); /* a full batch first, so stale rows exist */
  CU_ASSERT_EQUAL(fm_model_forward(big, tok, tgt, 3, 8, NULL, NULL), FM_OK);
  batch(2, 5, 32, 33, tok, tgt);
  float ce1, lb1, ce2, lb2;
  fm_model_zero_grads(big);
  fm_model_zero_grads(small);
  CU_ASSERT_EQUAL(fm_model_forward(big, tok, tgt, 2, 5, &ce1, &lb1), FM_OK);
  CU_ASSERT_EQUAL(fm_model_forward(small, tok, tgt, 2, 5, &ce2, &lb2), FM_OK);
  FM_ASSERT_CLOSE(ce1, ce2, 1e-6, 0);
  FM_ASSERT_CLOSE(lb1, lb2, 1e-6, 0);
  CU_ASSERT(lb1 > 0);
  const float *l1 = fm_model_logits(big), *l2 = fm_model_logits(small);
  for (int i = 0; i < 10 * 32; i++) FM_ASSERT_CLOSE(l1[i], l2[i], 1e-5, 1e-6);
  CU_ASSERT_EQUAL(fm_model_backward(big), FM_OK);
  CU_ASSERT_EQUAL(fm_model_backward(small), FM_OK);
  const float *g1 = fm_model_class_grads(big, 0), *g2 = fm_model_class_grads(small, 0);
  for (size_t j = 0; j < fm_model_class_numel(big, 0); j++) FM_ASSERT_CLOSE(g1[j], g2[j], 1e-4, 1e-6);
  fm_model_free(big);
  fm_model_free(small);
}

/* ---- freezing ---- */
static float *grads_of(fm_model *m) {
  size_t n = fm_model_class_numel(m, 0);
  float *g = malloc(n * sizeof(float));
  memcpy(g, fm_model_class_grads(m, 0), n * sizeof(float));
  return g;
}

static void fwd_bwd(fm_model *m, const int32_t *tok, const int32_t *tgt) {
  fm_model_zero_grads(m);
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 2, 8, NULL, NULL), FM_OK);
  CU_ASSERT_EQUAL(fm_model_backward(m), FM_OK);
}

/* every unfrozen tensor's gradient as in ref; every frozen one zero */
static void expect_grads(fm_model *m, const float *ref) {
  int bad = 0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    if (!t->g) continue;
    for (size_t j = 0; j < t->numel; j++) {
      double want = t->frozen ? 0.0 : ref[t->offset + j];
      if (fabs(t->g[j] - want) > 1e-6 + 1e-5 * fabs(want)) bad++;
    }
  }
  CU_ASSERT_EQUAL(bad, 0);
}

static void test_freeze(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  fm_model *m = make(&s, 2, 8, 1, NULL, 41);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int32_t tok[16], tgt[16];
  batch(2, 8, 32, 42, tok, tgt);
  fwd_bwd(m, tok, tgt);
  float *ref = grads_of(m);
  /* routers and block 1's experts frozen (CoMiGS's and HFedMoE's uses) */
  fm_model_freeze_group(m, FM_GROUP_ROUTER, -1, 1);
  fm_model_freeze_group(m, FM_GROUP_EXPERT, 1, 1);
  CU_ASSERT(fm_model_find(m, "h.0.moe.router.weight")->frozen);
  CU_ASSERT(fm_model_find(m, "h.1.moe.experts.2.c_fc.bias")->frozen);
  CU_ASSERT(!fm_model_find(m, "h.0.moe.experts.2.c_fc.bias")->frozen);
  fwd_bwd(m, tok, tgt);
  expect_grads(m, ref);
  /* only block 1 trainable: the pass stops early, block 1's gradients unchanged */
  fm_model_freeze_class(m, 0, 1);
  for (int g = FM_GROUP_EMBED; g <= FM_GROUP_EXPERT; g++) fm_model_freeze_group(m, (fm_group)g, 1, 0);
  CU_ASSERT(fm_model_find(m, "wte")->frozen && !fm_model_find(m, "h.1.ln_1.weight")->frozen);
  fwd_bwd(m, tok, tgt);
  expect_grads(m, ref);
  /* only ln_f */
  fm_model_freeze_class(m, 0, 1);
  fm_model_find(m, "ln_f.weight")->frozen = 0;
  fwd_bwd(m, tok, tgt);
  expect_grads(m, ref);
  /* only wte: through the head and the embedding */
  fm_model_find(m, "ln_f.weight")->frozen = 1;
  fm_model_find(m, "wte")->frozen = 0;
  fwd_bwd(m, tok, tgt);
  expect_grads(m, ref);
  /* AdamW leaves frozen tensors and their state alone */
  fm_model_freeze_class(m, 0, 0);
  fm_model_freeze_group(m, FM_GROUP_ROUTER, 0, 1);
  fwd_bwd(m, tok, tgt);
  fm_adamw o;
  CU_ASSERT_EQUAL_FATAL(fm_adamw_create(&o, fm_model_class_numel(m, 0)), FM_OK);
  fm_tensor *router = fm_model_find(m, "h.0.moe.router.weight"), *other = fm_model_find(m, "h.1.moe.router.weight");
  float r0[64], o0[64];
  memcpy(r0, router->w, sizeof r0);
  memcpy(o0, other->w, sizeof o0);
  fm_adamw_hparams hp = {1e-2f, 0.9f, 0.99f, 1e-8f, 0.1f, 1.0f};
  fm_adamw_step(&o, m, 0, &hp);
  CU_ASSERT_EQUAL(memcmp(r0, router->w, sizeof r0), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(o0, other->w, sizeof o0), 0);
  for (size_t j = 0; j < router->numel; j++) CU_ASSERT(o.m[router->offset + j] == 0 && o.v[router->offset + j] == 0);
  CU_ASSERT_EQUAL(o.step, 1);
  fm_adamw_free(&o);
  free(ref);
  fm_model_free(m);
  /* frozen classes: the other tensors' gradients match those of an all-trainable model */
  s = tiny(2, FM_EXPERT_LORA);
  fm_model *all = make(&s, 2, 8, 1, NULL, 43), *part = make(&s, 2, 8, 1, embed_norm_frozen, 43);
  CU_ASSERT_FATAL(all && part);
  lora_b_nonzero(all, 7);
  lora_b_nonzero(part, 7);
  fwd_bwd(all, tok, tgt);
  fwd_bwd(part, tok, tgt);
  int bad = 0;
  for (int i = 0; i < fm_model_ntensors(part); i++) {
    const fm_tensor *t = fm_model_tensor(part, i), *u = fm_model_find(all, t->name);
    if (t->cls == FM_CLASS_FROZEN) {
      CU_ASSERT_PTR_NULL(t->g);
      continue;
    }
    for (size_t j = 0; j < t->numel; j++) bad += fabs(t->g[j] - u->g[j]) > 1e-6 + 1e-5 * fabs(u->g[j]);
  }
  CU_ASSERT_EQUAL(bad, 0);
  fm_model_free(all);
  fm_model_free(part);
}

/* ---- AdamW against a hand computation ---- */
static int lnf_and_wte(const fm_tensor *t, void *ctx) {
  return !strcmp(t->name, "wte") || !strncmp(t->name, "ln_f.", 5) ? 0 : FM_CLASS_FROZEN;
}

static void test_adamw(void) {
  fm_model_shape s = tiny(0, FM_EXPERT_FULL);
  fm_model *m = make(&s, 1, 4, 1, lnf_and_wte, 51);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const size_t n = fm_model_class_numel(m, 0);
  CU_ASSERT_EQUAL(n, 32 * 16 + 2 * 16);
  float *w = fm_model_class_params(m, 0), *g = fm_model_class_grads(m, 0);
  double *ew = malloc(n * sizeof(double)), *em = calloc(n, sizeof(double)), *ev = calloc(n, sizeof(double));
  for (size_t j = 0; j < n; j++) ew[j] = w[j];
  fm_adamw o;
  CU_ASSERT_EQUAL_FATAL(fm_adamw_create(&o, n), FM_OK);
  fm_adamw_hparams h = {0.05f, 0.8f, 0.95f, 1e-6f, 0.2f, 1.0f};
  fm_tensor *bias = fm_model_find(m, "ln_f.bias");
  for (int step = 1; step <= 3; step++) {
    bias->frozen = step == 2; /* skipped in step 2 */
    h.grad_scale = step == 3 ? 0.5f : 1.0f; /* step 3 takes the gradients halved (clipping) */
    for (size_t j = 0; j < n; j++) g[j] = (float)(0.01 * ((int)(j * 7 + step * 3) % 11 - 5));
    fm_adamw_step(&o, m, 0, &h);
    for (int i = 0; i < fm_model_ntensors(m); i++) {
      const fm_tensor *t = fm_model_tensor(m, i);
      if (t->cls != 0 || t->frozen) continue;
      for (size_t q = t->offset; q < t->offset + t->numel; q++) {
        const double gq = (double)h.grad_scale * g[q];
        em[q] = 0.8 * em[q] + 0.2 * gq;
        ev[q] = 0.95 * ev[q] + 0.05 * gq * gq;
        double mh = em[q] / (1 - pow(0.8, step)), vh = ev[q] / (1 - pow(0.95, step));
        ew[q] -= 0.05 * (mh / (sqrt(vh) + 1e-6) + (t->decay ? 0.2 * ew[q] : 0.0));
      }
    }
  }
  int bad = 0;
  for (size_t j = 0; j < n; j++) bad += fabs(w[j] - ew[j]) > 1e-5 + 1e-5 * fabs(ew[j]);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT(fm_model_find(m, "wte")->decay && !fm_model_find(m, "ln_f.weight")->decay);
  CU_ASSERT_EQUAL(o.step, 3);
  fm_adamw_reset(&o);
  CU_ASSERT(o.step == 0 && o.m[3] == 0 && o.v[3] == 0);
  fm_adamw_free(&o);
  free(ew);
  free(em);
  free(ev);
  fm_model_free(m);
}

/* ---- learning-rate schedule ---- */
static void test_schedule(void) {
  fm_config c;
  fm_config_init(&c);
  fm_config_set(&c, "train.warmup_steps=10", "test");
  fm_config_set(&c, "train.lr_min=1e-4", "test");
  fm_config_set(&c, "train.schedule=cosine", "test");
  FM_ASSERT_CLOSE(fm_lr_at(&c, 0, 110, 1e-3f), 1e-4, 1e-6, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 4, 110, 1e-3f), 5e-4, 1e-6, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 9, 110, 1e-3f), 1e-3, 1e-6, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 10, 110, 1e-3f), 1e-3, 1e-6, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 60, 110, 1e-3f), 5.5e-4, 1e-5, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 35, 110, 1e-3f), 1e-4 + 9e-4 * 0.5 * (1 + cos(M_PI / 4)), 1e-5, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 110, 110, 1e-3f), 1e-4, 1e-5, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 500, 110, 1e-3f), 1e-4, 1e-5, 0);
  fm_config_set(&c, "train.schedule=constant", "test");
  FM_ASSERT_CLOSE(fm_lr_at(&c, 60, 110, 1e-3f), 1e-3, 1e-6, 0);
  FM_ASSERT_CLOSE(fm_lr_at(&c, 1, 110, 1e-3f), 2e-4, 1e-6, 0);
  fm_config_set(&c, "train.warmup_steps=0", "test");
  FM_ASSERT_CLOSE(fm_lr_at(&c, 0, 110, 2e-3f), 2e-3, 1e-6, 0);
  fm_config_free(&c);
}

/* ---- gradient norm and clipping ---- */
static void test_clip(void) {
  fm_model_shape s = tiny(3, FM_EXPERT_FULL);
  fm_model *m = make(&s, 1, 4, 3, by_group, 61);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  size_t n0 = fm_model_class_numel(m, 0), n1 = fm_model_class_numel(m, 1), n2 = fm_model_class_numel(m, 2);
  for (size_t j = 0; j < n0; j++) fm_model_class_grads(m, 0)[j] = 0.5f;
  for (size_t j = 0; j < n1; j++) fm_model_class_grads(m, 1)[j] = -0.25f;
  for (size_t j = 0; j < n2; j++) fm_model_class_grads(m, 2)[j] = 2.0f;
  FM_ASSERT_CLOSE(fm_model_grad_norm(m, 1u), 0.5 * sqrt((double)n0), 1e-9, 0);
  FM_ASSERT_CLOSE(fm_model_grad_norm(m, 3u), sqrt(0.25 * n0 + 0.0625 * n1), 1e-9, 0);
  /* a frozen tensor does not count */
  fm_tensor *r0 = fm_model_find(m, "h.0.moe.router.weight");
  r0->frozen = 1;
  FM_ASSERT_CLOSE(fm_model_grad_norm(m, 4u), 2.0 * sqrt((double)n2 / 2), 1e-9, 0);
  /* the clipping factor (AdamW applies it as it reads the gradients) */
  FM_ASSERT_CLOSE(fm_model_clip_factor(m, 5u, 1.0), 1.0 / sqrt(0.25 * n0 + 4.0 * n2 / 2), 1e-6, 0);
  CU_ASSERT_EQUAL(fm_model_clip_factor(m, 5u, 0.0), 1.0f); /* no clipping */
  double nn = fm_model_grad_norm(m, 2u); /* under the limit: 1 */
  CU_ASSERT_EQUAL(fm_model_clip_factor(m, 2u, nn * 2), 1.0f);
  CU_ASSERT_EQUAL(fm_model_class_grads(m, 1)[0], -0.25f); /* the gradients are left as they are */
  fm_model_free(m);
}

/* ---- FLOPs per token ---- */
static void test_flops(void) {
  fm_model_shape s = tiny(2, FM_EXPERT_FULL); /* block 0 dense, block 1 MoE, E 4, k 2 */
  fm_model *m = make(&s, 1, 8, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const double D = 16, V = 32;
  double n = V * D + 2 * 4 * D * D + 8 * D * D + 4 * D + 2 * 8 * D * D;
  FM_ASSERT_CLOSE(fm_model_flops_per_token(m, 8), 6 * n + 12 * 2 * D * 8, 1e-12, 0);
  fm_model_free(m);
  s = tiny(2, FM_EXPERT_LORA); /* base FFN once, two adapters of rank 4 */
  m = make(&s, 1, 8, 1, NULL, 1);
  n = V * D + 2 * 4 * D * D + 8 * D * D + 4 * D + 8 * D * D + 2 * 4 * 2 * (D + 4 * D);
  FM_ASSERT_CLOSE(fm_model_flops_per_token(m, 4), 6 * n + 12 * 2 * D * 4, 1e-12, 0);
  fm_model_free(m);
  s.attn_lora_rank = 3; /* adapters on c_attn (D -> 3D) and c_proj (D -> D) of both blocks */
  m = make(&s, 1, 8, 1, NULL, 1);
  n += 2 * (3 * (D + 3 * D) + 3 * (D + D));
  FM_ASSERT_CLOSE(fm_model_flops_per_token(m, 4), 6 * n + 12 * 2 * D * 4, 1e-12, 0);
  /* a step of a fully trainable model computes every weight gradient */
  FM_ASSERT_CLOSE(fm_model_step_flops_per_token(m, 4), 6 * n + 12 * 2 * D * 4, 1e-12, 0);
  fm_model_free(m);
}

/* LoRA fine-tuning: only the adapters' weight gradients are computed, so a step does
 * 4 N_active + 2 N_adapters (+ attention); freezing a class's experts takes theirs out */
static int attn_lora_only(const fm_tensor *t, void *ctx) {
  (void)ctx;
  return t->group == FM_GROUP_ATTN_LORA ? 0 : FM_CLASS_FROZEN;
}

static void test_step_flops(void) {
  fm_model_shape s = tiny(0, FM_EXPERT_FULL); /* dense gpt2: D 16, V 32, 2 blocks */
  s.attn_lora_rank = 3;
  fm_model *m = make(&s, 1, 8, 1, attn_lora_only, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const double D = 16, V = 32, lora = 2 * (3 * (D + 3 * D) + 3 * (D + D));
  const double n = V * D + 2 * (4 * D * D + 8 * D * D) + lora;
  FM_ASSERT_CLOSE(fm_model_flops_per_token(m, 8), 6 * n + 12 * 2 * D * 8, 1e-12, 0);
  FM_ASSERT_CLOSE(fm_model_step_flops_per_token(m, 8), 4 * n + 2 * lora + 12 * 2 * D * 8, 1e-12, 0);
  fm_model_free(m);
  s = tiny(2, FM_EXPERT_FULL); /* block 1 MoE: E 4, k 2; by_group: experts class 1, router 2 */
  m = make(&s, 1, 8, 3, by_group, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const double all = V * D + 2 * 4 * D * D + 8 * D * D + 4 * D + 2 * 8 * D * D;
  const double norm_free = all; /* the norms (frozen by by_group) are not matrices */
  FM_ASSERT_CLOSE(fm_model_step_flops_per_token(m, 8), 6 * norm_free + 12 * 2 * D * 8, 1e-12, 0);
  fm_model_freeze_class(m, 1, 1); /* the experts: 2 of 4 per token, 8 D^2 each */
  FM_ASSERT_CLOSE(fm_model_step_flops_per_token(m, 8), 6 * all - 2 * (2 * 8 * D * D) + 12 * 2 * D * 8, 1e-12, 0);
  fm_model_free(m);
}

/* ---- the llama family ---- */
#define MIXTRAL_SEED 40
#define OLMOE_SEED 40
static fm_model_shape tiny_llama(int family, uint64_t moe_mask) {
  fm_model_shape s = tiny(moe_mask, FM_EXPERT_FULL);
  s.family = family;
  s.heads = 4;
  s.kv_heads = 2; /* GQA: two query heads per key/value head */
  s.head_dim = 4;
  s.ffn = 24;
  s.expert_ffn = 12;
  s.norm_eps = 1e-6f;
  s.rope_type = FM_ROPE_DEFAULT;
  s.rope_theta = 100.0f; /* fast-turning pairs even at 8 positions */
  s.norm_topk = family == FM_FAMILY_MIXTRAL;
  s.tied = 0;
  s.attn_bias = family == FM_FAMILY_QWEN2_MOE;
  s.qk_norm = family == FM_FAMILY_OLMOE;
  if (family == FM_FAMILY_QWEN2_MOE) s.shared_ffn = 20;
  if (family == FM_FAMILY_LLAMA) { /* llama3 rope scaling, as Llama 3.x ships */
    s.rope_type = FM_ROPE_LLAMA3;
    s.rope_factor = 8.0f;
    s.rope_low_freq = 1.0f;
    s.rope_high_freq = 4.0f;
    s.rope_orig_ctx = 4;
  }
  return s;
}

/* norms 1 at init would hide a wrong norm-weight gradient's scale: perturb them */
static void norms_random(fm_model *m, uint64_t seed) {
  fm_rng r;
  fm_rng_init(&r, seed, 3, 0, FM_RNG_TEST);
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (t->group == FM_GROUP_NORM || strstr(t->name, ".bias"))
      for (size_t j = 0; j < t->numel; j++) t->w[j] += 0.2f * (float)fm_rng_normal(&r);
  }
}

static void test_llama_tensor_table(void) {
  fm_model_shape s = tiny_llama(FM_FAMILY_QWEN2_MOE, 2); /* block 0 dense, block 1 MoE */
  fm_model *m = make(&s, 1, 4, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  static const char *names[] = {
    "embed_tokens.weight", "layers.0.input_layernorm.weight", "layers.0.self_attn.q_proj.weight",
    "layers.0.self_attn.q_proj.bias", "layers.0.self_attn.k_proj.weight",
    "layers.0.self_attn.k_proj.bias", "layers.0.self_attn.v_proj.weight",
    "layers.0.self_attn.v_proj.bias", "layers.0.self_attn.o_proj.weight",
    "layers.0.post_attention_layernorm.weight", "layers.0.mlp.gate_proj.weight",
    "layers.0.mlp.up_proj.weight", "layers.0.mlp.down_proj.weight"};
  for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
    CU_ASSERT_STRING_EQUAL(fm_model_tensor(m, i)->name, names[i]);
  const fm_tensor *t = fm_model_find(m, "layers.0.self_attn.k_proj.weight");
  CU_ASSERT(t && t->rows == 8 && t->cols == 16 && t->group == FM_GROUP_ATTN && t->layer == 0);
  t = fm_model_find(m, "layers.0.mlp.down_proj.weight");
  CU_ASSERT(t && t->rows == 16 && t->cols == 24 && t->group == FM_GROUP_FFN);
  t = fm_model_find(m, "layers.1.mlp.gate.weight");
  CU_ASSERT(t && t->rows == 4 && t->cols == 16 && t->group == FM_GROUP_ROUTER);
  t = fm_model_find(m, "layers.1.mlp.experts.3.up_proj.weight");
  CU_ASSERT(t && t->rows == 12 && t->cols == 16 && t->group == FM_GROUP_EXPERT && t->expert == 3);
  t = fm_model_find(m, "layers.1.mlp.shared_expert.down_proj.weight");
  CU_ASSERT(t && t->rows == 16 && t->cols == 20 && t->group == FM_GROUP_FFN);
  t = fm_model_find(m, "layers.1.mlp.shared_expert_gate.weight");
  CU_ASSERT(t && t->rows == 1 && t->cols == 16 && t->group == FM_GROUP_FFN);
  t = fm_model_find(m, "lm_head.weight");
  CU_ASSERT(t && t->layer == -1 && t->group == FM_GROUP_EMBED);
  CU_ASSERT_STRING_EQUAL(fm_model_tensor(m, fm_model_ntensors(m) - 1)->name, "lm_head.weight");
  CU_ASSERT_PTR_NULL(fm_model_find(m, "layers.0.self_attn.q_norm.weight"));
  fm_model_free(m);
  /* mixtral: block_sparse_moe names, tied head: no lm_head; olmoe: q/k norms */
  s = tiny_llama(FM_FAMILY_MIXTRAL, 3);
  s.tied = 1;
  m = make(&s, 1, 4, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL(fm_model_find(m, "layers.1.block_sparse_moe.gate.weight"));
  t = fm_model_find(m, "layers.0.block_sparse_moe.experts.2.w2.weight");
  CU_ASSERT(t && t->rows == 16 && t->cols == 12 && t->expert == 2);
  CU_ASSERT_PTR_NULL(fm_model_find(m, "lm_head.weight"));
  CU_ASSERT_PTR_NULL(fm_model_find(m, "layers.0.self_attn.q_proj.bias"));
  fm_model_free(m);
  s = tiny_llama(FM_FAMILY_QWEN2_MOE, 3); /* a checkpoint without a shared expert */
  s.shared_ffn = 0;
  m = make(&s, 1, 4, 1, NULL, 1);
  CU_ASSERT_PTR_NULL(fm_model_find(m, "layers.1.mlp.shared_expert_gate.weight"));
  CU_ASSERT_PTR_NOT_NULL(fm_model_find(m, "layers.1.mlp.experts.0.down_proj.weight"));
  fm_model_free(m);
  s = tiny_llama(FM_FAMILY_OLMOE, 3);
  m = make(&s, 1, 4, 1, NULL, 1);
  t = fm_model_find(m, "layers.1.self_attn.q_norm.weight");
  CU_ASSERT(t && t->cols == 16 && t->group == FM_GROUP_NORM);
  t = fm_model_find(m, "layers.1.self_attn.k_norm.weight");
  CU_ASSERT(t && t->cols == 8 && t->group == FM_GROUP_NORM);
  fm_model_free(m);
}

/* the seeds give routing margins that few perturbations cross (see the top) */
static void llama_fd(int family, uint64_t moe_mask, int tied, uint64_t seed, const char *what) {
  fm_model_shape s = tiny_llama(family, moe_mask);
  s.tied = tied;
  fm_model *m = make(&s, 2, 8, 1, NULL, seed);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  norms_random(m, seed + 1);
  model_fd(m, 2, 8, seed + 2, what);
  model_fd(m, 1, 5, seed + 3, what); /* a shorter batch */
  fm_model_free(m);
}
static void test_fd_llama(void) {
  llama_fd(FM_FAMILY_LLAMA, 0, 0, 7, "llama dense, GQA, llama3 rope");
  llama_fd(FM_FAMILY_LLAMA, 0, 1, 7, "llama dense, tied head");
}
static void test_fd_mixtral(void) { llama_fd(FM_FAMILY_MIXTRAL, 3, 0, MIXTRAL_SEED, "mixtral"); }
static void test_fd_olmoe(void) { llama_fd(FM_FAMILY_OLMOE, 3, 0, OLMOE_SEED, "olmoe q/k norm"); }
static void test_fd_qwen2_moe(void) { llama_fd(FM_FAMILY_QWEN2_MOE, 2, 0, 7, "qwen2_moe shared expert"); }

/* LoRA experts on the shared SwiGLU FFN: names, shapes (PEFT's A [r,in], B [out,r]),
 * gradients */
static void test_fd_llama_lora(void) {
  fm_model_shape s = tiny_llama(FM_FAMILY_MIXTRAL, 2);
  s.expert_type = FM_EXPERT_LORA;
  fm_model *m = make(&s, 1, 4, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const fm_tensor *t = fm_model_find(m, "layers.1.mlp.up_proj.weight"); /* the base, expert-sized */
  CU_ASSERT(t && t->rows == 12 && t->cols == 16 && t->group == FM_GROUP_FFN);
  t = fm_model_find(m, "layers.1.block_sparse_moe.experts.2.w2.lora_A");
  CU_ASSERT(t && t->rows == 4 && t->cols == 12 && t->group == FM_GROUP_EXPERT && t->expert == 2);
  t = fm_model_find(m, "layers.1.block_sparse_moe.experts.2.w2.lora_B");
  CU_ASSERT(t && t->rows == 16 && t->cols == 4);
  CU_ASSERT_PTR_NULL(fm_model_find(m, "layers.1.block_sparse_moe.experts.2.w2.weight"));
  fm_model_free(m);
  s = tiny_llama(FM_FAMILY_OLMOE, 3);
  s.expert_type = FM_EXPERT_LORA;
  m = make(&s, 2, 8, 1, NULL, OLMOE_SEED);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  CU_ASSERT_PTR_NOT_NULL(fm_model_find(m, "layers.0.mlp.experts.3.gate_proj.lora_A"));
  norms_random(m, OLMOE_SEED + 1);
  lora_b_nonzero(m, 3);
  model_fd(m, 2, 8, OLMOE_SEED + 2, "olmoe lora experts");
  fm_model_free(m);
}

/* LoRA on the attention projections: gpt2's c_attn and c_proj, the llama family's q
 * and v; the adapters' and everything else's gradients */
static void test_fd_attn_lora(void) {
  fm_model_shape s = tiny(2, FM_EXPERT_FULL);
  s.attn_lora_rank = 3;
  fm_model *m = make(&s, 2, 8, 1, NULL, 7);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const fm_tensor *t = fm_model_find(m, "h.1.attn.c_attn.lora_B");
  CU_ASSERT(t && t->rows == 3 && t->cols == 48 && t->group == FM_GROUP_ATTN_LORA && t->layer == 1);
  t = fm_model_find(m, "h.0.attn.c_proj.lora_A");
  CU_ASSERT(t && t->rows == 16 && t->cols == 3 && t->group == FM_GROUP_ATTN_LORA);
  lora_b_nonzero(m, 9);
  model_fd(m, 2, 8, 11, "gpt2 attention lora");
  fm_model_free(m);
  s = tiny_llama(FM_FAMILY_QWEN2_MOE, 2);
  s.attn_lora_rank = 2;
  m = make(&s, 2, 8, 1, NULL, 7);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  t = fm_model_find(m, "layers.0.self_attn.v_proj.lora_B");
  CU_ASSERT(t && t->rows == 8 && t->cols == 2 && t->group == FM_GROUP_ATTN_LORA);
  t = fm_model_find(m, "layers.1.self_attn.q_proj.lora_A");
  CU_ASSERT(t && t->rows == 2 && t->cols == 16);
  CU_ASSERT_PTR_NULL(fm_model_find(m, "layers.1.self_attn.k_proj.lora_A"));
  norms_random(m, 8);
  lora_b_nonzero(m, 10);
  model_fd(m, 2, 8, 12, "qwen2_moe attention lora");
  fm_model_free(m);
}

/* fedbiot-style partial training: only the top block and the head; the gradients match
 * those of the all-trainable model */
static int top_only(const fm_tensor *t, void *ctx) {
  return t->layer == 1 || !strcmp(t->name, "lm_head.weight") ? 0 : FM_CLASS_FROZEN;
}
static void test_llama_partial(void) {
  fm_model_shape s = tiny_llama(FM_FAMILY_QWEN2_MOE, 3);
  fm_model *all = make(&s, 2, 8, 1, NULL, 3), *part = make(&s, 2, 8, 1, top_only, 3);
  CU_ASSERT_FATAL(all && part);
  int32_t tok[16], tgt[16];
  batch(2, 8, 32, 4, tok, tgt);
  fm_model *ms[2] = {all, part};
  for (int i = 0; i < 2; i++) {
    fm_model_zero_grads(ms[i]);
    CU_ASSERT_EQUAL(fm_model_forward(ms[i], tok, tgt, 2, 8, NULL, NULL), FM_OK);
    CU_ASSERT_EQUAL(fm_model_backward(ms[i]), FM_OK);
  }
  int bad = 0, n = 0;
  for (int i = 0; i < fm_model_ntensors(part); i++) {
    const fm_tensor *t = fm_model_tensor(part, i), *u = fm_model_find(all, t->name);
    if (t->cls == FM_CLASS_FROZEN) continue;
    n++;
    for (size_t j = 0; j < t->numel; j++) bad += fabs(t->g[j] - u->g[j]) > 1e-6 + 1e-5 * fabs(u->g[j]);
  }
  CU_ASSERT(n > 10);
  CU_ASSERT_EQUAL(bad, 0);
  fm_model_free(all);
  fm_model_free(part);
}

static void test_llama_config(void) {
  fm_config c;
  fm_model_shape s;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_set(&c, "model.family=qwen2_moe", "test"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_set(&c, "model.kv_heads=2", "test"), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_shape_from_config(&c, &s), FM_OK);
  CU_ASSERT_EQUAL(s.family, FM_FAMILY_QWEN2_MOE);
  CU_ASSERT_EQUAL(s.kv_heads, 2);
  CU_ASSERT_EQUAL(s.head_dim, c.model.d_model / c.model.heads);
  CU_ASSERT_EQUAL(s.ffn, (8 * c.model.d_model / 3 + 7) / 8 * 8);
  CU_ASSERT_EQUAL(s.shared_ffn, 4 * s.expert_ffn);
  CU_ASSERT(s.attn_bias && !s.tied && !s.qk_norm && s.norm_topk); /* top_k 2: renormalised */
  CU_ASSERT_EQUAL(s.rope_type, FM_ROPE_DEFAULT);
  CU_ASSERT_EQUAL(fm_config_set(&c, "model.top_k=1", "test"), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_shape_from_config(&c, &s), FM_OK);
  CU_ASSERT(!s.norm_topk); /* top-1 from scratch: the plain probability */
  CU_ASSERT_EQUAL(fm_config_set(&c, "model.norm_topk=true", "test"), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_shape_from_config(&c, &s), FM_OK);
  CU_ASSERT(s.norm_topk);
  fm_config_free(&c);
  fm_config_init(&c);
  CU_ASSERT_EQUAL_FATAL(fm_model_shape_from_config(&c, &s), FM_OK); /* gpt2 defaults */
  CU_ASSERT(s.family == FM_FAMILY_GPT2 && s.tied && s.attn_bias && s.ffn == 4 * s.d &&
            s.kv_heads == s.heads && s.rope_type == FM_ROPE_NONE && s.norm_topk);
  fm_config_free(&c);
  expect_shape_error("model.family=llama", "model.kv_heads=3", "model.kv_heads");
  expect_shape_error("model.tied=false", NULL, "model.tied");
  expect_shape_error("model.kv_heads=2", NULL, "model.kv_heads"); /* gpt2 */
  expect_shape_error("model.family=olmoe", "model.head_dim=5", "model.head_dim");
}

static void test_llama_flops(void) {
  fm_model_shape s = tiny_llama(FM_FAMILY_QWEN2_MOE, 2); /* block 0 dense, block 1 MoE */
  fm_model *m = make(&s, 1, 8, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const double D = 16, V = 32, QD = 16, KD = 8;
  const double attn = 2 * D * QD + 2 * D * KD;           /* q, o; the smaller k, v */
  const double dense = 3 * D * 24;                       /* gate, up, down */
  const double moe = 4 * D + 2 * 3 * D * 12 + 3 * D * 20 + D; /* router, 2 experts, shared + gate */
  FM_ASSERT_CLOSE(fm_model_flops_per_token(m, 8), 6 * (V * D + 2 * attn + dense + moe) + 12 * 2 * QD * 8,
                  1e-12, 0);
  fm_model_free(m);
  s.expert_type = FM_EXPERT_LORA; /* the base once, two picks' adapters of rank 4 on 3 matrices */
  m = make(&s, 1, 8, 1, NULL, 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  const double lmoe = 4 * D + 3 * D * 12 + 2 * 4 * 3 * (D + 12) + 3 * D * 20 + D;
  FM_ASSERT_CLOSE(fm_model_flops_per_token(m, 8), 6 * (V * D + 2 * attn + dense + lmoe) + 12 * 2 * QD * 8,
                  1e-12, 0);
  fm_model_free(m);
}

/* model.train = lora's trained tensors: LoRA pairs (attention, experts) and routers */
static int adapters_only(const fm_tensor *t, void *ctx) {
  (void)ctx;
  return t->group == FM_GROUP_ATTN_LORA || t->group == FM_GROUP_ROUTER || t->group == FM_GROUP_EXPERT
             ? 0
             : FM_CLASS_FROZEN;
}

/* ---- client slots (run.client_batch): a forward of 3 slots, 2 of them live, gives
 * each live slot the loss, the trained tensors' gradients and (MoE blocks) the routing
 * of a plain model holding that slot's tensors on that slot's batch; the idle slot
 * gets no gradient ---- */
static void slots_case(const fm_model_shape *s, const char *what, fm_classify_fn classify) {
  enum { NS = 3, LIVE = 2, B = 2, T = 8 };
  fm_model *ref = make(s, B, T, 1, classify, 1), *m = NULL;
  CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
  CU_ASSERT_EQUAL_FATAL(fm_model_create_slots(&m, s, B, T, NS, 1, classify, NULL), FM_OK);
  CU_ASSERT_EQUAL(fm_model_init(m, 1), FM_OK);
  CU_ASSERT_EQUAL(fm_model_nslot(m), NS);
  const size_t n = fm_model_class_numel(m, 0);
  CU_ASSERT_EQUAL(n, fm_model_class_numel(ref, 0)); /* a slot's view is one client's */
  float *vals = calloc(NS * n, sizeof *vals);
  int32_t tok[NS * B * T], tgt[NS * B * T];
  for (int g = 0; g < NS; g++) { /* each slot its own pairs (B != 0) and batch */
    fm_rng r;
    fm_rng_init(&r, 77, (uint32_t)g, 0, FM_RNG_TEST);
    for (size_t j = 0; j < n; j++) vals[g * n + j] = 0.3f * (float)fm_rng_normal(&r);
    CU_ASSERT_EQUAL(fm_model_set_slot(m, g), FM_OK);
    memcpy(fm_model_class_params(m, 0), vals + g * n, n * sizeof *vals);
    batch(B, T, s->vocab, 100 + g, tok + g * B * T, tgt + g * B * T);
  }
  for (int j = LIVE * B * T; j < NS * B * T; j++) tok[j] = 0, tgt[j] = -1;
  CU_ASSERT_EQUAL(fm_model_set_slot(m, 0), FM_OK);
  float ce[NS] = {0};
  fm_model_zero_grads(m);
  CU_ASSERT_EQUAL_FATAL(fm_model_forward_slots(m, tok, tgt, B, T, LIVE, ce), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_backward(m), FM_OK);
  for (int g = 0; g < LIVE; g++) {
    memcpy(fm_model_class_params(ref, 0), vals + g * n, n * sizeof *vals);
    float rce = 0;
    fm_model_zero_grads(ref);
    CU_ASSERT_EQUAL(fm_model_forward(ref, tok + g * B * T, tgt + g * B * T, B, T, &rce, NULL), FM_OK);
    CU_ASSERT_EQUAL(fm_model_backward(ref), FM_OK);
    FM_ASSERT_CLOSE(ce[g], rce, 1e-6, 0);
    CU_ASSERT_EQUAL(fm_model_set_slot(m, g), FM_OK);
    for (int l = 0; l < s->layers; l++) { /* the slot's router routed its own tokens */
      if (!(s->moe_mask >> l & 1)) continue;
      const float *ps = fm_model_router_probs(m, l), *pr = fm_model_router_probs(ref, l);
      const int32_t *ks = fm_model_router_picks(m, l), *kr = fm_model_router_picks(ref, l);
      CU_ASSERT_FATAL(ps && pr && ks && kr);
      double off = 0;
      for (int j = 0; j < B * T * s->experts; j++) off = fmax(off, fabs((double)ps[j] - pr[j]));
      if (!(off <= 1e-6)) printf("\n  %s slot %d block %d: routing differs by %.3g", what, g, l, off);
      CU_ASSERT(off <= 1e-6);
      CU_ASSERT_EQUAL(memcmp(ks, kr, (size_t)B * T * s->top_k * sizeof *ks), 0);
    }
    const float *gs = fm_model_class_grads(m, 0), *gr = fm_model_class_grads(ref, 0);
    double worst = 0, big = 0;
    for (size_t j = 0; j < n; j++) {
      worst = fmax(worst, fabs((double)gs[j] - gr[j]));
      big = fmax(big, fabs((double)gr[j]));
    }
    CU_ASSERT(big > 0);
    if (!(worst <= 1e-5 * big))
      printf("\n  %s slot %d: gradient differs by %.3g (largest %.3g)", what, g, worst, big);
    CU_ASSERT(worst <= 1e-5 * big);
    CU_ASSERT_EQUAL(memcmp(fm_model_class_params(m, 0), vals + g * n, n * sizeof *vals), 0);
  }
  CU_ASSERT_EQUAL(fm_model_set_slot(m, LIVE), FM_OK); /* the idle slot: no gradient */
  const float *gi = fm_model_class_grads(m, 0);
  size_t nz = 0;
  for (size_t j = 0; j < n; j++) nz += gi[j] != 0.0f;
  CU_ASSERT_EQUAL(nz, 0);
  CU_ASSERT_EQUAL(fm_model_set_slot(m, NS), FM_ERR_ARG);
  CU_ASSERT_EQUAL(fm_model_forward_slots(m, tok, tgt, B, T, NS + 1, ce), FM_ERR_ARG);
  free(vals);
  fm_model_free(m);
  fm_model_free(ref);
}

static void test_client_slots(void) {
  fm_model_shape s = tiny(0, FM_EXPERT_FULL);
  s.attn_lora_rank = 3;
  slots_case(&s, "gpt2", attn_lora_only);
  fm_model_shape l = tiny_llama(FM_FAMILY_LLAMA, 0);
  l.attn_lora_rank = 2;
  slots_case(&l, "llama", attn_lora_only);
  /* MoE blocks of LoRA experts: routers and experts per slot, with and without
   * attention pairs */
  fm_model_shape moe = tiny(2, FM_EXPERT_LORA);
  moe.attn_lora_rank = 3;
  slots_case(&moe, "gpt2 moe", adapters_only);
  moe.attn_lora_rank = 0;
  slots_case(&moe, "gpt2 moe, no attention pairs", adapters_only);
  fm_model_shape lm = tiny_llama(FM_FAMILY_QWEN2_MOE, 2); /* with a shared expert, frozen */
  lm.expert_type = FM_EXPERT_LORA;
  lm.attn_lora_rank = 2;
  slots_case(&lm, "qwen2-moe", adapters_only);
  /* slots train what each part computes alone: every tensor trained is refused */
  fm_model *m = NULL;
  CU_ASSERT_EQUAL(fm_model_create_slots(&m, &s, 2, 8, 2, 1, NULL, NULL), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(m);
  CU_ASSERT_EQUAL(fm_model_create_slots(&m, &moe, 2, 8, 2, 1, NULL, NULL), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NULL(m);
}

int fm_test_register(void) {
  static const fm_test tests[] = {
    {"shape from config", test_shape_config},
    {"create and forward errors", test_create_errors},
    {"tensor table", test_tensor_table},
    {"sharing classes", test_classes},
    {"deterministic init", test_init},
    {"client slots: each slot's loss and gradients", test_client_slots},
    {"gradients: dense", test_fd_dense},
    {"gradients: moe full experts", test_fd_moe_full},
    {"gradients: moe lora experts", test_fd_moe_lora},
    {"gradients: route masks", test_fd_masked},
    {"gradients: gpt2 ffn sizes", test_fd_gpt2_ffn},
    {"routing accessors", test_routing},
    {"shorter batch", test_partial_batch},
    {"freezing", test_freeze},
    {"adamw", test_adamw},
    {"lr schedule", test_schedule},
    {"grad norm and clipping", test_clip},
    {"flops per token", test_flops},
    {"step flops with frozen tensors", test_step_flops},
    {"llama family: configuration", test_llama_config},
    {"llama family: tensor table", test_llama_tensor_table},
    {"gradients: llama dense", test_fd_llama},
    {"gradients: mixtral", test_fd_mixtral},
    {"gradients: olmoe", test_fd_olmoe},
    {"gradients: qwen2_moe", test_fd_qwen2_moe},
    {"gradients: llama-family lora experts", test_fd_llama_lora},
    {"gradients: attention lora", test_fd_attn_lora},
    {"llama family: partial training", test_llama_partial},
    {"llama family: flops per token", test_llama_flops},
    {NULL, NULL}};
  return fm_test_suite("model", tests);
}
