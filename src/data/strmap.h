/* strmap.h - hash maps for the tokenizer: byte strings to 32-bit values (the
 * vocabulary by its bytes, the per-word cache) and 64-bit keys to pairs of 32-bit
 * values (the merges: a pair of ids to its rank and merged id). Open addressing,
 * linear probing; keys are copied into an arena the map owns. */
#ifndef FEDMOE_STRMAP_H
#define FEDMOE_STRMAP_H

#include "fedmoe/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t hash;       /* 0: empty slot */
  uint32_t off, len;   /* key bytes in the arena */
  uint32_t val;
} fm_strmap_slot;

typedef struct {
  fm_strmap_slot *slot;
  size_t cap, n;       /* cap: a power of two */
  uint8_t *arena;
  size_t used, arena_cap;
} fm_strmap;

/* Insert or overwrite. */
fm_err fm_strmap_put(fm_strmap *m, const void *key, size_t len, uint32_t val);
/* 1 and *val when key is present, else 0. */
int fm_strmap_get(const fm_strmap *m, const void *key, size_t len, uint32_t *val);
/* Bytes the map holds (arena and slots), to bound a cache. */
size_t fm_strmap_bytes(const fm_strmap *m);
void fm_strmap_clear(fm_strmap *m); /* empty, keeping no memory */

typedef struct {
  uint64_t key;        /* 0: empty slot */
  uint32_t a, b;
} fm_u64map_slot;

typedef struct {
  fm_u64map_slot *slot;
  size_t cap, n;
} fm_u64map;

/* key must not be 0. Insert or overwrite. */
fm_err fm_u64map_put(fm_u64map *m, uint64_t key, uint32_t a, uint32_t b);
/* The slot holding key, or NULL. */
static inline const fm_u64map_slot *fm_u64map_get(const fm_u64map *m, uint64_t key) {
  if (!m->cap) return NULL;
  uint64_t h = key * 0x9E3779B97F4A7C15ULL;
  size_t j = (size_t)(h >> 20) & (m->cap - 1);
  for (;;) {
    const fm_u64map_slot *s = &m->slot[j];
    if (s->key == key) return s;
    if (!s->key) return NULL;
    j = (j + 1) & (m->cap - 1);
  }
}
void fm_u64map_free(fm_u64map *m);

/* 64-bit hash of bytes (never 0), and a 128-bit digest of a stream of buffers. */
uint64_t fm_hash_bytes(const void *p, size_t n);
typedef struct { uint64_t h[2]; uint64_t len; } fm_digest;
void fm_digest_init(fm_digest *d);
void fm_digest_add(fm_digest *d, const void *p, size_t n);

#endif
