/* bpe_load.c - reading byte-level BPE tokenizers: a Hugging Face tokenizer.json
 * (model BPE, ByteLevel pre-tokenizer, added tokens) or GPT-2's vocab.json and
 * merges.txt. Tokens are stored as the bytes they stand for: the files spell each
 * byte as one character (GPT-2's byte-to-unicode table), which is undone here so
 * that merging works on the text's own bytes. */
#include "tok_impl.h"

#include "fedmoe/config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * for U+0100.. in byte order. byte_of[cp] for cp < 324, -1 elsewhere. */
static void byte_table(int cp_of[256], int byte_of[324]) {
  int n = 0;
  for (int i = 0; i < 324; i++) byte_of[i] = -1;
  for (int c = 0; c < 256; c++) {
    int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    cp_of[c] = printable ? c : 256 + n++;
    byte_of[cp_of[c]] = c;
  }
}

/* Decode one UTF-8 character of s (valid: the JSON parser checked); returns its length. */
static int utf8_next(const unsigned char *s, int *cp) {
  if (s[0] < 0x80) { *cp = s[0]; return 1; }
  if ((s[0] & 0xE0) == 0xC0) { *cp = ((s[0] & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
  if ((s[0] & 0xF0) == 0xE0) { *cp = ((s[0] & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F); return 3; }
  *cp = ((s[0] & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
  return 4;
}

/* The bytes a token spelled s stands for (into out, at most len bytes); -1 when a
 * character of s is outside the table (an added token spelled in plain text). */
static long unmap(const char *s, size_t len, const int byte_of[324], uint8_t *out) {
  long k = 0;
  for (size_t i = 0; i < len;) {
    int cp;
    i += (size_t)utf8_next((const unsigned char *)s + i, &cp);
    if (cp >= 324 || byte_of[cp] < 0) return -1;
    out[k++] = (uint8_t)byte_of[cp];
  }
  return k;
}

typedef struct { int32_t id; const char *s; size_t len; int plain; } entry;

/* What loading collects before the tokenizer is built. */
typedef struct {
  const char *file;
  entry *e;
  size_t n, cap;
  int32_t max_id;
  int byte_of[324], cp_of[256];
} vocab_build;

static fm_err add_entry(vocab_build *v, const char *s, size_t len, json_int_t id, int plain, const char *where) {
  if (id < 0 || id > INT32_MAX - 1)
    FM_ERROR(FM_ERR_FORMAT, "%s: %s: token '%.60s' has id %lld, outside 0..%d", v->file, where, s,
             (long long)id, INT32_MAX - 1);
  if (v->n == v->cap) {
    size_t cap = v->cap ? 2 * v->cap : 4096;
    entry *t = realloc(v->e, cap * sizeof *t);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (vocabulary of %s)", v->file);
    v->e = t;
    v->cap = cap;
  }
  v->e[v->n++] = (entry){(int32_t)id, s, len, plain};
  if (id > v->max_id) v->max_id = (int32_t)id;
  return FM_OK;
}

/* The tokenizer's vocabulary from the entries: names, bytes per id, the byte map. */
static fm_err build_vocab(fm_tokenizer *t, vocab_build *v) {
  fm_bpe *b = t->bpe;
  t->vocab = v->max_id + 1;
  FM_CALLOC(t->tok_off, (size_t)t->vocab + 1, "token offsets");
  FM_CALLOC(t->tok_missing, (size_t)t->vocab, "token ids");
  uint64_t *len;
  FM_CALLOC(len, (size_t)t->vocab, "token lengths");
  memset(t->tok_missing, 1, (size_t)t->vocab);
  fm_err err = FM_OK;
  uint8_t *raw = NULL;
  size_t rawcap = 0, total = 0;
  /* pass 1: lengths (an id given twice keeps the later spelling: added tokens come last) */
  for (size_t i = 0; i < v->n; i++) {
    const entry *e = &v->e[i];
    len[e->id] = e->len; /* an upper bound of the unmapped length */
    t->tok_missing[e->id] = 0;
  }
  for (int i = 0; i < t->vocab; i++) total += len[i];
  free(len);
  if ((err = fm_calloc(&t->tok_bytes, total + 1, 1, "token bytes"))) return err;
  /* pass 2: each id's bytes, in id order; the last entry for an id wins */
  int32_t *last;
  FM_CALLOC(last, (size_t)t->vocab, "token index");
  for (int i = 0; i < t->vocab; i++) last[i] = -1;
  for (size_t i = 0; i < v->n; i++) last[v->e[i].id] = (int32_t)i;
  uint64_t at = 0;
  for (int id = 0; id < t->vocab && !err; id++) {
    t->tok_off[id] = at;
    if (last[id] < 0) continue;
    const entry *e = &v->e[last[id]];
    if (e->len + 1 > rawcap) {
      rawcap = 2 * (e->len + 1);
      uint8_t *r = realloc(raw, rawcap);
      if (!r) { err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory"); break; }
      raw = r;
    }
    long k = e->plain ? -1 : unmap(e->s, e->len, v->byte_of, raw);
    if (k < 0) { /* plain text: the token is its spelling */
      memcpy(t->tok_bytes + at, e->s, e->len);
      at += e->len;
    } else {
      memcpy(t->tok_bytes + at, raw, (size_t)k);
      at += (uint64_t)k;
      if (!e->plain) err = fm_strmap_put(&b->by_bytes, raw, (size_t)k, (uint32_t)id);
    }
  }
  t->tok_off[t->vocab] = at;
  for (size_t i = 0; i < v->n && !err; i++) err = fm_strmap_put(&t->names, v->e[i].s, v->e[i].len, (uint32_t)v->e[i].id);
  free(last);
  free(raw);
  FM_CHECK(err);
  for (int c = 0; c < 256; c++) {
    uint32_t id;
    uint8_t byte = (uint8_t)c;
    b->byte_id[c] = fm_strmap_get(&b->by_bytes, &byte, 1, &id) ? (int32_t)id : -1;
  }
  return FM_OK;
}

/* One merge: the ids of its two tokens and of their concatenation. */
static fm_err add_merge(fm_tokenizer *t, vocab_build *v, const char *l, size_t ll, const char *r, size_t rl,
                        uint32_t rank, const char *where) {
  uint32_t a, c, m;
  char buf[1024];
  if (!fm_strmap_get(&t->names, l, ll, &a) || !fm_strmap_get(&t->names, r, rl, &c))
    FM_ERROR(FM_ERR_FORMAT, "%s: %s: merge '%.*s %.*s' names a token that is not in the vocabulary", v->file,
             where, (int)ll, l, (int)rl, r);
  if (ll + rl > sizeof buf)
    FM_ERROR(FM_ERR_FORMAT, "%s: %s: merged token of %zu bytes", v->file, where, ll + rl);
  memcpy(buf, l, ll);
  memcpy(buf + ll, r, rl);
  if (!fm_strmap_get(&t->names, buf, ll + rl, &m))
    FM_ERROR(FM_ERR_FORMAT, "%s: %s: merge '%.*s %.*s' makes '%.*s', which is not in the vocabulary", v->file,
             where, (int)ll, l, (int)rl, r, (int)(ll + rl), buf);
  uint64_t key = ((uint64_t)(a + 1) << 32) | c;
  if (fm_u64map_get(&t->bpe->merges, key)) return FM_OK; /* a repeated merge keeps its first rank */
  FM_CHECK(fm_u64map_put(&t->bpe->merges, key, rank, m));
  return FM_OK;
}

static fm_err add_step(fm_tokenizer *t, const char *pattern, size_t len, int literal, int remove, int prefix,
                       const char *where) {
  fm_bpe *b = t->bpe;
  if (b->nsteps == FM_PRETOK_MAX)
    FM_ERROR(FM_ERR_FORMAT, "%s: %s: more than %d pre-tokenizer steps", t->path, where, FM_PRETOK_MAX);
  fm_pretok_step *st = &b->step[b->nsteps++];
  st->remove_matches = remove;
  st->prefix_space = prefix;
  if (pattern) {
    char what[4200];
    snprintf(what, sizeof what, "%s: %s", t->path, where);
    FM_CHECK(fm_regex_compile(pattern, len, literal, what, &st->re, &st->md));
  }
  return FM_OK;
}

/* ---- tokenizer.json ---- */

static int is_true(const json_t *o, const char *key) { return json_is_true(json_object_get(o, key)); }

/* A string field that must be null, absent or empty. */
static fm_err must_be_empty(const char *file, const json_t *o, const char *key, const char *where) {
  const json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v) || (json_is_string(v) && !json_string_length(v))) return FM_OK;
  FM_ERROR(FM_ERR_FORMAT, "%s: %s.%s is set; fedmoe reads byte-level BPE without it", file, where, key);
}

static fm_err pretok_json(fm_tokenizer *t, const json_t *p, const char *where, int *bytelevel) {
  const char *type = json_string_value(json_object_get(p, "type"));
  if (!json_is_object(p) || !type) FM_ERROR(FM_ERR_FORMAT, "%s: %s: not an object with a type", t->path, where);
  char sub[256];
  if (!strcmp(type, "Sequence")) {
    const json_t *list = json_object_get(p, "pretokenizers");
    if (!json_is_array(list)) FM_ERROR(FM_ERR_FORMAT, "%s: %s.pretokenizers: not a list", t->path, where);
    for (size_t i = 0; i < json_array_size(list); i++) {
      snprintf(sub, sizeof sub, "%s.pretokenizers[%zu]", where, i);
      FM_CHECK(pretok_json(t, json_array_get(list, i), sub, bytelevel));
    }
    return FM_OK;
  }
  if (!strcmp(type, "ByteLevel")) {
    const json_t *re = json_object_get(p, "use_regex");
    int use = !re || json_is_true(re); /* true unless set false */
    *bytelevel = 1;
    return add_step(t, use ? fm_gpt2_pattern : NULL, use ? strlen(fm_gpt2_pattern) : 0, 0, 0,
                    is_true(p, "add_prefix_space"), where);
  }
  if (!strcmp(type, "Digits")) {
    const char *pat = is_true(p, "individual_digits") ? "\\p{N}" : "\\p{N}+";
    return add_step(t, pat, strlen(pat), 0, 0, 0, where);
  }
  if (!strcmp(type, "Split")) {
    const json_t *pat = json_object_get(p, "pattern");
    const json_t *re = json_object_get(pat, "Regex"), *lit = json_object_get(pat, "String");
    const char *beh = json_string_value(json_object_get(p, "behavior"));
    if (!json_is_string(re) && !json_is_string(lit))
      FM_ERROR(FM_ERR_FORMAT, "%s: %s.pattern: neither {\"Regex\": ...} nor {\"String\": ...}", t->path, where);
    if (is_true(p, "invert")) FM_ERROR(FM_ERR_FORMAT, "%s: %s.invert: true is not supported", t->path, where);
    int remove = beh && !strcmp(beh, "Removed");
    if (!beh || (!remove && strcmp(beh, "Isolated")))
      FM_ERROR(FM_ERR_FORMAT, "%s: %s.behavior: '%s' is not supported (Isolated, Removed)", t->path, where,
               beh ? beh : "(none)");
    const json_t *s = re ? re : lit;
    snprintf(sub, sizeof sub, "%s.pattern", where);
    return add_step(t, json_string_value(s), json_string_length(s), !re, remove, 0, sub);
  }
  FM_ERROR(FM_ERR_FORMAT, "%s: %s.type: '%s' is not supported (fedmoe reads byte-level BPE: ByteLevel, "
           "Split, Digits, Sequence)%s", t->path, where, type,
           !strcmp(type, "Metaspace") ? "; for a SentencePiece model use its tokenizer.model" : "");
}

/* Escape a literal for a PCRE2 alternation: ASCII punctuation gets a backslash. */
static size_t escape(const char *s, size_t n, char *out) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
      if (c < 0x20) { k += (size_t)sprintf(out + k, "\\x{%x}", c); continue; }
      out[k++] = '\\';
    }
    out[k++] = (char)c;
  }
  return k;
}

static int longer_first(const void *x, const void *y) {
  const entry *a = x, *b = y;
  return a->len < b->len ? 1 : a->len > b->len ? -1 : 0;
}

static fm_err added_json(fm_tokenizer *t, vocab_build *v, const json_t *list) {
  if (!list || json_is_null(list)) return FM_OK;
  if (!json_is_array(list)) FM_ERROR(FM_ERR_FORMAT, "%s: added_tokens: not a list", t->path);
  size_t n = json_array_size(list), first = v->n, plen = 0;
  char where[64];
  for (size_t i = 0; i < n; i++) {
    const json_t *a = json_array_get(list, i), *c = json_object_get(a, "content"), *id = json_object_get(a, "id");
    snprintf(where, sizeof where, "added_tokens[%zu]", i);
    if (!json_is_string(c) || !json_is_integer(id) || !json_string_length(c))
      FM_ERROR(FM_ERR_FORMAT, "%s: %s: needs a non-empty content and an integer id", t->path, where);
    if (is_true(a, "single_word") || is_true(a, "lstrip") || is_true(a, "rstrip"))
      FM_ERROR(FM_ERR_FORMAT, "%s: %s ('%s'): single_word, lstrip and rstrip are not supported", t->path, where,
               json_string_value(c));
    FM_CHECK(add_entry(v, json_string_value(c), json_string_length(c), json_integer_value(id), 1, where));
    plen += 6 * json_string_length(c) + 1;
    if (is_true(a, "special")) t->nspecial++;
  }
  if (!n) return FM_OK;
  /* the alternation, longest first: PCRE2 takes the first alternative that matches */
  entry *sorted;
  FM_CALLOC(sorted, n, "added tokens");
  memcpy(sorted, v->e + first, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, longer_first);
  char *pat = malloc(plen + 1);
  fm_err err = pat ? FM_OK : fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n && !err; i++) {
    if (i) pat[k++] = '|';
    k += escape(sorted[i].s, sorted[i].len, pat + k);
    err = fm_strmap_put(&t->bpe->added, sorted[i].s, sorted[i].len, (uint32_t)sorted[i].id);
  }
  free(sorted);
  if (!err) {
    char what[4200];
    snprintf(what, sizeof what, "%s: added_tokens", t->path);
    err = fm_regex_compile(pat, k, 0, what, &t->bpe->added_re, &t->bpe->added_md);
  }
  free(pat);
  FM_CHECK(err);
  /* the special ones, for fm_tokenizer_special */
  FM_CALLOC(t->special_id, (size_t)t->nspecial + 1, "special tokens");
  FM_CALLOC(t->special_name, (size_t)t->nspecial + 1, "special tokens");
  int s = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *a = json_array_get(list, i);
    if (!is_true(a, "special")) continue;
    t->special_id[s] = (int32_t)json_integer_value(json_object_get(a, "id"));
    if (!(t->special_name[s++] = strdup(json_string_value(json_object_get(a, "content")))))
      FM_ERROR(FM_ERR_MEM, "out of memory (special tokens)");
  }
  return FM_OK;
}

static fm_err vocab_json(vocab_build *v, const json_t *vocab, const char *where) {
  if (!json_is_object(vocab)) FM_ERROR(FM_ERR_FORMAT, "%s: %s: not an object of tokens to ids", v->file, where);
  const char *key;
  const json_t *val;
  json_object_foreach((json_t *)vocab, key, val) {
    if (!json_is_integer(val))
      FM_ERROR(FM_ERR_FORMAT, "%s: %s: token '%.60s' has an id that is not an integer", v->file, where, key);
    FM_CHECK(add_entry(v, key, strlen(key), json_integer_value(val), 0, where));
  }
  return FM_OK;
}

static fm_err merges_json(fm_tokenizer *t, vocab_build *v, const json_t *merges) {
  if (!json_is_array(merges)) FM_ERROR(FM_ERR_FORMAT, "%s: model.merges: not a list", v->file);
  char where[64];
  for (size_t i = 0; i < json_array_size(merges); i++) {
    const json_t *m = json_array_get(merges, i);
    snprintf(where, sizeof where, "model.merges[%zu]", i);
    if (json_is_string(m)) { /* "left right" */
      const char *s = json_string_value(m), *sp = strchr(s, ' ');
      if (!sp || strchr(sp + 1, ' '))
        FM_ERROR(FM_ERR_FORMAT, "%s: %s: '%.80s' is not two tokens separated by one space", v->file, where, s);
      FM_CHECK(add_merge(t, v, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), (uint32_t)i, where));
    } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) { /* ["left", "right"] */
      const json_t *l = json_array_get(m, 0), *r = json_array_get(m, 1);
      FM_CHECK(add_merge(t, v, json_string_value(l), json_string_length(l), json_string_value(r),
                         json_string_length(r), (uint32_t)i, where));
    } else {
      FM_ERROR(FM_ERR_FORMAT, "%s: %s: neither \"left right\" nor [\"left\", \"right\"]", v->file, where);
    }
  }
  return FM_OK;
}

/* No normalizer, or NFC (alone or the only step of a Sequence). */
static fm_err normalizer_json(fm_tokenizer *t, const json_t *n, const char *where) {
  if (!n || json_is_null(n)) return FM_OK;
  const char *type = json_string_value(json_object_get(n, "type"));
  if (type && !strcmp(type, "NFC")) {
    t->bpe->nfc = 1;
    return FM_OK;
  }
  if (type && !strcmp(type, "Sequence")) {
    const json_t *list = json_object_get(n, "normalizers");
    char sub[128];
    for (size_t i = 0; i < json_array_size(list); i++) {
      snprintf(sub, sizeof sub, "%s.normalizers[%zu]", where, i);
      FM_CHECK(normalizer_json(t, json_array_get(list, i), sub));
    }
    return FM_OK;
  }
  FM_ERROR(FM_ERR_FORMAT, "%s: %s: '%s' is not supported (fedmoe reads tokenizers with no normalizer or NFC)",
           t->path, where, type ? type : "?");
}

static fm_err load_json(fm_tokenizer *t, vocab_build *v, json_t *root) {
  if (!json_is_object(root)) FM_ERROR(FM_ERR_FORMAT, "%s: not a tokenizer.json (the top is not an object)", t->path);
  const json_t *model = json_object_get(root, "model");
  if (!json_is_object(model)) FM_ERROR(FM_ERR_FORMAT, "%s: model: missing or not an object", t->path);
  const char *type = json_string_value(json_object_get(model, "type"));
  if (type && strcmp(type, "BPE"))
    FM_ERROR(FM_ERR_FORMAT, "%s: model.type is '%s', not BPE (fedmoe reads BPE tokenizer.json files; "
             "for a SentencePiece model use its tokenizer.model)", t->path, type);
  if (!type && !json_object_get(model, "merges"))
    FM_ERROR(FM_ERR_FORMAT, "%s: model: no type and no merges: not a BPE model", t->path);
  FM_CHECK(normalizer_json(t, json_object_get(root, "normalizer"), "normalizer"));
  FM_CHECK(must_be_empty(t->path, model, "continuing_subword_prefix", "model"));
  FM_CHECK(must_be_empty(t->path, model, "end_of_word_suffix", "model"));
  if (is_true(model, "byte_fallback"))
    FM_ERROR(FM_ERR_FORMAT, "%s: model.byte_fallback is true: not a byte-level BPE", t->path);
  const json_t *drop = json_object_get(model, "dropout");
  if (drop && !json_is_null(drop) && json_number_value(drop) != 0)
    FM_ERROR(FM_ERR_FORMAT, "%s: model.dropout is %g: fedmoe encodes deterministically", t->path,
             json_number_value(drop));
  t->bpe->ignore_merges = is_true(model, "ignore_merges");
  int bytelevel = 0;
  const json_t *pre = json_object_get(root, "pre_tokenizer");
  if (pre && !json_is_null(pre)) FM_CHECK(pretok_json(t, pre, "pre_tokenizer", &bytelevel));
  if (!bytelevel)
    FM_ERROR(FM_ERR_FORMAT, "%s: pre_tokenizer: no ByteLevel step (fedmoe reads byte-level BPE)", t->path);
  FM_CHECK(vocab_json(v, json_object_get(model, "vocab"), "model.vocab"));
  FM_CHECK(added_json(t, v, json_object_get(root, "added_tokens")));
  FM_CHECK(build_vocab(t, v));
  FM_CHECK(merges_json(t, v, json_object_get(model, "merges")));
  const char *unk = json_string_value(json_object_get(model, "unk_token"));
  uint32_t id;
  t->bpe->unk = unk && fm_strmap_get(&t->names, unk, strlen(unk), &id) ? (int32_t)id : -1;
  return FM_OK;
}

static fm_err new_bpe(fm_tokenizer *t, vocab_build *v, const char *file) {
  t->kind = FM_TOK_BPE;
  FM_CALLOC(t->bpe, 1, "tokenizer");
  t->bpe->unk = -1;
  memset(v, 0, sizeof *v);
  v->file = file;
  v->max_id = -1;
  byte_table(v->cp_of, v->byte_of);
  return FM_OK;
}

fm_err fm_bpe_load_json(fm_tokenizer *t, const char *path) {
  vocab_build v;
  FM_CHECK(new_bpe(t, &v, path));
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (!root)
    FM_ERROR(FM_ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", path, je.line, je.column, je.text);
  fm_err err = load_json(t, &v, root);
  free(v.e);
  json_decref(root);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_bpe_load_gpt2(fm_tokenizer *t, const char *vocab_path, const char *merges_path) {
  vocab_build v;
  FM_CHECK(new_bpe(t, &v, vocab_path));
  json_error_t je;
  json_t *root = json_load_file(vocab_path, 0, &je);
  if (!root)
    FM_ERROR(FM_ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", vocab_path, je.line, je.column, je.text);
  fm_err err = vocab_json(&v, root, "the vocabulary");
  if (!err) err = build_vocab(t, &v);
  if (!err) err = add_step(t, fm_gpt2_pattern, strlen(fm_gpt2_pattern), 0, 0, 0, "GPT-2 pattern");
  char *text = NULL;
  size_t len = 0;
  if (!err) err = fm_read_file(merges_path, &text, &len);
  v.file = merges_path;
  uint32_t rank = 0;
  long line = 0;
  for (char *p = text; !err && p && p < text + len;) {
    char *e = memchr(p, '\n', (size_t)(text + len - p));
    if (!e) e = text + len;
    line++;
    size_t n = (size_t)(e - p);
    if (n && p[n - 1] == '\r') n--;
    char where[64];
    snprintf(where, sizeof where, "line %ld", line);
    if (n && !(line == 1 && !strncmp(p, "#version", 8))) {
      char *sp = memchr(p, ' ', n);
      if (!sp || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1)))
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                           "%s:%ld: '%.*s' is not two tokens separated by one space", merges_path, line,
                           (int)(n > 80 ? 80 : n), p);
      else
        err = add_merge(t, &v, p, (size_t)(sp - p), sp + 1, (size_t)(p + n - sp - 1), rank++, where);
    }
    p = e + 1;
  }
  free(text);
  free(v.e);
  json_decref(root);
  FM_CHECK(err);
  return FM_OK;
}
