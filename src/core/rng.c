/* rng.c - Philox4x32-10 (Salmon et al., SC'11) streams addressed by
 * (seed, client, round, purpose), and the distributions fedmoe draws from them. */
#include "fedmoe/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void fm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  uint32_t k0 = key[0], k1 = key[1];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += PHILOX_W0;
    k1 += PHILOX_W1;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void fm_rng_init(fm_rng *r, uint64_t seed, uint32_t client, uint32_t round, uint32_t purpose) {
  r->key[0] = (uint32_t)seed;
  r->key[1] = (uint32_t)(seed >> 32);
  r->ctr[0] = 0;
  r->ctr[1] = purpose;
  r->ctr[2] = client;
  r->ctr[3] = round;
  r->used = 4;
}

uint32_t fm_rng_u32(fm_rng *r) {
  if (r->used == 4) {
    fm_philox4x32_10(r->ctr, r->key, r->buf);
    r->ctr[0]++; /* 2^32 blocks = 2^34 numbers per stream: never reached in a round */
    r->used = 0;
  }
  return r->buf[r->used++];
}

uint64_t fm_rng_u64(fm_rng *r) {
  uint64_t hi = fm_rng_u32(r);
  return (hi << 32) | fm_rng_u32(r);
}

double fm_rng_uniform(fm_rng *r) { return (double)(fm_rng_u64(r) >> 11) * 0x1.0p-53; }
float fm_rng_uniformf(fm_rng *r) { return (float)(fm_rng_u32(r) >> 8) * 0x1.0p-24f; }

uint64_t fm_rng_below(fm_rng *r, uint64_t n) {
  /* rejection on the top of the range keeps every value equally likely */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = fm_rng_u64(r); while (x >= limit);
  return x % n;
}

double fm_rng_normal(fm_rng *r) {
  /* Box-Muller; one of the pair is dropped so the stream position is simple */
  double u1 = fm_rng_uniform(r), u2 = fm_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double fm_rng_gamma(fm_rng *r, double shape) {
  /* Marsaglia and Tsang (2000); shape < 1 through Gamma(shape+1) * U^(1/shape) */
  if (shape < 1.0) {
    double u = fm_rng_uniform(r);
    if (u < 1e-300) u = 1e-300;
    return fm_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = fm_rng_normal(r), v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = fm_rng_uniform(r);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
  }
}

void fm_rng_dirichlet(fm_rng *r, double alpha, int k, double *out) {
  double sum = 0;
  for (int i = 0; i < k; i++) sum += out[i] = fm_rng_gamma(r, alpha);
  if (sum <= 0) { /* every draw underflowed (tiny alpha): all mass on one category */
    for (int i = 0; i < k; i++) out[i] = 0;
    out[fm_rng_below(r, (uint64_t)k)] = 1;
    return;
  }
  for (int i = 0; i < k; i++) out[i] /= sum;
}

void fm_rng_shuffle_u32(fm_rng *r, uint32_t *a, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)fm_rng_below(r, i);
    uint32_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
  }
}

void fm_rng_choose(fm_rng *r, uint32_t n, uint32_t k, uint32_t *out) {
  /* selection sampling (Knuth's Algorithm S): O(n), output already sorted */
  uint32_t chosen = 0;
  for (uint32_t i = 0; i < n && chosen < k; i++)
    if (fm_rng_below(r, n - i) < k - chosen) out[chosen++] = i;
}

void fm_rng_save(const fm_rng *r, fm_rng_state *s) {
  s->w[0] = r->key[0]; s->w[1] = r->key[1];
  for (int i = 0; i < 4; i++) s->w[2 + i] = r->ctr[i];
  s->w[6] = (uint32_t)r->used;
  s->w[7] = 0;
}

void fm_rng_restore(fm_rng *r, const fm_rng_state *s) {
  r->key[0] = s->w[0]; r->key[1] = s->w[1];
  for (int i = 0; i < 4; i++) r->ctr[i] = s->w[2 + i];
  r->used = (int)s->w[6];
  if (r->used < 4) { /* rebuild the buffer of the block last drawn */
    uint32_t c[4] = {r->ctr[0] - 1, r->ctr[1], r->ctr[2], r->ctr[3]};
    fm_philox4x32_10(c, r->key, r->buf);
  }
}
