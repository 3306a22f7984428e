/* strmap.c - the tokenizer's hash maps and the digest of its files (strmap.h). */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

/* Words of 8 bytes folded in one by one, the tail with its length: every byte and
 * the length reach the result through a full-avalanche mix. */
static uint64_t hash_seeded(const uint8_t *p, size_t n, uint64_t seed) {
  uint64_t h = seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ mix64(w + 0x632BE59BD9B4E019ULL)) * 0x9FB21C651E98DF25ULL;
  }
  uint64_t w = 0;
  memcpy(&w, p + i, n - i);
  h = (h ^ mix64(w ^ ((uint64_t)(n - i) << 56))) * 0x9FB21C651E98DF25ULL;
  return mix64(h);
}

uint64_t fm_hash_bytes(const void *p, size_t n) { return hash_seeded(p, n, 0x243F6A8885A308D3ULL) | 1; }

void fm_digest_init(fm_digest *d) {
  d->h[0] = 0x13198A2E03707344ULL;
  d->h[1] = 0xA4093822299F31D0ULL;
  d->len = 0;
}

void fm_digest_add(fm_digest *d, const void *p, size_t n) {
  /* buffers in order: each lane chains the previous state into the next seed */
  d->h[0] = hash_seeded(p, n, d->h[0] ^ d->len);
  d->h[1] = hash_seeded(p, n, mix64(d->h[1] + d->len));
  d->len += n;
}

/* ---- byte strings to values ---- */

static fm_err grow_slots(fm_strmap *m) {
  size_t cap = m->cap ? 2 * m->cap : 1024;
  fm_strmap_slot *t = calloc(cap, sizeof *t);
  if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (tokenizer map of %zu slots)", cap);
  for (size_t i = 0; i < m->cap; i++)
    if (m->slot[i].hash) {
      size_t j = (size_t)m->slot[i].hash & (cap - 1);
      while (t[j].hash) j = (j + 1) & (cap - 1);
      t[j] = m->slot[i];
    }
  free(m->slot);
  m->slot = t;
  m->cap = cap;
  return FM_OK;
}

fm_err fm_strmap_put(fm_strmap *m, const void *key, size_t len, uint32_t val) {
  if (len > UINT32_MAX) FM_ERROR(FM_ERR_DATA, "tokenizer map key of %zu bytes", len);
  if (2 * (m->n + 1) > m->cap) FM_CHECK(grow_slots(m));
  uint64_t h = fm_hash_bytes(key, len);
  size_t j = (size_t)h & (m->cap - 1);
  while (m->slot[j].hash) {
    fm_strmap_slot *s = &m->slot[j];
    if (s->hash == h && s->len == len && !memcmp(m->arena + s->off, key, len)) {
      s->val = val;
      return FM_OK;
    }
    j = (j + 1) & (m->cap - 1);
  }
  if (m->used + len > m->arena_cap) {
    size_t cap = m->arena_cap ? m->arena_cap : 1 << 16;
    while (cap < m->used + len) cap *= 2;
    if (cap > UINT32_MAX) FM_ERROR(FM_ERR_MEM, "tokenizer map over 4 GiB of keys");
    uint8_t *a = realloc(m->arena, cap);
    if (!a) FM_ERROR(FM_ERR_MEM, "out of memory (tokenizer map keys: %zu bytes)", cap);
    m->arena = a;
    m->arena_cap = cap;
  }
  if (len) memcpy(m->arena + m->used, key, len);
  m->slot[j] = (fm_strmap_slot){h, (uint32_t)m->used, (uint32_t)len, val};
  m->used += len;
  m->n++;
  return FM_OK;
}

int fm_strmap_get(const fm_strmap *m, const void *key, size_t len, uint32_t *val) {
  if (!m->cap) return 0;
  uint64_t h = fm_hash_bytes(key, len);
  size_t j = (size_t)h & (m->cap - 1);
  while (m->slot[j].hash) {
    const fm_strmap_slot *s = &m->slot[j];
    if (s->hash == h && s->len == len && !memcmp(m->arena + s->off, key, len)) {
      *val = s->val;
      return 1;
    }
    j = (j + 1) & (m->cap - 1);
  }
  return 0;
}

size_t fm_strmap_bytes(const fm_strmap *m) { return m->arena_cap + m->cap * sizeof *m->slot; }

void fm_strmap_clear(fm_strmap *m) {
  free(m->slot);
  free(m->arena);
  memset(m, 0, sizeof *m);
}

/* ---- 64-bit keys to pairs ---- */

fm_err fm_u64map_put(fm_u64map *m, uint64_t key, uint32_t a, uint32_t b) {
  if (!key) FM_ERROR(FM_ERR_INTERNAL, "key 0 in a u64 map");
  if (2 * (m->n + 1) > m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 1024;
    fm_u64map old = *m;
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot) { *m = old; FM_ERROR(FM_ERR_MEM, "out of memory (merge table of %zu slots)", cap); }
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
      if (old.slot[i].key) FM_CHECK(fm_u64map_put(m, old.slot[i].key, old.slot[i].a, old.slot[i].b));
    free(old.slot);
  }
  uint64_t h = key * 0x9E3779B97F4A7C15ULL;
  size_t j = (size_t)(h >> 20) & (m->cap - 1);
  while (m->slot[j].key && m->slot[j].key != key) j = (j + 1) & (m->cap - 1);
  m->n += !m->slot[j].key;
  m->slot[j] = (fm_u64map_slot){key, a, b};
  return FM_OK;
}

void fm_u64map_free(fm_u64map *m) {
  free(m->slot);
  memset(m, 0, sizeof *m);
}
