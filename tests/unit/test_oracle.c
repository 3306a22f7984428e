/* test_oracle.c - the C model against the PyTorch oracle (tests/fixtures/make_oracle.py).
 *
 * Each fixture oracle_{dense,moe,lora,llama,qwen2moe,mixtral,olmoelora}.bin holds a tiny model's
 * shape, its weights,
 * a batch of tokens and targets, and the float64 reference logits, cross-entropy,
 * load-balancing term and gradients of (ce + lb) for every tensor (format in
 * tests/fixtures/README.md). The test builds the C model of that shape (one class,
 * every tensor trainable), checks that it has exactly the fixture's tensor names and
 * shapes, copies the weights in, runs forward and backward, and compares.
 *
 * Criterion, per value x of a tensor (logits, or one tensor's gradient) with
 * reference r:  |x - r| <= 1e-4 * max(|r|, rms(ref))  where rms(ref) is the root mean
 * square of that whole tensor's reference values: relative for the values of
 * typical size and above, relative to the tensor's typical magnitude for values near
 * zero. The scalars ce and lb: |x - r| <= 1e-4 * |r| (lb of the dense model: 0). */
#include "cunit_main.h"

#include "fedmoe/model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ORACLE_RTOL 1e-4
#define ORACLE_VERSION 1        /* gpt2 fixtures */
#define ORACLE_VERSION_FAMILY 2 /* llama-family fixtures: the header adds the family fields */

typedef struct {
  char name[64];
  int rows, cols;
  size_t numel;
  float *w;  /* weights, float32 */
  double *g; /* reference gradient of ce + lb */
  int seen;  /* matched by a C tensor */
} ref_tensor;

typedef struct {
  fm_model_shape s;
  int B, T;
  int32_t *tokens, *targets;
  int nt;
  ref_tensor *t;
  double *logits; /* [B*T*V] */
  double ce, lb;
  unsigned char *buf; /* the file; w and g point into copies, not here */
} oracle;

/* ---- reading ---- */

typedef struct {
  const unsigned char *p;
  size_t n, at;
  int bad;
} cursor;

static void take(cursor *c, void *dst, size_t bytes) {
  if (c->bad || bytes > c->n - c->at) {
    c->bad = 1;
    memset(dst, 0, bytes);
    return;
  }
  memcpy(dst, c->p + c->at, bytes); /* the files are little-endian, as the host */
  c->at += bytes;
}

static int32_t take_i32(cursor *c) {
  int32_t v;
  take(c, &v, sizeof v);
  return v;
}

static void *take_array(cursor *c, size_t count, size_t size) {
  if (c->bad || count > (c->n - c->at) / size) {
    c->bad = 1;
    return NULL;
  }
  void *a = malloc(count > 0 ? count * size : 1);
  if (!a) {
    c->bad = 1;
    return NULL;
  }
  take(c, a, count * size);
  return a;
}

static void oracle_free(oracle *o) {
  for (int i = 0; o->t && i < o->nt; i++) {
    free(o->t[i].w);
    free(o->t[i].g);
  }
  free(o->t);
  free(o->tokens);
  free(o->targets);
  free(o->logits);
  free(o->buf);
  memset(o, 0, sizeof *o);
}

/* Read a fixture; 0 on success, else a message on stderr. */
static int oracle_read(const char *path, oracle *o) {
  memset(o, 0, sizeof *o);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "oracle: cannot open %s\n", path);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  o->buf = malloc(n > 0 ? (size_t)n : 1);
  if (n <= 0 || !o->buf || fread(o->buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    fprintf(stderr, "oracle: cannot read %s\n", path);
    return 1;
  }
  fclose(f);
  cursor c = {o->buf, (size_t)n, 0, 0};
  char magic[8];
  take(&c, magic, 8);
  if (c.bad || memcmp(magic, "FMORACLE", 8)) {
    fprintf(stderr, "oracle: %s: not an oracle fixture\n", path);
    return 1;
  }
  int version = take_i32(&c);
  if (version != ORACLE_VERSION && version != ORACLE_VERSION_FAMILY) {
    fprintf(stderr, "oracle: %s: version %d, expected %d or %d\n", path, version, ORACLE_VERSION,
            ORACLE_VERSION_FAMILY);
    return 1;
  }
  fm_model_shape *s = &o->s;
  s->vocab = take_i32(&c);
  s->context = take_i32(&c);
  s->d = take_i32(&c);
  s->heads = take_i32(&c);
  s->layers = take_i32(&c);
  s->moe_mask = (uint64_t)(uint32_t)take_i32(&c);
  s->experts = take_i32(&c);
  s->top_k = take_i32(&c);
  s->expert_type = take_i32(&c);
  s->lora_rank = take_i32(&c);
  take(&c, &s->lora_alpha, sizeof(float));
  take(&c, &s->load_balance, sizeof(float));
  s->init_std = 0.02f; /* unused: every weight comes from the fixture */
  s->norm_topk = 1;    /* version 1 fixtures: gpt2 with renormalised top-k weights */
  if (version == ORACLE_VERSION_FAMILY) {
    s->family = take_i32(&c);
    s->kv_heads = take_i32(&c);
    s->head_dim = take_i32(&c);
    s->ffn = take_i32(&c);
    s->expert_ffn = take_i32(&c);
    s->shared_ffn = take_i32(&c);
    s->norm_topk = take_i32(&c);
    s->tied = take_i32(&c);
    s->attn_bias = take_i32(&c);
    s->qk_norm = take_i32(&c);
    s->rope_type = take_i32(&c);
    s->rope_orig_ctx = take_i32(&c);
    s->attn_lora_rank = take_i32(&c);
    take(&c, &s->norm_eps, sizeof(float));
    take(&c, &s->rope_theta, sizeof(float));
    take(&c, &s->rope_factor, sizeof(float));
    take(&c, &s->rope_low_freq, sizeof(float));
    take(&c, &s->rope_high_freq, sizeof(float));
  }
  o->B = take_i32(&c);
  o->T = take_i32(&c);
  if (c.bad || o->B <= 0 || o->T <= 0 || s->vocab <= 0 || o->B > 1 << 16 || o->T > 1 << 16) {
    fprintf(stderr, "oracle: %s: bad header\n", path);
    return 1;
  }
  size_t bt = (size_t)o->B * (size_t)o->T;
  o->tokens = take_array(&c, bt, sizeof(int32_t));
  o->targets = take_array(&c, bt, sizeof(int32_t));
  o->nt = take_i32(&c);
  if (c.bad || o->nt <= 0 || o->nt > 100000) {
    fprintf(stderr, "oracle: %s: bad tensor count\n", path);
    return 1;
  }
  o->t = calloc((size_t)o->nt, sizeof *o->t);
  if (!o->t) return 1;
  for (int i = 0; i < o->nt && !c.bad; i++) {
    ref_tensor *t = &o->t[i];
    int len = take_i32(&c);
    if (len <= 0 || len >= (int)sizeof t->name) {
      c.bad = 1;
      break;
    }
    take(&c, t->name, (size_t)len);
    t->name[len] = 0;
    t->rows = take_i32(&c);
    t->cols = take_i32(&c);
    if (t->rows <= 0 || t->cols <= 0) {
      c.bad = 1;
      break;
    }
    t->numel = (size_t)t->rows * (size_t)t->cols;
    t->w = take_array(&c, t->numel, sizeof(float));
    t->g = take_array(&c, t->numel, sizeof(double));
  }
  o->logits = take_array(&c, bt * (size_t)s->vocab, sizeof(double));
  take(&c, &o->ce, sizeof(double));
  take(&c, &o->lb, sizeof(double));
  take(&c, magic, 8);
  if (c.bad || memcmp(magic, "FMORACLE", 8) || c.at != c.n) {
    fprintf(stderr, "oracle: %s: truncated or malformed\n", path);
    return 1;
  }
  return 0;
}

/* ---- comparing ---- */

/* Compare n values against the reference with the criterion above; returns the
 * number of values out of tolerance, prints the first few, and raises *worst to
 * the largest |x - r| / max(|r|, rms). */
static size_t compare(const char *fixture, const char *what, const float *x, const double *ref,
                      size_t n, double *worst) {
  double ss = 0;
  for (size_t i = 0; i < n; i++) ss += ref[i] * ref[i];
  double rms = sqrt(ss / (double)n);
  size_t bad = 0;
  double tmax = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)x[i] - ref[i]);
    double scale = fmax(fabs(ref[i]), rms);
    double rel = scale > 0 ? d / scale : (d > 0 ? INFINITY : 0);
    if (!(rel <= ORACLE_RTOL)) { /* NaN fails too */
      if (bad < 5)
        fprintf(stderr, "oracle %s: %s[%zu] = %.9g, reference %.9g (rel %.3g, scale %.3g)\n",
                fixture, what, i, (double)x[i], ref[i], rel, scale);
      bad++;
    }
    if (!(rel <= tmax)) tmax = rel;
  }
  if (bad) fprintf(stderr, "oracle %s: %s: %zu of %zu values out of tolerance\n", fixture, what, bad, n);
  if (!(tmax <= *worst)) *worst = tmax;
  return bad;
}

static size_t compare_scalar(const char *fixture, const char *what, float x, double ref,
                             double *worst) {
  double d = fabs((double)x - ref), scale = fabs(ref);
  double rel = scale > 0 ? d / scale : (d > 0 ? INFINITY : 0);
  if (!(rel <= *worst)) *worst = rel;
  if (rel <= ORACLE_RTOL) return 0;
  fprintf(stderr, "oracle %s: %s = %.9g, reference %.9g (rel %.3g)\n", fixture, what, (double)x, ref,
          rel);
  return 1;
}

static void run_fixture(const char *name) {
  char file[64];
  snprintf(file, sizeof file, "oracle_%s.bin", name);
  oracle o;
  int rc = oracle_read(fm_fixture(file), &o);
  CU_ASSERT_EQUAL_FATAL(rc, 0);

  fm_model *m = NULL;
  fm_err e = fm_model_create(&m, &o.s, o.B, o.T, 1, NULL, NULL);
  CU_ASSERT_EQUAL(e, FM_OK);
  if (e != FM_OK || !m) {
    fprintf(stderr, "oracle %s: fm_model_create failed\n", name);
    oracle_free(&o);
    return;
  }

  /* the same set of tensor names with the same shapes, each trainable */
  int mismatch = 0;
  int nc = fm_model_ntensors(m);
  for (int i = 0; i < nc; i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    int j = 0;
    while (j < o.nt && strcmp(o.t[j].name, t->name)) j++;
    if (j == o.nt) {
      fprintf(stderr, "oracle %s: C tensor %s is not in the fixture\n", name, t->name);
      mismatch++;
      continue;
    }
    o.t[j].seen++;
    if (t->rows != o.t[j].rows || t->cols != o.t[j].cols || t->numel != o.t[j].numel) {
      fprintf(stderr, "oracle %s: %s is [%d,%d] in C, [%d,%d] in the fixture\n", name, t->name,
              t->rows, t->cols, o.t[j].rows, o.t[j].cols);
      mismatch++;
    }
    if (!t->w || !t->g || t->frozen) {
      fprintf(stderr, "oracle %s: %s is not trainable (NULL classifier)\n", name, t->name);
      mismatch++;
    }
  }
  for (int j = 0; j < o.nt; j++)
    if (o.t[j].seen != 1) {
      fprintf(stderr, "oracle %s: fixture tensor %s appears %d times in the C model\n", name,
              o.t[j].name, o.t[j].seen);
      mismatch++;
    }
  CU_ASSERT_EQUAL(mismatch, 0);

  /* weights in; the C model may hold tensors the fixture lacks only on failure above */
  for (int j = 0; j < o.nt; j++) {
    fm_tensor *t = fm_model_find(m, o.t[j].name);
    CU_ASSERT_PTR_NOT_NULL(t);
    if (t && t->numel == o.t[j].numel) memcpy(t->w, o.t[j].w, t->numel * sizeof(float));
  }

  /* twice: the second pass checks that zero_grads and a fresh forward leave no state */
  for (int pass = 0; pass < 2 && !mismatch; pass++) {
    double worst_logit = 0, worst_grad = 0, worst_loss = 0;
    size_t bad = 0;
    float ce = NAN, lb = NAN;
    fm_model_zero_grads(m);
    CU_ASSERT_EQUAL_FATAL(fm_model_forward(m, o.tokens, o.targets, o.B, o.T, &ce, &lb), FM_OK);
    CU_ASSERT_EQUAL_FATAL(fm_model_backward(m), FM_OK);
    bad += compare_scalar(name, "ce", ce, o.ce, &worst_loss);
    bad += compare_scalar(name, "lb", lb, o.lb, &worst_loss);
    const float *logits = fm_model_logits(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(logits);
    bad += compare(name, "logits", logits, o.logits, (size_t)o.B * o.T * o.s.vocab, &worst_logit);
    const char *worst_name = "";
    for (int j = 0; j < o.nt; j++) {
      const fm_tensor *t = fm_model_find(m, o.t[j].name);
      char what[96];
      snprintf(what, sizeof what, "grad %s", o.t[j].name);
      double w = 0;
      bad += compare(name, what, t->g, o.t[j].g, o.t[j].numel, &w);
      if (w > worst_grad) {
        worst_grad = w;
        worst_name = o.t[j].name;
      }
    }
    CU_ASSERT_EQUAL(bad, 0);
    fprintf(stderr,
            "oracle %s pass %d: max rel error: ce/lb %.3g, logits %.3g, gradients %.3g (%s); "
            "%zu values out of tolerance\n",
            name, pass + 1, worst_loss, worst_logit, worst_grad, worst_name, bad);
  }
  fm_model_free(m);
  oracle_free(&o);
}

static void test_dense(void) { run_fixture("dense"); }
static void test_moe(void) { run_fixture("moe"); }
static void test_lora(void) { run_fixture("lora"); }
static void test_llama(void) { run_fixture("llama"); }
static void test_qwen2moe(void) { run_fixture("qwen2moe"); }
static void test_mixtral(void) { run_fixture("mixtral"); }
static void test_olmoelora(void) { run_fixture("olmoelora"); }

/* The comparison itself must reject a value off by more than the tolerance. */
static void test_compare_rejects(void) {
  double ref[4] = {1.0, -2.0, 1e-6, 0.5};
  float x[4] = {1.0f, -2.0f, 1e-6f, 0.5f};
  double worst = 0;
  CU_ASSERT_EQUAL(compare("self", "exact", x, ref, 4, &worst), 0);
  x[1] = -2.0f * (1 + 3e-4f);
  fprintf(stderr, "oracle self-test: one mismatch expected below\n");
  CU_ASSERT_EQUAL(compare("self", "off", x, ref, 4, &worst), 1);
  x[1] = NAN;
  CU_ASSERT_EQUAL(compare("self", "nan", x, ref, 4, &worst), 1);
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"comparison rejects", test_compare_rejects},
                                  {"dense model", test_dense},
                                  {"MoE full experts", test_moe},
                                  {"MoE LoRA experts", test_lora},
                                  {"llama: GQA, llama3 rope, untied head", test_llama},
                                  {"qwen2_moe: biases, SwiGLU experts, shared expert", test_qwen2moe},
                                  {"mixtral-style MoE, q/k norms, multi-query, tied", test_mixtral},
                                  {"olmoe: LoRA experts, q/v adapters", test_olmoelora},
                                  {NULL, NULL}};
  return fm_test_suite("oracle", tests);
}
