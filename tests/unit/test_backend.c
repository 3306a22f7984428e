/* test_backend.c - the host-mirror protocol of a model on a device backend
 * (src/nn/model_device.c), without a GPU: a stand-in device backend runs the CPU's
 * kernels on memory of its own, so a model on it has host mirrors and owner flags
 * exactly as on a GPU. Against the same model on the CPU:
 *   - a client's steps (zero, forward, backward, clip, AdamW) give the same losses and,
 *     fetched through fm_model_class_params, the same parameters;
 *   - AdamW's moments come back into the host state they belong to, and two clients'
 *     states used in turn (as src/fl/client_state.c does) each continue where they were;
 *   - values written through fm_model_class_params or fm_model_tensor reach the passes;
 *   - fm_model_sync brings kept tensor pointers up to date;
 *   - the hidden states and logits handed out are the device's;
 *   - a fused head (backend.h's head_crossentropy) trains as the unfused one, and the
 *     logits it skipped are made when asked for;
 *   - a client whose class lives in a stash (model_stash.c: device memory, loaded and
 *     saved device to device) trains bit for bit as one whose class lives on the host,
 *     in turn with a host-state client, and its switches upload nothing; after
 *     fm_model_sync the frozen parameters are not uploaded again. */
#include "backend.h"

#include "fedmoe/rng.h"

#include "cunit_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fm_backend fake;
static size_t uploads; /* bytes moved to the "device", to see that a step moves no parameters */

static void fake_upload(fm_backend *be, void *dst, const void *src, size_t bytes) {
  (void)be;
  uploads += bytes;
  memcpy(dst, src, bytes);
}
static double fake_sumsq(fm_backend *be, const float *const *x, const size_t *n, int count) {
  (void)be;
  double s = 0;
  for (int i = 0; i < count; i++)
    for (size_t j = 0; j < n[i]; j++) s += (double)x[i][j] * x[i][j];
  return s;
}
static void fake_adamw(fm_backend *be, float *w, float *m, float *v, const float *g, size_t n, float lr, float b1,
                       float b2, float eps, float wd, float c1, float c2, float gs) {
  (void)be;
  for (size_t j = 0; j < n; j++) { /* adamw.c's rule */
    float gj = gs * g[j];
    m[j] = b1 * m[j] + (1.0f - b1) * gj;
    v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
    w[j] -= lr * ((m[j] * c1) / (sqrtf(v[j] * c2) + eps) + wd * w[j]);
  }
}

/* a fused head as a device might do it: the logits in scratch of its own, the loss
 * and the gradients in one call (backend.h's head_crossentropy) */
static double fake_head(fm_backend *be, int *nvalid, float *lse, float *dx, float *dW, int accumulate,
                        const float *x, const float *W, const int32_t *targets, int N, int D, int V, float dloss) {
  (void)be;
  float *lg = malloc((size_t)N * V * sizeof *lg), *ls = malloc((size_t)N * sizeof *ls);
  fm_gemm(0, 1, N, V, D, 1.0f, x, D, W, D, 0.0f, lg, V);
  double loss = fm_crossentropy_forward(ls, lg, targets, N, V, nvalid);
  if (lse) memcpy(lse, ls, (size_t)N * sizeof *ls);
  if (dx || dW) {
    fm_crossentropy_backward(lg, lg, ls, targets, N, V, *nvalid, dloss); /* in place: logits -> their gradient */
    if (dW) fm_gemm(1, 0, V, D, N, 1.0f, lg, V, x, D, accumulate ? 1.0f : 0.0f, dW, D);
    if (dx) fm_gemm(0, 0, N, D, V, 1.0f, lg, V, W, D, 0.0f, dx, D);
  }
  free(lg);
  free(ls);
  return loss;
}

static int classify(const fm_tensor *t, void *ctx) {
  (void)ctx;
  if (t->group == FM_GROUP_FFN) return FM_CLASS_FROZEN;
  return t->group == FM_GROUP_ATTN ? 1 : 0;
}

enum { B = 2, T = 9, V = 37, D = 16 };

static fm_model *make(int device) {
  fm_model_shape s = {.vocab = V, .context = 12, .d = D, .heads = 2, .layers = 2, .experts = 1, .top_k = 1,
                      .lora_rank = 4, .lora_alpha = 8.0f, .init_std = 0.2f};
  fm_model *m = NULL;
  fm_model_set_default_backend(device ? &fake : NULL);
  CU_ASSERT_FATAL(fm_model_create(&m, &s, B, T, 2, classify, NULL) == FM_OK);
  fm_model_set_default_backend(NULL);
  CU_ASSERT_FATAL(fm_model_init(m, 3) == FM_OK);
  CU_ASSERT_STRING_EQUAL(fm_model_device(m), device ? "fake" : "cpu");
  return m;
}

static void batch(int32_t *tok, int32_t *tgt, uint64_t seed) {
  fm_rng r;
  fm_rng_init(&r, seed, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < B * T; i++) {
    tok[i] = (int32_t)fm_rng_below(&r, V);
    tgt[i] = (int32_t)fm_rng_below(&r, V);
  }
}

static float step(fm_model *m, fm_adamw *opt, uint64_t seed) {
  int32_t tok[B * T], tgt[B * T];
  batch(tok, tgt, seed);
  float ce = 0;
  fm_model_zero_grads(m);
  CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &ce, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_backward(m) == FM_OK);
  fm_adamw_hparams h = {1e-2f, 0.9f, 0.95f, 1e-3f, 0.1f, fm_model_clip_factor(m, 3u, 0.5)};
  for (int c = 0; c < 2; c++) fm_adamw_step(&opt[c], m, c, &h);
  return ce;
}

/* relative L2 error (AdamW's FMA-compiled CPU loop and the gradient norm's order of
 * summation differ in the last bits between the two backends) */
static double maxrel(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    num += d * d;
    den += (double)b[i] * b[i];
  }
  double e = den > 0 ? sqrt(num / den) : sqrt(num);
  if (e > 1e-6) printf("\n    relative error %.3g over %zu values", e, n);
  return e;
}

static void same_params(fm_model *g, fm_model *m, double tol) {
  for (int c = 0; c < 2; c++)
    CU_ASSERT(maxrel(fm_model_class_params(g, c), fm_model_class_params(m, c), fm_model_class_numel(m, c)) <= tol);
}

/* two clients' AdamW states in turn on each model, as the runtime keeps them */
static void clients_in_turn(void) {
  fm_model *m = make(0), *g = make(1);
  fm_adamw om[2][2], og[2][2]; /* [client][class] */
  float *start[2];             /* the clients' own class-1 parameters, kept on the host */
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 2; c++) {
      CU_ASSERT_FATAL(fm_adamw_create(&om[k][c], fm_model_class_numel(m, c)) == FM_OK);
      CU_ASSERT_FATAL(fm_adamw_create(&og[k][c], fm_model_class_numel(m, c)) == FM_OK);
    }
  const size_t n1 = fm_model_class_numel(m, 1);
  float *keep[2][2]; /* [model][client] */
  for (int x = 0; x < 2; x++)
    for (int k = 0; k < 2; k++) {
      keep[x][k] = malloc(n1 * sizeof(float));
      memcpy(keep[x][k], fm_model_class_params(m, 1), n1 * sizeof(float));
    }
  (void)start;
  for (int round = 0; round < 3; round++)
    for (int k = 0; k < 2; k++) {
      fm_model *both[2] = {m, g};
      for (int x = 0; x < 2; x++) { /* load the client: its class 1, then two steps, then save */
        memcpy(fm_model_class_params(both[x], 1), keep[x][k], n1 * sizeof(float));
        fm_adamw *o = x ? og[k] : om[k];
        float l1 = step(both[x], o, 10 * round + k), l2 = step(both[x], o, 10 * round + k + 100);
        (void)l1, (void)l2;
        memcpy(keep[x][k], fm_model_class_params(both[x], 1), n1 * sizeof(float));
      }
      same_params(g, m, 1e-5);
      CU_ASSERT(maxrel(keep[1][k], keep[0][k], n1) <= 1e-5);
      for (int c = 0; c < 2; c++) { /* the moments are back in the client's host state */
        CU_ASSERT(maxrel(og[k][c].m, om[k][c].m, fm_model_class_numel(m, c)) <= 1e-4);
        CU_ASSERT(maxrel(og[k][c].v, om[k][c].v, fm_model_class_numel(m, c)) <= 1e-4);
        CU_ASSERT_EQUAL(og[k][c].step, om[k][c].step);
      }
    }
  CU_ASSERT_EQUAL(og[0][0].step, 6);
  for (int x = 0; x < 2; x++)
    for (int k = 0; k < 2; k++) free(keep[x][k]);
  for (int k = 0; k < 2; k++)
    for (int c = 0; c < 2; c++) {
      fm_adamw_free(&om[k][c]);
      fm_adamw_free(&og[k][c]);
    }
  fm_model_free(g);
  fm_model_free(m);
}

/* a training step moves no parameters; a write through a fetched pointer is seen */
static void mirrors(void) {
  fm_model *m = make(0), *g = make(1);
  fm_adamw om[2], og[2];
  for (int c = 0; c < 2; c++) {
    CU_ASSERT_FATAL(fm_adamw_create(&om[c], fm_model_class_numel(m, c)) == FM_OK);
    CU_ASSERT_FATAL(fm_adamw_create(&og[c], fm_model_class_numel(m, c)) == FM_OK);
  }
  float cl = step(m, om, 1), gl = step(g, og, 1); /* the first step uploads everything */
  FM_ASSERT_CLOSE(gl, cl, 1e-6, 0);
  uploads = 0;
  cl = step(m, om, 2), gl = step(g, og, 2);
  FM_ASSERT_CLOSE(gl, cl, 1e-6, 0);
  CU_ASSERT(uploads <= 2 * B * T * sizeof(int32_t)); /* tokens and targets only */
  /* a tensor pointer kept from before: stale until fm_model_sync */
  fm_tensor *tg = fm_model_find(g, "h.0.attn.c_attn.weight"), *tm = fm_model_find(m, "h.0.attn.c_attn.weight");
  cl = step(m, om, 3), gl = step(g, og, 3);
  CU_ASSERT_FATAL(fm_model_sync(g) == FM_OK);
  CU_ASSERT(maxrel(tg->w, tm->w, tg->numel) <= 1e-5);
  /* writes through fm_model_tensor and fm_model_class_params reach the next pass */
  fm_tensor *wte_g = fm_model_tensor(g, 0), *wte_m = fm_model_tensor(m, 0);
  for (size_t i = 0; i < wte_g->numel; i++) wte_g->w[i] = wte_m->w[i] = 0.01f * (float)(i % 17);
  float *pg = fm_model_class_params(g, 1), *pm = fm_model_class_params(m, 1);
  for (size_t i = 0; i < fm_model_class_numel(m, 1); i++) pg[i] = pm[i] = pm[i] * 0.5f;
  int32_t tok[B * T], tgt[B * T];
  batch(tok, tgt, 9);
  CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &cl, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_forward(g, tok, tgt, B, T, &gl, NULL) == FM_OK);
  FM_ASSERT_CLOSE(gl, cl, 1e-6, 0);
  CU_ASSERT(maxrel(fm_model_hidden(g, 2), fm_model_hidden(m, 2), (size_t)B * T * D) <= 1e-5);
  CU_ASSERT(maxrel(fm_model_logits(g), fm_model_logits(m), (size_t)B * T * V) <= 1e-5);
  CU_ASSERT(fm_model_hidden(g, 0) != fm_model_hidden(m, 0));
  for (int c = 0; c < 2; c++) {
    fm_adamw_free(&om[c]);
    fm_adamw_free(&og[c]);
  }
  fm_model_free(g);
  fm_model_free(m);
}

/* three training steps from seed on m (the CPU) and g (the fake device as it is set
 * now): the same loss at each */
static void steps_alike(fm_model *m, fm_model *g, uint64_t seed) {
  fm_adamw om[2], og[2];
  for (int c = 0; c < 2; c++) {
    CU_ASSERT_FATAL(fm_adamw_create(&om[c], fm_model_class_numel(m, c)) == FM_OK);
    CU_ASSERT_FATAL(fm_adamw_create(&og[c], fm_model_class_numel(m, c)) == FM_OK);
  }
  for (int k = 0; k < 3; k++) {
    float cl = step(m, om, seed + k), gl = step(g, og, seed + k);
    FM_ASSERT_CLOSE(gl, cl, 1e-6, 0);
  }
  for (int c = 0; c < 2; c++) {
    fm_adamw_free(&om[c]);
    fm_adamw_free(&og[c]);
  }
}

/* a forward of both on the batch of seed: the same loss, and the same logits when asked for */
static void forward_alike(fm_model *m, fm_model *g, uint64_t seed) {
  int32_t tok[B * T], tgt[B * T];
  batch(tok, tgt, seed);
  float cl = 0, gl = 0;
  CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, B, T, &cl, NULL) == FM_OK);
  CU_ASSERT_FATAL(fm_model_forward(g, tok, tgt, B, T, &gl, NULL) == FM_OK);
  FM_ASSERT_CLOSE(gl, cl, 1e-6, 0);
  CU_ASSERT(maxrel(fm_model_logits(g), fm_model_logits(m), (size_t)B * T * V) <= 1e-5);
}

/* with a fused head: the same loss and gradients, and the logits made when asked for */
static void fused_head(void) {
  fake.head_crossentropy = fake_head; /* the CPU model's backend is another */
  fm_model *m = make(0), *g = make(1);
  steps_alike(m, g, 20);
  CU_ASSERT(fm_model_logits(g) == NULL); /* skipped, and the weights changed since */
  same_params(g, m, 1e-5);
  forward_alike(m, g, 30);
  fm_model_free(g);
  fm_model_free(m);
  fake.head_crossentropy = NULL;
}

/* logits in padded rows (backend.h logits_align: V = 37 in rows of 40): the same loss
 * and training as the CPU's rows of V; the logits made in rows of V when asked for; a
 * second backward of one forward (its logits already turned into their gradient)
 * gives the first one's gradients */
static void padded_logits(void) {
  fake.logits_align = 8;
  fm_model *m = make(0), *g = make(1);
  steps_alike(m, g, 40);
  same_params(g, m, 1e-5);
  forward_alike(m, g, 50);
  const size_t n0 = fm_model_class_numel(g, 0);
  float *first = malloc(n0 * sizeof *first);
  fm_model_zero_grads(g);
  CU_ASSERT_FATAL(fm_model_backward(g) == FM_OK);
  memcpy(first, fm_model_class_grads(g, 0), n0 * sizeof *first);
  fm_model_zero_grads(g);
  CU_ASSERT_FATAL(fm_model_backward(g) == FM_OK);
  CU_ASSERT(maxrel(fm_model_class_grads(g, 0), first, n0) <= 1e-6);
  fm_model_zero_grads(m);
  CU_ASSERT_FATAL(fm_model_backward(m) == FM_OK);
  CU_ASSERT(maxrel(first, fm_model_class_grads(m, 0), n0) <= 1e-5);
  free(first);
  fm_model_free(g);
  fm_model_free(m);
  fake.logits_align = 0;
}

/* client 0's class 1 in a stash on g, on the host on h; client 1's on the host on both;
 * class 0 trains on across the clients with one state (as a shared class) */
static void stashes(void) {
  fm_model *g = make(1), *h = make(1);
  const size_t n0 = fm_model_class_numel(g, 0), n1 = fm_model_class_numel(g, 1);
  fm_adamw g0, h0, og[2], oh[2]; /* class 0's state; class 1's per client */
  CU_ASSERT_FATAL(fm_adamw_create(&g0, n0) == FM_OK && fm_adamw_create(&h0, n0) == FM_OK);
  CU_ASSERT_FATAL(fm_adamw_create(&og[1], n1) == FM_OK);
  for (int k = 0; k < 2; k++) CU_ASSERT_FATAL(fm_adamw_create(&oh[k], n1) == FM_OK);
  og[0] = (fm_adamw){NULL, NULL, n1, 0}; /* resident: its moments live with the stash */
  fm_stash *st = NULL;
  CU_ASSERT_FATAL(fm_model_stash_alloc(g, 1, &st) == FM_OK);
  CU_ASSERT_EQUAL(fm_model_stash_bytes(g, 1), 3 * n1 * sizeof(float));
  float *kh[2], *kg1 = malloc(n1 * sizeof(float)), *w = malloc(n1 * sizeof(float));
  float *mo = malloc(n1 * sizeof(float)), *v = malloc(n1 * sizeof(float));
  for (int k = 0; k < 2; k++) kh[k] = malloc(n1 * sizeof(float));
  memcpy(kg1, fm_model_class_params(g, 1), n1 * sizeof(float));
  for (int k = 0; k < 2; k++) memcpy(kh[k], kg1, n1 * sizeof(float));
  fm_model_stash_set(g, st, kg1, NULL, NULL); /* the initial values, fresh moments */
  for (int round = 0; round < 3; round++)
    for (int k = 0; k < 2; k++) {
      fm_adamw oxh[2] = {h0, oh[k]}, oxg[2] = {g0, og[k]};
      size_t up = uploads; /* as the runtime: load, steps, fm_model_sync, save */
      memcpy(fm_model_class_params(h, 1), kh[k], n1 * sizeof(float));
      step(h, oxh, 10 * round + k);
      step(h, oxh, 10 * round + k + 100);
      CU_ASSERT_FATAL(fm_model_sync(h) == FM_OK);
      memcpy(kh[k], fm_model_class_params(h, 1), n1 * sizeof(float));
      const size_t up_h = uploads - up;
      /* after the first: the client's class and moments, class 0 and its moments (which
       * fm_model_sync gave the host), two batches of tokens and targets; not the frozen
       * parameters, which no pass changes */
      if (round > 0 || k > 0)
        CU_ASSERT_EQUAL(up_h, (3 * n1 + 3 * n0) * sizeof(float) + 2 * 2 * B * T * sizeof(int32_t));
      up = uploads;
      if (k == 0) {
        CU_ASSERT_FATAL(fm_model_stash_load(g, st) == FM_OK);
      } else {
        memcpy(fm_model_class_params(g, 1), kg1, n1 * sizeof(float));
      }
      step(g, oxg, 10 * round + k);
      step(g, oxg, 10 * round + k + 100);
      CU_ASSERT_FATAL(fm_model_sync(g) == FM_OK);
      if (k == 0) {
        fm_model_stash_save(g, st);
        /* the same uploads but the class and its moments, which went device to device */
        CU_ASSERT_EQUAL(up_h - (uploads - up), 3 * n1 * sizeof(float));
        CU_ASSERT_FATAL(fm_model_stash_get(g, st, w, mo, v) == FM_OK);
      } else {
        memcpy(kg1, fm_model_class_params(g, 1), n1 * sizeof(float));
        memcpy(w, kg1, n1 * sizeof(float));
        memcpy(mo, og[1].m, n1 * sizeof(float));
        memcpy(v, og[1].v, n1 * sizeof(float));
      }
      h0.step = oxh[0].step, oh[k].step = oxh[1].step, g0.step = oxg[0].step, og[k].step = oxg[1].step;
      CU_ASSERT(memcmp(w, kh[k], n1 * sizeof(float)) == 0);
      CU_ASSERT(memcmp(mo, oh[k].m, n1 * sizeof(float)) == 0);
      CU_ASSERT(memcmp(v, oh[k].v, n1 * sizeof(float)) == 0);
      CU_ASSERT_EQUAL(og[k].step, oh[k].step);
      CU_ASSERT(memcmp(fm_model_class_params(g, 0), fm_model_class_params(h, 0), n0 * sizeof(float)) == 0);
    }
  CU_ASSERT_EQUAL(og[0].step, 6);
  fm_model_stash_free(g, st);
  for (int k = 0; k < 2; k++) free(kh[k]), fm_adamw_free(&oh[k]);
  free(kg1), free(w), free(mo), free(v);
  fm_adamw_free(&og[1]), fm_adamw_free(&g0), fm_adamw_free(&h0);
  fm_model_free(g);
  fm_model_free(h);
}

int fm_test_register(void) {
  fake = fm_backend_cpu;
  fake.name = "fake";
  fake.device = 1;
  fake.upload = fake_upload;
  fake.sumsq = fake_sumsq;
  fake.adamw = fake_adamw;
  static const fm_test tests[] = {{"host mirrors: steps move no parameters, writes reach the passes", mirrors},
                                  {"two clients' AdamW states in turn", clients_in_turn},
                                  {"a fused head", fused_head},
                                  {"logits in padded rows", padded_logits},
                                  {"a resident client's class in a stash", stashes},
                                  {NULL, NULL}};
  return fm_test_suite("model on a device backend (stand-in)", tests);
}
