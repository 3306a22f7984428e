/* test_hidden.c - hidden states at block boundaries and injected gradients (the
 * distillation FedBiOT's server alignment uses), checked by finite differences. */
#include "cunit_main.h"

#include "fedmoe/model.h"
#include "fedmoe/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 6 };

/* loss(w) = ce + lb + sum(u . hidden_k) */
static double objective(fm_model *m, const int32_t *tok, const int32_t *tgt, int k, const float *u, int D) {
  float ce = 0, lb = 0;
  fm_model_forward(m, tok, tgt, B, T, &ce, &lb);
  const float *h = fm_model_hidden(m, k);
  double s = ce + lb;
  for (int i = 0; i < B * T * D; i++) s += (double)u[i] * h[i];
  return s;
}

static void check_injection(int k) {
  fm_model_shape s = {.vocab = 16, .context = 8, .d = 8, .heads = 2, .layers = 3, .moe_mask = 2,
                      .experts = 3, .top_k = 1, .expert_type = FM_EXPERT_FULL, .lora_rank = 2,
                      .lora_alpha = 4, .init_std = 0.3f, .load_balance = 0.01f, .norm_topk = 1};
  fm_model *m;
  CU_ASSERT_EQUAL_FATAL(fm_model_create(&m, &s, B, T, 1, NULL, NULL), FM_OK);
  fm_model_init(m, 21);
  fm_rng r;
  fm_rng_init(&r, 5, 0, (uint32_t)k, FM_RNG_TEST);
  int32_t tok[B * T], tgt[B * T];
  float u[B * T * 8];
  for (int i = 0; i < B * T; i++) { tok[i] = (int32_t)fm_rng_below(&r, 16); tgt[i] = (int32_t)fm_rng_below(&r, 16); }
  for (int i = 0; i < B * T * 8; i++) u[i] = (float)fm_rng_normal(&r);
  fm_model_zero_grads(m);
  float ce;
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, B, T, &ce, NULL), FM_OK);
  CU_ASSERT_PTR_NOT_NULL_FATAL(fm_model_hidden(m, k));
  CU_ASSERT_PTR_NULL(fm_model_hidden(m, s.layers + 1));
  CU_ASSERT_EQUAL(fm_model_backward_inject(m, k, u), FM_OK);
  /* check block 0's attention weight (below every boundary): dense tensor, no routing jump */
  fm_tensor *t = fm_model_find(m, "h.0.attn.c_attn.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  int checked = 0, bad = 0;
  for (size_t i = 0; i < t->numel; i += 7) {
    float w0 = t->w[i];
    const float eps = 1e-2f;
    t->w[i] = w0 + eps;
    double fp = objective(m, tok, tgt, k, u, 8);
    t->w[i] = w0 - eps;
    double fm = objective(m, tok, tgt, k, u, 8);
    t->w[i] = w0;
    double num = (fp - fm) / (2 * eps), an = t->g[i];
    if (fabs(num - an) > 2e-2 * fmax(fabs(num), fabs(an)) + 2e-3) bad++;
    checked++;
  }
  CU_ASSERT(checked > 10);
  CU_ASSERT_EQUAL(bad, 0);
  /* a boundary out of range is refused */
  CU_ASSERT_EQUAL(fm_model_backward_inject(m, s.layers + 1, u), FM_ERR_ARG);
  fm_model_free(m);
}

static void test_inject_mid(void) { check_injection(1); }
static void test_inject_top(void) { check_injection(3); }

int fm_test_register(void) {
  static const fm_test tests[] = {{"inject at block boundary 1", test_inject_mid},
                                  {"inject at the last block", test_inject_top}, {NULL, NULL}};
  return fm_test_suite("hidden states", tests);
}
