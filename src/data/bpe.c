/* bpe.c - byte-level BPE encoding: added tokens, then the pre-tokenizer's splits,
 * then each piece's bytes merged by rank (include/fedmoe/tokenizer.h states the
 * order). Pieces repeat (words), so each piece's ids are cached. */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* GPT-2's pattern: contractions, letters, numbers, other symbols, each with an
 * optional leading space; whitespace runs keep their last space for the next word. */
const char fm_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define CACHE_MAX_BYTES ((size_t)256 << 20)

struct fm_bpe_sym { int32_t id; int prev, next; };
struct fm_bpe_merge { uint32_t rank; int pos; int32_t left, right, merged; };

fm_err fm_regex_compile(const char *pattern, size_t len, int literal, const char *what, pcre2_code **re,
                        pcre2_match_data **md) {
  int code;
  PCRE2_SIZE at;
  uint32_t opt = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
  *re = pcre2_compile((PCRE2_SPTR)pattern, len, opt, &code, &at, NULL);
  if (!*re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(code, msg, sizeof msg);
    FM_ERROR(FM_ERR_FORMAT, "%s: the pattern does not compile at character %zu: %s", what, (size_t)at,
             (const char *)msg);
  }
  pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE); /* no JIT on this machine: the interpreter */
  *md = pcre2_match_data_create(1, NULL);
  if (!*md) FM_ERROR(FM_ERR_MEM, "out of memory (regex match data)");
  return FM_OK;
}

/* The next non-empty match of re in s[from..n): 1 with [*ms, *me), 0 when none. */
static fm_err next_match(pcre2_code *re, pcre2_match_data *md, const uint8_t *s, size_t n, size_t from,
                         size_t *ms, size_t *me, int *found) {
  *found = 0;
  while (from < n) {
    int rc = pcre2_match(re, s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) return FM_OK;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      FM_ERROR(FM_ERR_DATA, "pre-tokenizer pattern failed on a piece of %zu bytes: %s", n, (const char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[1] > ov[0]) {
      *ms = ov[0];
      *me = ov[1];
      *found = 1;
      return FM_OK;
    }
    /* an empty match splits nothing: look again one character on */
    from = ov[0] + 1;
    while (from < n && (s[from] & 0xC0) == 0x80) from++;
  }
  return FM_OK;
}

static fm_err grow_scratch(fm_bpe *b, size_t n) {
  if (n <= b->scratch_cap) return FM_OK;
  size_t cap = b->scratch_cap ? b->scratch_cap : 64;
  while (cap < n) cap *= 2;
  struct fm_bpe_sym *s = realloc(b->sym, cap * sizeof *s);
  if (s) b->sym = s;
  struct fm_bpe_merge *h = realloc(b->heap, 3 * cap * sizeof *h);
  if (h) b->heap = h;
  if (!s || !h) FM_ERROR(FM_ERR_MEM, "out of memory (BPE of a piece of %zu bytes)", n);
  b->scratch_cap = cap;
  return FM_OK;
}

static int merge_before(const struct fm_bpe_merge *x, const struct fm_bpe_merge *y) {
  return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos);
}

static void heap_push(struct fm_bpe_merge *h, size_t *n, struct fm_bpe_merge m) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!merge_before(&m, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = m;
}

static struct fm_bpe_merge heap_pop(struct fm_bpe_merge *h, size_t *n) {
  struct fm_bpe_merge top = h[0], last = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && merge_before(&h[c + 1], &h[c])) c++;
    if (!merge_before(&h[c], &last)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = last;
  return top;
}

/* Queue the merge of the symbols at pos and its successor, when the merges have it. */
static void consider(const fm_bpe *b, struct fm_bpe_merge *h, size_t *nh, int pos) {
  const struct fm_bpe_sym *s = b->sym;
  int r = s[pos].next;
  if (r < 0) return;
  uint64_t key = ((uint64_t)(uint32_t)(s[pos].id + 1) << 32) | (uint32_t)s[r].id;
  const fm_u64map_slot *m = fm_u64map_get(&b->merges, key);
  if (m) heap_push(h, nh, (struct fm_bpe_merge){m->a, pos, s[pos].id, s[r].id, (int32_t)m->b});
}

/* The ids of one piece, merged by rank, appended to out. */
static fm_err merge_piece(fm_bpe *b, const uint8_t *p, size_t n, fm_ids *out) {
  FM_CHECK(grow_scratch(b, n));
  struct fm_bpe_sym *s = b->sym;
  for (size_t i = 0; i < n; i++) {
    int32_t id = b->byte_id[p[i]];
    if (id < 0) id = b->unk;
    if (id < 0)
      FM_ERROR(FM_ERR_DATA, "byte 0x%02x has no token in the vocabulary (and there is no unk_token)", p[i]);
    s[i] = (struct fm_bpe_sym){id, (int)i - 1, i + 1 < n ? (int)i + 1 : -1};
  }
  size_t nh = 0;
  for (size_t i = 0; i + 1 < n; i++) consider(b, b->heap, &nh, (int)i);
  while (nh) {
    struct fm_bpe_merge m = heap_pop(b->heap, &nh);
    int r = s[m.pos].next;
    /* stale: a neighbour merged since this was queued */
    if (s[m.pos].id != m.left || r < 0 || s[r].id != m.right) continue;
    s[m.pos].id = m.merged;
    s[m.pos].next = s[r].next;
    if (s[r].next >= 0) s[s[r].next].prev = m.pos;
    s[r].id = -1;
    if (s[m.pos].prev >= 0) consider(b, b->heap, &nh, s[m.pos].prev);
    consider(b, b->heap, &nh, m.pos);
  }
  for (int i = 0; i >= 0; i = s[i].next) FM_CHECK(fm_ids_push(out, s[i].id));
  return FM_OK;
}

static fm_err cache_put(fm_bpe *b, const uint8_t *p, size_t n, const int32_t *ids, size_t k) {
  if (fm_strmap_bytes(&b->cache) + b->cache_cap * sizeof *b->cache_ids > CACHE_MAX_BYTES) {
    fm_strmap_clear(&b->cache); /* a bound on memory, not an eviction policy */
    b->ncache_ids = 0;
  }
  if (b->ncache_ids + k + 1 > b->cache_cap) {
    size_t cap = b->cache_cap ? 2 * b->cache_cap : 1 << 16;
    while (cap < b->ncache_ids + k + 1) cap *= 2;
    int32_t *t = realloc(b->cache_ids, cap * sizeof *t);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (BPE cache)");
    b->cache_ids = t;
    b->cache_cap = cap;
  }
  if (b->ncache_ids > UINT32_MAX) return FM_OK;
  FM_CHECK(fm_strmap_put(&b->cache, p, n, (uint32_t)b->ncache_ids));
  b->cache_ids[b->ncache_ids++] = (int32_t)k;
  memcpy(b->cache_ids + b->ncache_ids, ids, k * sizeof *ids);
  b->ncache_ids += k;
  return FM_OK;
}

static fm_err encode_piece(fm_bpe *b, const uint8_t *p, size_t n, fm_ids *out) {
  uint32_t v;
  if (b->ignore_merges && fm_strmap_get(&b->by_bytes, p, n, &v)) return fm_ids_push(out, (int32_t)v);
  if (fm_strmap_get(&b->cache, p, n, &v)) {
    const int32_t *c = b->cache_ids + v;
    for (int32_t i = 0; i < c[0]; i++) FM_CHECK(fm_ids_push(out, c[1 + i]));
    return FM_OK;
  }
  size_t first = out->n;
  FM_CHECK(merge_piece(b, p, n, out));
  FM_CHECK(cache_put(b, p, n, out->v + first, out->n - first));
  return FM_OK;
}

/* Pre-tokenizer steps k.. on one piece, then BPE on what comes out. */
static fm_err pretok(fm_bpe *b, int k, const uint8_t *p, size_t n, fm_ids *out) {
  if (!n) return FM_OK;
  if (k == b->nsteps) return encode_piece(b, p, n, out);
  const fm_pretok_step *st = &b->step[k];
  uint8_t *spaced = NULL;
  if (st->prefix_space && p[0] != ' ') {
    if (!(spaced = malloc(n + 1))) FM_ERROR(FM_ERR_MEM, "out of memory (pre-tokenizer)");
    spaced[0] = ' ';
    memcpy(spaced + 1, p, n);
    p = spaced;
    n++;
  }
  fm_err err = FM_OK;
  if (!st->re) {
    err = pretok(b, k + 1, p, n, out);
  } else {
    size_t at = 0, ms, me;
    int found = 1;
    while (!err && at < n) {
      if ((err = next_match(st->re, st->md, p, n, at, &ms, &me, &found))) break;
      if (!found) ms = me = n;
      if (ms > at) err = pretok(b, k + 1, p + at, ms - at, out); /* text between matches */
      if (!err && me > ms && !st->remove_matches) err = pretok(b, k + 1, p + ms, me - ms, out);
      at = me;
    }
  }
  free(spaced);
  FM_CHECK(err);
  return FM_OK;
}

/* The normalizer, then the pre-tokenizer: NFC where the text is not plain ASCII. */
static fm_err normalize_then_pretok(fm_bpe *b, const uint8_t *p, size_t n, fm_ids *out) {
  if (!b->nfc) return pretok(b, 0, p, n, out);
  size_t i = 0;
  while (i < n && p[i] < 0x80) i++;
  if (i == n) return pretok(b, 0, p, n, out); /* ASCII is its own NFC */
  utf8proc_uint8_t *nfc = NULL;
  utf8proc_ssize_t k = utf8proc_map(p, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (k < 0) FM_ERROR(FM_ERR_DATA, "NFC normalisation failed: %s", utf8proc_errmsg(k));
  fm_err err = pretok(b, 0, nfc, (size_t)k, out);
  free(nfc);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_bpe_encode(fm_bpe *b, const uint8_t *text, size_t n, fm_ids *out) {
  if (!b->added_re) return normalize_then_pretok(b, text, n, out);
  size_t at = 0, ms, me;
  int found = 1;
  while (at < n) {
    FM_CHECK(next_match(b->added_re, b->added_md, text, n, at, &ms, &me, &found));
    if (!found) ms = me = n;
    FM_CHECK(normalize_then_pretok(b, text + at, ms - at, out));
    if (me > ms) {
      uint32_t id;
      if (!fm_strmap_get(&b->added, text + ms, me - ms, &id))
        FM_ERROR(FM_ERR_INTERNAL, "an added token matched but is not in the added-token map");
      FM_CHECK(fm_ids_push(out, (int32_t)id));
    }
    at = me;
  }
  return FM_OK;
}

void fm_bpe_free(fm_bpe *b) {
  if (!b) return;
  fm_u64map_free(&b->merges);
  fm_strmap_clear(&b->by_bytes);
  fm_strmap_clear(&b->added);
  fm_strmap_clear(&b->cache);
  for (int i = 0; i < b->nsteps; i++) {
    pcre2_code_free(b->step[i].re);
    pcre2_match_data_free(b->step[i].md);
  }
  pcre2_code_free(b->added_re);
  pcre2_match_data_free(b->added_md);
  free(b->cache_ids);
  free(b->sym);
  free(b->heap);
  free(b);
}
