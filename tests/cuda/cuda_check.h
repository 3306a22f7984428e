/* cuda_check.h - helpers of the CUDA kernel tests (test_cuda_llama.c, test_cuda_moe.c):
 * random host data, device copies, and comparisons of a device array against its CPU
 * twin that print enough to debug from a log alone (sizes, relative L2 error, the
 * worst and the first mismatching index with both values). Needs `cu`, the test
 * program's context. */
#ifndef FEDMOE_TEST_CUDA_CHECK_H
#define FEDMOE_TEST_CUDA_CHECK_H

#include "cuda_nn.h"

#include "cunit_main.h"

#ifndef FM_TEST_NAME /* the program's name, for the message of a missing GPU */
#define FM_TEST_NAME "cuda test"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fm_cu *cu;

static inline float *host_rand(size_t n, unsigned seed, float scale) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  srand(seed);
  for (size_t i = 0; i < n; i++) p[i] = scale * ((float)rand() / (float)RAND_MAX * 2.0f - 1.0f);
  return p;
}

static inline float *host_copy(const float *src, size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  memcpy(p, src, n * sizeof *p);
  return p;
}

static inline void *dev_copy(const void *h, size_t bytes) {
  void *d = NULL;
  CU_ASSERT_FATAL(fm_cu_alloc(cu, &d, bytes, "test buffer") == FM_OK);
  if (h) CU_ASSERT_FATAL(fm_cu_upload(cu, d, h, bytes) == FM_OK);
  return d;
}

static inline float *dev_floats(const float *h, size_t n) { return dev_copy(h, n * sizeof(float)); }

static inline float *download(const float *dev, size_t n) {
  float *g = malloc((n ? n : 1) * sizeof *g);
  CU_ASSERT_FATAL(fm_cu_download(cu, g, dev, n * sizeof *g) == FM_OK);
  return g;
}

/* ||got - want|| / ||want|| <= tol, two host arrays (got from the GPU); on failure
 * prints tag and what, the size, the worst and the first mismatching index */
static inline int close_enough(const char *what, const char *tag, const float *got, const float *want,
                               size_t n, double tol) {
  double num = 0, den = 0, worst = -1;
  size_t iw = 0, first = (size_t)-1;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - (double)want[i];
    num += d * d;
    den += (double)want[i] * want[i];
    if (fabs(d) > worst || d != d) worst = fabs(d), iw = i;
  }
  double rms = n ? sqrt(den / n) : 0, e = den > 0 ? sqrt(num / den) : sqrt(num);
  if (!(e <= tol)) {
    for (size_t i = 0; i < n && first == (size_t)-1; i++)
      if (!(fabs((double)got[i] - want[i]) <= tol * (fabs(want[i]) + rms))) first = i;
    printf("\n    %s%s%s [%zu]: relative error %.3g > %.1g; worst |d| %.3g at %zu (gpu %.8g cpu %.8g)", tag,
           *tag ? " " : "", what, n, e, tol, worst, iw, got[iw], want[iw]);
    if (first != (size_t)-1)
      printf("; first mismatch at %zu (gpu %.8g cpu %.8g)", first, got[first], want[first]);
    printf("\n");
  }
  return e <= tol;
}

/* the same for a device array against its CPU twin */
static inline int close_to(const char *what, const float *dev, const float *cpu, size_t n, double tol) {
  float *g = download(dev, n);
  const int ok = close_enough(what, "", g, cpu, n, tol);
  free(g);
  return ok;
}

#define CLOSE(dev, cpu, n, tol) CU_ASSERT(close_to(#dev, (dev), (cpu), (n), (tol)))

/* a device array bitwise equal to a host one (a second run against the first) */
static inline int same_bits_host(const char *what, const float *dev, const float *host, size_t n) {
  float *g = download(dev, n);
  size_t i = 0;
  while (i < n && !memcmp(&g[i], &host[i], sizeof *g)) i++;
  if (i < n) printf("\n    %s [%zu]: a second run differs at %zu (%.9g vs %.9g)\n", what, n, i, g[i], host[i]);
  free(g);
  return i == n;
}

static inline int same_bits(const char *what, const float *d1, const float *d2, size_t n) {
  float *a = download(d1, n);
  int same = same_bits_host(what, d2, a, n);
  free(a);
  return same;
}

#define SAME_BITS(d1, d2, n) CU_ASSERT(same_bits(#d1, (d1), (d2), (n)))

static inline void dev_zero(float *d, size_t n) {
  float *z = calloc(n ? n : 1, sizeof *z);
  CU_ASSERT_FATAL(fm_cu_upload(cu, d, z, n * sizeof *z) == FM_OK);
  CU_ASSERT_FATAL(fm_cu_sync(cu, "zero") == FM_OK);
  free(z);
}

/* A missing GPU fails every test (never a skipped, green run). */
static inline int open_gpu(void) {
  if (fm_cu_open(&cu, 0, FM_PREC_FP32) != FM_OK) {
    fprintf(stderr, "%s: %s\n", FM_TEST_NAME, fm_error_message());
    cu = NULL;
  }
  return 0;
}
static inline int close_gpu(void) {
  fm_cu_close(cu);
  return 0;
}

#endif
