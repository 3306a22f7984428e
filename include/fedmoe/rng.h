/* rng.h - counter-based deterministic random numbers (Philox4x32-10).
 *
 * A stream is addressed by (seed, client, round, purpose): its numbers depend on
 * those four values only, never on which rank draws them or in which order
 * other streams are used, so results are the same for any number of ranks.
 * Block j of a stream is Philox(key = seed, counter = (j, purpose, client, round)). */
#ifndef FEDMOE_RNG_H
#define FEDMOE_RNG_H

#include <stdint.h>
#include <stddef.h>

/* Purposes: one per independent use, so two uses never share numbers. */
enum {
  FM_RNG_INIT = 1,     /* model initialisation */
  FM_RNG_DATA,         /* partitioning, client sizes, domain mixtures */
  FM_RNG_BATCH,        /* batch sampling */
  FM_RNG_SAMPLE,       /* client sampling by the server */
  FM_RNG_STRATEGY,     /* strategy-specific choices (random expert subsets, ...) */
  FM_RNG_SYSTEM,       /* device model, availability, dropouts */
  FM_RNG_TEST,         /* tests */
  FM_RNG_EVAL,         /* evaluation batches: the same windows every round */
  FM_RNG_GENERATE,     /* text generation: one draw per generated token (round = its step) */
  FM_RNG_PRETRAIN      /* pretraining micro-batches: (seed, micro-batch, step) */
};
#define FM_RNG_SERVER 0xFFFFFFFFu /* the client id used for streams of the server */

typedef struct {
  uint32_t key[2];
  uint32_t ctr[4]; /* ctr[0] = block index, then purpose, client, round */
  uint32_t buf[4];
  int used;        /* outputs of buf already consumed (4 = empty) */
} fm_rng;

/* One Philox4x32-10 block: out = philox(ctr, key). Exposed for known-answer tests. */
void fm_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void fm_rng_init(fm_rng *r, uint64_t seed, uint32_t client, uint32_t round, uint32_t purpose);
uint32_t fm_rng_u32(fm_rng *r);
uint64_t fm_rng_u64(fm_rng *r);
double fm_rng_uniform(fm_rng *r);        /* [0,1), 53 bits */
float fm_rng_uniformf(fm_rng *r);        /* [0,1), 24 bits */
uint64_t fm_rng_below(fm_rng *r, uint64_t n); /* uniform in [0,n), unbiased; n > 0 */
double fm_rng_normal(fm_rng *r);         /* standard normal */
double fm_rng_gamma(fm_rng *r, double shape); /* Gamma(shape, 1), shape > 0 */
void fm_rng_dirichlet(fm_rng *r, double alpha, int k, double *out);
void fm_rng_shuffle_u32(fm_rng *r, uint32_t *a, size_t n);
/* k distinct values of [0,n) in increasing order (k <= n). */
void fm_rng_choose(fm_rng *r, uint32_t n, uint32_t k, uint32_t *out);

/* The full state, for checkpoints: 8 x uint32 (key, counter, used + buffer is rebuilt). */
typedef struct { uint32_t w[8]; } fm_rng_state;
void fm_rng_save(const fm_rng *r, fm_rng_state *s);
void fm_rng_restore(fm_rng *r, const fm_rng_state *s);

#endif
