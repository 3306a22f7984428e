/* test_cuda_model.c - the model on the CUDA backend against the same model on the CPU
 * (needs a GPU: make check-cuda). One pass code (src/nn/model_pass.c) runs on both;
 * here a GPT-2-family model with two sharing classes and a frozen FFN, at awkward
 * sizes, gives on the GPU the CPU's loss and every class's gradients, and after three
 * AdamW steps with gradient clipping its parameters, to 1e-5 (relative L2, fp32); a
 * second run of the same steps gives bitwise the same parameters. Also: attention
 * LoRA, the hidden states and an injected gradient, writes through the host mirror
 * reaching the device, MoE blocks and the llama family (loss, gradients, routing), and
 * the refusals (heads wider than 128 values, a model too large). */
#include "backend.h"
#include "backend_cuda.h"

#include "fedmoe/rng.h"

#include "cunit_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fm_backend *gpu;

/* class 0: embeddings and norms; 1: attention (and its adapters); frozen: the FFN */
static int classify(const fm_tensor *t, void *ctx) {
  (void)ctx;
  if (t->group == FM_GROUP_FFN) return FM_CLASS_FROZEN;
  return t->group == FM_GROUP_ATTN || t->group == FM_GROUP_ATTN_LORA ? 1 : 0;
}

/* relative L2 error of a against b; *first: the first index differing by more than tol relative */
static double rel(const float *a, const float *b, size_t n, long *first) {
  double num = 0, den = 0;
  *first = -1;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
    if (*first < 0 && fabs(d) > 1e-4 * (fabs(b[i]) + 1e-3)) *first = (long)i;
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void report(const char *what, int c, const float *g, const float *cpu, size_t n, double tol) {
  long first;
  double e = rel(g, cpu, n, &first);
  printf("\n    %s, class %d (%zu values): relative error %.3g", what, c, n, e);
  if (first >= 0) printf(" (first loose value at %ld: GPU %.8g, CPU %.8g)", first, g[first], cpu[first]);
  CU_ASSERT(e <= tol);
}

enum { B = 3, T = 19 };

static fm_model *make(int on_gpu, int attn_lora) {
  fm_model_shape s = {.vocab = 101, .context = 24, .d = 40, .heads = 5, .layers = 2,
                      .moe_mask = 0, .experts = 4, .top_k = 2, .expert_type = FM_EXPERT_FULL,
                      .lora_rank = 4, .lora_alpha = 8.0f, .init_std = 0.2f, .load_balance = 0.0f,
                      .attn_lora_rank = attn_lora};
  fm_model *m = NULL;
  fm_model_set_default_backend(on_gpu ? gpu : NULL);
  fm_err e = fm_model_create(&m, &s, B, T, 2, classify, NULL);
  fm_model_set_default_backend(NULL);
  if (e) printf("\n    %s\n", fm_error_message());
  CU_ASSERT_FATAL(e == FM_OK);
  CU_ASSERT_FATAL(fm_model_init(m, 7) == FM_OK);
  if (attn_lora) /* B starts at zero; give the adapters something to do */
    for (int i = 0; i < fm_model_ntensors(m); i++) {
      fm_tensor *t = fm_model_tensor(m, i);
      if (t->group == FM_GROUP_ATTN_LORA)
        for (size_t j = 0; j < t->numel; j++) t->w[j] = 0.05f * (float)((j * 7 + (size_t)i) % 11) - 0.25f;
    }
  CU_ASSERT_STRING_EQUAL(fm_model_device(m), on_gpu ? "cuda" : "cpu");
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

/* one step of a client (src/fl/client.c): zero, forward, backward, clip, AdamW */
static float step(fm_model *m, fm_adamw *opt, const int32_t *tok, const int32_t *tgt, double *clip) {
  /* eps 1e-3: with eps near 0, AdamW maps a gradient of 1e-9 (zero on one side, rounding
   * noise on the other) to a whole step of lr, so the comparison would measure noise */
  fm_adamw_hparams h = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-3f, .weight_decay = 0.1f};
  float ce = 0;
  fm_model_zero_grads(m);
  CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &ce, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_backward(m) == FM_OK);
  h.grad_scale = fm_model_clip_factor(m, 3u, 0.5); /* below the norm: clipping acts */
  *clip = h.grad_scale;
  for (int c = 0; c < 2; c++) fm_adamw_step(&opt[c], m, c, &h);
  return ce;
}

static void passes_match(int attn_lora) {
  CU_ASSERT_FATAL(gpu != NULL);
  fm_model *m = make(0, attn_lora), *g = make(1, attn_lora);
  int32_t tok[B * T], tgt[B * T];
  batch(tok, tgt, 1);
  float ce = 0, gce = 0;
  fm_model_zero_grads(m);
  fm_model_zero_grads(g);
  CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &ce, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_forward(g, tok, tgt, B, T, &gce, NULL) == FM_OK);
  printf("\n    loss: GPU %.8f, CPU %.8f", gce, ce);
  FM_ASSERT_CLOSE(gce, ce, 1e-5, 0);
  CU_ASSERT_FATAL(fm_model_backward(m) == FM_OK);
  CU_ASSERT_FATAL(fm_model_backward(g) == FM_OK);
  for (int c = 0; c < 2; c++)
    report("gradients", c, fm_model_class_grads(g, c), fm_model_class_grads(m, c), fm_model_class_numel(m, c), 1e-5);
  /* the hidden state at block 1 and the logits come down to the host */
  const size_t nd = (size_t)B * T * 40, nv = (size_t)B * T * 101;
  float *h = malloc(nd * sizeof *h);
  memcpy(h, fm_model_hidden(m, 1), nd * sizeof *h);
  report("hidden state", 1, fm_model_hidden(g, 1), h, nd, 1e-5);
  float *lg = malloc(nv * sizeof *lg);
  memcpy(lg, fm_model_logits(m), nv * sizeof *lg);
  report("logits", -1, fm_model_logits(g), lg, nv, 1e-5);
  /* a gradient injected at block boundary 1 (fedbiot's distillation) */
  for (size_t i = 0; i < nd; i++) h[i] = 0.01f * (float)((i % 13) - 6);
  fm_model_zero_grads(m);
  fm_model_zero_grads(g);
  CU_ASSERT_FATAL(fm_model_backward_inject(m, 1, h) == FM_OK);
  CU_ASSERT_FATAL(fm_model_backward_inject(g, 1, h) == FM_OK);
  for (int c = 0; c < 2; c++)
    report("gradients with an injected one", c, fm_model_class_grads(g, c), fm_model_class_grads(m, c),
           fm_model_class_numel(m, c), 1e-5);
  free(h);
  free(lg);
  fm_model_free(g);
  fm_model_free(m);
}

static void passes_match_cpu(void) { passes_match(0); }
static void attention_lora_matches_cpu(void) { passes_match(4); }

static void training_matches_and_repeats(void) {
  CU_ASSERT_FATAL(gpu != NULL);
  float *after[2][2];
  for (int run = 0; run < 2; run++) {
    fm_model *m = make(0, 0), *g = make(1, 0);
    fm_adamw om[2], og[2];
    for (int c = 0; c < 2; c++) {
      CU_ASSERT_FATAL(fm_adamw_create(&om[c], fm_model_class_numel(m, c)) == FM_OK);
      CU_ASSERT_FATAL(fm_adamw_create(&og[c], fm_model_class_numel(g, c)) == FM_OK);
    }
    int32_t tok[B * T], tgt[B * T];
    for (int s = 0; s < 3; s++) {
      batch(tok, tgt, 100 + s);
      double cc, gc;
      float cl = step(m, om, tok, tgt, &cc), gl = step(g, og, tok, tgt, &gc);
      printf("\n    step %d: loss GPU %.8f CPU %.8f, clip factor GPU %.8f CPU %.8f", s, gl, cl, gc, cc);
      FM_ASSERT_CLOSE(gl, cl, 1e-5, 0);
      FM_ASSERT_CLOSE(gc, cc, 1e-5, 0);
      CU_ASSERT(cc < 1.0);
    }
    for (int c = 0; c < 2; c++) {
      size_t n = fm_model_class_numel(m, c);
      report("parameters after 3 AdamW steps", c, fm_model_class_params(g, c), fm_model_class_params(m, c), n, 1e-5);
      /* the AdamW moments came back into the host state with the parameters */
      report("AdamW first moments", c, og[c].m, om[c].m, n, 1e-4);
      CU_ASSERT_EQUAL(og[c].step, 3);
      after[run][c] = malloc(n * sizeof(float));
      memcpy(after[run][c], fm_model_class_params(g, c), n * sizeof(float));
    }
    if (run == 1)
      for (int c = 0; c < 2; c++) {
        int same = !memcmp(after[0][c], after[1][c], fm_model_class_numel(m, c) * sizeof(float));
        printf("\n    class %d: second GPU run bitwise equal: %s", c, same ? "yes" : "NO");
        CU_ASSERT(same);
        free(after[0][c]);
        free(after[1][c]);
      }
    /* writes through the host mirror reach the device: the CPU's values into the
     * GPU model, then the same loss */
    for (int c = 0; c < 2; c++)
      memcpy(fm_model_class_params(g, c), fm_model_class_params(m, c), fm_model_class_numel(m, c) * sizeof(float));
    float cl = 0, gl = 0;
    CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &cl, NULL) == FM_OK);
    CU_ASSERT_FATAL(fm_model_forward(g, tok, tgt, B, T, &gl, NULL) == FM_OK);
    printf("\n    after copying the CPU's parameters in: loss GPU %.8f CPU %.8f", gl, cl);
    FM_ASSERT_CLOSE(gl, cl, 1e-6, 0);
    for (int c = 0; c < 2; c++) {
      fm_adamw_free(&om[c]);
      fm_adamw_free(&og[c]);
    }
    fm_model_free(g);
    fm_model_free(m);
  }
}

/* a whole model of another kind against the CPU: loss and gradients (one class) */
static void family_matches(const char *what, fm_model_shape s) {
  CU_ASSERT_FATAL(gpu != NULL);
  fm_model *m[2] = {NULL, NULL};
  for (int x = 0; x < 2; x++) {
    fm_model_set_default_backend(x ? gpu : NULL);
    fm_err e = fm_model_create(&m[x], &s, B, T, 1, NULL, NULL);
    fm_model_set_default_backend(NULL);
    if (e) printf("\n    %s: %s", what, fm_error_message());
    CU_ASSERT_FATAL(e == FM_OK);
    CU_ASSERT_FATAL(fm_model_init(m[x], 11) == FM_OK);
  }
  int32_t tok[B * T], tgt[B * T];
  batch(tok, tgt, 5);
  float ce[2], lb[2];
  for (int x = 0; x < 2; x++) {
    fm_model_zero_grads(m[x]);
    CU_ASSERT_FATAL(fm_model_forward(m[x], tok, tgt, B, T, &ce[x], &lb[x]) == FM_OK);
    CU_ASSERT_FATAL(fm_model_backward(m[x]) == FM_OK);
  }
  printf("\n    %s: loss GPU %.8f CPU %.8f, load balance GPU %.8f CPU %.8f", what, ce[1], ce[0], lb[1], lb[0]);
  FM_ASSERT_CLOSE(ce[1], ce[0], 1e-5, 0);
  FM_ASSERT_CLOSE(lb[1], lb[0], 1e-5, 1e-7);
  report(what, 0, fm_model_class_grads(m[1], 0), fm_model_class_grads(m[0], 0), fm_model_class_numel(m[0], 0), 1e-4);
  if (s.moe_mask) { /* the routing the runtime reads comes from the device */
    const int l = __builtin_ctzll(s.moe_mask); /* the first MoE block */
    const int32_t *pg = fm_model_router_picks(m[1], l), *pc = fm_model_router_picks(m[0], l);
    CU_ASSERT_FATAL(pg != NULL && pc != NULL);
    int same = 0;
    for (int i = 0; i < B * T * s.top_k; i++) same += pg[i] == pc[i];
    printf("\n    %s: %d of %d picks of block %d as on the CPU", what, same, B * T * s.top_k, l);
    CU_ASSERT(same == B * T * s.top_k);
    const float *qg = fm_model_router_probs(m[1], l), *qc = fm_model_router_probs(m[0], l);
    CU_ASSERT_FATAL(qg != NULL && qc != NULL);
    report("router probabilities", l, qg, qc, (size_t)B * T * s.experts, 1e-5);
  }
  fm_model_free(m[1]);
  fm_model_free(m[0]);
}

static void moe_and_llama_match_cpu(void) {
  fm_model_shape g = {.vocab = 101, .context = 24, .d = 40, .heads = 5, .layers = 2, .moe_mask = 3,
                      .experts = 4, .top_k = 2, .expert_type = FM_EXPERT_FULL, .lora_rank = 4,
                      .lora_alpha = 8.0f, .init_std = 0.2f, .load_balance = 0.01f};
  family_matches("gpt2 with MoE blocks", g);
  fm_model_shape l = g;
  l.family = FM_FAMILY_LLAMA;
  l.moe_mask = 0;
  family_matches("llama", l);
  fm_model_shape x = g;
  x.family = FM_FAMILY_MIXTRAL;
  x.moe_mask = 2;
  x.norm_topk = 1;
  family_matches("mixtral (dense block 0, MoE block 1)", x);
  fm_model_shape gq = x;
  gq.kv_heads = 1; /* grouped-query (here multi-query) attention: the fused kernel */
  family_matches("mixtral with one key/value head", gq);
  fm_model_shape q = g;
  q.family = FM_FAMILY_QWEN2_MOE;
  q.shared_ffn = 24;
  q.qk_norm = 1;
  q.expert_type = FM_EXPERT_LORA;
  q.attn_lora_rank = 2;
  family_matches("qwen2_moe (shared expert, q/k norms, LoRA experts and attention adapters)", q);
}

static void refused(const fm_model_shape *s, int B_, int T_, fm_err want, const char *needle) {
  fm_model *m = NULL;
  fm_model_set_default_backend(gpu);
  fm_err e = fm_model_create(&m, s, B_, T_, 1, NULL, NULL);
  fm_model_set_default_backend(NULL);
  printf("\n    refused (%d): %s", (int)e, e ? fm_error_message() : "(accepted)");
  CU_ASSERT_EQUAL(e, want);
  CU_ASSERT(e && strstr(fm_error_message(), needle) != NULL);
  CU_ASSERT(m == NULL);
  fm_error_clear();
  fm_model_free(m);
}

static void refusals(void) {
  CU_ASSERT_FATAL(gpu != NULL);
  fm_model_shape s = {.vocab = 32, .context = 8, .d = 16, .heads = 2, .layers = 2, .moe_mask = 2,
                      .experts = 4, .top_k = 2, .expert_type = FM_EXPERT_FULL, .lora_rank = 4,
                      .lora_alpha = 8.0f, .init_std = 0.2f};
  /* heads wider than the GPU attention's 128 values */
  s.moe_mask = 0;
  s.family = FM_FAMILY_LLAMA;
  s.d = 512;
  refused(&s, 2, 8, FM_ERR_CONFIG, "model.head_dim");
  /* far more than a GPU holds: refused with the figures, before allocating */
  fm_model_shape big = {.vocab = 50257, .context = 4096, .d = 8192, .heads = 64, .layers = 64,
                        .experts = 1, .top_k = 1, .lora_rank = 4, .lora_alpha = 8.0f, .init_std = 0.02f};
  refused(&big, 8, 4096, FM_ERR_MEM, "MiB free");
}

static int open_gpu(void) {
  if (fm_cuda_backend_open(&gpu, 0, 0) != FM_OK) {
    fprintf(stderr, "test_cuda_model: %s\n", fm_error_message());
    gpu = NULL;
  }
  return 0;
}
static int close_gpu(void) {
  fm_cuda_backend_close(gpu);
  return 0;
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"forward/backward against the CPU", passes_match_cpu},
                                  {"attention LoRA against the CPU", attention_lora_matches_cpu},
                                  {"AdamW steps against the CPU, repeatable", training_matches_and_repeats},
                                  {"MoE blocks and the llama family against the CPU", moe_and_llama_match_cpu},
                                  {"refusals: wide heads, too large", refusals},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("GPU model (CUDA backend)", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
