/* vmath.h - exp for the kernels' element-wise loops (private to src/nn).
 *
 * glibc's expf is a call the loop vectoriser cannot see through, so a loop
 * over 10^6 values runs it value by value. This one is branch-free and inline, so GCC
 * turns such loops into 8-wide AVX2 code (in the FM_VEC clones) or 4-wide SSE2.
 *
 * exp(x) = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2
 * split in a short high part and a low part so that n ln2_hi is exact), e^r by its
 * Taylor polynomial of degree 7 (truncation below 2e-9 relative on that interval),
 * 2^n built in the exponent bits. x is clamped to [-87, 88] first, so 2^n stays a
 * normal float: results below e^-87 (~1.6e-38) come out as that instead of a
 * denormal or 0, which no caller can tell from 0 next to its other terms.
 * Relative error: a few ulp over the whole range.
 *
 * The loops that use it need -fno-trapping-math to be if-converted (local.mk). */
#ifndef FEDMOE_NN_VMATH_H
#define FEDMOE_NN_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Compile a kernel twice, for x86-64-v3 (AVX2, FMA) and for the baseline, and pick
 * at load time (an ifunc): binaries still run on any x86-64 node. Empty where the
 * whole build already targets AVX2 (--enable-native) or on other architectures. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    !defined(__AVX2__) && !defined(FM_NO_CLONES)
#define FM_VEC __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FM_VEC
#endif

static inline float fm_vexpf(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float n = floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float s;
  memcpy(&s, &bits, sizeof s);
  return p * s;
}

/* Reductions in 8 independent lanes, combined pairwise at the end. Without
 * -ffast-math GCC may not reorder a sum, so `s += x[i]` runs one add at a time; with
 * eight partial sums the loop body is one 8-wide vector add. The order of the sum
 * is fixed by n alone, so results stay the same run to run. */
enum { FM_LANES = 8 };

static inline float fm_lanes_sum(const float *acc) {
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* sum of x[0..n) */
static inline float fm_vsum(const float *restrict x, int n) {
  float acc[FM_LANES] = {0};
  int i = 0;
  for (; i + FM_LANES <= n; i += FM_LANES)
    for (int l = 0; l < FM_LANES; l++) acc[l] += x[i + l];
  for (int l = 0; i < n; i++, l++) acc[l] += x[i];
  return fm_lanes_sum(acc);
}

/* sum of x[i] y[i] over [0..n) */
static inline float fm_vdot(const float *restrict x, const float *restrict y, int n) {
  float acc[FM_LANES] = {0};
  int i = 0;
  for (; i + FM_LANES <= n; i += FM_LANES)
    for (int l = 0; l < FM_LANES; l++) acc[l] += x[i + l] * y[i + l];
  for (int l = 0; i < n; i++, l++) acc[l] += x[i] * y[i];
  return fm_lanes_sum(acc);
}

/* largest of x[0..n), n >= 1 (NaN-free input) */
static inline float fm_vmax(const float *restrict x, int n) {
  float acc[FM_LANES];
  for (int l = 0; l < FM_LANES; l++) acc[l] = x[0];
  int i = 0;
  for (; i + FM_LANES <= n; i += FM_LANES)
    for (int l = 0; l < FM_LANES; l++) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  for (int l = 0; i < n; i++, l++) acc[l] = x[i] > acc[l] ? x[i] : acc[l];
  float m = acc[0];
  for (int l = 1; l < FM_LANES; l++) m = acc[l] > m ? acc[l] : m;
  return m;
}

#endif
