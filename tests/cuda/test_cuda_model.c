/* test_cuda_model.c - the GPU passes against the CPU model (needs a GPU: make
 * check-cuda): a GPT-2-family model with two sharing classes and a frozen FFN, at
 * awkward sizes; the loss, every class's gradients and the parameters after three
 * AdamW steps agree with fm_model's to 1e-5 (relative L2, fp32), and a second run of
 * the same steps gives bitwise the same parameters. */
#include "model_cuda.h"

#include "fedmoe/rng.h"

#include "cunit_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fm_cu *cu;

/* class 0: embeddings and norms; 1: attention; frozen: the FFN */
static int classify(const fm_tensor *t, void *ctx) {
  (void)ctx;
  if (t->group == FM_GROUP_FFN) return FM_CLASS_FROZEN;
  return t->group == FM_GROUP_ATTN ? 1 : 0;
}

static double rel(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

enum { B = 3, T = 19 };

static fm_model *make(void) {
  fm_model_shape s = {.vocab = 101, .context = 24, .d = 40, .heads = 5, .layers = 2,
                      .moe_mask = 0, .experts = 4, .top_k = 2, .expert_type = FM_EXPERT_FULL,
                      .lora_rank = 4, .lora_alpha = 8.0f, .init_std = 0.2f, .load_balance = 0.0f};
  fm_model *m = NULL;
  CU_ASSERT_FATAL(fm_model_create(&m, &s, B, T, 2, classify, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_init(m, 7) == FM_OK);
  return m;
}

static void batch(int32_t *tok, int32_t *tgt, uint64_t seed) {
  fm_rng r;
  fm_rng_init(&r, seed, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < B * T; i++) {
    tok[i] = (int32_t)fm_rng_below(&r, 101);
    tgt[i] = i % 11 == 4 ? -1 : (int32_t)fm_rng_below(&r, 101);
  }
}

/* steps of forward, backward, AdamW on both classes; returns the GPU's last loss */
static float train(fm_model *m, fm_cu_model *g, int steps, float *cpu_loss) {
  /* eps 1e-3: with eps near 0, AdamW maps a gradient of 1e-9 (zero on one side, rounding
   * noise on the other) to a whole step of lr, so the comparison would measure noise */
  fm_adamw_hparams h = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-3f,
                        .weight_decay = 0.1f, .grad_scale = 0.7f};
  fm_adamw opt[2];
  for (int c = 0; c < 2; c++) CU_ASSERT_FATAL(fm_adamw_create(&opt[c], fm_model_class_numel(m, c)) == FM_OK);
  int32_t tok[B * T], tgt[B * T];
  float gl = 0;
  for (int s = 0; s < steps; s++) {
    batch(tok, tgt, 100 + s);
    fm_model_zero_grads(m);
    CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, cpu_loss, NULL) == FM_OK);
    CU_ASSERT_FATAL(fm_model_backward(m) == FM_OK);
    CU_ASSERT_FATAL(fm_cu_model_zero_grads(g) == FM_OK);
    CU_ASSERT_FATAL(fm_cu_model_forward(g, tok, tgt, B, T, &gl) == FM_OK);
    CU_ASSERT_FATAL(fm_cu_model_backward(g) == FM_OK);
    for (int c = 0; c < 2; c++) {
      fm_adamw_step(&opt[c], m, c, &h);
      CU_ASSERT_FATAL(fm_cu_model_adamw(g, c, &h) == FM_OK);
    }
  }
  for (int c = 0; c < 2; c++) fm_adamw_free(&opt[c]);
  return gl;
}

static void passes_match_cpu(void) {
  CU_ASSERT_FATAL(cu != NULL);
  fm_model *m = make();
  fm_cu_model *g = NULL;
  CU_ASSERT_FATAL(fm_cu_model_create(&g, cu, m, B, T) == FM_OK);
  CU_ASSERT_FATAL(fm_cu_model_upload(g) == FM_OK);
  /* one forward/backward: loss and gradients */
  int32_t tok[B * T], tgt[B * T];
  batch(tok, tgt, 1);
  float ce = 0, gce = 0;
  fm_model_zero_grads(m);
  CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &ce, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_backward(m) == FM_OK);
  CU_ASSERT_FATAL(fm_cu_model_zero_grads(g) == FM_OK);
  CU_ASSERT_FATAL(fm_cu_model_forward(g, tok, tgt, B, T, &gce) == FM_OK);
  CU_ASSERT_FATAL(fm_cu_model_backward(g) == FM_OK);
  FM_ASSERT_CLOSE(gce, ce, 1e-5, 0);
  for (int c = 0; c < 2; c++) {
    size_t n = fm_model_class_numel(m, c);
    float *cpu = malloc(n * sizeof *cpu);
    memcpy(cpu, fm_model_class_grads(m, c), n * sizeof *cpu);
    CU_ASSERT_FATAL(fm_cu_model_download_grads(g, c) == FM_OK); /* overwrites the host grads */
    double e = rel(fm_model_class_grads(m, c), cpu, n);
    printf("\n    class %d gradients: relative error %.3g", c, e);
    CU_ASSERT(e <= 1e-5);
    free(cpu);
  }
  fm_cu_model_free(g);
  fm_model_free(m);
}

static void training_matches_and_repeats(void) {
  CU_ASSERT_FATAL(cu != NULL);
  float *after[2][2];
  for (int run = 0; run < 2; run++) {
    fm_model *m = make();
    fm_cu_model *g = NULL;
    CU_ASSERT_FATAL(fm_cu_model_create(&g, cu, m, B, T) == FM_OK);
    CU_ASSERT_FATAL(fm_cu_model_upload(g) == FM_OK);
    float cl = 0, gl = train(m, g, 3, &cl);
    FM_ASSERT_CLOSE(gl, cl, 1e-5, 0);
    for (int c = 0; c < 2; c++) {
      size_t n = fm_model_class_numel(m, c);
      float *cpu = malloc(n * sizeof *cpu);
      memcpy(cpu, fm_model_class_params(m, c), n * sizeof *cpu);
      CU_ASSERT_FATAL(fm_cu_model_download_params(g, c) == FM_OK);
      double e = rel(fm_model_class_params(m, c), cpu, n);
      printf("\n    class %d after 3 AdamW steps: relative error %.3g", c, e);
      CU_ASSERT(e <= 1e-5);
      after[run][c] = malloc(n * sizeof(float));
      memcpy(after[run][c], fm_model_class_params(m, c), n * sizeof(float));
      free(cpu);
    }
    if (run == 1)
      for (int c = 0; c < 2; c++) {
        CU_ASSERT(!memcmp(after[0][c], after[1][c], fm_model_class_numel(m, c) * sizeof(float)));
        free(after[0][c]);
        free(after[1][c]);
      }
    fm_cu_model_free(g);
    fm_model_free(m);
  }
}

static void refuses_moe(void) {
  CU_ASSERT_FATAL(cu != NULL);
  fm_model_shape s = {.vocab = 32, .context = 8, .d = 16, .heads = 2, .layers = 2, .moe_mask = 2,
                      .experts = 4, .top_k = 2, .expert_type = FM_EXPERT_FULL, .lora_rank = 4,
                      .lora_alpha = 8.0f, .init_std = 0.2f};
  fm_model *m = NULL;
  CU_ASSERT_FATAL(fm_model_create(&m, &s, 2, 8, 1, NULL, NULL) == FM_OK);
  fm_cu_model *g = NULL;
  CU_ASSERT_EQUAL(fm_cu_model_create(&g, cu, m, 2, 8), FM_ERR_CONFIG);
  CU_ASSERT(strstr(fm_error_message(), "model.moe_layers") != NULL);
  fm_error_clear();
  fm_model_free(m);
}

static int open_gpu(void) {
  if (fm_cu_open(&cu, 0, FM_PREC_FP32) != FM_OK) {
    fprintf(stderr, "test_cuda_model: %s\n", fm_error_message());
    cu = NULL;
  }
  return 0;
}
static int close_gpu(void) {
  fm_cu_close(cu);
  return 0;
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"forward/backward against the CPU", passes_match_cpu},
                                  {"AdamW steps against the CPU, repeatable", training_matches_and_repeats},
                                  {"MoE blocks refused", refuses_moe},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("GPU model passes", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
