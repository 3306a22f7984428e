/* checksum.c - a 64-bit hash of a tensor's bytes, stored beside it in a checkpoint so
 * that a damaged checkpoint is refused instead of loaded. Not cryptographic: it
 * catches flipped or overwritten bytes (a bad disk, a partial copy), eight bytes per
 * step with multiply-rotate mixing and a final avalanche. */
#include "runfile_impl.h"

#include <string.h>

static uint64_t rotl(uint64_t x, int r) { return x << r | x >> (64 - r); }

static uint64_t mix(uint64_t h, uint64_t w) {
  w *= 0x87c37b91114253d5ULL;
  w = rotl(w, 31);
  w *= 0x4cf5ad432745937fULL;
  h ^= w;
  return rotl(h, 27) * 5 + 0x52dce729ULL;
}

uint64_t fm_hash64(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n * 0xff51afd7ed558ccdULL;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = mix(h, w);
  }
  if (i < n) { /* the tail, zero-padded; the length above tells the paddings apart */
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h = mix(h, w);
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}
