/* test_nn.c - every nn kernel on its own: forward values against plain reference
 * loops, and backward against double-precision central differences.
 *
 * Finite differences: each kernel's output is reduced to a scalar loss
 * L = sum(out * R) with a fixed random R (plus, where the kernel has one, its own
 * scalar such as the load-balancing term), computed in double from the float32
 * outputs. With float32 kernels the step must be large (eps = 1e-2) so the rounding
 * noise of L (~1e-6) stays far below the difference; the truncation error is then
 * O(eps^2). Every entry of every input and parameter is checked individually
 * (the arrays are small), and a random direction over the whole array as well.
 * Routing is piecewise constant: a perturbation that changes some token's top-k
 * picks (a tie crossed) makes the difference meaningless, so those entries are
 * detected (the picks are compared) and skipped; the tests assert few were. */
#include "cunit_main.h"

#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"
#include "fedmoe/rng.h"
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-2
#define RTOL 2e-2
#define ATOL 2e-3

static fm_rng rng;

static void fill(float *x, size_t n, float scale) {
  for (size_t i = 0; i < n; i++) x[i] = scale * (float)fm_rng_normal(&rng);
}

static float *vec(size_t n, float scale) {
  float *x = calloc(n ? n : 1, sizeof *x);
  fill(x, n, scale);
  return x;
}

static double dotd(const float *a, const float *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* ---- the finite-difference checker ---- */
typedef struct {
  double (*loss)(void *ctx); /* recompute the loss from the current arrays */
  int (*stable)(void *ctx);  /* 1 when the routing is the reference one (NULL: always) */
  void *ctx;
} fd_problem;

static int fd_bad, fd_skipped, fd_checked;

static int close_enough(double fd, double an) {
  return fabs(fd - an) <= ATOL + RTOL * fmax(fabs(fd), fabs(an));
}

/* Check the analytic gradient g[n] of x[n] entry by entry and along one random
 * direction. Entries whose perturbation changes the routing are skipped. */
static void fd_check(const char *what, fd_problem *p, float *x, const float *g, size_t n) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    float x0 = x[i];
    x[i] = (float)(x0 + EPS);
    double hp = (double)x[i] - x0, lp = p->loss(p->ctx);
    int ok = !p->stable || p->stable(p->ctx);
    x[i] = (float)(x0 - EPS);
    double hm = (double)x0 - x[i], lm = p->loss(p->ctx);
    ok = ok && (!p->stable || p->stable(p->ctx));
    x[i] = x0;
    if (!ok) {
      fd_skipped++;
      continue;
    }
    double fd = (lp - lm) / (hp + hm);
    fd_checked++;
    if (!close_enough(fd, g[i])) {
      if (bad < 5) printf("\n  %s[%zu]: finite difference %.6g, backward %.6g", what, i, fd, g[i]);
      bad++;
    }
  }
  /* a random direction v: (L(x + eps v) - L(x - eps v)) / 2 eps against g . v */
  float *x0 = malloc(n * sizeof *x0), *v = vec(n, 1.0f);
  memcpy(x0, x, n * sizeof *x);
  double nv = sqrt(dotd(v, v, n));
  for (size_t i = 0; i < n; i++) v[i] /= (float)nv;
  for (size_t i = 0; i < n; i++) x[i] = x0[i] + (float)EPS * v[i];
  double lp = p->loss(p->ctx);
  int ok = !p->stable || p->stable(p->ctx);
  for (size_t i = 0; i < n; i++) x[i] = x0[i] - (float)EPS * v[i];
  double lm = p->loss(p->ctx);
  ok = ok && (!p->stable || p->stable(p->ctx));
  memcpy(x, x0, n * sizeof *x);
  if (ok) {
    double fd = (lp - lm) / (2 * EPS), an = dotd(g, v, n);
    if (!close_enough(fd, an)) {
      printf("\n  %s along a random direction: finite difference %.6g, backward %.6g", what, fd, an);
      bad++;
    }
  }
  free(x0);
  free(v);
  fd_bad += bad;
  CU_ASSERT_EQUAL(bad, 0);
}

static void fd_begin(void) { fd_bad = fd_skipped = fd_checked = 0; }
/* at most a few percent of entries may be skipped for routing flips */
static void fd_end(void) {
  CU_ASSERT(fd_checked > 0);
  CU_ASSERT(fd_skipped * 20 <= fd_checked);
}

/* ---- gemm: the stride conventions ---- */
static void test_gemm(void) {
  enum { M = 5, N = 4, K = 3 };
  float A[M * K], At[K * M], B[K * N], Bt[N * K], C[M * N];
  fill(A, M * K, 1);
  fill(B, K * N, 1);
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++) At[k * M + i] = A[i * K + k];
  for (int k = 0; k < K; k++)
    for (int j = 0; j < N; j++) Bt[j * K + k] = B[k * N + j];
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      for (int i = 0; i < M * N; i++) C[i] = 1.0f;
      fm_gemm(ta, tb, M, N, K, 2.0f, ta ? At : A, ta ? M : K, tb ? Bt : B, tb ? K : N, 0.5f, C, N);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double ref = 0.5;
          for (int k = 0; k < K; k++) ref += 2.0 * A[i * K + k] * B[k * N + j];
          FM_ASSERT_CLOSE(C[i * N + j], ref, 1e-5, 1e-5);
        }
    }
  fm_nn_set_threads(1);
  CU_ASSERT_EQUAL(fm_nn_threads(), 1);
}

/* ---- layernorm ---- */
typedef struct { int N, C; float *x, *w, *b, *out, *mean, *rstd, *R; } ln_ctx;
static double ln_loss(void *c) {
  ln_ctx *s = c;
  fm_layernorm_forward(s->out, s->mean, s->rstd, s->x, s->w, s->b, s->N, s->C, 1e-5f);
  return dotd(s->out, s->R, (size_t)s->N * s->C);
}
static void test_layernorm(void) {
  ln_ctx s = {.N = 5, .C = 8};
  size_t nc = (size_t)s.N * s.C;
  s.x = vec(nc, 1.5f);
  s.w = vec(s.C, 1);
  s.b = vec(s.C, 1);
  s.out = vec(nc, 0);
  s.mean = vec(s.N, 0);
  s.rstd = vec(s.N, 0);
  s.R = vec(nc, 1);
  ln_loss(&s);
  for (int n = 0; n < s.N; n++) { /* reference */
    double m = 0, v = 0;
    for (int i = 0; i < s.C; i++) m += s.x[n * s.C + i];
    m /= s.C;
    for (int i = 0; i < s.C; i++) v += pow(s.x[n * s.C + i] - m, 2);
    v /= s.C;
    for (int i = 0; i < s.C; i++)
      FM_ASSERT_CLOSE(s.out[n * s.C + i], (s.x[n * s.C + i] - m) / sqrt(v + 1e-5) * s.w[i] + s.b[i],
                      1e-4, 1e-5);
  }
  float *dx = vec(nc, 0), *dw = vec(s.C, 0), *db = vec(s.C, 0);
  fm_layernorm_backward(dx, dw, db, s.R, s.x, s.w, s.mean, s.rstd, s.N, s.C);
  fd_problem p = {ln_loss, NULL, &s};
  fd_begin();
  fd_check("layernorm x", &p, s.x, dx, nc);
  fd_check("layernorm w", &p, s.w, dw, s.C);
  fd_check("layernorm b", &p, s.b, db, s.C);
  fd_end();
  free(s.x); free(s.w); free(s.b); free(s.out); free(s.mean); free(s.rstd); free(s.R);
  free(dx); free(dw); free(db);
}

/* ---- gelu ---- */
typedef struct { size_t n; float *x, *out, *R; } gelu_ctx;
static double gelu_loss(void *c) {
  gelu_ctx *s = c;
  fm_gelu_forward(s->out, s->x, s->n);
  return dotd(s->out, s->R, s->n);
}
static void test_gelu(void) {
  gelu_ctx s = {.n = 40};
  s.x = vec(s.n, 2);
  s.out = vec(s.n, 0);
  s.R = vec(s.n, 1);
  gelu_loss(&s);
  for (size_t i = 0; i < s.n; i++) {
    double x = s.x[i];
    FM_ASSERT_CLOSE(s.out[i], 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))), 1e-5,
                    1e-6);
  }
  float *dx = vec(s.n, 0);
  fm_gelu_backward(dx, s.x, s.R, s.n);
  fd_problem p = {gelu_loss, NULL, &s};
  fd_begin();
  fd_check("gelu x", &p, s.x, dx, s.n);
  fd_end();
  free(s.x); free(s.out); free(s.R); free(dx);
}

/* ---- bias + gelu fused (the c_fc epilogue): h += b, g = gelu(h); backward with db ---- */
typedef struct { int rows, F; float *h0, *b, *h, *g, *R; } bgelu_ctx;
static double bgelu_loss(void *c) {
  bgelu_ctx *s = c;
  memcpy(s->h, s->h0, (size_t)s->rows * s->F * sizeof(float));
  fm_bias_gelu_forward(s->g, s->h, s->b, s->rows, s->F);
  return dotd(s->g, s->R, (size_t)s->rows * s->F);
}
static void test_bias_gelu(void) {
  bgelu_ctx s = {.rows = 5, .F = 24};
  size_t n = (size_t)s.rows * s.F;
  s.h0 = vec(n, 2);
  s.b = vec((size_t)s.F, 1);
  s.h = vec(n, 0);
  s.g = vec(n, 0);
  s.R = vec(n, 1);
  bgelu_loss(&s);
  for (int r = 0; r < s.rows; r++)
    for (int j = 0; j < s.F; j++) {
      size_t i = (size_t)r * s.F + j;
      double x = (double)s.h0[i] + s.b[j];
      FM_ASSERT_CLOSE(s.h[i], x, 1e-6, 1e-7); /* h keeps the pre-activation */
      FM_ASSERT_CLOSE(s.g[i], 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))), 1e-5, 1e-6);
    }
  /* gradients: dh = gelu'(h) R (in place), db = column sums of dh */
  float *dh = vec(n, 0), *db = vec((size_t)s.F, 0);
  memcpy(dh, s.R, n * sizeof *dh);
  fm_gelu_backward_bias(dh, s.h, db, s.rows, s.F);
  fd_problem p = {bgelu_loss, NULL, &s};
  fd_begin();
  fd_check("bias_gelu h", &p, s.h0, dh, n);
  fd_check("bias_gelu b", &p, s.b, db, (size_t)s.F);
  fd_end();
  free(s.h0); free(s.b); free(s.h); free(s.g); free(s.R); free(dh); free(db);
}

/* ---- dense FFN (linear + gelu + linear) ---- */
typedef struct { int N, D; float *x, *fw, *fb, *pw, *pb, *h, *g, *out, *R; } ffn_ctx;
static double ffn_loss(void *c) {
  ffn_ctx *s = c;
  memset(s->out, 0, (size_t)s->N * s->D * sizeof(float));
  fm_ffn_forward(s->out, s->h, s->g, s->x, s->fw, s->fb, s->pw, s->pb, s->N, s->D, 4 * s->D);
  return dotd(s->out, s->R, (size_t)s->N * s->D);
}
static void test_ffn(void) {
  ffn_ctx s = {.N = 4, .D = 6};
  const size_t ND = (size_t)s.N * s.D, F = 4 * (size_t)s.D;
  s.x = vec(ND, 1);
  s.fw = vec(s.D * F, 0.4f);
  s.fb = vec(F, 0.2f);
  s.pw = vec(F * s.D, 0.3f);
  s.pb = vec(s.D, 0.2f);
  s.h = vec(s.N * F, 0);
  s.g = vec(s.N * F, 0);
  s.out = vec(ND, 0);
  s.R = vec(ND, 1);
  ffn_loss(&s);
  for (int n = 0; n < s.N; n++) /* reference for one output column per row */
    for (int o = 0; o < s.D; o++) {
      double acc = s.pb[o];
      for (size_t j = 0; j < F; j++) {
        double h = s.fb[j];
        for (int i = 0; i < s.D; i++) h += (double)s.x[n * s.D + i] * s.fw[i * F + j];
        acc += 0.5 * h * (1 + tanh(sqrt(2 / M_PI) * (h + 0.044715 * h * h * h))) * s.pw[j * s.D + o];
      }
      FM_ASSERT_CLOSE(s.out[n * s.D + o], acc, 1e-4, 1e-5);
    }
  float *dx = vec(ND, 0), *dfw = vec(s.D * F, 0), *dfb = vec(F, 0), *dpw = vec(F * s.D, 0),
        *dpb = vec(s.D, 0), *dg = vec(s.N * F, 0);
  fm_ffn_backward(dx, dfw, dfb, dpw, dpb, dg, s.R, s.x, s.h, s.g, s.fw, s.pw, s.N, s.D, 4 * s.D);
  fd_problem p = {ffn_loss, NULL, &s};
  fd_begin();
  fd_check("ffn x", &p, s.x, dx, ND);
  fd_check("ffn c_fc.weight", &p, s.fw, dfw, s.D * F);
  fd_check("ffn c_fc.bias", &p, s.fb, dfb, F);
  fd_check("ffn c_proj.weight", &p, s.pw, dpw, F * s.D);
  fd_check("ffn c_proj.bias", &p, s.pb, dpb, s.D);
  fd_end();
  float *ptrs[] = {s.x, s.fw, s.fb, s.pw, s.pb, s.h, s.g, s.out, s.R, dx, dfw, dfb, dpw, dpb, dg};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) free(ptrs[i]);
}

/* ---- attention (multi-head, and grouped-query with KVH < H) ---- */
typedef struct { int B, T, H, KVH, hs; float *qkv, *att, *out, *R; } att_ctx;
static double att_loss(void *c) {
  att_ctx *s = c;
  fm_attention_forward(s->out, s->att, s->qkv, s->B, s->T, s->H, s->KVH, s->hs);
  return dotd(s->out, s->R, (size_t)s->B * s->T * s->H * s->hs);
}
static void attention_case(int block, int T, int H, int KVH, int hs) {
  fm_attention_set_block(block);
  att_ctx s = {.B = 2, .T = T, .H = H, .KVH = KVH, .hs = hs};
  const int W = (H + 2 * KVH) * hs, HD = H * hs;
  const size_t n3 = (size_t)s.B * s.T * W, n = (size_t)s.B * s.T * HD;
  s.qkv = vec(n3, 1);
  s.att = vec((size_t)s.B * s.H * s.T * s.T, 0);
  s.out = vec(n, 0);
  s.R = vec(n, 1);
  att_loss(&s);
  for (int b = 0; b < s.B; b++) /* reference: full scores, mask, softmax, P V */
    for (int h = 0; h < s.H; h++)
      for (int i = 0; i < s.T; i++) {
        const int kvh = h / (H / KVH), ko = HD + kvh * hs, vo = HD + KVH * hs + kvh * hs;
        double sc[64], mx = -1e30, sum = 0;
        for (int j = 0; j <= i; j++) {
          sc[j] = 0;
          for (int d = 0; d < hs; d++)
            sc[j] += (double)s.qkv[(b * s.T + i) * W + h * hs + d] * s.qkv[(b * s.T + j) * W + ko + d];
          sc[j] /= sqrt(hs);
          mx = fmax(mx, sc[j]);
        }
        for (int j = 0; j <= i; j++) sum += (sc[j] = exp(sc[j] - mx));
        for (int d = 0; d < hs; d++) {
          double o = 0;
          for (int j = 0; j <= i; j++) o += sc[j] / sum * s.qkv[(b * s.T + j) * W + vo + d];
          FM_ASSERT_CLOSE(s.out[(b * s.T + i) * HD + h * hs + d], o, 1e-4, 1e-5);
        }
      }
  float *dqkv = vec(n3, 1), *scr = vec(fm_attention_scratch(s.T), 0); /* dqkv: garbage in, all written */
  fm_attention_backward(dqkv, scr, s.R, s.qkv, s.att, s.B, s.T, s.H, s.KVH, s.hs);
  fd_problem p = {att_loss, NULL, &s};
  fd_begin();
  fd_check(KVH < H ? "GQA attention qkv" : "attention qkv", &p, s.qkv, dqkv, n3);
  fd_end();
  /* causality: the gradient of the first token's output reaches no later token */
  memset(s.R, 0, n * sizeof(float));
  for (int d = 0; d < HD; d++) s.R[d] = 1.0f;
  fm_attention_backward(dqkv, scr, s.R, s.qkv, s.att, s.B, s.T, s.H, s.KVH, s.hs);
  double later = 0;
  for (size_t i = (size_t)W; i < n3; i++) later += fabs(dqkv[i]);
  CU_ASSERT_EQUAL(later, 0.0);
  free(s.qkv); free(s.att); free(s.out); free(s.R); free(dqkv); free(scr);
  fm_attention_set_block(64);
}
static void test_attention(void) {
  attention_case(64, 7, 2, 2, 4); /* one block */
  attention_case(3, 7, 2, 2, 4);  /* blocks of 3 rows: 3, 3, 1 */
  attention_case(2, 6, 2, 2, 4);
}
static void test_attention_gqa(void) {
  attention_case(64, 7, 4, 2, 4); /* two query heads per key/value head */
  attention_case(3, 7, 4, 1, 2);  /* multi-query: one key/value head, row blocks */
  attention_case(2, 5, 6, 3, 2);
}

/* ---- embedding ---- */
typedef struct { int B, T, D; int32_t *tok; float *wte, *wpe, *out, *R; } emb_ctx;
static double emb_loss(void *c) {
  emb_ctx *s = c;
  fm_embed_forward(s->out, s->tok, s->wte, s->wpe, s->B, s->T, s->D);
  return dotd(s->out, s->R, (size_t)s->B * s->T * s->D);
}
static void test_embed(void) {
  enum { V = 7, C = 6 };
  emb_ctx s = {.B = 2, .T = 5, .D = 4};
  int32_t tok[10] = {1, 3, 3, 0, 6, 2, 1, 5, 5, 5};
  s.tok = tok;
  s.wte = vec(V * s.D, 1);
  s.wpe = vec(C * s.D, 1);
  size_t n = (size_t)s.B * s.T * s.D;
  s.out = vec(n, 0);
  s.R = vec(n, 1);
  emb_loss(&s);
  CU_ASSERT_EQUAL(s.out[(1 * 5 + 2) * 4 + 3], s.wte[5 * 4 + 3] + s.wpe[2 * 4 + 3]);
  float *dwte = vec(V * s.D, 0), *dwpe = vec(C * s.D, 0);
  fm_embed_backward(dwte, dwpe, s.R, s.tok, s.B, s.T, s.D);
  fd_problem p = {emb_loss, NULL, &s};
  fd_begin();
  fd_check("embedding wte", &p, s.wte, dwte, V * s.D);
  fd_check("embedding wpe", &p, s.wpe, dwpe, C * s.D);
  fd_end();
  free(s.wte); free(s.wpe); free(s.out); free(s.R); free(dwte); free(dwpe);
}

/* ---- cross-entropy ---- */
typedef struct { int N, V; float *z, *lse; int32_t *tgt; int nvalid; } ce_ctx;
static double ce_loss(void *c) {
  ce_ctx *s = c;
  return fm_crossentropy_forward(s->lse, s->z, s->tgt, s->N, s->V, &s->nvalid);
}
static void test_crossentropy(void) {
  int32_t tgt[6] = {3, -1, 0, 10, 5, -1};
  ce_ctx s = {.N = 6, .V = 11};
  s.tgt = tgt;
  s.z = vec(s.N * s.V, 2);
  s.lse = vec(s.N, 0);
  double l = ce_loss(&s);
  CU_ASSERT_EQUAL(s.nvalid, 4);
  double ref = 0;
  for (int n = 0; n < s.N; n++) {
    if (tgt[n] < 0) continue;
    double se = 0;
    for (int j = 0; j < s.V; j++) se += exp(s.z[n * s.V + j]);
    ref += log(se) - s.z[n * s.V + tgt[n]];
  }
  FM_ASSERT_CLOSE(l, ref / 4, 1e-5, 1e-6);
  float *dz = vec(s.N * s.V, 0);
  fm_crossentropy_backward(dz, s.z, s.lse, s.tgt, s.N, s.V, s.nvalid, 1.0f);
  fd_problem p = {ce_loss, NULL, &s};
  fd_begin();
  fd_check("cross-entropy logits", &p, s.z, dz, s.N * s.V);
  fd_end();
  for (int j = 0; j < s.V; j++) CU_ASSERT_EQUAL(dz[1 * s.V + j], 0.0f); /* ignored row */
  /* no target at all: loss 0, gradient 0 */
  int32_t none[6] = {-1, -1, -1, -1, -1, -1};
  s.tgt = none;
  CU_ASSERT_EQUAL(ce_loss(&s), 0.0);
  CU_ASSERT_EQUAL(s.nvalid, 0);
  free(s.z); free(s.lse); free(dz);
}

/* ---- router: softmax, top-k, renormalisation; load balancing ---- */
typedef struct {
  int N, E, k;
  const uint8_t *allowed;
  float *z, *probs, *wts, *Rw, *Rp, *f, coef;
  int32_t *picks, *ref_picks;
  int with_lb, renorm;
} rt_ctx;
static double rt_loss(void *c) {
  rt_ctx *s = c;
  fm_router_forward(s->probs, s->picks, s->wts, s->z, s->allowed, s->N, s->E, s->k, s->renorm);
  double l = dotd(s->wts, s->Rw, (size_t)s->N * s->k) + dotd(s->probs, s->Rp, (size_t)s->N * s->E);
  if (s->with_lb) l += fm_loadbalance_forward(s->f, s->probs, s->picks, s->N, s->E, s->k, s->coef);
  return l;
}
static int rt_stable(void *c) {
  rt_ctx *s = c;
  return !memcmp(s->picks, s->ref_picks, (size_t)s->N * s->k * sizeof(int32_t));
}
static void router_case(const uint8_t *allowed, int with_lb, float rw, float rp, int renorm) {
  rt_ctx s = {.N = 12, .E = 5, .k = 2, .allowed = allowed, .renorm = renorm};
  s.with_lb = with_lb;
  s.coef = 0.5f;
  s.z = vec(s.N * s.E, 1.5f);
  s.probs = vec(s.N * s.E, 0);
  s.wts = vec(s.N * s.k, 0);
  s.Rw = vec(s.N * s.k, rw);
  s.Rp = vec(s.N * s.E, rp);
  s.f = vec(s.E, 0);
  s.picks = calloc(s.N * s.k, sizeof(int32_t));
  s.ref_picks = calloc(s.N * s.k, sizeof(int32_t));
  rt_loss(&s);
  memcpy(s.ref_picks, s.picks, s.N * s.k * sizeof(int32_t));
  /* the picks are the k largest allowed probabilities, in decreasing order */
  for (int n = 0; n < s.N; n++) {
    double sum = 0;
    for (int e = 0; e < s.E; e++) {
      sum += s.probs[n * s.E + e];
      if (allowed && !allowed[e]) CU_ASSERT_EQUAL(s.probs[n * s.E + e], 0.0f);
    }
    FM_ASSERT_CLOSE(sum, 1.0, 1e-5, 0);
    int a = s.picks[n * 2], b = s.picks[n * 2 + 1];
    CU_ASSERT(a != b && a >= 0 && b >= 0);
    CU_ASSERT(s.probs[n * s.E + a] >= s.probs[n * s.E + b]);
    for (int e = 0; e < s.E; e++)
      if (e != a && e != b) CU_ASSERT(s.probs[n * s.E + e] <= s.probs[n * s.E + b]);
    if (renorm) {
      FM_ASSERT_CLOSE(s.wts[n * 2] + s.wts[n * 2 + 1], 1.0, 1e-6, 0);
      FM_ASSERT_CLOSE(s.wts[n * 2], s.probs[n * s.E + a] / (s.probs[n * s.E + a] + s.probs[n * s.E + b]),
                      1e-6, 0);
    } else { /* the probabilities themselves */
      CU_ASSERT_EQUAL(s.wts[n * 2], s.probs[n * s.E + a]);
      CU_ASSERT_EQUAL(s.wts[n * 2 + 1], s.probs[n * s.E + b]);
    }
  }
  float *dprobs = vec(s.N * s.E, 0), *dz = vec(s.N * s.E, 0);
  memcpy(dprobs, s.Rp, s.N * s.E * sizeof(float));
  if (with_lb) fm_loadbalance_backward(dprobs, s.f, s.N, s.E, s.coef, 1.0f);
  fm_router_backward(dz, s.Rw, dprobs, s.probs, s.picks, s.wts, s.N, s.E, s.k, s.renorm);
  fd_problem p = {rt_loss, rt_stable, &s};
  fd_begin();
  fd_check(with_lb ? "load balance logits" : "router logits", &p, s.z, dz, s.N * s.E);
  fd_end();
  if (allowed)
    for (int n = 0; n < s.N; n++)
      for (int e = 0; e < s.E; e++)
        if (!allowed[e]) CU_ASSERT_EQUAL(dz[n * s.E + e], 0.0f);
  free(s.z); free(s.probs); free(s.wts); free(s.Rw); free(s.Rp); free(s.f); free(s.picks);
  free(s.ref_picks); free(dprobs); free(dz);
}
static void test_router(void) {
  router_case(NULL, 0, 1, 1, 1);
  static const uint8_t mask[5] = {1, 0, 1, 1, 0};
  router_case(mask, 0, 1, 1, 1);
}
static void test_router_plain(void) { /* without renormalisation (OLMoE, Qwen2-MoE) */
  router_case(NULL, 0, 1, 1, 0);
  static const uint8_t mask[5] = {0, 1, 1, 1, 0};
  router_case(mask, 0, 1, 0, 0);
  router_case(NULL, 1, 1, 0, 0);
}
static void test_router_ties(void) {
  float z[2 * 4] = {1, 2, 2, 0, 3, 3, 3, 3}, probs[8], wts[4];
  int32_t picks[4];
  CU_ASSERT_EQUAL(fm_router_forward(probs, picks, wts, z, NULL, 2, 4, 2, 1), 2);
  CU_ASSERT(picks[0] == 1 && picks[1] == 2); /* tie between 1 and 2: lower first */
  CU_ASSERT(picks[2] == 0 && picks[3] == 1);
  /* one allowed expert: top_k becomes 1, the second slot is -1 with weight 0 */
  static const uint8_t one[4] = {0, 0, 1, 0};
  CU_ASSERT_EQUAL(fm_router_forward(probs, picks, wts, z, one, 2, 4, 2, 1), 1);
  CU_ASSERT(picks[0] == 2 && picks[1] == -1 && wts[0] == 1.0f && wts[1] == 0.0f);
  CU_ASSERT(probs[2] == 1.0f && probs[0] == 0.0f);
}
static void test_loadbalance(void) {
  /* value: 2 rows, E = 2, top-1 of both is expert 0: f = (1, 0), lb = c E P_0 */
  float probs[4] = {0.75f, 0.25f, 0.5f, 0.5f}, f[2];
  int32_t picks[2] = {0, 0};
  FM_ASSERT_CLOSE(fm_loadbalance_forward(f, probs, picks, 2, 2, 1, 0.1f), 0.1 * 2 * 0.625, 1e-6, 0);
  /* gradient through the router softmax: only the load-balancing term */
  router_case(NULL, 1, 0, 0, 1);
  static const uint8_t mask[5] = {1, 1, 0, 1, 1};
  router_case(mask, 1, 0, 0, 1);
}

/* ---- the MoE layer ---- */
typedef struct {
  fm_moe L;
  fm_moe_params p;
  int N, D;
  float *x, *out, *R, coef;
  int32_t *ref_picks;
} moe_ctx;
static double moe_loss(void *c) {
  moe_ctx *s = c;
  memset(s->out, 0, (size_t)s->N * s->D * sizeof(float));
  double lb = fm_moe_forward(&s->L, &s->p, s->out, s->x, s->N, s->coef);
  return dotd(s->out, s->R, (size_t)s->N * s->D) + lb;
}
static int moe_stable(void *c) {
  moe_ctx *s = c;
  return !memcmp(s->L.picks, s->ref_picks, (size_t)s->N * s->L.k * sizeof(int32_t));
}
/* a parameter with its gradient; arrays listed in arr (w, g pairs), lengths in lens */
static size_t lens[5 + 6 * FM_MAX_EXPERTS];
static void mk_param(fm_param *p, size_t n, float scale, float **arr, int *na) {
  float *w = vec(n, scale), *g = vec(n, 0);
  p->w = w;
  p->g = g;
  lens[*na / 2] = n;
  arr[(*na)++] = w;
  arr[(*na)++] = g;
}
/* reference forward of one token, in double */
static double silu(double z) { return z / (1 + exp(-z)); }
static void moe_ref(const moe_ctx *s, int n, double *out) {
  const int D = s->D, E = s->L.E, k = s->L.k, F = s->L.F, r = s->L.r;
  const float *x = s->x + n * D;
  double z[FM_MAX_EXPERTS], mx = -1e30, sum = 0;
  for (int e = 0; e < E; e++) {
    z[e] = 0;
    for (int i = 0; i < D; i++) z[e] += (double)x[i] * s->p.router.w[e * D + i];
    if (s->L.allowed[e]) mx = fmax(mx, z[e]);
  }
  for (int e = 0; e < E; e++) sum += (z[e] = s->L.allowed[e] ? exp(z[e] - mx) : 0);
  int pick[FM_MAX_EXPERTS], used[FM_MAX_EXPERTS] = {0}, kk = k < s->L.nallowed ? k : s->L.nallowed;
  double psum = 0;
  for (int j = 0; j < kk; j++) {
    int best = -1;
    for (int e = 0; e < E; e++)
      if (s->L.allowed[e] && !used[e] && (best < 0 || z[e] > z[best])) best = e;
    used[best] = 1;
    pick[j] = best;
    psum += z[best];
  }
  for (int i = 0; i < D; i++) out[i] = 0;
  double *h = calloc(F, sizeof *h);
  for (int j = 0; j < kk; j++) {
    int e = pick[j];
    double w = s->L.renorm ? z[e] / psum : z[e] / sum;
    if (s->L.swiglu) { /* down(silu(gate x) * up x), weights [out, in] */
      const int lora = s->L.type == FM_EXPERT_LORA;
      const float *wg = lora ? s->p.fc_w.w : s->p.efc_w[e].w, *wu = lora ? s->p.fup_w.w : s->p.eup_w[e].w;
      const float *wd = lora ? s->p.pj_w.w : s->p.epj_w[e].w;
      double xa1[8] = {0}, xa3[8] = {0}, ga2[8] = {0}; /* x A^T, LoRA A [r, in] */
      for (int q = 0; lora && q < r; q++)
        for (int i = 0; i < D; i++) {
          xa1[q] += (double)x[i] * s->p.a1[e].w[q * D + i];
          xa3[q] += (double)x[i] * s->p.a3[e].w[q * D + i];
        }
      for (int o = 0; o < F; o++) {
        double g = 0, u = 0;
        for (int i = 0; i < D; i++) {
          g += (double)x[i] * wg[o * D + i];
          u += (double)x[i] * wu[o * D + i];
        }
        for (int q = 0; lora && q < r; q++) { /* + s (x A^T) B^T, B [out, r] */
          g += s->L.scale * xa1[q] * s->p.b1[e].w[o * r + q];
          u += s->L.scale * xa3[q] * s->p.b3[e].w[o * r + q];
        }
        h[o] = silu(g) * u;
      }
      for (int q = 0; lora && q < r; q++)
        for (int i = 0; i < F; i++) ga2[q] += h[i] * s->p.a2[e].w[q * F + i];
      for (int o = 0; o < D; o++) {
        double y = 0;
        for (int i = 0; i < F; i++) y += h[i] * wd[o * F + i];
        for (int q = 0; lora && q < r; q++) y += s->L.scale * ga2[q] * s->p.b2[e].w[o * r + q];
        out[o] += w * y;
      }
      continue;
    }
    const int lora = s->L.type == FM_EXPERT_LORA;
    const float *fw = lora ? s->p.fc_w.w : s->p.efc_w[e].w, *fb = lora ? s->p.fc_b.w : s->p.efc_b[e].w;
    const float *pw = lora ? s->p.pj_w.w : s->p.epj_w[e].w, *pb = lora ? s->p.pj_b.w : s->p.epj_b[e].w;
    for (int o = 0; o < F; o++) {
      h[o] = fb[o];
      for (int i = 0; i < D; i++) h[o] += (double)x[i] * fw[i * F + o];
      if (lora)
        for (int q = 0; q < r; q++) {
          double xa = 0;
          for (int i = 0; i < D; i++) xa += (double)x[i] * s->p.a1[e].w[i * r + q];
          h[o] += s->L.scale * xa * s->p.b1[e].w[q * F + o];
        }
    }
    for (int o = 0; o < F; o++) h[o] = 0.5 * h[o] * (1 + tanh(sqrt(2 / M_PI) * (h[o] + 0.044715 * pow(h[o], 3))));
    for (int o = 0; o < D; o++) {
      double y = pb[o];
      for (int i = 0; i < F; i++) y += h[i] * pw[i * D + o];
      if (lora)
        for (int q = 0; q < r; q++) {
          double ga = 0;
          for (int i = 0; i < F; i++) ga += h[i] * s->p.a2[e].w[i * r + q];
          y += s->L.scale * ga * s->p.b2[e].w[q * D + o];
        }
      out[o] += w * y;
    }
  }
  free(h);
}
static void moe_case(int type, const uint8_t *allowed, int swiglu, int renorm) {
  moe_ctx s = {.N = 10, .D = 6, .coef = 0.3f};
  const int E = 4, k = 2, r = 3, D = s.D, F = swiglu ? 10 : 4 * D;
  fm_moe_dims dm = {.D = D, .F = swiglu ? F : 0, .E = E, .k = k, .type = type, .r = r,
                    .swiglu = swiglu, .renorm = renorm, .alpha = 6.0f};
  CU_ASSERT_EQUAL_FATAL(fm_moe_alloc(&s.L, 16, &dm), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_moe_set_mask(&s.L, allowed), FM_OK);
  float *arr[2 * (5 + 6 * FM_MAX_EXPERTS)];
  int na = 0;
  mk_param(&s.p.router, (size_t)E * D, 0.8f, arr, &na);
  if (type == FM_EXPERT_LORA && swiglu) { /* nn.Linear base, PEFT-layout adapters */
    mk_param(&s.p.fc_w, (size_t)F * D, 0.5f, arr, &na);
    mk_param(&s.p.fup_w, (size_t)F * D, 0.5f, arr, &na);
    mk_param(&s.p.pj_w, (size_t)D * F, 0.4f, arr, &na);
    for (int e = 0; e < E; e++) {
      mk_param(&s.p.a1[e], (size_t)r * D, 0.5f, arr, &na);
      mk_param(&s.p.b1[e], (size_t)F * r, 0.4f, arr, &na);
      mk_param(&s.p.a3[e], (size_t)r * D, 0.5f, arr, &na);
      mk_param(&s.p.b3[e], (size_t)F * r, 0.4f, arr, &na);
      mk_param(&s.p.a2[e], (size_t)r * F, 0.4f, arr, &na);
      mk_param(&s.p.b2[e], (size_t)D * r, 0.4f, arr, &na);
    }
  } else if (type == FM_EXPERT_LORA) {
    mk_param(&s.p.fc_w, (size_t)D * F, 0.4f, arr, &na);
    mk_param(&s.p.fc_b, F, 0.2f, arr, &na);
    mk_param(&s.p.pj_w, (size_t)F * D, 0.3f, arr, &na);
    mk_param(&s.p.pj_b, D, 0.2f, arr, &na);
    for (int e = 0; e < E; e++) {
      mk_param(&s.p.a1[e], (size_t)D * r, 0.4f, arr, &na);
      mk_param(&s.p.b1[e], (size_t)r * F, 0.4f, arr, &na);
      mk_param(&s.p.a2[e], (size_t)F * r, 0.3f, arr, &na);
      mk_param(&s.p.b2[e], (size_t)r * D, 0.4f, arr, &na);
    }
  } else if (swiglu) {
    for (int e = 0; e < E; e++) {
      mk_param(&s.p.efc_w[e], (size_t)F * D, 0.5f, arr, &na);
      mk_param(&s.p.eup_w[e], (size_t)F * D, 0.5f, arr, &na);
      mk_param(&s.p.epj_w[e], (size_t)D * F, 0.4f, arr, &na);
    }
  } else {
    for (int e = 0; e < E; e++) {
      mk_param(&s.p.efc_w[e], (size_t)D * F, 0.4f, arr, &na);
      mk_param(&s.p.efc_b[e], F, 0.2f, arr, &na);
      mk_param(&s.p.epj_w[e], (size_t)F * D, 0.3f, arr, &na);
      mk_param(&s.p.epj_b[e], D, 0.2f, arr, &na);
    }
  }
  const size_t ND = (size_t)s.N * D;
  s.x = vec(ND, 1);
  s.out = vec(ND, 0);
  s.R = vec(ND, 1);
  s.ref_picks = calloc((size_t)s.N * k, sizeof(int32_t));
  moe_loss(&s);
  memcpy(s.ref_picks, s.L.picks, (size_t)s.N * k * sizeof(int32_t));
  for (int n = 0; n < s.N; n++) { /* forward against the per-token reference */
    double ref[64];
    moe_ref(&s, n, ref);
    for (int i = 0; i < D; i++) FM_ASSERT_CLOSE(s.out[n * D + i], ref[i], 1e-4, 1e-5);
  }
  /* dispatch: the rows of each expert are contiguous, and every pick has one row */
  int rows = 0;
  for (int e = 0; e < E; e++) {
    for (int q = s.L.start[e]; q < s.L.start[e + 1]; q++)
      CU_ASSERT_EQUAL(s.L.picks[s.L.tok[q] * k + s.L.slot[q]], e);
    rows += s.L.count[e];
    if (allowed && !allowed[e]) CU_ASSERT_EQUAL(s.L.count[e], 0);
  }
  CU_ASSERT_EQUAL(rows, s.N * s.L.keff);
  float *dx = vec(ND, 0);
  fm_moe_backward(&s.L, &s.p, dx, s.R, s.x, s.coef, 1.0f);
  fd_problem p = {moe_loss, moe_stable, &s};
  fd_begin();
  fd_check("moe x", &p, s.x, dx, ND);
  for (int i = 0; i < na; i += 2) {
    char what[64];
    snprintf(what, sizeof what, "moe %s parameter %d",
             type == FM_EXPERT_LORA ? (swiglu ? "SwiGLU LoRA" : "LoRA") : swiglu ? "SwiGLU" : "full", i / 2);
    fd_check(what, &p, arr[i], arr[i + 1], lens[i / 2]);
  }
  fd_end();
  /* no gradient for experts not allowed */
  if (allowed)
    for (int e = 0; e < E; e++)
      if (!allowed[e]) {
        const fm_param *q = type == FM_EXPERT_LORA ? &s.p.b1[e] : &s.p.efc_w[e];
        double a = 0;
        for (size_t j = 0; j < (size_t)r * F && j < (size_t)D * F; j++) a += fabs(q->g[j]);
        CU_ASSERT_EQUAL(a, 0.0);
      }
  /* without dx and without parameter gradients the pass still runs */
  fm_moe_params nog = s.p;
  fm_param *all = (fm_param *)&nog;
  for (size_t j = 0; j < sizeof nog / sizeof(fm_param); j++) all[j].g = NULL;
  moe_loss(&s);
  fm_moe_backward(&s.L, &nog, NULL, s.R, s.x, s.coef, 1.0f);
  for (int i = 0; i < na; i++) free(arr[i]);
  free(s.x); free(s.out); free(s.R); free(s.ref_picks); free(dx);
  fm_moe_free(&s.L);
}
static void test_moe_full(void) {
  moe_case(FM_EXPERT_FULL, NULL, 0, 1);
  moe_case(FM_EXPERT_FULL, NULL, 0, 0); /* weights without renormalisation */
}
static void test_moe_lora(void) { moe_case(FM_EXPERT_LORA, NULL, 0, 1); }
static void test_moe_swiglu(void) {
  moe_case(FM_EXPERT_FULL, NULL, 1, 1); /* Mixtral */
  moe_case(FM_EXPERT_FULL, NULL, 1, 0); /* OLMoE, Qwen2-MoE */
  static const uint8_t mask[4] = {0, 1, 1, 1};
  moe_case(FM_EXPERT_FULL, mask, 1, 0);
  moe_case(FM_EXPERT_LORA, NULL, 1, 1); /* LoRA experts on a shared SwiGLU FFN */
  moe_case(FM_EXPERT_LORA, mask, 1, 0);
}
static void test_moe_masked(void) {
  static const uint8_t mask[4] = {1, 0, 1, 1};
  moe_case(FM_EXPERT_FULL, mask, 0, 1);
  moe_case(FM_EXPERT_LORA, mask, 0, 1);
  static const uint8_t one[4] = {0, 0, 1, 0}; /* top_k 2 with one expert allowed: k = 1 */
  moe_case(FM_EXPERT_FULL, one, 0, 1);
  static const uint8_t none[4] = {0, 0, 0, 0};
  fm_moe L;
  fm_moe_dims dm = {.D = 4, .E = 4, .k = 2, .type = FM_EXPERT_FULL, .r = 1, .renorm = 1, .alpha = 1.0f};
  CU_ASSERT_EQUAL_FATAL(fm_moe_alloc(&L, 4, &dm), FM_OK);
  CU_ASSERT_EQUAL(fm_moe_set_mask(&L, none), FM_ERR_ARG);
  fm_moe_free(&L);
}

/* ---- RMSNorm, on rows of a wider array (ld > C) as the q/k norms use it ---- */
typedef struct { int N, C, ld; float *x, *w, *out, *rstd, *R; } rms_ctx;
static double rms_loss(void *c) {
  rms_ctx *s = c;
  fm_rmsnorm_forward(s->out, s->rstd, s->x, s->w, s->N, s->C, s->ld, 1e-6f);
  double l = 0;
  for (int n = 0; n < s->N; n++) l += dotd(s->out + n * s->ld, s->R + n * s->ld, s->C);
  return l;
}
static void test_rmsnorm(void) {
  rms_ctx s = {.N = 5, .C = 11, .ld = 14};
  const size_t na = (size_t)s.N * s.ld;
  s.x = vec(na, 1.5f);
  s.w = vec(s.C, 1);
  s.out = vec(na, 0);
  s.rstd = vec(s.N, 0);
  s.R = vec(na, 1);
  rms_loss(&s);
  for (int n = 0; n < s.N; n++) { /* reference */
    double ms = 0;
    for (int i = 0; i < s.C; i++) ms += pow(s.x[n * s.ld + i], 2);
    ms /= s.C;
    for (int i = 0; i < s.C; i++)
      FM_ASSERT_CLOSE(s.out[n * s.ld + i], s.x[n * s.ld + i] / sqrt(ms + 1e-6) * s.w[i], 1e-5, 1e-6);
  }
  float *dx = vec(na, 0), *dw = vec(s.C, 0);
  fm_rmsnorm_backward(dx, dw, s.R, s.x, s.w, s.rstd, s.N, s.C, s.ld, 1);
  fd_problem p = {rms_loss, NULL, &s};
  fd_begin();
  fd_check("rmsnorm x", &p, s.x, dx, na);
  fd_check("rmsnorm w", &p, s.w, dw, s.C);
  fd_end();
  /* in place (dinp = dout, written): the same values */
  float *d2 = vec(na, 0);
  memcpy(d2, s.R, na * sizeof(float));
  fm_rmsnorm_backward(d2, NULL, d2, s.x, s.w, s.rstd, s.N, s.C, s.ld, 0);
  for (int n = 0; n < s.N; n++)
    for (int i = 0; i < s.C; i++) FM_ASSERT_CLOSE(d2[n * s.ld + i], dx[n * s.ld + i], 1e-6, 1e-7);
  free(s.x); free(s.w); free(s.out); free(s.rstd); free(s.R); free(dx); free(dw); free(d2);
}

/* ---- rotary embeddings: frequencies (default and llama3), rotation, its gradient ---- */
typedef struct { int B, T, nh, hs, ld; float *x0, *x, *c, *sn, *R; } rope_ctx;
static double rope_loss(void *c) {
  rope_ctx *s = c;
  memcpy(s->x, s->x0, (size_t)s->B * s->T * s->ld * sizeof(float));
  fm_rope_forward(s->x, s->c, s->sn, s->B, s->T, s->nh, s->hs, s->ld);
  return dotd(s->x, s->R, (size_t)s->B * s->T * s->ld);
}
static void test_rope(void) {
  /* frequencies: theta^(-2i/hs); llama3 keeps the high ones, divides the low ones by
   * factor and blends in between (wavelength against original context / factors) */
  fm_model_shape sh = {.rope_type = FM_ROPE_DEFAULT, .rope_theta = 10000.0f};
  double f[32];
  fm_rope_freqs(f, 16, &sh);
  for (int i = 0; i < 8; i++) FM_ASSERT_CLOSE(f[i], pow(10000.0, -2.0 * i / 16), 1e-12, 0);
  sh.rope_type = FM_ROPE_LLAMA3;
  sh.rope_factor = 8.0f;
  sh.rope_low_freq = 1.0f;
  sh.rope_high_freq = 4.0f;
  sh.rope_orig_ctx = 32;
  double g[32];
  fm_rope_freqs(g, 16, &sh);
  int kept = 0, divided = 0, blended = 0;
  for (int i = 0; i < 8; i++) {
    double f0 = pow(10000.0, -2.0 * i / 16), wl = 2 * M_PI / f0;
    if (wl < 32 / 4.0) {
      FM_ASSERT_CLOSE(g[i], f0, 1e-12, 0);
      kept++;
    } else if (wl > 32 / 1.0) {
      FM_ASSERT_CLOSE(g[i], f0 / 8, 1e-12, 0);
      divided++;
    } else {
      double a = (32 / wl - 1.0) / (4.0 - 1.0);
      FM_ASSERT_CLOSE(g[i], (1 - a) * f0 / 8 + a * f0, 1e-12, 0);
      blended++;
    }
  }
  CU_ASSERT(kept > 0 && divided > 0 && blended > 0); /* the case covers all three bands */
  /* rotation of q-like rows: 3 heads of 6 inside rows of 20 */
  rope_ctx s = {.B = 2, .T = 5, .nh = 3, .hs = 6, .ld = 20};
  const size_t n = (size_t)s.B * s.T * s.ld, h2 = (size_t)s.hs / 2;
  sh.rope_type = FM_ROPE_DEFAULT;
  sh.rope_theta = 100.0f;
  s.c = vec((size_t)s.T * h2, 0);
  s.sn = vec((size_t)s.T * h2, 0);
  fm_rope_table(s.c, s.sn, s.T, s.hs, &sh);
  s.x0 = vec(n, 1);
  s.x = vec(n, 0);
  s.R = vec(n, 1);
  rope_loss(&s);
  for (int b = 0; b < s.B; b++)
    for (int t = 0; t < s.T; t++)
      for (int h = 0; h < s.nh; h++)
        for (size_t i = 0; i < h2; i++) {
          size_t o = ((size_t)b * s.T + t) * s.ld + (size_t)h * s.hs + i;
          double ang = t * pow(100.0, -2.0 * (double)i / s.hs);
          FM_ASSERT_CLOSE(s.x[o], s.x0[o] * cos(ang) - s.x0[o + h2] * sin(ang), 1e-5, 1e-6);
          FM_ASSERT_CLOSE(s.x[o + h2], s.x0[o + h2] * cos(ang) + s.x0[o] * sin(ang), 1e-5, 1e-6);
        }
  for (int t = 0; t < s.T; t++) /* columns past the heads are left alone */
    CU_ASSERT_EQUAL(s.x[(size_t)t * s.ld + 19], s.x0[(size_t)t * s.ld + 19]);
  float *dx = vec(n, 0);
  memcpy(dx, s.R, n * sizeof(float));
  fm_rope_backward(dx, s.c, s.sn, s.B, s.T, s.nh, s.hs, s.ld);
  fd_problem p = {rope_loss, NULL, &s};
  fd_begin();
  fd_check("rope x", &p, s.x0, dx, n);
  fd_end();
  free(s.c); free(s.sn); free(s.x0); free(s.x); free(s.R); free(dx);
}

/* ---- nn.Linear layout projection with a bias, into a wider output row ---- */
typedef struct { int N, C, OC, ld; float *x, *w, *b, *out, *R; } dense_ctx;
static double dense_loss(void *c) {
  dense_ctx *s = c;
  memset(s->out, 0, (size_t)s->N * s->ld * sizeof(float));
  fm_dense_forward(s->out, s->ld, s->x, s->w, s->b, s->N, s->C, s->OC, 0);
  return dotd(s->out, s->R, (size_t)s->N * s->ld);
}
static void test_dense(void) {
  dense_ctx s = {.N = 4, .C = 5, .OC = 3, .ld = 7};
  s.x = vec((size_t)s.N * s.C, 1);
  s.w = vec((size_t)s.OC * s.C, 1);
  s.b = vec(s.OC, 1);
  s.out = vec((size_t)s.N * s.ld, 0);
  s.R = vec((size_t)s.N * s.ld, 1);
  for (int n = 0; n < s.N; n++) /* only the first OC columns of a row are the output */
    for (int j = s.OC; j < s.ld; j++) s.R[n * s.ld + j] = 0;
  dense_loss(&s);
  for (int n = 0; n < s.N; n++)
    for (int o = 0; o < s.OC; o++) {
      double y = s.b[o];
      for (int i = 0; i < s.C; i++) y += (double)s.x[n * s.C + i] * s.w[o * s.C + i];
      FM_ASSERT_CLOSE(s.out[n * s.ld + o], y, 1e-5, 1e-6);
    }
  float *dx = vec((size_t)s.N * s.C, 0), *dw = vec((size_t)s.OC * s.C, 0), *db = vec(s.OC, 0);
  fm_dense_backward(dx, dw, db, s.R, s.ld, s.x, s.w, s.N, s.C, s.OC, 0);
  fd_problem p = {dense_loss, NULL, &s};
  fd_begin();
  fd_check("dense x", &p, s.x, dx, (size_t)s.N * s.C);
  fd_check("dense w", &p, s.w, dw, (size_t)s.OC * s.C);
  fd_check("dense b", &p, s.b, db, s.OC);
  fd_end();
  free(s.x); free(s.w); free(s.b); free(s.out); free(s.R); free(dx); free(dw); free(db);
}

/* ---- SwiGLU FFN, and Qwen2-MoE's gated shared expert on top of it ---- */
typedef struct { int N, D, F, shared; float *x, *wg, *wu, *wd, *wsg, *gu, *a, *y, *sg, *out, *R; } sw_ctx;
static double sw_loss(void *c) {
  sw_ctx *s = c;
  memset(s->out, 0, (size_t)s->N * s->D * sizeof(float));
  if (s->shared)
    fm_shared_expert_forward(s->out, s->y, s->sg, s->gu, s->a, s->x, s->wg, s->wu, s->wd, s->wsg, s->N,
                             s->D, s->F);
  else
    fm_swiglu_ffn_forward(s->out, s->gu, s->a, s->x, s->wg, s->wu, s->wd, s->N, s->D, s->F, 1);
  return dotd(s->out, s->R, (size_t)s->N * s->D);
}
static void swiglu_case(int shared) {
  sw_ctx s = {.N = 5, .D = 6, .F = 9, .shared = shared};
  const size_t ND = (size_t)s.N * s.D, FD = (size_t)s.F * s.D;
  s.x = vec(ND, 1);
  s.wg = vec(FD, 0.6f);
  s.wu = vec(FD, 0.6f);
  s.wd = vec(FD, 0.4f);
  s.wsg = vec(s.D, 0.8f);
  s.gu = vec((size_t)s.N * 2 * s.F, 0);
  s.a = vec((size_t)s.N * s.F, 0);
  s.y = vec(ND, 0);
  s.sg = vec(s.N, 0);
  s.out = vec(ND, 0);
  s.R = vec(ND, 1);
  sw_loss(&s);
  for (int n = 0; n < s.N; n++) { /* reference */
    double gate = 0;
    for (int i = 0; i < s.D; i++) gate += (double)s.x[n * s.D + i] * s.wsg[i];
    gate = shared ? 1 / (1 + exp(-gate)) : 1;
    for (int o = 0; o < s.D; o++) {
      double y = 0;
      for (int j = 0; j < s.F; j++) {
        double g = 0, u = 0;
        for (int i = 0; i < s.D; i++) {
          g += (double)s.x[n * s.D + i] * s.wg[j * s.D + i];
          u += (double)s.x[n * s.D + i] * s.wu[j * s.D + i];
        }
        y += silu(g) * u * s.wd[o * s.F + j];
      }
      FM_ASSERT_CLOSE(s.out[n * s.D + o], gate * y, 1e-4, 1e-5);
    }
  }
  float *dx = vec(ND, 0), *dwg = vec(FD, 0), *dwu = vec(FD, 0), *dwd = vec(FD, 0), *dwsg = vec(s.D, 0);
  float *da = vec((size_t)s.N * s.F, 0), *dgu = vec((size_t)s.N * 2 * s.F, 0), *dy = vec(ND, 0),
        *dz = vec(s.N, 0);
  if (shared)
    fm_shared_expert_backward(dx, dwg, dwu, dwd, dwsg, dy, dz, da, dgu, s.R, s.x, s.y, s.sg, s.gu, s.a,
                              s.wg, s.wu, s.wd, s.wsg, s.N, s.D, s.F);
  else
    fm_swiglu_ffn_backward(dx, dwg, dwu, dwd, da, dgu, s.R, s.x, s.gu, s.a, s.wg, s.wu, s.wd, s.N, s.D,
                           s.F, 1);
  fd_problem p = {sw_loss, NULL, &s};
  fd_begin();
  fd_check(shared ? "shared expert x" : "swiglu x", &p, s.x, dx, ND);
  fd_check(shared ? "shared expert gate_proj" : "swiglu gate_proj", &p, s.wg, dwg, FD);
  fd_check(shared ? "shared expert up_proj" : "swiglu up_proj", &p, s.wu, dwu, FD);
  fd_check(shared ? "shared expert down_proj" : "swiglu down_proj", &p, s.wd, dwd, FD);
  if (shared) fd_check("shared_expert_gate", &p, s.wsg, dwsg, s.D);
  fd_end();
  float *ptrs[] = {s.x, s.wg, s.wu, s.wd, s.wsg, s.gu, s.a, s.y, s.sg, s.out, s.R,
                   dx, dwg, dwu, dwd, dwsg, da, dgu, dy, dz};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) free(ptrs[i]);
}
static void test_swiglu(void) { swiglu_case(0); }
static void test_shared_expert(void) { swiglu_case(1); }

/* ---- a LoRA update on its own, both layouts, into a wider output row ---- */
typedef struct { int layout, n, in, out, R, ld; float s, *x, *A, *B, *z, *y, *R_; } lora_ctx;
static double lora_loss(void *c) {
  lora_ctx *s = c;
  memset(s->y, 0, (size_t)s->n * s->ld * sizeof(float));
  fm_lora_forward(s->layout, s->n, s->in, s->out, s->R, s->s, s->x, s->in, s->A, s->B, s->z, s->y, s->ld);
  return dotd(s->y, s->R_, (size_t)s->n * s->ld);
}
static void lora_case(int layout) {
  lora_ctx s = {.layout = layout, .n = 5, .in = 6, .out = 4, .R = 3, .ld = 7, .s = 1.5f};
  s.x = vec((size_t)s.n * s.in, 1);
  s.A = vec((size_t)s.in * s.R, 0.5f);
  s.B = vec((size_t)s.R * s.out, 0.5f);
  s.z = vec((size_t)s.n * s.R, 0);
  s.y = vec((size_t)s.n * s.ld, 0);
  s.R_ = vec((size_t)s.n * s.ld, 1);
  lora_loss(&s);
  for (int i = 0; i < s.n; i++) /* reference: s (x A) B with A, B as the layout stores them */
    for (int o = 0; o < s.out; o++) {
      double y = 0;
      for (int q = 0; q < s.R; q++) {
        double xa = 0;
        for (int j = 0; j < s.in; j++)
          xa += (double)s.x[i * s.in + j] * (layout == FM_LORA_LINEAR ? s.A[q * s.in + j] : s.A[j * s.R + q]);
        y += xa * (layout == FM_LORA_LINEAR ? s.B[o * s.R + q] : s.B[q * s.out + o]);
      }
      FM_ASSERT_CLOSE(s.y[i * s.ld + o], s.s * y, 1e-5, 1e-6);
    }
  float *dx = vec((size_t)s.n * s.in, 0), *dA = vec((size_t)s.in * s.R, 0), *dB = vec((size_t)s.R * s.out, 0),
        *dz = vec((size_t)s.n * s.R, 0);
  fm_param A = {s.A, dA}, B = {s.B, dB};
  fm_lora_backward(layout, s.n, s.in, s.out, s.R, s.s, s.x, s.in, s.z, s.R_, s.ld, A, B, dz, dx, 0.0f);
  fd_problem p = {lora_loss, NULL, &s};
  fd_begin();
  fd_check(layout == FM_LORA_LINEAR ? "lora (nn.Linear) x" : "lora (Conv1D) x", &p, s.x, dx, (size_t)s.n * s.in);
  fd_check("lora A", &p, s.A, dA, (size_t)s.in * s.R);
  fd_check("lora B", &p, s.B, dB, (size_t)s.R * s.out);
  fd_end();
  float *ptrs[] = {s.x, s.A, s.B, s.z, s.y, s.R_, dx, dA, dB, dz};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) free(ptrs[i]);
}
static void test_lora(void) {
  lora_case(FM_LORA_CONV1D);
  lora_case(FM_LORA_LINEAR);
}

/* ---- the grouped LoRA update of client slots: G groups of rows, each with its pair
 * at a stride (padded here, so a stride mistaken for the pair's size shows) ---- */
typedef struct { int layout, G, n, in, out, R, ldx, ldy; size_t sA, sB; float s, *x, *A, *B, *z, *y, *R_; } glora_ctx;
static double glora_loss(void *c) {
  glora_ctx *s = c;
  memset(s->y, 0, (size_t)s->G * s->n * s->ldy * sizeof(float));
  fm_lora_grouped_forward(s->layout, s->G, s->n, s->in, s->out, s->R, s->s, s->x, s->ldx, s->A, s->sA, s->B,
                          s->sB, s->z, s->y, s->ldy);
  return dotd(s->y, s->R_, (size_t)s->G * s->n * s->ldy);
}
static void glora_case(int layout) {
  glora_ctx s = {.layout = layout, .G = 3, .n = 4, .in = 6, .out = 5, .R = 2, .ldx = 8, .ldy = 7, .s = 0.75f};
  s.sA = (size_t)s.in * s.R + 3;
  s.sB = (size_t)s.R * s.out + 2;
  const size_t rows = (size_t)s.G * s.n, nA = s.G * s.sA, nB = s.G * s.sB;
  s.x = vec(rows * s.ldx, 1);
  s.A = vec(nA, 0.5f);
  s.B = vec(nB, 0.5f);
  s.z = vec(rows * s.R, 0);
  s.y = vec(rows * s.ldy, 0);
  s.R_ = vec(rows * s.ldy, 1);
  glora_loss(&s);
  const int lin = layout == FM_LORA_LINEAR;
  for (int g = 0; g < s.G; g++) /* reference: row i of group g through group g's pair */
    for (int i = g * s.n; i < (g + 1) * s.n; i++)
      for (int o = 0; o < s.out; o++) {
        const float *A = s.A + g * s.sA, *B = s.B + g * s.sB;
        double y = 0;
        for (int q = 0; q < s.R; q++) {
          double xa = 0;
          for (int j = 0; j < s.in; j++) xa += (double)s.x[i * s.ldx + j] * (lin ? A[q * s.in + j] : A[j * s.R + q]);
          y += xa * (lin ? B[o * s.R + q] : B[q * s.out + o]);
        }
        FM_ASSERT_CLOSE(s.y[i * s.ldy + o], s.s * y, 1e-5, 1e-6);
      }
  float *dx = vec(rows * s.ldx, 0), *dA = vec(nA, 0), *dB = vec(nB, 0), *dz = vec(rows * s.R, 0);
  fm_param A = {s.A, dA}, B = {s.B, dB};
  fm_lora_grouped_backward(layout, s.G, s.n, s.in, s.out, s.R, s.s, s.x, s.ldx, s.z, s.R_, s.ldy, A, B, s.sA,
                           s.sB, dz, dx, 0.0f);
  for (int g = 0; g < s.G; g++) { /* the padding between pairs is nobody's: no gradient there */
    for (size_t j = (size_t)s.in * s.R; j < s.sA; j++) CU_ASSERT_EQUAL(dA[g * s.sA + j], 0.0f);
    for (size_t j = (size_t)s.R * s.out; j < s.sB; j++) CU_ASSERT_EQUAL(dB[g * s.sB + j], 0.0f);
  }
  fd_problem p = {glora_loss, NULL, &s};
  fd_begin();
  fd_check(lin ? "grouped lora (nn.Linear) x" : "grouped lora (Conv1D) x", &p, s.x, dx, rows * s.ldx);
  fd_check("grouped lora A", &p, s.A, dA, nA);
  fd_check("grouped lora B", &p, s.B, dB, nB);
  fd_end();
  float *ptrs[] = {s.x, s.A, s.B, s.z, s.y, s.R_, dx, dA, dB, dz};
  for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) free(ptrs[i]);
}
static void test_lora_grouped(void) {
  glora_case(FM_LORA_CONV1D);
  glora_case(FM_LORA_LINEAR);
}

int fm_test_register(void) {
  fm_rng_init(&rng, 12345, 0, 0, FM_RNG_TEST);
  static const fm_test kernels[] = {
    {"gemm strides", test_gemm},
    {"layernorm", test_layernorm},
    {"gelu", test_gelu},
    {"bias + gelu fused", test_bias_gelu},
    {"dense ffn", test_ffn},
    {"causal attention", test_attention},
    {"grouped-query attention", test_attention_gqa},
    {"rmsnorm (strided rows, in place)", test_rmsnorm},
    {"rotary embeddings, llama3 scaling", test_rope},
    {"nn.Linear projection", test_dense},
    {"swiglu ffn", test_swiglu},
    {"shared expert with sigmoid gate", test_shared_expert},
    {"lora update, both layouts", test_lora},
    {"grouped lora update of client slots, both layouts", test_lora_grouped},
    {"embedding", test_embed},
    {"cross-entropy", test_crossentropy},
    {"router softmax top-k renorm", test_router},
    {"router without renormalisation", test_router_plain},
    {"router ties and masks", test_router_ties},
    {"load balancing", test_loadbalance},
    {"moe full experts", test_moe_full},
    {"moe lora experts", test_moe_lora},
    {"moe swiglu experts", test_moe_swiglu},
    {"moe route masks", test_moe_masked},
    {NULL, NULL}};
  return fm_test_suite("nn kernels", kernels);
}
