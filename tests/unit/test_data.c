/* test_data.c - corpora, text rule, partitions, batches; on tests/fixtures/text.
 * The fixture: three topic files (astronomy, cooking, sailing), one sub-directory
 * domain (letters/: autumn, spring, and autumn.u8, a copy to be skipped) and
 * cooking.dat, a binary index to be skipped. */
#include "cunit_main.h"

#include "fedmoe/data.h"
#include "fedmoe/timer.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fixture_config(fm_config *c) {
  CU_ASSERT_EQUAL_FATAL(fm_config_init(c), FM_OK);
  snprintf(c->data.path, sizeof c->data.path, "%s", fm_fixture("text"));
  c->data.min_domain_bytes = 512;
  c->data.client_bytes = 1500;
  c->train.seq_len = 16;
  c->fl.clients = 8;
  /* these tests ask more of the small fixture than it holds: clients share text, as
   * they did before disjoint clients became the rule (test_disjoint checks the rule) */
  c->data.allow_overlap = 1;
}

static int domain_index(const fm_corpus *cp, const char *name) {
  for (int k = 0; k < cp->ndomains; k++)
    if (!strcmp(cp->domain_names[k], name)) return k;
  return -1;
}

static int contains(const char *msg, const char *what) { return strstr(msg, what) != NULL; }

/* ---- text rule and cleaning ---- */

static void test_text_rule(void) {
  char why[160];
  const char *ok = "Plain text,\twith tabs\r\nand UTF-8: \xc3\xa9t\xc3\xa9, \xd0\x96.\n";
  CU_ASSERT_TRUE(fm_text_check((const uint8_t *)ok, strlen(ok), why, sizeof why));
  const uint8_t nul[] = {'a', 'b', 0, 'c'};
  CU_ASSERT_FALSE(fm_text_check(nul, sizeof nul, why, sizeof why));
  CU_ASSERT_TRUE(contains(why, "NUL"));
  uint8_t bin[1000];
  for (int i = 0; i < 1000; i++) bin[i] = (uint8_t)(1 + (i * 97) % 255); /* no NUL, mostly junk */
  CU_ASSERT_FALSE(fm_text_check(bin, sizeof bin, why, sizeof why));
  CU_ASSERT_TRUE(contains(why, "invalid UTF-8"));
  /* a few stray Latin-1 bytes in long text are tolerated */
  char latin[400];
  memset(latin, 'x', sizeof latin);
  latin[10] = (char)0xe9;
  latin[200] = (char)0xfc;
  CU_ASSERT_TRUE(fm_text_check((const uint8_t *)latin, sizeof latin, why, sizeof why));
}

static void test_text_clean(void) {
  char s[] = "first\n%\nsecond\r\nline\n%\n_\bb_\bo_\bl_\bd a\xc3\xa9\b\xc3\xa9\n%";
  size_t n = fm_text_clean((uint8_t *)s, strlen(s));
  s[n] = 0;
  CU_ASSERT_STRING_EQUAL(s, "first\n\nsecond\nline\n\nbold a\xc3\xa9\n");
  char t[] = "50% off\n%%\n";
  n = fm_text_clean((uint8_t *)t, strlen(t));
  t[n] = 0;
  CU_ASSERT_STRING_EQUAL(t, "50% off\n%%\n"); /* only lines of exactly one '%' go */
}

/* ---- loading and domain detection ---- */

static void test_load_fixture(void) {
  fm_config c;
  fixture_config(&c);
  fm_corpus cp;
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&cp, &c), FM_OK);
  CU_ASSERT_EQUAL(cp.ndomains, 4);
  const char *names[] = {"astronomy", "cooking", "letters", "sailing"};
  for (int k = 0; k < 4 && k < cp.ndomains; k++) CU_ASSERT_STRING_EQUAL(cp.domain_names[k], names[k]);
  CU_ASSERT_EQUAL(cp.nfiles, 5);   /* 3 topic files + 2 letters; not .u8, not .dat */
  CU_ASSERT_EQUAL(cp.nskipped, 2); /* cooking.dat, letters/autumn.u8 */
  uint64_t sum = 0;
  for (int k = 0; k < cp.ndomains; k++) {
    sum += cp.domain_len[k];
    CU_ASSERT_TRUE(cp.domain_start[k] + cp.domain_len[k] <= cp.size);
  }
  CU_ASSERT_EQUAL(sum, cp.size);
  /* separators are gone, the letters domain holds both files (autumn first), once */
  int L = domain_index(&cp, "letters");
  CU_ASSERT_FATAL(L >= 0);
  const char *lt = (const char *)cp.text + cp.domain_start[L];
  size_t ll = cp.domain_len[L];
  char *copy = calloc(ll + 1, 1);
  memcpy(copy, lt, ll);
  CU_ASSERT_PTR_NULL(strstr(copy, "\n%\n"));
  CU_ASSERT_EQUAL(strncmp(copy, "Dear Tom,\n\nThe apples are in", 28), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(copy, "The plum tree"));
  CU_ASSERT_PTR_NULL(strstr(strstr(copy, "The apples") + 1, "The apples")); /* .u8 not read */
  CU_ASSERT_EQUAL(memchr(cp.text, 0, cp.size), NULL);
  free(copy);
  fm_corpus_free(&cp);

  /* one file as data.path: one domain */
  snprintf(c.data.path, sizeof c.data.path, "%s", fm_fixture("text/sailing"));
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&cp, &c), FM_OK);
  CU_ASSERT_EQUAL(cp.ndomains, 1);
  CU_ASSERT_STRING_EQUAL(cp.domain_names[0], "sailing");
  fm_corpus_free(&cp);
  fm_config_free(&c);
}

static void test_domain_limits(void) {
  fm_config c;
  fixture_config(&c);
  fm_corpus cp;
  c.data.min_domain_bytes = 3000; /* letters (~2.2 KB) is dropped */
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&cp, &c), FM_OK);
  CU_ASSERT_EQUAL(cp.ndomains, 3);
  CU_ASSERT_EQUAL(cp.ndropped, 1);
  CU_ASSERT_EQUAL(domain_index(&cp, "letters"), -1);
  fm_corpus_free(&cp);
  c.data.max_domain_bytes = 1000; /* every domain keeps its first 1000 bytes */
  c.data.min_domain_bytes = 0;
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&cp, &c), FM_OK);
  CU_ASSERT_EQUAL(cp.ndomains, 4);
  for (int k = 0; k < cp.ndomains; k++) CU_ASSERT_EQUAL(cp.domain_len[k], 1000);
  CU_ASSERT_EQUAL(cp.size, 4000);
  fm_corpus_free(&cp);
  fm_config_free(&c);
}

/* ---- partition: disjointness ---- */

static int by_start(const void *a, const void *b) {
  const fm_span *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Every span inside its domain's client part; a client's splits disjoint; the public
 * split disjoint from every client. */
static void check_partition(const fm_dataset *d) {
  const fm_corpus *cp = &d->corpus;
  uint64_t *pub_at = calloc((size_t)cp->ndomains, sizeof *pub_at);
  for (int k = 0; k < cp->ndomains; k++) pub_at[k] = cp->domain_start[k] + cp->domain_len[k];
  for (int i = 0; i < d->public_split.nspans; i++) {
    fm_span s = d->public_split.spans[i];
    CU_ASSERT_EQUAL(s.start + s.len, cp->domain_start[s.domain] + cp->domain_len[s.domain]);
    pub_at[s.domain] = s.start;
  }
  fm_span all[256];
  for (int c = 0; c < d->nclients; c++) {
    const fm_client_data *cl = &d->clients[c];
    CU_ASSERT_EQUAL(cl->id, c);
    int n = 0;
    double mix = 0;
    for (int k = 0; k < cp->ndomains; k++) mix += cl->domain_mix[k];
    FM_ASSERT_CLOSE(mix, 1.0, 1e-9, 0);
    for (int s = 0; s < 3; s++) {
      uint64_t tok = 0;
      for (int i = 0; i < cl->split[s].nspans; i++) {
        fm_span sp = cl->split[s].spans[i];
        tok += sp.len;
        CU_ASSERT_TRUE(sp.start >= cp->domain_start[sp.domain]);
        CU_ASSERT_TRUE(sp.start + sp.len <= pub_at[sp.domain]); /* not in the public part */
        CU_ASSERT_TRUE(cl->domain_mix[sp.domain] > 0);
        if (n < 256) all[n++] = sp;
      }
      CU_ASSERT_EQUAL(tok, cl->split[s].tokens);
    }
    qsort(all, (size_t)n, sizeof *all, by_start);
    for (int i = 1; i < n; i++) CU_ASSERT_TRUE(all[i - 1].start + all[i - 1].len <= all[i].start);
  }
  free(pub_at);
}

static void test_splits_disjoint(void) {
  for (int part = FM_PART_BY_DOMAIN; part <= FM_PART_IID; part++)
    for (int sizes = FM_SIZES_EQUAL; sizes <= FM_SIZES_LOGNORMAL; sizes++) {
      fm_config c;
      fixture_config(&c);
      c.data.partition = part;
      c.data.sizes = sizes;
      c.fl.clients = 40;
      fm_dataset d;
      CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
      CU_ASSERT_EQUAL(d.nclients, 40);
      CU_ASSERT_TRUE(d.public_split.tokens > 0);
      check_partition(&d);
      fm_dataset_free(&d);
      fm_config_free(&c);
    }
}

/* ---- determinism ---- */

static int same_client(const fm_client_data *a, const fm_client_data *b, int D) {
  for (int s = 0; s < 3; s++) {
    if (a->split[s].nspans != b->split[s].nspans || a->split[s].tokens != b->split[s].tokens) return 0;
    for (int i = 0; i < a->split[s].nspans; i++) {
      const fm_span *x = &a->split[s].spans[i], *y = &b->split[s].spans[i];
      if (x->start != y->start || x->len != y->len || x->domain != y->domain) return 0;
    }
  }
  return !memcmp(a->domain_mix, b->domain_mix, (size_t)D * sizeof(double));
}

static void test_determinism(void) {
  for (int part = FM_PART_BY_DOMAIN; part <= FM_PART_IID; part++) {
    fm_config c;
    fixture_config(&c);
    c.data.partition = part;
    c.data.sizes = FM_SIZES_LOGNORMAL;
    fm_dataset a, b, many;
    c.fl.clients = 5;
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&a, &c), FM_OK);
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&b, &c), FM_OK);
    c.fl.clients = 300;
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&many, &c), FM_OK);
    int D = a.corpus.ndomains;
    for (int i = 0; i < 5; i++) {
      CU_ASSERT_TRUE(same_client(&a.clients[i], &b.clients[i], D));    /* same seed */
      CU_ASSERT_TRUE(same_client(&a.clients[i], &many.clients[i], D)); /* whatever N */
    }
    fm_dataset_free(&b);
    c.fl.clients = 5;
    c.run.seed += 1;
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&b, &c), FM_OK);
    int differ = 0;
    for (int i = 0; i < 5; i++) differ += !same_client(&a.clients[i], &b.clients[i], D);
    CU_ASSERT_TRUE(differ > 0); /* another seed, other data */
    fm_dataset_free(&a);
    fm_dataset_free(&b);
    fm_dataset_free(&many);
    fm_config_free(&c);
  }
}

static void test_shared_load(void) {
  fm_config c;
  fixture_config(&c);
  c.data.partition = FM_PART_DIRICHLET;
  fm_dataset a, b;
  MPI_Comm comm = MPI_COMM_WORLD;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&a, &c), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load_shared(&b, &c, &comm), FM_OK);
  CU_ASSERT_EQUAL(a.corpus.size, b.corpus.size);
  CU_ASSERT_EQUAL(memcmp(a.corpus.text, b.corpus.text, a.corpus.size), 0);
  for (int i = 0; i < a.nclients; i++) CU_ASSERT_TRUE(same_client(&a.clients[i], &b.clients[i], a.corpus.ndomains));
  fm_dataset_free(&a);
  fm_dataset_free(&b);
  fm_config_free(&c);
}

static void expect_load_error(const fm_config *c, fm_err code, const char *must1, const char *must2);

/* ---- disjoint clients (data.allow_overlap = false) ---- */

static void test_disjoint(void) {
  for (int part = FM_PART_BY_DOMAIN; part <= FM_PART_IID; part++) {
    fm_config c;
    fixture_config(&c);
    c.data.allow_overlap = 0;
    c.data.partition = part;
    c.data.client_bytes = 600;
    c.fl.clients = 12; /* 3 per domain of ~3.3 KB for clients under by_domain: 1800 fit */
    fm_dataset d;
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
    check_partition(&d);
    /* no token of a domain's client part is any two clients' */
    const fm_corpus *cp = &d.corpus;
    uint8_t *owner = calloc((size_t)cp->size, 1);
    for (int i = 0; i < d.nclients; i++)
      for (int s = 0; s < 3; s++)
        for (int k = 0; k < d.clients[i].split[s].nspans; k++) {
          const fm_span *sp = &d.clients[i].split[s].spans[k];
          for (uint64_t t = sp->start; t < sp->start + sp->len; t++) CU_ASSERT_EQUAL(owner[t]++, 0);
        }
    free(owner);
    uint64_t asked = 0;
    for (int k = 0; k < cp->ndomains; k++) {
      CU_ASSERT_TRUE(d.domain_given[k] <= d.domain_asked[k]);
      asked += d.domain_asked[k];
    }
    CU_ASSERT_TRUE(asked >= 12 * 600);
    fm_dataset_free(&d);
    /* more clients than the domains hold: the pieces shrink by their domain's factor */
    c.fl.clients = 16;
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
    check_partition(&d);
    int shrunk = 0;
    for (int k = 0; k < d.corpus.ndomains; k++) {
      uint64_t room = d.corpus.domain_len[k] - (uint64_t)floor((double)d.corpus.domain_len[k] * c.data.public_frac);
      CU_ASSERT_TRUE(d.domain_given[k] <= room);
      shrunk += d.domain_given[k] < d.domain_asked[k];
    }
    CU_ASSERT_TRUE(shrunk > 0);
    fm_dataset_free(&d);
    /* so many that a client's piece falls under one sequence per split: refused */
    c.fl.clients = 400;
    expect_load_error(&c, FM_ERR_DATA, "its clients ask for", "set data.allow_overlap = true");
    c.data.allow_overlap = 1;
    CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
    fm_dataset_free(&d);
    fm_config_free(&c);
  }
}

/* ---- mixes and sizes ---- */

static void test_by_domain(void) {
  fm_config c;
  fixture_config(&c);
  c.data.client_bytes = 1000;
  c.fl.clients = 12;
  fm_dataset d;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  int D = d.corpus.ndomains;
  for (int i = 0; i < d.nclients; i++) {
    CU_ASSERT_EQUAL(d.clients[i].domain_mix[i % D], 1.0);
    CU_ASSERT_EQUAL(d.clients[i].split[FM_SPLIT_TRAIN].spans[0].domain, i % D);
  }
  /* astronomy (~3.4 KB of client text) has 3 slots of 1000 bytes: clients 0, 4, 8 disjoint */
  const fm_span *s0 = &d.clients[0].split[0].spans[0], *s4 = &d.clients[4].split[0].spans[0],
                *s8 = &d.clients[8].split[0].spans[0];
  CU_ASSERT_EQUAL(s4->start, s0->start + 1000);
  CU_ASSERT_EQUAL(s8->start, s0->start + 2000);
  fm_dataset_free(&d);
  fm_config_free(&c);
}

static void test_dirichlet_mix(void) {
  fm_config c;
  fixture_config(&c);
  c.data.partition = FM_PART_DIRICHLET;
  c.data.client_bytes = 2000;
  c.fl.clients = 200;
  fm_dataset d;
  /* small alpha: most clients are dominated by one domain */
  c.data.alpha = 0.05;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  int D = d.corpus.ndomains, peaked = 0;
  for (int i = 0; i < d.nclients; i++) {
    double top = 0;
    for (int k = 0; k < D; k++) top = fmax(top, d.clients[i].domain_mix[k]);
    peaked += top > 0.8;
  }
  CU_ASSERT_TRUE(peaked > 130); /* P(top share > 0.8) is about 0.8 for Dir(0.05) over 4 */
  /* every domain is someone's main domain */
  for (int k = 0; k < D; k++) {
    int main_of = 0;
    for (int i = 0; i < d.nclients; i++) main_of += d.clients[i].domain_mix[k] > 0.5;
    CU_ASSERT_TRUE(main_of > 10);
  }
  fm_dataset_free(&d);
  /* large alpha: every client close to an even mix */
  c.data.alpha = 1000;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  for (int i = 0; i < d.nclients; i++)
    for (int k = 0; k < D; k++) FM_ASSERT_CLOSE(d.clients[i].domain_mix[k], 1.0 / D, 0, 0.05);
  fm_dataset_free(&d);
  fm_config_free(&c);
}

static void test_iid_mix(void) {
  fm_config c;
  fixture_config(&c);
  c.data.partition = FM_PART_IID;
  c.data.client_bytes = 4000;
  fm_dataset d;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  const fm_corpus *cp = &d.corpus;
  double total = 0;
  for (int k = 0; k < cp->ndomains; k++) total += (double)cp->domain_len[k];
  for (int i = 0; i < d.nclients; i++)
    for (int k = 0; k < cp->ndomains; k++) /* proportional to domain sizes, up to rounding */
      FM_ASSERT_CLOSE(d.clients[i].domain_mix[k], (double)cp->domain_len[k] / total, 0, 0.01);
  /* all clients have the same mix and size, but (random offsets) not the same bytes */
  CU_ASSERT_EQUAL(d.clients[0].split[0].tokens, d.clients[1].split[0].tokens);
  CU_ASSERT_NOT_EQUAL(d.clients[0].split[0].spans[0].start, d.clients[1].split[0].spans[0].start);
  fm_dataset_free(&d);
  fm_config_free(&c);
}

static void test_sizes(void) {
  fm_config c;
  fixture_config(&c);
  c.data.partition = FM_PART_IID;
  c.data.client_bytes = 800;
  c.data.min_domain_bytes = 0;
  c.train.seq_len = 4;
  c.fl.clients = 2000;
  fm_dataset d;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  for (int i = 0; i < d.nclients; i++) { /* 0.8/0.1/0.1 of 800 bytes, up to rounding per piece */
    const fm_client_data *cl = &d.clients[i];
    uint64_t t = cl->split[0].tokens + cl->split[1].tokens + cl->split[2].tokens;
    CU_ASSERT_TRUE(t <= 800 && t >= 800 - 3 * 4);
    CU_ASSERT_TRUE(cl->split[0].tokens >= 630 && cl->split[0].tokens <= 640);
  }
  fm_dataset_free(&d);
  c.data.sizes = FM_SIZES_LOGNORMAL;
  c.data.size_sigma = 0.5;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  double sum = 0, lo = 1e30, hi = 0;
  for (int i = 0; i < d.nclients; i++) {
    const fm_client_data *cl = &d.clients[i];
    double t = (double)(cl->split[0].tokens + cl->split[1].tokens + cl->split[2].tokens);
    sum += t;
    lo = fmin(lo, t);
    hi = fmax(hi, t);
  }
  FM_ASSERT_CLOSE(sum / d.nclients, 800, 0.05, 0); /* mean data.client_bytes */
  CU_ASSERT_TRUE(lo < 400 && hi > 1600);            /* and a real spread */
  fm_dataset_free(&d);
  fm_config_free(&c);
}

/* ---- batches ---- */

static void test_batch_sample(void) {
  fm_config c;
  fixture_config(&c);
  c.data.partition = FM_PART_DIRICHLET;
  c.data.alpha = 100;
  fm_dataset d;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  const int B = 64, T = 16;
  int32_t tok[64 * 16], tgt[64 * 16], tok2[64 * 16], tgt2[64 * 16];
  int dom[64];
  const fm_split *s = &d.clients[3].split[FM_SPLIT_TRAIN];
  CU_ASSERT_FATAL(s->nspans > 1);
  int hit[64] = {0};
  fm_rng r, r2;
  fm_rng_init(&r, 1234, 3, 7, FM_RNG_BATCH);
  for (int rep = 0; rep < 20; rep++) {
    CU_ASSERT_EQUAL_FATAL(fm_batch_sample(&d.corpus, s, &r, B, T, tok, tgt, dom), FM_OK);
    for (int b = 0; b < B; b++) {
      for (int t = 0; t + 1 < T; t++) CU_ASSERT_EQUAL(tgt[b * T + t], tok[b * T + t + 1]);
      /* the window lies inside one span of the split, of the domain reported */
      int found = 0;
      for (int i = 0; i < s->nspans && !found; i++) {
        const fm_span *sp = &s->spans[i];
        for (uint64_t at = sp->start; at + (uint64_t)T + 1 <= sp->start + sp->len && !found; at++)
          if (d.corpus.text[at] == tok[b * T] && d.corpus.text[at + T] == tgt[b * T + T - 1]) {
            int eq = 1;
            for (int t = 0; t < T && eq; t++) eq = d.corpus.text[at + t] == tok[b * T + t];
            if (eq && sp->domain == dom[b]) { found = 1; hit[i]++; }
          }
      }
      CU_ASSERT_TRUE(found);
    }
  }
  for (int i = 0; i < s->nspans; i++) CU_ASSERT_TRUE(hit[i] > 0); /* every span is drawn from */
  /* the same stream gives the same batch */
  fm_rng_init(&r, 1234, 3, 7, FM_RNG_BATCH);
  fm_rng_init(&r2, 1234, 3, 7, FM_RNG_BATCH);
  fm_batch_sample(&d.corpus, s, &r, B, T, tok, tgt, NULL);
  fm_batch_sample(&d.corpus, s, &r2, B, T, tok2, tgt2, NULL);
  CU_ASSERT_EQUAL(memcmp(tok, tok2, sizeof tok), 0);
  CU_ASSERT_EQUAL(memcmp(tgt, tgt2, sizeof tgt), 0);
  /* a split without a window is an error */
  fm_span tiny = {d.corpus.domain_start[0], 10, 0};
  fm_split small = {1, &tiny, 10};
  CU_ASSERT_EQUAL(fm_batch_sample(&d.corpus, &small, &r, B, T, tok, tgt, NULL), FM_ERR_DATA);
  fm_dataset_free(&d);
  fm_config_free(&c);
}

static void test_batch_sequential(void) {
  fm_config c;
  fixture_config(&c);
  c.data.partition = FM_PART_IID;
  fm_dataset d;
  CU_ASSERT_EQUAL_FATAL(fm_dataset_load(&d, &c), FM_OK);
  const int B = 5, T = 16;
  int32_t tok[5 * 16], tgt[5 * 16];
  int dom[5];
  const fm_split *s = &d.clients[0].split[FM_SPLIT_VAL];
  long W = fm_split_windows(s, T), expect = 0;
  for (int i = 0; i < s->nspans; i++) expect += (long)(s->spans[i].len / (T + 1));
  CU_ASSERT_EQUAL(W, expect);
  CU_ASSERT_FATAL(W > B);
  long seen = 0;
  int span = 0;
  uint64_t at = s->spans[0].start;
  for (long i = 0;; i++) {
    int n = fm_batch_sequential(&d.corpus, s, i, B, T, tok, tgt, dom);
    if (!n) break;
    CU_ASSERT_TRUE(n == B || seen + n == W); /* only the last batch is partial */
    for (int b = 0; b < n; b++, seen++) {
      /* the next window, span by span, at a stride of T+1 */
      while (at + T + 1 > s->spans[span].start + s->spans[span].len) at = s->spans[++span].start;
      for (int t = 0; t < T; t++) {
        CU_ASSERT_EQUAL(tok[b * T + t], d.corpus.text[at + t]);
        CU_ASSERT_EQUAL(tgt[b * T + t], d.corpus.text[at + t + 1]);
      }
      CU_ASSERT_EQUAL(dom[b], s->spans[span].domain);
      at += T + 1;
    }
  }
  CU_ASSERT_EQUAL(seen, W);
  CU_ASSERT_EQUAL(fm_batch_sequential(&d.corpus, s, W, 1, T, tok, tgt, NULL), 0);
  CU_ASSERT_EQUAL(fm_batch_sequential(&d.corpus, s, W - 1, 1, T, tok, tgt, NULL), 1);
  fm_dataset_free(&d);
  fm_config_free(&c);
}

/* ---- bad input ---- */

static char tmpdir[256];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/fedmoe-data-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
}

static void write_file(const char *name, const void *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", tmpdir, name);
  FILE *f = fopen(path, "wb");
  CU_ASSERT_PTR_NOT_NULL_FATAL(f);
  fwrite(p, 1, n, f);
  fclose(f);
}

static void remove_tmpdir(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  CU_ASSERT_EQUAL(system(cmd), 0);
}

/* loading fails with code, and the message has both strings */
static void expect_load_error(const fm_config *c, fm_err code, const char *must1, const char *must2) {
  fm_dataset d;
  fm_err e = fm_dataset_load(&d, c);
  CU_ASSERT_EQUAL(e, code);
  if (e) {
    if (!contains(fm_error_message(), must1) || !contains(fm_error_message(), must2))
      fprintf(stderr, "message '%s' lacks '%s' or '%s'\n", fm_error_message(), must1, must2);
    CU_ASSERT_TRUE(contains(fm_error_message(), must1));
    CU_ASSERT_TRUE(contains(fm_error_message(), must2));
  } else {
    fm_dataset_free(&d);
  }
}

static void test_bad_input(void) {
  fm_config c;
  fixture_config(&c);
  char path[512];

  snprintf(c.data.path, sizeof c.data.path, "%s", "/nonexistent/corpus");
  expect_load_error(&c, FM_ERR_CONFIG, "data.path", "'/nonexistent/corpus': No such file");

  make_tmpdir(); /* empty directory; then only indexes and dot files */
  snprintf(c.data.path, sizeof c.data.path, "%s", tmpdir);
  expect_load_error(&c, FM_ERR_CONFIG, "data.path", "holds no text files");
  write_file("x.dat", "\0\1\2", 3);
  write_file(".hidden", "text\n", 5);
  expect_load_error(&c, FM_ERR_CONFIG, tmpdir, "holds no text files");

  char text[2000];
  memset(text, 'a', sizeof text);
  write_file("good", text, sizeof text);
  text[1500] = 0;
  write_file("withnul", text, sizeof text);
  snprintf(path, sizeof path, "%s/withnul", tmpdir);
  expect_load_error(&c, FM_ERR_DATA, path, "NUL bytes");
  remove(path);
  uint8_t bin[2000];
  for (int i = 0; i < 2000; i++) bin[i] = (uint8_t)(0x80 + i % 100);
  write_file("binary", bin, sizeof bin);
  snprintf(path, sizeof path, "%s/binary", tmpdir);
  expect_load_error(&c, FM_ERR_DATA, path, "not a text file");
  remove(path);

  /* a domain too small for its client's validation split */
  write_file("good", text, 1200); /* 1200 bytes: public 60, val 0.1 x 1140 = 114 < 129 */
  c.train.seq_len = 128;
  c.data.min_domain_bytes = 100;
  c.data.public_frac = 0;
  expect_load_error(&c, FM_ERR_DATA, "client 0's val split", "train.seq_len+1 = 129");
  c.data.min_domain_bytes = 5000;
  expect_load_error(&c, FM_ERR_CONFIG, "data.min_domain_bytes", "'good', has 1201"); /* + the final newline */
  remove_tmpdir();

  /* the fixture with sequences longer than any client split */
  fm_config_free(&c);
  fixture_config(&c);
  c.train.seq_len = 4000;
  c.data.public_frac = 0;
  expect_load_error(&c, FM_ERR_DATA, "split has", "raise data.client_bytes");
  /* a public split without a single sequence */
  fm_config_free(&c);
  fixture_config(&c);
  c.data.public_frac = 0.01; /* at most 36 bytes per domain, under 41 */
  c.train.seq_len = 40;
  c.data.client_bytes = 3000;
  expect_load_error(&c, FM_ERR_CONFIG, "data.public_frac", "holds no sequence");
  /* fractions above 1 */
  fm_config_free(&c);
  fixture_config(&c);
  c.data.val_frac = 0.3;
  expect_load_error(&c, FM_ERR_CONFIG, "data.test_frac", "exceeds 1");
  fm_config_free(&c);
}

/* ---- scale: print the time to partition 10,000 clients over the default corpus ---- */

static void test_scale_print(void) {
  fm_config c;
  fm_config_init(&c);
  struct stat st;
  if (stat(c.data.path, &st) != 0) {
    printf("\n  (default corpus %s not installed: scale figures skipped)\n", c.data.path);
    fm_config_free(&c);
    return;
  }
  c.fl.clients = 10000;
  c.data.allow_overlap = 1; /* 10,000 clients of 64 KB: more than the corpus */
  fm_dataset d;
  memset(&d, 0, sizeof d);
  double t0 = fm_wtime();
  CU_ASSERT_EQUAL_FATAL(fm_corpus_load(&d.corpus, &c), FM_OK);
  printf("\n  default corpus: %d domains, %llu bytes, read in %.3f s\n", d.corpus.ndomains,
         (unsigned long long)d.corpus.size, fm_wtime() - t0);
  for (int part = FM_PART_BY_DOMAIN; part <= FM_PART_IID; part++) {
    c.data.partition = part;
    c.data.sizes = FM_SIZES_LOGNORMAL;
    fm_dataset p = {.corpus = d.corpus};
    double t1 = fm_wtime();
    CU_ASSERT_EQUAL(fm_partition(&p, &c), FM_OK);
    double t2 = fm_wtime();
    size_t spans = 0;
    for (int i = 0; i < p.nclients; i++)
      for (int s = 0; s < 3; s++) spans += (size_t)p.clients[i].split[s].nspans;
    printf("  partition %-9s lognormal, %d clients: %.3f s, %zu spans (%.1f MB of spans and mixes)\n",
           fm_config_enum_name(&c, "data.partition"), p.nclients, t2 - t1, spans,
           (double)(spans * sizeof(fm_span) + (size_t)p.nclients * (size_t)d.corpus.ndomains * sizeof(double) +
                    (size_t)p.nclients * sizeof(fm_client_data)) / 1e6);
    p.corpus = (fm_corpus){0};
    fm_dataset_free(&p);
  }
  fm_corpus_free(&d.corpus);
  fm_config_free(&c);
}

int fm_test_register(void) {
  static const fm_test text[] = {{"text rule", test_text_rule}, {"text cleaning", test_text_clean},
                                 {"load fixture, domains", test_load_fixture},
                                 {"min/max domain bytes", test_domain_limits}, {NULL, NULL}};
  static const fm_test part[] = {{"splits disjoint, public apart", test_splits_disjoint},
                                 {"determinism", test_determinism},
                                 {"shared load = local load", test_shared_load},
                                 {"by_domain", test_by_domain},
                                 {"disjoint clients, shrunk or refused", test_disjoint},
                                 {"dirichlet mixes", test_dirichlet_mix},
                                 {"iid mixes", test_iid_mix},
                                 {"client sizes", test_sizes},
                                 {NULL, NULL}};
  static const fm_test batch[] = {{"sampled windows", test_batch_sample},
                                  {"sequential windows", test_batch_sequential}, {NULL, NULL}};
  static const fm_test bad[] = {{"bad input errors", test_bad_input}, {NULL, NULL}};
  static const fm_test scale[] = {{"10,000 clients (prints figures)", test_scale_print}, {NULL, NULL}};
  return fm_test_suite("data: corpus", text) || fm_test_suite("data: partition", part) ||
         fm_test_suite("data: batches", batch) || fm_test_suite("data: bad input", bad) ||
         fm_test_suite("data: scale", scale);
}
