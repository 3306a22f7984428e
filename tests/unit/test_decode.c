/* test_decode.c - text generation: the cached attention kernel, the decoder's logits
 * against the full forward for every family (tiny models, and the Hugging Face
 * fixtures of tests/fixtures/hf), the sampler, and the generation loop (greedy equals
 * the argmax continuation of the full forward; same seed, same text).
 *
 * The decoder takes a sequence in steps of a few tokens and reads the earlier
 * positions from its key/value cache; fm_model_forward computes the whole sequence at
 * once. Causal attention makes row t of the full forward depend on tokens 0..t only,
 * so every step's logits must equal the full forward's rows at the same positions. */
#include "cunit_main.h"

#include "decode_impl.h"
#include "nn.h"

#include "fedmoe/decode.h"
#include "fedmoe/hf.h"
#include "fedmoe/io.h"
#include "fedmoe/model.h"
#include "fedmoe/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-5 /* of the row's largest logit */

static void fill(float *x, size_t n, uint64_t seed, float sd) {
  fm_rng r;
  fm_rng_init(&r, seed, 7, 0, FM_RNG_TEST);
  for (size_t i = 0; i < n; i++) x[i] = sd * (float)fm_rng_normal(&r);
}

/* largest |a - b| over n values, relative to the largest |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
  double d = 0.0, s = 0.0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs((double)a[i] - b[i]);
    if (e > d || e != e) d = e;
    if (fabs(b[i]) > s) s = fabs(b[i]);
  }
  return d / (s > 0 ? s : 1.0);
}

/* the kernel: with p0 = 0 and the whole sequence it is fm_attention_forward; from p0
 * on it gives that forward's later rows */
static void test_attention_cached(void) {
  enum { T = 13, H = 4, KVH = 2, hs = 6, W = (H + 2 * KVH) * hs, QD = H * hs, KD = KVH * hs };
  float qkv[T * W], ref[T * QD], att[H * T * T], kc[T * KD], vc[T * KD], out[T * QD], score[T * T];
  fill(qkv, T * W, 1, 1.0f);
  fm_attention_forward(ref, att, qkv, 1, T, H, KVH, hs);
  for (int t = 0; t < T; t++) {
    memcpy(kc + t * KD, qkv + t * W + QD, KD * sizeof(float));
    memcpy(vc + t * KD, qkv + t * W + QD + KD, KD * sizeof(float));
  }
  fm_attention_cached_forward(out, QD, score, qkv, W, kc, vc, KD, 0, T, H, KVH, hs);
  CU_ASSERT(rel_diff(out, ref, T * QD) <= 1e-6);
  for (int p0 = 1; p0 < T; p0 += 4) { /* rows p0.. against cache rows 0..p0+n-1 */
    const int n = T - p0 < 3 ? T - p0 : 3;
    memset(out, 0, sizeof out);
    fm_attention_cached_forward(out, QD, score, qkv + p0 * W, W, kc, vc, KD, p0, n, H, KVH, hs);
    CU_ASSERT(rel_diff(out, ref + p0 * QD, (size_t)n * QD) <= 1e-6);
  }
  /* a changed key of an earlier position changes the result: the cache is read */
  kc[0] += 1.0f;
  fm_attention_cached_forward(out, QD, score, qkv + 5 * W, W, kc, vc, KD, 5, 1, H, KVH, hs);
  CU_ASSERT(rel_diff(out, ref + 5 * QD, QD) > 1e-4);
}

/* ---- tiny models of every family (the shapes of test_model.c) ---- */
static fm_model_shape tiny(uint64_t moe_mask, int type) {
  fm_model_shape s = {.vocab = 32, .context = 12, .d = 16, .heads = 2, .layers = 2,
                      .moe_mask = moe_mask, .experts = 4, .top_k = 2, .expert_type = type,
                      .lora_rank = 4, .lora_alpha = 8.0f, .init_std = 0.3f, .load_balance = 0.05f,
                      .norm_topk = 1};
  return s;
}

static fm_model_shape tiny_llama(int family, uint64_t moe_mask, int type) {
  fm_model_shape s = tiny(moe_mask, type);
  s.family = family;
  s.heads = 4;
  s.kv_heads = 2;
  s.head_dim = 4;
  s.ffn = 24;
  s.expert_ffn = 12;
  s.norm_eps = 1e-6f;
  s.rope_type = FM_ROPE_DEFAULT;
  s.rope_theta = 100.0f;
  s.norm_topk = family == FM_FAMILY_MIXTRAL;
  s.attn_bias = family == FM_FAMILY_QWEN2_MOE;
  s.qk_norm = family == FM_FAMILY_OLMOE;
  if (family == FM_FAMILY_QWEN2_MOE) s.shared_ffn = 20;
  if (family == FM_FAMILY_LLAMA) {
    s.rope_type = FM_ROPE_LLAMA3;
    s.rope_factor = 8.0f;
    s.rope_low_freq = 1.0f;
    s.rope_high_freq = 4.0f;
    s.rope_orig_ctx = 4;
  }
  return s;
}

/* every weight random (norms and biases too; LoRA B nonzero), so no path is idle */
static fm_model *make(const fm_model_shape *s, int T, uint64_t seed) {
  fm_model *m = NULL;
  if (fm_model_create(&m, s, 1, T, 1, NULL, NULL)) {
    printf("\n  create: %s", fm_error_message());
    return NULL;
  }
  fm_model_init(m, seed);
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (t->group == FM_GROUP_NORM || strstr(t->name, ".bias") || strstr(t->name, "lora_B"))
      fill(t->w, t->numel, seed * 131 + (uint64_t)i, 0.2f);
    if (t->group == FM_GROUP_NORM)
      for (size_t j = 0; j < t->numel; j++) t->w[j] += 1.0f;
  }
  return m;
}

static void tokens(int32_t *tok, int n, int V, uint64_t seed) {
  fm_rng r;
  fm_rng_init(&r, seed, 1, 0, FM_RNG_TEST);
  for (int i = 0; i < n; i++) tok[i] = (int32_t)fm_rng_below(&r, (uint64_t)V);
}

/* The decoder over tok[0..T) in steps of the sizes in steps[] (then single tokens)
 * against one full forward over the whole sequence; returns the largest relative
 * difference of any row. */
static double decode_vs_full(fm_model *m, const int32_t *tok, int T, const int *steps, int nsteps) {
  const int V = fm_model_get_shape(m)->vocab;
  int32_t tgt[256];
  for (int i = 0; i < T; i++) tgt[i] = -1;
  CU_ASSERT_EQUAL_FATAL(fm_model_forward(m, tok, tgt, 1, T, NULL, NULL), FM_OK);
  float *full = malloc((size_t)T * V * sizeof *full);
  memcpy(full, fm_model_logits(m), (size_t)T * V * sizeof *full);
  int rows = 1;
  for (int i = 0; i < nsteps; i++)
    if (steps[i] > rows) rows = steps[i];
  fm_decoder *d = NULL;
  CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, rows, 0), FM_OK);
  double worst = 0.0;
  for (int p = 0, i = 0; p < T; i++) {
    int n = i < nsteps ? steps[i] : 1;
    if (n > T - p) n = T - p;
    const float *lg = NULL;
    CU_ASSERT_EQUAL_FATAL(fm_decoder_step(d, tok + p, n, 1, &lg), FM_OK);
    for (int r = 0; r < n; r++) {
      double e = rel_diff(lg + (size_t)r * V, full + (size_t)(p + r) * V, (size_t)V);
      if (e > worst || e != e) worst = e;
    }
    p += n;
    CU_ASSERT_EQUAL(fm_decoder_pos(d), p);
  }
  /* the last row alone (all = 0) is the same row */
  fm_decoder_reset(d);
  const float *lg = NULL;
  for (int p = 0; p < T; p += rows) {
    int n = T - p < rows ? T - p : rows;
    CU_ASSERT_EQUAL_FATAL(fm_decoder_step(d, tok + p, n, 0, &lg), FM_OK);
    double e = rel_diff(lg, full + (size_t)(p + n - 1) * V, (size_t)V);
    if (e > worst || e != e) worst = e;
  }
  free(full);
  fm_decoder_free(d);
  return worst;
}

static void check_family(const char *what, const fm_model_shape *s, uint64_t seed) {
  const int T = s->context;
  fm_model *m = make(s, T, seed);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int32_t tok[64];
  tokens(tok, T, s->vocab, seed + 1);
  static const int steps[] = {4, 1, 3, 1}; /* a prompt, a token, a few, then one at a time */
  double e = decode_vs_full(m, tok, T, steps, 4);
  printf("\n    %-28s decode vs full forward: %.2e", what, e);
  CU_ASSERT(e <= RTOL);
  fm_model_free(m);
}

static void test_gpt2(void) {
  fm_model_shape s = tiny(0, FM_EXPERT_FULL);
  check_family("gpt2 dense", &s, 3);
  s = tiny(3, FM_EXPERT_FULL);
  check_family("gpt2 moe", &s, 4);
  s = tiny(2, FM_EXPERT_LORA);
  check_family("gpt2 lora experts", &s, 5);
  s = tiny(2, FM_EXPERT_FULL);
  s.attn_lora_rank = 3;
  check_family("gpt2 attention lora", &s, 6);
}

static void test_llama_family(void) {
  fm_model_shape s = tiny_llama(FM_FAMILY_LLAMA, 0, FM_EXPERT_FULL);
  check_family("llama (llama3 rope, gqa)", &s, 7);
  s = tiny_llama(FM_FAMILY_MIXTRAL, 3, FM_EXPERT_FULL);
  check_family("mixtral", &s, 8);
  s = tiny_llama(FM_FAMILY_OLMOE, 3, FM_EXPERT_FULL);
  check_family("olmoe (q/k norm)", &s, 9);
  s = tiny_llama(FM_FAMILY_QWEN2_MOE, 2, FM_EXPERT_FULL);
  check_family("qwen2_moe (shared expert)", &s, 10);
  s = tiny_llama(FM_FAMILY_MIXTRAL, 2, FM_EXPERT_LORA);
  check_family("mixtral lora experts", &s, 11);
  s = tiny_llama(FM_FAMILY_OLMOE, 3, FM_EXPERT_LORA);
  s.attn_lora_rank = 2;
  check_family("olmoe lora + attention lora", &s, 12);
  s = tiny_llama(FM_FAMILY_QWEN2_MOE, 3, FM_EXPERT_FULL);
  s.tied = 1;
  check_family("qwen2_moe tied head", &s, 13);
}

/* a route mask set on the model (CoMiGS's clients) is followed by the decoder */
static void test_route_mask(void) {
  static const uint8_t only[4] = {0, 1, 1, 0};
  fm_model_shape s = tiny_llama(FM_FAMILY_MIXTRAL, 3, FM_EXPERT_FULL);
  fm_model *m = make(&s, s.context, 14);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int32_t tok[64];
  tokens(tok, s.context, s.vocab, 15);
  static const int steps[] = {5};
  const double free_e = decode_vs_full(m, tok, s.context, steps, 1);
  float unmasked[32];
  fm_decoder *d = NULL;
  const float *lg;
  CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, 1, 1), FM_OK);
  CU_ASSERT_EQUAL(fm_decoder_step(d, tok, 1, 0, &lg), FM_OK);
  memcpy(unmasked, lg, sizeof unmasked);
  for (int l = 0; l < 2; l++) CU_ASSERT_EQUAL(fm_model_set_route_mask(m, l, only), FM_OK);
  const double masked_e = decode_vs_full(m, tok, s.context, steps, 1);
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_decoder_step(d, tok, 1, 0, &lg), FM_OK);
  CU_ASSERT(rel_diff(lg, unmasked, 32) > 1e-3); /* the mask changed something */
  CU_ASSERT(free_e <= RTOL && masked_e <= RTOL);
  fm_decoder_free(d);
  fm_model_free(m);
}

/* bad steps fail before any work, the cache untouched */
static void test_step_errors(void) {
  fm_model_shape s = tiny(0, FM_EXPERT_FULL);
  fm_model *m = make(&s, 1, 16);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  fm_decoder *d = NULL;
  CU_ASSERT_EQUAL(fm_decoder_create(&d, m, 0, 0), FM_ERR_ARG);
  CU_ASSERT_EQUAL(fm_decoder_create(&d, m, s.context + 1, 0), FM_ERR_ARG);
  CU_ASSERT_EQUAL(fm_decoder_create(&d, m, 4, s.context + 1), FM_ERR_ARG);
  CU_ASSERT_EQUAL(fm_decoder_create(&d, m, 4, 3), FM_ERR_ARG);
  CU_ASSERT_PTR_NULL(d);
  /* a cache of 6 positions: the seventh token is refused */
  CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, 4, 6), FM_OK);
  CU_ASSERT_EQUAL(fm_decoder_context(d), 6);
  int32_t six[6] = {1, 2, 3, 4, 5, 6};
  const float *lg6;
  CU_ASSERT_EQUAL(fm_decoder_step(d, six, 4, 0, &lg6), FM_OK);
  CU_ASSERT_EQUAL(fm_decoder_step(d, six + 4, 2, 0, &lg6), FM_OK);
  CU_ASSERT_EQUAL(fm_decoder_step(d, six, 1, 0, &lg6), FM_ERR_ARG);
  fm_decoder_free(d);
  CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, 4, 0), FM_OK);
  int32_t tok[16] = {0};
  const float *lg;
  CU_ASSERT_EQUAL(fm_decoder_step(d, tok, 5, 0, &lg), FM_ERR_ARG);
  tok[2] = 32;
  CU_ASSERT_EQUAL(fm_decoder_step(d, tok, 3, 0, &lg), FM_ERR_DATA);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "outside the vocabulary"));
  tok[2] = 0;
  CU_ASSERT_EQUAL(fm_decoder_pos(d), 0);
  for (int p = 0; p < s.context; p += 4) CU_ASSERT_EQUAL(fm_decoder_step(d, tok, 4, 0, &lg), FM_OK);
  CU_ASSERT_EQUAL(fm_decoder_step(d, tok, 1, 0, &lg), FM_ERR_ARG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "context"));
  CU_ASSERT_EQUAL(fm_decoder_pos(d), s.context);
  fm_decoder_free(d);
  fm_model_free(m);
}

/* ---- the Hugging Face fixtures ---- */
static fm_model *load_fixture(const char *name, int T) {
  char rel[64];
  snprintf(rel, sizeof rel, "hf/%s", name);
  const char *dir = fm_fixture(rel);
  fm_hf_config hc;
  fm_model *m = NULL;
  if (fm_hf_config_read(dir, &hc) || fm_model_create(&m, &hc.s, 1, T, 1, NULL, NULL) || fm_model_init(m, 0) ||
      fm_hf_load(m, dir, FM_UPCYCLE_NONE)) {
    printf("\n  %s: %s", dir, fm_error_message());
    fm_model_free(m);
    return NULL;
  }
  return m;
}

/* the first n bytes of the fixture text, as byte ids */
static void text_ids(int32_t *ids, int n) {
  char *text = NULL;
  size_t len = 0;
  CU_ASSERT_EQUAL_FATAL(fm_read_file(fm_fixture("text/sailing"), &text, &len), FM_OK);
  CU_ASSERT_FATAL(len >= (size_t)n);
  for (int i = 0; i < n; i++) ids[i] = (uint8_t)text[i];
  free(text);
}

static const char *const fixtures[] = {"gpt2", "llama", "qwen2", "mixtral", "mixtral_top1",
                                       "olmoe", "olmoe_top1", "qwen2_moe"};
enum { NFIX = sizeof fixtures / sizeof fixtures[0] };

static void test_hf_fixtures(void) {
  enum { T = 48 };
  int32_t ids[T];
  text_ids(ids, T);
  static const int steps[] = {16, 1, 5};
  for (int f = 0; f < NFIX; f++) {
    fm_model *m = load_fixture(fixtures[f], T);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    double e = decode_vs_full(m, ids, T, steps, 3);
    printf("\n    hf/%-24s decode vs full forward: %.2e", fixtures[f], e);
    CU_ASSERT(e <= RTOL);
    fm_model_free(m);
  }
}

static int32_t argmax(const float *x, int n) {
  int32_t b = 0;
  for (int i = 1; i < n; i++)
    if (x[i] > x[b]) b = i;
  return b;
}

/* greedy generation = the argmax continuation of the full forward, recomputed over
 * the whole sequence for every new token */
static void test_greedy(void) {
  enum { P = 10, NEW = 30, T = P + NEW };
  int32_t seq[T], tgt[T], out[NEW];
  for (int f = 0; f < NFIX; f++) {
    fm_model *m = load_fixture(fixtures[f], T);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    text_ids(seq, P);
    for (int i = 0; i < T; i++) tgt[i] = -1;
    for (int n = P; n < T; n++) {
      CU_ASSERT_EQUAL_FATAL(fm_model_forward(m, seq, tgt, 1, n, NULL, NULL), FM_OK);
      seq[n] = argmax(fm_model_logits(m) + (size_t)(n - 1) * 256, 256);
    }
    fm_decoder *d = NULL;
    CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, 4, 0), FM_OK);
    fm_gen_opts o = {.max_new = NEW, .eos = -1, .sampler = {.temperature = 0.0f, .top_p = 1.0f, .seed = 1}};
    fm_gen_result r;
    CU_ASSERT_EQUAL_FATAL(fm_generate(d, seq, P, &o, out, &r), FM_OK);
    CU_ASSERT_EQUAL(r.generated, NEW);
    CU_ASSERT_EQUAL(r.stop, FM_GEN_TOKENS);
    CU_ASSERT_EQUAL(memcmp(out, seq + P, sizeof out), 0);
    /* a nucleus of one id is the greedy choice, whatever the temperature and seed */
    fm_decoder_reset(d);
    o.sampler = (fm_sampler){.temperature = 1.5f, .top_p = 1e-6f, .seed = 99};
    CU_ASSERT_EQUAL_FATAL(fm_generate(d, seq, P, &o, out, &r), FM_OK);
    CU_ASSERT_EQUAL(memcmp(out, seq + P, sizeof out), 0);
    fm_decoder_free(d);
    fm_model_free(m);
  }
}

/* same seed, same tokens; another seed, other tokens; the stop at the context; the
 * end-of-text token ends the generation and is not kept */
static void test_sampling_loop(void) {
  enum { P = 6, NEW = 24 };
  fm_model *m = load_fixture("llama", 1);
  CU_ASSERT_PTR_NOT_NULL_FATAL(m);
  int32_t prompt[P], a[64], b[64];
  text_ids(prompt, P);
  fm_decoder *d = NULL;
  CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, 8, 0), FM_OK);
  fm_gen_opts o = {.max_new = NEW, .eos = -1, .sampler = {.temperature = 1.0f, .top_p = 1.0f, .seed = 5}};
  fm_gen_result r;
  CU_ASSERT_EQUAL(fm_generate(d, prompt, P, &o, a, &r), FM_OK);
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_generate(d, prompt, P, &o, b, &r), FM_OK);
  CU_ASSERT_EQUAL(memcmp(a, b, NEW * sizeof *a), 0);
  o.sampler.seed = 6;
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_generate(d, prompt, P, &o, b, &r), FM_OK);
  CU_ASSERT_NOT_EQUAL(memcmp(a, b, NEW * sizeof *a), 0);
  /* a draw not the greedy one: sampling does sample */
  fm_decoder_reset(d);
  o.sampler.temperature = 0.0f;
  CU_ASSERT_EQUAL(fm_generate(d, prompt, P, &o, b, &r), FM_OK);
  CU_ASSERT_NOT_EQUAL(memcmp(a, b, NEW * sizeof *a), 0);
  /* the end-of-text id: the first time seed 5 draws a[3], it stops before it */
  o.sampler.temperature = 1.0f;
  o.sampler.seed = 5;
  o.eos = a[3];
  int first = 0;
  while (a[first] != a[3]) first++;
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_generate(d, prompt, P, &o, b, &r), FM_OK);
  CU_ASSERT_EQUAL(r.stop, FM_GEN_EOS);
  CU_ASSERT_EQUAL(r.generated, first);
  CU_ASSERT_EQUAL(memcmp(a, b, (size_t)first * sizeof *a), 0);
  /* the context (64): a prompt of 60 leaves room for 5 new tokens */
  int32_t longp[64];
  text_ids(longp, 64);
  o.eos = -1;
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_generate(d, longp, 60, &o, b, &r), FM_OK);
  CU_ASSERT_EQUAL(r.stop, FM_GEN_CONTEXT);
  CU_ASSERT_EQUAL(r.generated, 5);
  CU_ASSERT_EQUAL(fm_decoder_pos(d), 64);
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_generate(d, longp, 64, &o, b, &r), FM_OK);
  CU_ASSERT_EQUAL(r.generated, 1);
  fm_decoder_reset(d);
  CU_ASSERT_EQUAL(fm_generate(d, longp, 0, &o, b, &r), FM_ERR_ARG);
  fm_decoder_free(d);
  /* a cache of prompt + max_new positions (fedmoe generate's) is enough: the same
   * tokens as with the whole context, stopped by max_new */
  CU_ASSERT_EQUAL_FATAL(fm_decoder_create(&d, m, 8, P + NEW), FM_OK);
  o.sampler.seed = 5;
  CU_ASSERT_EQUAL(fm_generate(d, prompt, P, &o, b, &r), FM_OK);
  CU_ASSERT_EQUAL(r.stop, FM_GEN_TOKENS);
  CU_ASSERT_EQUAL(r.generated, NEW);
  CU_ASSERT_EQUAL(memcmp(a, b, NEW * sizeof *a), 0);
  fm_decoder_free(d);
  fm_model_free(m);
}

/* the sampler alone: greedy ties, the tempered distribution, the nucleus, the
 * vocabulary limit */
static void test_sampler(void) {
  enum { V = 5, DRAWS = 20000 };
  void *work = malloc(fm_sample_scratch(V));
  const float tie[V] = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  fm_sampler g = {.temperature = 0.0f, .top_p = 1.0f, .seed = 1, .vocab = V};
  CU_ASSERT_EQUAL(fm_sample(&g, tie, V, 0, work), 1); /* the lower of two equal logits */
  g.vocab = 1;
  CU_ASSERT_EQUAL(fm_sample(&g, tie, V, 0, work), 0);
  /* p = 0.1, 0.2, 0.3, 0.4, 0 (log 0 as a very low logit) */
  const float lg[V] = {logf(0.1f), logf(0.2f), logf(0.3f), logf(0.4f), -1e30f};
  static const double p[V] = {0.1, 0.2, 0.3, 0.4, 0.0};
  fm_sampler s = {.temperature = 1.0f, .top_p = 1.0f, .seed = 3, .vocab = V};
  int count[V] = {0};
  for (int k = 0; k < DRAWS; k++) count[fm_sample(&s, lg, V, k, work)]++;
  for (int i = 0; i < V; i++) /* within 5 standard deviations */
    CU_ASSERT(fabs(count[i] - DRAWS * p[i]) <= 5 * sqrt(DRAWS * p[i] * (1 - p[i])) + 1);
  /* temperature 2: p ~ sqrt(p) */
  s.temperature = 2.0f;
  memset(count, 0, sizeof count);
  double z = 0;
  for (int i = 0; i < V; i++) z += sqrt(p[i]);
  for (int k = 0; k < DRAWS; k++) count[fm_sample(&s, lg, V, k, work)]++;
  for (int i = 0; i < 4; i++) {
    double q = sqrt(p[i]) / z;
    CU_ASSERT(fabs(count[i] - DRAWS * q) <= 5 * sqrt(DRAWS * q * (1 - q)));
  }
  /* nucleus 0.5: ids 3 and 2 (0.4 + 0.3), drawn 4:3 */
  s.temperature = 1.0f;
  s.top_p = 0.5f;
  memset(count, 0, sizeof count);
  for (int k = 0; k < DRAWS; k++) count[fm_sample(&s, lg, V, k, work)]++;
  CU_ASSERT(count[0] == 0 && count[1] == 0 && count[4] == 0);
  CU_ASSERT(fabs(count[3] - DRAWS * 4.0 / 7) <= 5 * sqrt(DRAWS * (4.0 / 7) * (3.0 / 7)));
  /* vocab limit 2: only ids 0 and 1, 1:2 */
  s.top_p = 1.0f;
  s.vocab = 2;
  memset(count, 0, sizeof count);
  for (int k = 0; k < DRAWS; k++) count[fm_sample(&s, lg, V, k, work)]++;
  CU_ASSERT(count[0] + count[1] == DRAWS);
  CU_ASSERT(fabs(count[1] - DRAWS * 2.0 / 3) <= 5 * sqrt(DRAWS * (2.0 / 3) * (1.0 / 3)));
  /* the same (seed, step) draws the same id; the draws of two seeds differ */
  s.vocab = V;
  int same = 0;
  fm_sampler t = s;
  t.seed = 4;
  for (int k = 0; k < 200; k++) {
    CU_ASSERT_EQUAL(fm_sample(&s, lg, V, k, work), fm_sample(&s, lg, V, k, work));
    same += fm_sample(&s, lg, V, k, work) == fm_sample(&t, lg, V, k, work);
  }
  CU_ASSERT(same < 150);
  free(work);
}

int fm_test_register(void) {
  static const fm_test tests[] = {
    {"cached attention kernel", test_attention_cached},
    {"decode = full forward, gpt2", test_gpt2},
    {"decode = full forward, llama family", test_llama_family},
    {"decode follows the route mask", test_route_mask},
    {"decoder step errors", test_step_errors},
    {"decode = full forward, HF fixtures", test_hf_fixtures},
    {"greedy = argmax continuation", test_greedy},
    {"sampling loop: seeds, eos, context", test_sampling_loop},
    {"sampler", test_sampler},
    {NULL, NULL}};
  return fm_test_suite("decode", tests);
}
