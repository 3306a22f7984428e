/* test_toolkit.c - the federated-learning toolkit's parts: the Renyi-DP accountant
 * against published and derived values, the server optimizers' update rules, the
 * FedProx term's gradient (finite differences), Ditto's proximal step, secure
 * aggregation's masks. */
#include "cunit_main.h"

#include "fedmoe/fl.h"
#include "fedmoe/rng.h"
#include "fedmoe/toolkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Poisson-sampled Gaussian, q = 0.01, sigma = 2.5, 50 steps. Integer orders: the values
 * of Google's dp_accounting test test_compute_rdp_poisson_sampled_gaussian
 * (python/dp_accounting/dp_accounting/rdp/rdp_privacy_accountant_test.py), which
 * checks them against multi-precision integration. Fractional orders: the definition
 * A_a = E_{z~N(0,s^2)} ((1-q) + q exp((2z-1)/(2s^2)))^a integrated numerically with
 * mpmath at 40 digits (50 log A / (a - 1) = 6.500708972e-4 at 1.5, 1.085418057e-3 at
 * 2.5); dp_accounting's 6.70579741e-4 and 1.08548710e-3 there are upper bounds of them. */
static void test_rdp_poisson(void) {
  const double ints[3][2] = {{5, 2.18075656e-03}, {50, 2.38460375e-02}, {100, 1.67416308e02}};
  for (int i = 0; i < 3; i++) FM_ASSERT_CLOSE(50 * fm_rdp_poisson(0.01, 2.5, ints[i][0]), ints[i][1], 1e-6, 0);
  FM_ASSERT_CLOSE(50 * fm_rdp_poisson(0.01, 2.5, 1.5), 6.500708972e-4, 1e-6, 0);
  FM_ASSERT_CLOSE(50 * fm_rdp_poisson(0.01, 2.5, 2.5), 1.085418057e-3, 1e-6, 0);
  CU_ASSERT(50 * fm_rdp_poisson(0.01, 2.5, 1.5) <= 6.70579741e-04);
  /* q = 1: the Gaussian mechanism, alpha / (2 sigma^2) */
  FM_ASSERT_CLOSE(fm_rdp_poisson(1, 2.71828, 3.14159), 3.14159 / (2 * 2.71828 * 2.71828), 1e-12, 0);
  CU_ASSERT_EQUAL(fm_rdp_poisson(0, 1, 2), 0);
  CU_ASSERT(isinf(fm_rdp_poisson(0.1, 0, 2)));
}

/* Abadi et al. 2016, Sec. 3.1: q = 0.01, sigma = 4, T = 10000, delta = 1e-5 gives
 * epsilon ~ 1.26 with the moments accountant, i.e. integer orders lambda + 1 up to 33
 * and the classic conversion. The improved conversion (Balle et al. 2020) is smaller. */
static void test_abadi_moments(void) {
  double orders[32], rdp[32], at;
  for (int i = 0; i < 32; i++) {
    orders[i] = i + 2;
    rdp[i] = 10000 * fm_rdp_poisson(0.01, 4, orders[i]);
  }
  double classic = fm_rdp_epsilon(orders, rdp, 32, 1e-5, 1, &at);
  FM_ASSERT_CLOSE(classic, 1.26, 0, 0.005);
  double improved = fm_rdp_epsilon(orders, rdp, 32, 1e-5, 0, &at);
  CU_ASSERT(improved < classic && improved > 0.9);
  fm_accountant a;
  fm_accountant_init(&a, 0.01, 4, 1, 1e-5);
  CU_ASSERT(fm_accountant_epsilon(&a, 10000) <= improved + 1e-12); /* more orders: never worse */
  CU_ASSERT(fm_accountant_epsilon(&a, 5000) < fm_accountant_epsilon(&a, 10000));
  CU_ASSERT_EQUAL(fm_accountant_epsilon(&a, 0), 0);
}

/* The conversion, from dp_accounting's tests: constant RDP 1.1 over orders 2..32 (pure
 * DP) gives 1.32783806176 at delta 1e-5 at order 32; the Gaussian with sigma
 * 4.530877117 is exactly (1, 1e-6)-DP and the conversion over a fine grid finds ~1. */
static void test_rdp_conversion(void) {
  double orders[31], rdp[31], at;
  for (int i = 0; i < 31; i++) { orders[i] = i + 2; rdp[i] = 1.1; }
  FM_ASSERT_CLOSE(fm_rdp_epsilon(orders, rdp, 31, 1e-5, 0, &at), 1.32783806176, 1e-9, 0);
  CU_ASSERT_EQUAL(at, 32);
  enum { N = 99000 };
  double *o = malloc(N * sizeof *o), *r = malloc(N * sizeof *r), s = 4.530877117;
  for (int i = 0; i < N; i++) { o[i] = 1 + 0.001 * i; r[i] = o[i] / (2 * s * s); }
  FM_ASSERT_CLOSE(fm_rdp_epsilon(o, r, N, 1e-6, 0, NULL), 1.0, 0, 1e-3);
  free(o);
  free(r);
}

/* Fixed-size sampling (Wang et al. 2019, Theorem 9, base RDP 2j/sigma^2): at order 2
 * the bound is log(1 + q^2 min{4 (e^(4/s^2) - 1), 2 e^(4/s^2)}); with q = 1 no
 * amplification; it grows with q and falls with sigma. */
static void test_rdp_fixed(void) {
  double q = 0.05, s = 1.3, e2 = 4 / (s * s);
  FM_ASSERT_CLOSE(fm_rdp_fixed(q, s, 2), log1p(q * q * fmin(4 * expm1(e2), 2 * exp(e2))), 1e-12, 0);
  FM_ASSERT_CLOSE(fm_rdp_fixed(1, s, 7), 2.0 * 7 / (s * s), 1e-12, 0);
  CU_ASSERT(fm_rdp_fixed(0.1, 2, 8) < fm_rdp_fixed(0.2, 2, 8));
  CU_ASSERT(fm_rdp_fixed(0.1, 2, 8) > fm_rdp_fixed(0.1, 3, 8));
  CU_ASSERT(fm_rdp_fixed(0.1, 2, 8) < fm_rdp_fixed(1, 2, 8));
}

/* Calibration finds the smallest multiplier reaching the target. */
static void test_calibrate(void) {
  for (int poisson = 0; poisson < 2; poisson++) {
    double s = fm_accountant_calibrate(0.5, poisson, 1e-5, 20, 4.0);
    CU_ASSERT_FATAL(s > 0);
    fm_accountant a;
    fm_accountant_init(&a, 0.5, s, poisson, 1e-5);
    CU_ASSERT(fm_accountant_epsilon(&a, 20) <= 4.0);
    fm_accountant_init(&a, 0.5, s * 0.99, poisson, 1e-5);
    CU_ASSERT(fm_accountant_epsilon(&a, 20) > 4.0);
  }
}

/* One step of each optimizer from fresh state against the update rule by hand. */
static void test_server_opt(void) {
  fm_config c;
  fm_config_init(&c);
  c.fltk.server_lr = 0.1;
  c.fltk.server_momentum = 0.9;
  c.fltk.server_beta2 = 0.99;
  c.fltk.server_eps = 1e-3;
  const double d[3] = {0.5, -0.02, 0};
  for (int kind = FM_SERVER_AVG; kind <= FM_SERVER_ADAGRAD; kind++) {
    c.fltk.server_opt = kind;
    fm_server_opt o;
    CU_ASSERT_EQUAL_FATAL(fm_server_opt_create(&o, &c, 3), FM_OK);
    float x[3] = {1, 2, 3};
    for (int step = 0; step < 2; step++) fm_server_opt_step(&o, 0, 3, d, x);
    for (int i = 0; i < 3; i++) {
      double want, m = 0, v = 1e-6, xi = i + 1;
      for (int step = 0; step < 2; step++) {
        double s;
        if (kind == FM_SERVER_AVG) s = d[i];
        else if (kind == FM_SERVER_AVGM) s = m = 0.9 * m + d[i];
        else {
          m = 0.9 * m + 0.1 * d[i];
          double d2 = d[i] * d[i];
          v = kind == FM_SERVER_ADAGRAD ? v + d2
            : kind == FM_SERVER_ADAM    ? 0.99 * v + 0.01 * d2
                                        : v - 0.01 * d2 * (v > d2 ? 1 : v < d2 ? -1 : 0);
          s = m / (sqrt(v) + 1e-3);
        }
        xi = (float)(xi + 0.1 * s);
      }
      want = xi;
      FM_ASSERT_CLOSE(x[i], want, 1e-6, 1e-7);
    }
    fm_server_opt_free(&o);
  }
  fm_config_free(&c);
}

/* FedProx: the value mu/2 ||w - g||^2 and its gradient against central differences,
 * on the shared class of a small MoE model; frozen tensors get no gradient. */
static void test_prox_gradient(void) {
  fm_model_shape s = {.vocab = 16, .context = 4, .d = 8, .heads = 2, .layers = 1, .moe_mask = 1, .experts = 2,
                      .top_k = 1, .expert_type = FM_EXPERT_FULL, .lora_rank = 2, .lora_alpha = 4,
                      .init_std = 0.2f, .load_balance = 0};
  fm_model *m;
  CU_ASSERT_EQUAL_FATAL(fm_model_create(&m, &s, 1, 4, 1, NULL, NULL), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_init(m, 3), FM_OK);
  size_t n = fm_model_class_numel(m, 0);
  float *w = fm_model_class_params(m, 0), *g = fm_model_class_grads(m, 0);
  float *g0 = malloc(n * sizeof *g0);
  fm_rng r;
  fm_rng_init(&r, 9, 0, 0, FM_RNG_TEST);
  for (size_t i = 0; i < n; i++) g0[i] = w[i] + (float)(0.1 * fm_rng_normal(&r));
  float *global[FM_MAX_CLASSES] = {g0};
  const double mu = 0.7;
  fm_model_zero_grads(m);
  double f = fm_prox_apply(m, global, 1u, mu), want = 0;
  for (size_t i = 0; i < n; i++) want += 0.5 * mu * ((double)w[i] - g0[i]) * ((double)w[i] - g0[i]);
  FM_ASSERT_CLOSE(f, want, 1e-9, 0);
  float *grad = malloc(n * sizeof *grad);
  memcpy(grad, g, n * sizeof *grad);
  float *scratch = malloc(n * sizeof *scratch);
  for (int k = 0; k < 20; k++) {
    size_t i = (size_t)fm_rng_below(&r, n);
    float keep = w[i], h = 1e-2f;
    memcpy(scratch, g, n * sizeof *g);
    w[i] = keep + h;
    double fp = fm_prox_apply(m, global, 1u, mu);
    w[i] = keep - h;
    double fm = fm_prox_apply(m, global, 1u, mu);
    w[i] = keep;
    memcpy(g, scratch, n * sizeof *g);
    FM_ASSERT_CLOSE(grad[i], (fp - fm) / (2 * (double)h), 1e-3, 1e-5);
  }
  /* a frozen tensor and a class outside the mask get nothing */
  fm_tensor *t = fm_model_tensor(m, 0);
  t->frozen = 1;
  fm_model_zero_grads(m);
  fm_prox_apply(m, global, 1u, mu);
  int touched = 0;
  for (size_t i = t->offset; i < t->offset + t->numel; i++) touched |= g[i] != 0;
  CU_ASSERT_FALSE(touched);
  t->frozen = 0;
  fm_model_zero_grads(m);
  CU_ASSERT_EQUAL(fm_prox_apply(m, global, 0u, mu), 0);
  free(g0); free(grad); free(scratch);
  fm_model_free(m);
}

/* Ditto's proximal step after an AdamW step: each value minimises lambda/2 (u - g)^2
 * + (u - w)^2 / (2 e), e AdamW's step size of it (the derivative, by central
 * differences, vanishes there); lambda 0 changes nothing, a huge lambda gives g; and
 * iterated with a constant gradient G its fixed point solves G + lambda (v - g) = 0,
 * the stationarity of F + lambda/2 ||v - g||^2. A frozen tensor is left alone. */
static void test_ditto_prox_step(void) {
  fm_model_shape s = {.vocab = 16, .context = 4, .d = 8, .heads = 2, .layers = 1, .moe_mask = 1, .experts = 2,
                      .top_k = 1, .expert_type = FM_EXPERT_FULL, .lora_rank = 2, .lora_alpha = 4,
                      .init_std = 0.2f, .load_balance = 0};
  fm_model *m;
  CU_ASSERT_EQUAL_FATAL(fm_model_create(&m, &s, 1, 4, 1, NULL, NULL), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_init(m, 3), FM_OK);
  size_t n = fm_model_class_numel(m, 0);
  float *w = fm_model_class_params(m, 0), *grad = fm_model_class_grads(m, 0);
  float *g = malloc(n * sizeof *g), *w0 = malloc(n * sizeof *w0), *after = malloc(n * sizeof *after);
  double *G = malloc(n * sizeof *G);
  fm_rng r;
  fm_rng_init(&r, 11, 0, 0, FM_RNG_TEST);
  for (size_t i = 0; i < n; i++) {
    g[i] = w[i] + (float)(0.05 * fm_rng_normal(&r));
    G[i] = fm_rng_normal(&r);
  }
  memcpy(w0, w, n * sizeof *w);
  fm_adamw o;
  CU_ASSERT_EQUAL_FATAL(fm_adamw_create(&o, n), FM_OK);
  const double lr = 0.01, b2 = 0.999, eps = 1e-8;
  fm_adamw_hparams h = {(float)lr, 0.9f, (float)b2, (float)eps, 0, 1};
  for (size_t i = 0; i < n; i++) grad[i] = (float)G[i];
  fm_adamw_step(&o, m, 0, &h);
  memcpy(after, w, n * sizeof *w); /* the AdamW step alone */
  const double lambda = 3;
  fm_prox_step(m, 0, &o, g, lambda, lr, b2, eps);
  double c2 = 1 / (1 - pow(b2, (double)o.step));
  int moved = 0;
  for (int k = 0; k < 20; k++) {
    size_t i = (size_t)fm_rng_below(&r, n);
    double e = lr / (sqrt(o.v[i] * c2) + eps), u = w[i], hh = 1e-4;
#define Q(x) (0.5 * lambda * ((x) - g[i]) * ((x) - g[i]) + ((x) - after[i]) * ((x) - after[i]) / (2 * e))
    double d = (Q(u + hh) - Q(u - hh)) / (2 * hh), scale = (lambda + 1 / e) * fabs(after[i] - g[i]) + 1e-12;
#undef Q
    CU_ASSERT(fabs(d) <= 1e-4 * scale);
    moved |= u != after[i];
  }
  CU_ASSERT(moved);
  memcpy(w, after, n * sizeof *w);
  fm_prox_step(m, 0, &o, g, 0, lr, b2, eps);
  CU_ASSERT_EQUAL(memcmp(w, after, n * sizeof *w), 0);
  fm_prox_step(m, 0, &o, g, 1e12, lr, b2, eps);
  int near = 1;
  for (size_t i = 0; i < n; i++) near &= fabsf(w[i] - g[i]) <= 1e-6f * (1 + fabsf(g[i]));
  CU_ASSERT(near);
  /* the fixed point with a constant gradient */
  memcpy(w, w0, n * sizeof *w);
  fm_adamw_reset(&o);
  for (int step = 0; step < 3000; step++) {
    for (size_t i = 0; i < n; i++) grad[i] = (float)G[i];
    fm_adamw_step(&o, m, 0, &h);
    fm_prox_step(m, 0, &o, g, lambda, lr, b2, eps);
  }
  double worst = 0;
  for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(G[i] + lambda * ((double)w[i] - g[i])));
  CU_ASSERT(worst < 1e-3);
  /* a frozen tensor keeps its values */
  fm_tensor *t = fm_model_tensor(m, 0);
  memcpy(after, w, n * sizeof *w);
  t->frozen = 1;
  fm_prox_step(m, 0, &o, g, 1e12, lr, b2, eps);
  CU_ASSERT_EQUAL(memcmp(w + t->offset, after + t->offset, t->numel * sizeof *w), 0);
  t->frozen = 0;
  fm_adamw_free(&o);
  free(g); free(w0); free(after); free(G);
  fm_model_free(m);
}

/* Secure aggregation: a masked vector looks nothing like the plain one, yet the
 * survivors' masked vectors, unmasked, sum to exactly their plain sum, also with
 * members that dropped out after the key agreement. */
static void test_secagg_cancels(void) {
  enum { K = 5, N = 97 };
  int members[K] = {0, 3, 4, 8, 11};
  uint8_t survived[K] = {1, 0, 1, 1, 0};
  uint64_t plain[K][N], masked[K][N], sum_plain[N] = {0}, sum_masked[N] = {0};
  fm_rng r;
  fm_rng_init(&r, 4, 0, 0, FM_RNG_TEST);
  for (int a = 0; a < K; a++)
    for (int i = 0; i < N; i++) plain[a][i] = masked[a][i] = (uint64_t)(int64_t)(fm_rng_normal(&r) * 1e12);
  for (int a = 0; a < K; a++) fm_secagg_mask(77, 3, members[a], members, K, masked[a], N);
  int same = 0;
  for (int i = 0; i < N; i++) same += masked[0][i] == plain[0][i];
  CU_ASSERT(same == 0);
  for (int a = 0; a < K; a++)
    for (int i = 0; i < N && survived[a]; i++) { sum_plain[i] += plain[a][i]; sum_masked[i] += masked[a][i]; }
  fm_secagg_unmask(77, 3, members, K, survived, sum_masked, N);
  CU_ASSERT_EQUAL(memcmp(sum_plain, sum_masked, sizeof sum_plain), 0);
  /* another round's masks do not remove these */
  uint64_t again[N];
  memcpy(again, masked[0], sizeof again);
  fm_secagg_unmask(77, 4, members, K, survived, again, N);
  CU_ASSERT(memcmp(again, plain[0], sizeof again) != 0);
  double up, down;
  fm_secagg_overhead(K, &up, &down);
  CU_ASSERT(up > 0 && down > up);
}

/* Top-k keeps the k largest magnitudes (ties to the lower index) and zeroes the
 * rest; int8 rounds to multiples of max|u|/127 within half a step. */
static void test_compress(void) {
  float u[8] = {0.5f, -3, 2, -2, 0.1f, 2, 0, 7}, s[8];
  CU_ASSERT_EQUAL(fm_compress_topk(u, 8, 8, 0.5, s), 4);
  const float want[8] = {0, -3, 2, -2, 0, 0, 0, 7}; /* |2| three times: the first two of them */
  CU_ASSERT_EQUAL(memcmp(u, want, sizeof u), 0);
  float v[3] = {1, 2, 3};
  CU_ASSERT_EQUAL(fm_compress_topk(v, 3, 3, 1.0, s), 3);
  CU_ASSERT(v[0] == 1 && v[1] == 2 && v[2] == 3);
  enum { N = 1000 };
  float x[N], q[N];
  fm_rng r;
  fm_rng_init(&r, 5, 0, 0, FM_RNG_TEST);
  float mx = 0;
  for (int i = 0; i < N; i++) { x[i] = q[i] = (float)fm_rng_normal(&r); mx = fmaxf(mx, fabsf(x[i])); }
  float step = fm_compress_int8(q, N);
  FM_ASSERT_CLOSE(step, mx / 127, 1e-6, 0);
  int ok = 1;
  for (int i = 0; i < N; i++) {
    double k = q[i] / step;
    ok &= fabs(q[i] - x[i]) <= 0.5 * step * (1 + 1e-5) && fabs(k - round(k)) < 1e-3 && fabs(k) <= 127.0001;
  }
  CU_ASSERT(ok);
  float z[4] = {0};
  CU_ASSERT_EQUAL(fm_compress_int8(z, 4), 0);
  CU_ASSERT(z[0] == 0 && z[3] == 0);
}

int fm_test_register(void) {
  static const fm_test acc[] = {{"Poisson RDP: published and integrated values", test_rdp_poisson},
                                {"Abadi et al.'s moments accountant example", test_abadi_moments},
                                {"RDP to (eps, delta)", test_rdp_conversion},
                                {"fixed-size sampling bound", test_rdp_fixed},
                                {"noise calibration", test_calibrate}, {NULL, NULL}};
  static const fm_test rest[] = {{"server optimizers' update rules", test_server_opt},
                                 {"FedProx gradient (finite differences)", test_prox_gradient},
                                 {"Ditto's proximal step", test_ditto_prox_step},
                                 {"secure aggregation masks cancel", test_secagg_cancels},
                                 {"top-k and int8 compression", test_compress}, {NULL, NULL}};
  return fm_test_suite("accountant", acc) || fm_test_suite("toolkit", rest);
}
