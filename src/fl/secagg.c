/* secagg.c - secure aggregation simulated on the fixed-point contributions
 * (Bonawitz et al., "Practical Secure Aggregation for Privacy-Preserving Machine
 * Learning", CCS 2017).
 *
 * Every member u of a round (the sampled clients that started it) adds to its
 * contribution y_u, in Z_2^64, a self mask PRG(b_u) and for every other member v
 * +PRG(s_uv) if u < v, -PRG(s_uv) if u > v. The server sees only masked vectors. Over
 * the survivors the pairwise masks between two survivors cancel; the server removes
 * the survivors' self masks and the masks they shared with members that dropped out
 * (in the protocol it reconstructs b_u and s_uv from the survivors' Shamir shares).
 * What is left is exactly the sum of the survivors' y_u: the fixed-point sum wraps
 * modulo 2^64 like the masks, so the aggregate is bit-identical to the unmasked one.
 * The shared seeds s_uv are stand-ins for the Diffie-Hellman agreement: each pair has
 * its own stream, keyed by (seed, round, pair); no real cryptography is done. */
#include "fedmoe/toolkit.h"

#include "fedmoe/rng.h"

/* The stream of pair (u, v), u < v, or of u's self mask (v < 0). The pair goes into
 * the key (a 32-bit client field holds only one id), so every pair has its own key. */
static void mask_stream(fm_rng *r, uint64_t seed, int round, int u, int v) {
  uint64_t key = seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(v + 2));
  fm_rng_init(r, key, (uint32_t)u, (uint32_t)round, v < 0 ? FM_RNG_SECAGG_SELF : FM_RNG_SECAGG_PAIR);
}

/* q += sign PRG over n values */
static void add_stream(fm_rng *r, int sign, uint64_t *q, size_t n) {
  if (sign > 0)
    for (size_t i = 0; i < n; i++) q[i] += fm_rng_u64(r);
  else
    for (size_t i = 0; i < n; i++) q[i] -= fm_rng_u64(r);
}

void fm_secagg_mask(uint64_t seed, int round, int client, const int *members, int k, uint64_t *q, size_t n) {
  fm_rng r;
  mask_stream(&r, seed, round, client, -1);
  add_stream(&r, +1, q, n);
  for (int j = 0; j < k; j++) {
    int v = members[j];
    if (v == client) continue;
    mask_stream(&r, seed, round, client < v ? client : v, client < v ? v : client);
    add_stream(&r, client < v ? +1 : -1, q, n);
  }
}

void fm_secagg_unmask(uint64_t seed, int round, const int *members, int k, const uint8_t *survived, uint64_t *q,
                      size_t n) {
  fm_rng r;
  for (int a = 0; a < k; a++) {
    if (!survived[a]) continue;
    int u = members[a];
    mask_stream(&r, seed, round, u, -1);
    add_stream(&r, -1, q, n);
    /* u added sign(u, v) PRG(s_uv) for the dropped v: take it back */
    for (int b = 0; b < k; b++) {
      if (survived[b]) continue;
      int v = members[b];
      mask_stream(&r, seed, round, u < v ? u : v, u < v ? v : u);
      add_stream(&r, u < v ? -1 : +1, q, n);
    }
  }
}

/* Per client, for k members (Bonawitz et al., Sec. 4, with 32-byte X25519 keys and
 * shares, 28 bytes of AEAD nonce and tag per ciphertext, 4-byte ids):
 *   AdvertiseKeys  up two public keys (64 B);        down every member's two (64 k B)
 *   ShareKeys      up k-1 ciphertexts of two shares and two ids (100 B each); down the same
 *   MaskedInput    (the masked vector itself is counted as the upload)  down the survivor list (4 k B)
 *   Unmasking      up one share for each other member (32 B each) */
void fm_secagg_overhead(int k, double *up, double *down) {
  double others = k > 1 ? k - 1 : 0;
  *up = 64 + 100 * others + 32 * others;
  *down = 64.0 * k + 100 * others + 4.0 * k;
}
