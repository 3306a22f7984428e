/* test_core.c - configuration, errors, RNG, timers and the checkpoint checksum. */
#include "cunit_main.h"

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/io.h"
#include "fedmoe/rng.h"
#include "fedmoe/timer.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- configuration ---- */

static void test_defaults(void) {
  fm_config c;
  CU_ASSERT_EQUAL_FATAL(fm_config_init(&c), FM_OK);
  CU_ASSERT_EQUAL(c.model.vocab, 256);
  CU_ASSERT_EQUAL(c.fl.strategy, FM_STRAT_FEDAVG);
  CU_ASSERT_EQUAL(c.comigs.specialists.n, 1);
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_OK);
  fm_config_free(&c);
}

static void test_parse_ok(void) {
  fm_config c;
  fm_config_init(&c);
  const char *ini = "# a comment\n[fl]\nrounds = 7 ; trailing\nstrategy=comigs\n\n[model]\n"
                    "d_model = 32\nheads = 2\nexpert_type = lora\n[comigs]\nspecialists = 1, 2,4\n"
                    "generalists = 1\n[hfedmoe]\nmask_forward = yes\n[model]\nexperts = 4\n";
  CU_ASSERT_EQUAL_FATAL(fm_config_parse(&c, ini, "t.ini"), FM_OK);
  CU_ASSERT_EQUAL(c.fl.rounds, 7);
  CU_ASSERT_EQUAL(c.fl.strategy, FM_STRAT_COMIGS);
  CU_ASSERT_EQUAL(c.model.d_model, 32);
  CU_ASSERT_EQUAL(c.model.expert_type, FM_EXPERT_LORA);
  CU_ASSERT_EQUAL(c.comigs.specialists.n, 3);
  CU_ASSERT_EQUAL(c.comigs.specialists.v[2], 4);
  CU_ASSERT_EQUAL(c.hfedmoe.mask_forward, 1);
  CU_ASSERT_STRING_EQUAL(fm_config_enum_name(&c, "fl.strategy"), "comigs");
  /* 1 generalist + 4 specialists exceed the 4 experts: validation names the key */
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "comigs.specialists"));
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "t.ini:11"));
  fm_config_free(&c);
}

/* Each bad input: the error names what is wrong and where. */
static void expect_parse_error(const char *ini, const char *must1, const char *must2) {
  fm_config c;
  fm_config_init(&c);
  fm_err e = fm_config_parse(&c, ini, "bad.ini");
  CU_ASSERT_EQUAL(e, FM_ERR_CONFIG);
  if (e) {
    CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), must1));
    CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), must2));
  }
  fm_config_free(&c);
}

static void test_parse_errors(void) {
  expect_parse_error("[fl]\nroundz = 3\n", "bad.ini:2", "roundz");
  expect_parse_error("[fl]\nrounds = three\n", "bad.ini:2", "fl.rounds");
  expect_parse_error("[fl]\nrounds = 3.5\n", "bad.ini:2", "integer");
  expect_parse_error("[fl]\nrounds = 0\n", "bad.ini:2", "out of range");
  expect_parse_error("\n\n[fl]\nstrategy = fedprox\n", "bad.ini:4", "local|fedavg");
  expect_parse_error("[nosuch]\nx = 1\n", "bad.ini:1", "[nosuch]");
  expect_parse_error("rounds = 1\n", "bad.ini:1", "outside any");
  expect_parse_error("[fl]\nrounds\n", "bad.ini:2", "key = value");
  expect_parse_error("[fl\n", "bad.ini:1", "section");
  expect_parse_error("[fl]\nsample_fraction = 1.5\n", "bad.ini:2", "sample_fraction");
  expect_parse_error("[hfedmoe]\nmask_forward = maybe\n", "bad.ini:2", "true or false");
  expect_parse_error("[comigs]\nspecialists = 1,x\n", "bad.ini:2", "list of integers");
}

static void test_set_override(void) {
  fm_config c;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[fl]\nrounds = 3\n", "a.ini"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.rounds=50", "--set (argument 4)"), FM_OK);
  CU_ASSERT_EQUAL(c.fl.rounds, 50);
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.nope=1", "--set (argument 6)"), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "argument 6"));
  CU_ASSERT_EQUAL(fm_config_set(&c, "fl.rounds", "--set"), FM_ERR_CONFIG);
  /* cross-key error names the key and where it was set */
  CU_ASSERT_EQUAL(fm_config_set(&c, "model.heads=3", "--set (argument 8)"), FM_OK);
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "model.heads"));
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "argument 8"));
  fm_config_free(&c);
}

static void test_validate(void) {
  fm_config c;
  fm_config_init(&c);
  fm_config_set(&c, "model.top_k=5", "x");
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "model.top_k"));
  fm_config_set(&c, "model.top_k=2", "x");
  fm_config_set(&c, "train.seq_len=65", "x");
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "train.seq_len"));
  fm_config_set(&c, "train.seq_len=64", "x");
  fm_config_set(&c, "data.val_frac=0.3", "x");
  CU_ASSERT_EQUAL(fm_config_validate(&c), FM_ERR_CONFIG);
  fm_config_free(&c);
}

/* The printed configuration parses back to the same values. */
static void test_roundtrip(void) {
  fm_config a, b;
  fm_config_init(&a);
  fm_config_set(&a, "train.lr=0.0003", "x");
  fm_config_set(&a, "comigs.specialists=0,1,2", "x");
  fm_config_set(&a, "run.name=hello world", "x");
  char *text = NULL;
  CU_ASSERT_EQUAL_FATAL(fm_config_to_text(&a, &text), FM_OK);
  fm_config_init(&b);
  CU_ASSERT_EQUAL(fm_config_parse(&b, text, "printed"), FM_OK);
  CU_ASSERT_EQUAL(b.train.lr, a.train.lr);
  CU_ASSERT_EQUAL(b.comigs.specialists.n, 3);
  CU_ASSERT_STRING_EQUAL(b.run.name, "hello world");
  CU_ASSERT_EQUAL(memcmp(&a.run, &b.run, sizeof a.run), 0);
  CU_ASSERT_EQUAL(memcmp(&a.train, &b.train, sizeof a.train), 0);
  CU_ASSERT_EQUAL(memcmp(&a.comigs, &b.comigs, sizeof a.comigs), 0);
  free(text);
  fm_config_free(&a);
  fm_config_free(&b);
}

static void test_read_missing(void) {
  char *t = NULL;
  CU_ASSERT_EQUAL(fm_read_file("/nonexistent/x.ini", &t, NULL), FM_ERR_IO);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "/nonexistent/x.ini"));
  CU_ASSERT_PTR_NULL(t);
}

/* ---- errors ---- */

static fm_err inner(int x) {
  if (x > 2) FM_ERROR(FM_ERR_DATA, "x = %d is too big", x);
  return FM_OK;
}
static fm_err outer(int x) {
  FM_CHECK(inner(x));
  return FM_OK;
}

static void test_error_trace(void) {
  CU_ASSERT_EQUAL(outer(1), FM_OK);
  CU_ASSERT_EQUAL(outer(3), FM_ERR_DATA);
  char buf[1024];
  fm_error_format(buf, sizeof buf);
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "x = 3 is too big"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "(inner)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "(outer)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "test_core.c:"));
}

/* ---- RNG ---- */

static void test_philox_kat(void) {
  /* Random123's published known-answer vectors for Philox4x32-10 */
  uint32_t out[4];
  const uint32_t c0[4] = {0, 0, 0, 0}, k0[2] = {0, 0};
  fm_philox4x32_10(c0, k0, out);
  CU_ASSERT(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u);
  const uint32_t c1[4] = {~0u, ~0u, ~0u, ~0u}, k1[2] = {~0u, ~0u};
  fm_philox4x32_10(c1, k1, out);
  CU_ASSERT(out[0] == 0x408f276du && out[1] == 0x41c83b0eu && out[2] == 0xa20bc7c6u && out[3] == 0x6d5451fdu);
}

static void test_streams(void) {
  fm_rng a, b, c;
  fm_rng_init(&a, 42, 3, 7, FM_RNG_BATCH);
  fm_rng_init(&b, 42, 3, 7, FM_RNG_BATCH);
  fm_rng_init(&c, 42, 4, 7, FM_RNG_BATCH);
  int same = 1, diff = 0;
  for (int i = 0; i < 1000; i++) {
    uint32_t x = fm_rng_u32(&a), y = fm_rng_u32(&b), z = fm_rng_u32(&c);
    same &= x == y;
    diff += x != z;
  }
  CU_ASSERT(same);
  CU_ASSERT(diff > 990);
  /* a different purpose is another stream */
  fm_rng_init(&a, 42, 3, 7, FM_RNG_BATCH);
  fm_rng_init(&b, 42, 3, 7, FM_RNG_SAMPLE);
  CU_ASSERT_NOT_EQUAL(fm_rng_u64(&a), fm_rng_u64(&b));
}

static void test_distributions(void) {
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  enum { N = 200000 };
  double s = 0, s2 = 0, su = 0;
  int hist[10] = {0};
  for (int i = 0; i < N; i++) {
    double x = fm_rng_normal(&r);
    s += x; s2 += x * x;
    double u = fm_rng_uniform(&r);
    CU_ASSERT(u >= 0 && u < 1);
    su += u;
    hist[fm_rng_below(&r, 10)]++;
  }
  CU_ASSERT(fabs(s / N) < 0.01);
  CU_ASSERT(fabs(s2 / N - 1) < 0.02);
  CU_ASSERT(fabs(su / N - 0.5) < 0.005);
  for (int i = 0; i < 10; i++) CU_ASSERT(abs(hist[i] - N / 10) < 600); /* ~4.5 sigma */
  /* Gamma(k) has mean k, also for k < 1 */
  double g = 0, g2 = 0;
  for (int i = 0; i < N; i++) { g += fm_rng_gamma(&r, 2.5); g2 += fm_rng_gamma(&r, 0.3); }
  CU_ASSERT(fabs(g / N - 2.5) < 0.03);
  CU_ASSERT(fabs(g2 / N - 0.3) < 0.01);
  double p[5];
  fm_rng_dirichlet(&r, 0.5, 5, p);
  double t = 0;
  for (int i = 0; i < 5; i++) { CU_ASSERT(p[i] >= 0); t += p[i]; }
  CU_ASSERT(fabs(t - 1) < 1e-12);
}

static void test_choose_shuffle(void) {
  fm_rng r;
  fm_rng_init(&r, 9, 1, 2, FM_RNG_TEST);
  uint32_t out[50];
  int counts[100] = {0};
  for (int t = 0; t < 2000; t++) {
    fm_rng_choose(&r, 100, 50, out);
    for (int i = 1; i < 50; i++) CU_ASSERT(out[i] > out[i - 1]);
    for (int i = 0; i < 50; i++) counts[out[i]]++;
  }
  for (int i = 0; i < 100; i++) CU_ASSERT(abs(counts[i] - 1000) < 150);
  uint32_t a[20];
  for (uint32_t i = 0; i < 20; i++) a[i] = i;
  fm_rng_shuffle_u32(&r, a, 20);
  uint32_t seen = 0;
  for (int i = 0; i < 20; i++) seen |= 1u << a[i];
  CU_ASSERT_EQUAL(seen, (1u << 20) - 1);
}

static void test_save_restore(void) {
  fm_rng a, b;
  fm_rng_init(&a, 5, 6, 7, FM_RNG_TEST);
  for (int i = 0; i < 7; i++) fm_rng_u32(&a); /* mid-block */
  fm_rng_state s;
  fm_rng_save(&a, &s);
  fm_rng_restore(&b, &s);
  for (int i = 0; i < 100; i++) CU_ASSERT_EQUAL(fm_rng_u32(&a), fm_rng_u32(&b));
}

/* Exactly the keys documented as changeable on --resume are marked so: a key marked by
 * mistake would let a resume continue a run its stored configuration does not describe. */
static void test_resume_free_keys(void) {
  static const char *const free_keys[] = {"run.name", "run.output", "run.checkpoint_every", "run.keep_last",
                                          "run.stop_after", "run.log_level", "run.threads", "run.collective_timeout",
                                          "run.device_state_mb",
                                          "fl.rounds", "debug.fail", "pretrain.steps", "pretrain.eval_every",
                                          "pretrain.checkpoint_every", "pretrain.output"};
  int marked = 0;
  for (int i = 0; i < fm_config_nkeys; i++) {
    const fm_key *k = &fm_config_keys[i];
    int listed = 0;
    for (size_t j = 0; j < sizeof free_keys / sizeof free_keys[0]; j++) listed |= !strcmp(k->name, free_keys[j]);
    if (listed != (k->on_resume == FM_RESUME_FREE)) fprintf(stderr, "key %s: on_resume %d\n", k->name, k->on_resume);
    CU_ASSERT_EQUAL(listed, k->on_resume == FM_RESUME_FREE);
    marked += k->on_resume == FM_RESUME_FREE;
  }
  CU_ASSERT_EQUAL(marked, (int)(sizeof free_keys / sizeof free_keys[0]));
}

/* ---- the checkpoint checksum ---- */

/* Known answers: the checksum is part of the file format (a change would make every
 * stored checkpoint fail), and any flipped bit or other length changes it. */
static void test_hash64(void) {
  unsigned char b[100];
  for (int i = 0; i < 100; i++) b[i] = (unsigned char)i;
  CU_ASSERT_EQUAL(fm_hash64(b, 100), 0x77eba782a49df225ULL);
  CU_ASSERT_EQUAL(fm_hash64(b, 0), 0x9ca066f1a4ab2eeaULL);
  uint64_t h = fm_hash64(b, 100);
  int same = 0;
  for (int i = 0; i < 100; i++)
    for (int bit = 0; bit < 8; bit++) {
      b[i] ^= (unsigned char)(1u << bit);
      same += fm_hash64(b, 100) == h;
      b[i] ^= (unsigned char)(1u << bit);
    }
  CU_ASSERT_EQUAL(same, 0);
  unsigned char z[17] = {0};
  uint64_t seen[17];
  for (int n = 0; n <= 16; n++) {
    seen[n] = fm_hash64(z, (size_t)n);
    for (int m = 0; m < n; m++) CU_ASSERT_NOT_EQUAL(seen[m], seen[n]); /* zero tails of other lengths */
  }
}

/* ---- timers ---- */

static void test_timer(void) {
  int p = fm_phase("unit_phase");
  CU_ASSERT_EQUAL(fm_phase("unit_phase"), p);
  fm_phase_begin(p);
  fm_phase_begin(p); /* nested: counted once */
  double t0 = fm_wtime();
  while (fm_wtime() - t0 < 0.01) {}
  fm_phase_end(p);
  fm_phase_end(p);
  CU_ASSERT_EQUAL(fm_phase_count(p), 1);
  CU_ASSERT(fm_phase_seconds(p) >= 0.01);
  CU_ASSERT_STRING_EQUAL(fm_phase_name(p), "unit_phase");
}

/* A rank that had none of a phase's work (fm_phase_end_as(id, 0)) is not counted, and
 * the table leaves out a phase no rank did, so its ratio compares working ranks only. */
static void test_timer_idle(void) {
  int idle = fm_phase("unit_idle"), busy = fm_phase("unit_busy");
  fm_phase_begin(idle);
  fm_phase_end_as(idle, 0);
  CU_ASSERT_EQUAL(fm_phase_count(idle), 0);
  CU_ASSERT_EQUAL(fm_phase_seconds(idle), 0);
  fm_phase_begin(busy);
  fm_phase_end_as(busy, 1);
  CU_ASSERT_EQUAL(fm_phase_count(busy), 1);
  FILE *f = tmpfile();
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  MPI_Comm comm = MPI_COMM_WORLD;
  fm_timer_report(&comm, f, 1.0);
  rewind(f);
  char line[256];
  int saw_idle = 0, saw_busy = 0;
  while (fgets(line, sizeof line, f)) {
    saw_idle |= strncmp(line, "unit_idle ", 10) == 0;
    saw_busy |= strncmp(line, "unit_busy ", 10) == 0;
  }
  fclose(f);
  CU_ASSERT_FALSE(saw_idle);
  CU_ASSERT_TRUE(saw_busy);
}

/* Write text to dir/name. */
static void put_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fputs(text, f);
  fclose(f);
}

/* include = FILE: the base's keys, overridden by the lines after the include; found
 * beside the including file; origins name the file and line; errors name the line
 * of the include; a file including itself stops. */
static void test_include(void) {
  char dir[] = "/tmp/fedmoe-cfg-XXXXXX";
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
  put_file(dir, "base.ini", "[fl]\nrounds = 7\nclients = 5\n[train]\nlr = 0.01\n");
  put_file(dir, "strat.ini", "# a strategy\ninclude = base.ini\n[fl]\nclients = 9\n");
  put_file(dir, "loop.ini", "include = loop.ini\n");
  put_file(dir, "missing.ini", "include = nowhere.ini\n");
  char path[512], *text = NULL;
  snprintf(path, sizeof path, "%s/strat.ini", dir);
  CU_ASSERT_EQUAL_FATAL(fm_read_file(path, &text, NULL), FM_OK);
  fm_config c;
  CU_ASSERT_EQUAL_FATAL(fm_config_init(&c), FM_OK);
  CU_ASSERT_EQUAL(fm_config_parse(&c, text, path), FM_ERR_CONFIG); /* a stored text follows none */
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "include is allowed in a configuration file only"));
  fm_error_clear();
  CU_ASSERT_EQUAL(fm_config_parse_file(&c, text, path), FM_OK);
  CU_ASSERT_EQUAL(c.fl.rounds, 7);   /* from the base */
  CU_ASSERT_EQUAL(c.fl.clients, 9);  /* overridden after the include */
  CU_ASSERT_DOUBLE_EQUAL(c.train.lr, 0.01, 1e-12);
  char *out = NULL;
  CU_ASSERT_EQUAL(fm_config_to_text(&c, &out), FM_OK);
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "base.ini:2")); /* rounds' origin */
  CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "strat.ini:4")); /* clients' origin */
  CU_ASSERT_PTR_NULL(out && strstr(out, "include =")); /* resolved: no directive left */
  free(out);
  free(text);
  fm_config_free(&c);
  const char *bad[][2] = {{"loop.ini", "nested more than 8 deep"}, {"missing.ini", "nowhere.ini"}};
  for (int i = 0; i < 2; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, bad[i][0]);
    CU_ASSERT_EQUAL_FATAL(fm_read_file(path, &text, NULL), FM_OK);
    CU_ASSERT_EQUAL_FATAL(fm_config_init(&c), FM_OK);
    CU_ASSERT_EQUAL(fm_config_parse_file(&c, text, path), FM_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), bad[i][1]));
    CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), ".ini:1")); /* the include's line */
    free(text);
    fm_config_free(&c);
    fm_error_clear();
  }
  const char *names[] = {"base.ini", "strat.ini", "loop.ini", "missing.ini"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    remove(path);
  }
  rmdir(dir);
}

int fm_test_register(void) {
  static const fm_test config_tests[] = {
    {"defaults", test_defaults}, {"parse", test_parse_ok}, {"parse errors", test_parse_errors},
    {"--set override", test_set_override}, {"cross-key validation", test_validate},
    {"print and re-read", test_roundtrip}, {"missing file", test_read_missing},
    {"keys free on resume", test_resume_free_keys}, {"include", test_include}, {NULL, NULL}};
  static const fm_test error_tests[] = {{"trace", test_error_trace}, {NULL, NULL}};
  static const fm_test rng_tests[] = {
    {"philox known answers", test_philox_kat}, {"stream addressing", test_streams},
    {"distributions", test_distributions}, {"choose and shuffle", test_choose_shuffle},
    {"save and restore", test_save_restore}, {NULL, NULL}};
  static const fm_test timer_tests[] = {{"phases", test_timer}, {"idle ranks", test_timer_idle}, {NULL, NULL}};
  static const fm_test checksum_tests[] = {{"known answers, bit flips, lengths", test_hash64}, {NULL, NULL}};
  return fm_test_suite("config", config_tests) || fm_test_suite("error", error_tests) ||
         fm_test_suite("rng", rng_tests) || fm_test_suite("timer", timer_tests) ||
         fm_test_suite("checksum", checksum_tests);
}
