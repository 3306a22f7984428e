/* test_fl.c - the aggregation engine, client sampling, and FedAvg's defining identity. */
#include "cunit_main.h"

#include "fedmoe/data.h"
#include "fedmoe/fl.h"
#include "fedmoe/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Fixed point: the same contributions in any order and any grouping (as different
 * rank counts would reduce them) give the same bits. */
static void test_agg_order_independent(void) {
  enum { NC = 7, LEN = 257 };
  size_t seg[2] = {LEN, 3};
  float x[NC][LEN + 3];
  double w[NC];
  fm_rng r;
  fm_rng_init(&r, 3, 0, 0, FM_RNG_TEST);
  for (int c = 0; c < NC; c++) {
    w[c] = fm_rng_uniform(&r);
    for (int i = 0; i < LEN + 3; i++) x[c][i] = (float)(fm_rng_normal(&r) * 3);
  }
  float out1[LEN + 3], out2[LEN + 3];
  for (int order = 0; order < 2; order++) {
    fm_agg a, b;
    CU_ASSERT_EQUAL_FATAL(fm_agg_create(&a, seg, 2, 1), FM_OK);
    CU_ASSERT_EQUAL_FATAL(fm_agg_create(&b, seg, 2, 1), FM_OK);
    /* two partial sums (two "ranks") then combined, forwards or backwards */
    for (int k = 0; k < NC; k++) {
      int c = order ? NC - 1 - k : k;
      fm_agg *p = (c % 3 == 0) ? &a : &b;
      fm_agg_add(p, 0, x[c], w[c]);
      fm_agg_add(p, 1, x[c] + LEN, w[c]);
    }
    for (size_t i = 0; i < a.n + 2; i++) a.q[i] += b.q[i];
    float *dst = order ? out2 : out1;
    float *segs[2] = {dst, dst + LEN};
    CU_ASSERT_EQUAL(fm_agg_result(&a, segs), 2);
    fm_agg_free(&a);
    fm_agg_free(&b);
  }
  CU_ASSERT_EQUAL(memcmp(out1, out2, sizeof out1), 0);
  /* and it is the weighted mean */
  double num = 0, den = 0;
  for (int c = 0; c < NC; c++) { num += w[c] * x[c][5]; den += w[c]; }
  FM_ASSERT_CLOSE(out1[5], num / den, 1e-6, 1e-6);
}

/* Sparse participation: a segment nobody contributed to keeps its value; the others
 * are averaged over their contributors only. */
static void test_agg_sparse(void) {
  size_t seg[3] = {2, 2, 2};
  fm_agg a;
  CU_ASSERT_EQUAL_FATAL(fm_agg_create(&a, seg, 3, 1), FM_OK);
  float c1[2] = {1, 2}, c2[2] = {3, 6};
  fm_agg_add(&a, 0, c1, 0.25);
  fm_agg_add(&a, 0, c2, 0.75);
  fm_agg_add(&a, 1, c2, 0.5); /* only client 2 trained segment 1 */
  float o0[2] = {0, 0}, o1[2] = {0, 0}, o2[2] = {9, 9};
  float *segs[3] = {o0, o1, o2};
  CU_ASSERT_EQUAL(fm_agg_result(&a, segs), 2);
  FM_ASSERT_CLOSE(o0[0], 2.5, 1e-7, 0);
  FM_ASSERT_CLOSE(o0[1], 5.0, 1e-7, 0);
  FM_ASSERT_CLOSE(o1[0], 3.0, 1e-7, 0);
  CU_ASSERT_EQUAL(o2[0], 9);
  CU_ASSERT_EQUAL(o2[1], 9);
  /* a non-finite contribution is an error, not a silent overflow */
  float bad[2] = {INFINITY, 0};
  CU_ASSERT_EQUAL(fm_agg_add(&a, 2, bad, 1.0), FM_ERR_DATA);
  fm_agg_free(&a);
}

static void test_agg_float_mode(void) {
  size_t seg[1] = {3};
  fm_agg a;
  CU_ASSERT_EQUAL_FATAL(fm_agg_create(&a, seg, 1, 0), FM_OK);
  float x[3] = {1, 2, 3}, y[3] = {3, 2, 1}, o[3];
  fm_agg_add(&a, 0, x, 1);
  fm_agg_add(&a, 0, y, 3);
  float *segs[1] = {o};
  fm_agg_result(&a, segs);
  FM_ASSERT_CLOSE(o[0], 2.5, 1e-7, 0);
  FM_ASSERT_CLOSE(o[2], 1.5, 1e-7, 0);
  fm_agg_free(&a);
}

static void test_sampling(void) {
  fm_config c;
  fm_config_init(&c);
  c.fl.clients = 1000;
  c.fl.sample_fraction = 0.01;
  int a[1000], b[1000];
  int n = fm_sample_clients(&c, 3, a);
  CU_ASSERT_EQUAL(n, 10);
  for (int i = 1; i < n; i++) CU_ASSERT(a[i] > a[i - 1]);
  CU_ASSERT_EQUAL(fm_sample_clients(&c, 3, b), 10);
  CU_ASSERT_EQUAL(memcmp(a, b, 10 * sizeof *a), 0);
  fm_sample_clients(&c, 4, b);
  CU_ASSERT_NOT_EQUAL(memcmp(a, b, 10 * sizeof *a), 0);
  c.fl.sample_count = 37;
  CU_ASSERT_EQUAL(fm_sample_clients(&c, 1, a), 37);
  c.fl.sample_count = 0;
  c.fl.sample_fraction = 1;
  CU_ASSERT_EQUAL(fm_sample_clients(&c, 1, a), 1000);
  CU_ASSERT_EQUAL(a[999], 999);
  /* placement: client c on rank 1 + c mod (P-1) */
  CU_ASSERT_EQUAL(fm_client_host(0, 2), 1);
  CU_ASSERT_EQUAL(fm_client_host(5, 4), 3);
  fm_config_free(&c);
}

/* Loads of a dealing: load[h] sums work[j] over host[j] == h; checks that every item
 * went to a valid host once. Returns the largest load. */
static double deal_loads(const double *work, const int *host, int m, int hosts, double *load) {
  for (int h = 0; h < hosts; h++) load[h] = 0;
  double most = 0;
  for (int j = 0; j < m; j++) {
    CU_ASSERT(host[j] >= 0 && host[j] < hosts);
    if (host[j] >= 0 && host[j] < hosts) load[host[j]] += work[j];
  }
  for (int h = 0; h < hosts; h++) most = fmax(most, load[h]);
  return most;
}

/* Dealing clients by work: every client once, deterministic, the busiest host at
 * most one item above the mean; equal work gives ceil(m / hosts) at most, where the
 * fixed placement (client c on host c mod hosts) of a random sample gives more. */
static void test_deal(void) {
  enum { M = 1000, H = 7 };
  double work[M], load[H], total = 0, largest = 0;
  int a[M], b[M];
  fm_rng r;
  fm_rng_init(&r, 5, 0, 0, FM_RNG_TEST);
  for (int j = 0; j < M; j++) { /* skewed: many small items, a few large */
    work[j] = 1 + 100 * pow(fm_rng_uniform(&r), 8);
    total += work[j];
    largest = fmax(largest, work[j]);
  }
  CU_ASSERT_EQUAL_FATAL(fm_deal_clients(work, M, H, a), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_deal_clients(work, M, H, b), FM_OK);
  CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
  double most = deal_loads(work, a, M, H, load);
  CU_ASSERT(most <= total / H + largest);
  /* fewer items than hosts: one each at most */
  CU_ASSERT_EQUAL_FATAL(fm_deal_clients(work, 3, H, a), FM_OK);
  CU_ASSERT(a[0] != a[1] && a[1] != a[2] && a[0] != a[2]);
  CU_ASSERT_EQUAL(fm_deal_clients(work, 0, H, a), FM_OK);
  /* equal work, 100 of 10000 clients sampled, 15 hosts, 20 rounds */
  fm_config c;
  fm_config_init(&c);
  c.fl.clients = 10000;
  c.fl.sample_count = 100;
  int *sampled = malloc(10000 * sizeof *sampled), fixed_worst = 0;
  double ones[100];
  for (int j = 0; j < 100; j++) ones[j] = 1;
  for (int round = 1; round <= 20; round++) {
    int m = fm_sample_clients(&c, round, sampled), per[15] = {0};
    CU_ASSERT_EQUAL_FATAL(m, 100);
    for (int j = 0; j < m; j++) per[fm_client_host(sampled[j], 16) - 1]++;
    for (int h = 0; h < 15; h++) fixed_worst = per[h] > fixed_worst ? per[h] : fixed_worst;
    CU_ASSERT_EQUAL_FATAL(fm_deal_clients(ones, m, 15, a), FM_OK);
    double l[15];
    CU_ASSERT_EQUAL(deal_loads(ones, a, m, 15, l), 7); /* ceil(100 / 15) */
  }
  CU_ASSERT(fixed_worst > 7);
  free(sampled);
  fm_config_free(&c);
}

/* FedAvg's defining identity: with one local SGD step from the same start and equal
 * weights, the average of the clients' models is one step on the union of their
 * batches (cross-entropy is a mean over tokens, so its gradient is linear in the
 * batch; the load-balancing term is not, so it is off here). */
static void test_fedavg_identity(void) {
  fm_model_shape s = {.vocab = 32, .context = 8, .d = 16, .heads = 2, .layers = 2, .moe_mask = 3,
                      .experts = 4, .top_k = 2, .expert_type = FM_EXPERT_FULL, .lora_rank = 4,
                      .lora_alpha = 8, .init_std = 0.2f, .load_balance = 0, .norm_topk = 1};
  enum { B = 4, T = 8 };
  fm_model *m;
  CU_ASSERT_EQUAL_FATAL(fm_model_create(&m, &s, 2 * B, T, 1, NULL, NULL), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_model_init(m, 5), FM_OK);
  size_t n = fm_model_class_numel(m, 0);
  float *w = fm_model_class_params(m, 0), *g = fm_model_class_grads(m, 0);
  float *w0 = malloc(n * sizeof *w0), *avg = malloc(n * sizeof *avg);
  memcpy(w0, w, n * sizeof *w0);
  int32_t tok[2 * B * T], tgt[2 * B * T];
  fm_rng r;
  fm_rng_init(&r, 11, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < 2 * B * T; i++) { tok[i] = (int32_t)fm_rng_below(&r, 32); tgt[i] = (int32_t)fm_rng_below(&r, 32); }
  const float lr = 0.05f;
  fm_agg a;
  size_t seg[1] = {n};
  CU_ASSERT_EQUAL_FATAL(fm_agg_create(&a, seg, 1, 1), FM_OK);
  float ce;
  for (int c = 0; c < 2; c++) { /* each client: one SGD step on its own batch */
    memcpy(w, w0, n * sizeof *w);
    fm_model_zero_grads(m);
    CU_ASSERT_EQUAL(fm_model_forward(m, tok + c * B * T, tgt + c * B * T, B, T, &ce, NULL), FM_OK);
    CU_ASSERT_EQUAL(fm_model_backward(m), FM_OK);
    for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
    CU_ASSERT_EQUAL(fm_agg_add(&a, 0, w, 0.5), FM_OK);
  }
  float *segs[1] = {avg};
  fm_agg_result(&a, segs);
  /* centralised: one step on the union */
  memcpy(w, w0, n * sizeof *w);
  fm_model_zero_grads(m);
  CU_ASSERT_EQUAL(fm_model_forward(m, tok, tgt, 2 * B, T, &ce, NULL), FM_OK);
  CU_ASSERT_EQUAL(fm_model_backward(m), FM_OK);
  double maxdiff = 0, maxstep = 0;
  for (size_t i = 0; i < n; i++) {
    double central = w0[i] - lr * g[i];
    maxdiff = fmax(maxdiff, fabs(avg[i] - central));
    maxstep = fmax(maxstep, fabs(lr * g[i]));
  }
  CU_ASSERT(maxstep > 1e-4);            /* the step is not trivially zero */
  CU_ASSERT(maxdiff <= 1e-6 + 1e-3 * maxstep); /* float tolerance relative to the step */
  fm_agg_free(&a);
  free(w0);
  free(avg);
  fm_model_free(m);
}

int fm_test_register(void) {
  static const fm_test agg_tests[] = {
    {"fixed point is order independent", test_agg_order_independent},
    {"sparse participation", test_agg_sparse}, {"float mode", test_agg_float_mode}, {NULL, NULL}};
  static const fm_test fl_tests[] = {
    {"client sampling", test_sampling}, {"dealing clients by work", test_deal},
    {"fedavg equals a centralised step", test_fedavg_identity},
    {NULL, NULL}};
  return fm_test_suite("aggregation", agg_tests) || fm_test_suite("runtime", fl_tests);
}
