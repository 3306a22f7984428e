/* compress.c - compressed client updates: top-k sparsification and 8-bit
 * quantisation (with error feedback kept by the caller, Seide et al. 2014, Stich et
 * al. 2018: what compression drops this round is added to the next round's update). */
#include "fedmoe/toolkit.h"

#include <math.h>
#include <stdlib.h>

/* The k-th largest of a[n] (1 <= k <= n), reordering a: quickselect with a
 * median-of-three pivot, deterministic. */
static float kth_largest(float *a, size_t n, size_t k) {
  size_t lo = 0, hi = n - 1, want = k - 1;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    float x = a[lo], y = a[mid], z = a[hi];
    float p = x > y ? (y > z ? y : (x > z ? z : x)) : (x > z ? x : (y > z ? z : y));
    size_t i = lo, j = hi;
    while (i <= j) { /* descending: larger to the left */
      while (a[i] > p) i++;
      while (a[j] < p) j--;
      if (i <= j) {
        float t = a[i]; a[i] = a[j]; a[j] = t;
        i++;
        if (j == 0) break;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

size_t fm_compress_topk(float *u, size_t n, size_t candidates, double ratio, float *scratch) {
  size_t k = (size_t)ceil(ratio * (double)candidates);
  if (k < 1) k = 1;
  if (k >= n) return n;
  for (size_t i = 0; i < n; i++) scratch[i] = fabsf(u[i]);
  float t = kth_largest(scratch, n, k);
  size_t above = 0;
  for (size_t i = 0; i < n; i++) above += fabsf(u[i]) > t;
  size_t ties = k - above; /* entries equal to t kept, lowest indices first */
  for (size_t i = 0; i < n; i++) {
    float m = fabsf(u[i]);
    if (m > t) continue;
    if (m == t && ties > 0) { ties--; continue; }
    u[i] = 0;
  }
  return k;
}

float fm_compress_int8(float *u, size_t n) {
  float mx = 0;
  for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(u[i]));
  float s = mx / 127;
  for (size_t i = 0; i < n; i++) u[i] = s > 0 ? (float)lrintf(u[i] / s) * s : 0;
  return s;
}
