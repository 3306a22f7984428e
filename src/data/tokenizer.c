/* tokenizer.c - opening a tokenizer (bytes, a file, a directory), the byte and
 * SentencePiece tokenizers, and what every kind shares: vocabulary, special tokens,
 * digest, decoding. Byte-level BPE is in bpe_load.c and bpe.c. */
#include "tok_impl.h"

#include "fedmoe/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

fm_err fm_ids_push(fm_ids *ids, int32_t id) {
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? 2 * ids->cap : 1024;
    int32_t *v = realloc(ids->v, cap * sizeof *v);
    if (!v) FM_ERROR(FM_ERR_MEM, "out of memory (%zu token ids)", cap);
    ids->v = v;
    ids->cap = cap;
  }
  ids->v[ids->n++] = id;
  return FM_OK;
}

void fm_ids_free(fm_ids *ids) {
  free(ids->v);
  ids->v = NULL;
  ids->n = ids->cap = 0;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* The digest of a file's bytes. */
static fm_err digest_file(const char *path, uint64_t out[2]) {
  char *text;
  size_t n;
  FM_CHECK(fm_read_file(path, &text, &n));
  fm_digest d;
  fm_digest_init(&d);
  fm_digest_add(&d, text, n);
  free(text);
  out[0] ^= d.h[0];
  out[1] ^= d.h[1] * 3 + 1; /* two files (vocab and merges) combine in order */
  return FM_OK;
}

static fm_err open_spm(fm_tokenizer *t, const char *path) {
  char err[1024];
  t->kind = FM_TOK_SPM;
  if (fm_spm_load(path, &t->spm, err, sizeof err))
    FM_ERROR(FM_ERR_FORMAT, "%s: not a SentencePiece model that loads: %s", path, err);
  t->vocab = fm_spm_vocab(t->spm);
  for (int i = 0; i < t->vocab; i++) t->nspecial += fm_spm_is_special(t->spm, i);
  FM_CALLOC(t->special_id, (size_t)t->nspecial + 1, "special tokens");
  FM_CALLOC(t->special_name, (size_t)t->nspecial + 1, "special tokens");
  for (int i = 0, s = 0; i < t->vocab; i++)
    if (fm_spm_is_special(t->spm, i)) {
      t->special_id[s] = i;
      if (!(t->special_name[s++] = strdup(fm_spm_piece(t->spm, i)))) FM_ERROR(FM_ERR_MEM, "out of memory");
    }
  return FM_OK;
}

/* Open a file by its name and first byte: JSON is tokenizer.json or vocab.json. */
static fm_err open_file(fm_tokenizer *t, const char *path) {
  snprintf(t->path, sizeof t->path, "%s", path);
  FILE *f = fopen(path, "rb");
  if (!f) FM_ERROR(FM_ERR_IO, "tokenizer '%s': %s", path, strerror(errno));
  int c;
  do c = fgetc(f); while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
  fclose(f);
  /* GPT-2's files: vocab.json and merges.txt (Hugging Face), encoder.json and vocab.bpe (OpenAI) */
  int openai = ends_with(path, "encoder.json");
  if (c == '{' && (ends_with(path, "vocab.json") || openai)) {
    char merges[4096];
    const char *slash = strrchr(path, '/');
    int dir = slash ? (int)(slash - path + 1) : 0;
    snprintf(merges, sizeof merges, "%.*s%s", dir, path, openai ? "vocab.bpe" : "merges.txt");
    if (!is_file(merges))
      FM_ERROR(FM_ERR_IO, "tokenizer '%s': GPT-2's %s needs %s beside it ('%s' is missing)", path,
               openai ? "encoder.json" : "vocab.json", openai ? "vocab.bpe" : "merges.txt", merges);
    FM_CHECK(fm_bpe_load_gpt2(t, path, merges));
    FM_CHECK(digest_file(path, t->digest));
    FM_CHECK(digest_file(merges, t->digest));
    return FM_OK;
  }
  if (c == '{' || ends_with(path, ".json")) FM_CHECK(fm_bpe_load_json(t, path));
  else FM_CHECK(open_spm(t, path));
  FM_CHECK(digest_file(path, t->digest));
  return FM_OK;
}

fm_err fm_tokenizer_open(fm_tokenizer **out, const char *spec) {
  *out = NULL;
  fm_tokenizer *t;
  FM_CALLOC(t, 1, "tokenizer");
  fm_err err = FM_OK;
  struct stat st;
  if (!strcmp(spec, "bytes")) {
    t->kind = FM_TOK_BYTES;
    t->vocab = 256;
    t->digest[0] = 0x6279746573ULL; /* "bytes": no file */
  } else if (stat(spec, &st) != 0) {
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "tokenizer '%s': %s (give bytes, a tokenizer "
                       "file or a folder holding one)", spec, strerror(errno));
  } else if (S_ISDIR(st.st_mode)) {
    static const char *const names[] = {"tokenizer.json", "tokenizer.model", "vocab.json"};
    char path[4096];
    int found = 0;
    for (int i = 0; i < 3 && !found; i++) {
      snprintf(path, sizeof path, "%s/%s", spec, names[i]);
      found = is_file(path);
    }
    if (found) err = open_file(t, path);
    else err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "tokenizer folder '%s' holds no tokenizer.json, "
                            "tokenizer.model or vocab.json", spec);
  } else {
    err = open_file(t, spec);
  }
  if (err) {
    fm_tokenizer_free(t);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  *out = t;
  return FM_OK;
}

void fm_tokenizer_free(fm_tokenizer *t) {
  if (!t) return;
  fm_bpe_free(t->bpe);
  if (t->spm) fm_spm_free(t->spm);
  free(t->tok_bytes);
  free(t->tok_off);
  free(t->tok_missing);
  fm_strmap_clear(&t->names);
  for (int i = 0; i < t->nspecial && t->special_name; i++) free(t->special_name[i]);
  free(t->special_name);
  free(t->special_id);
  free(t);
}

fm_tok_kind fm_tokenizer_kind(const fm_tokenizer *t) { return t->kind; }

const char *fm_tokenizer_kind_name(const fm_tokenizer *t) {
  return t->kind == FM_TOK_BYTES ? "bytes" : t->kind == FM_TOK_BPE ? "bpe" : "sentencepiece";
}

const char *fm_tokenizer_path(const fm_tokenizer *t) { return t->path; }
int fm_tokenizer_vocab(const fm_tokenizer *t) { return t->vocab; }

void fm_tokenizer_digest(const fm_tokenizer *t, uint64_t digest[2]) {
  digest[0] = t->digest[0];
  digest[1] = t->digest[1];
}

int fm_tokenizer_nspecial(const fm_tokenizer *t) { return t->nspecial; }

void fm_tokenizer_special(const fm_tokenizer *t, int i, const char **name, int32_t *id) {
  *name = t->special_name[i];
  *id = t->special_id[i];
}

int32_t fm_tokenizer_find(const fm_tokenizer *t, const char *name) {
  if (t->kind == FM_TOK_SPM) return fm_spm_find(t->spm, name);
  uint32_t id;
  return t->kind == FM_TOK_BPE && fm_strmap_get(&t->names, name, strlen(name), &id) ? (int32_t)id : -1;
}

fm_err fm_tokenizer_encode(const fm_tokenizer *t, const uint8_t *text, size_t n, fm_ids *out) {
  if (t->kind == FM_TOK_BYTES) {
    for (size_t i = 0; i < n; i++) FM_CHECK(fm_ids_push(out, text[i]));
    return FM_OK;
  }
  size_t bad = fm_utf8_invalid_at(text, n);
  if (bad < n) {
    long line = 1;
    for (size_t i = 0; i < bad; i++) line += text[i] == '\n';
    FM_ERROR(FM_ERR_DATA, "invalid UTF-8 at byte %zu (line %ld): byte 0x%02x", bad, line, text[bad]);
  }
  if (t->kind == FM_TOK_BPE) {
    FM_CHECK(fm_bpe_encode(t->bpe, text, n, out));
    return FM_OK;
  }
  int32_t *ids;
  size_t k;
  char err[1024];
  if (fm_spm_encode(t->spm, (const char *)text, n, &ids, &k, err, sizeof err))
    FM_ERROR(FM_ERR_DATA, "SentencePiece cannot encode %zu bytes: %s", n, err);
  fm_err e = FM_OK;
  for (size_t i = 0; i < k && !e; i++) e = fm_ids_push(out, ids[i]);
  free(ids);
  FM_CHECK(e);
  return FM_OK;
}

fm_err fm_tokenizer_decode(const fm_tokenizer *t, const int32_t *ids, size_t n, uint8_t **bytes, size_t *len) {
  *bytes = NULL;
  *len = 0;
  for (size_t i = 0; i < n; i++)
    if (ids[i] < 0 || ids[i] >= t->vocab || (t->tok_missing && t->tok_missing[ids[i]]))
      FM_ERROR(FM_ERR_DATA, "id %d at position %zu is outside the vocabulary of %s (%d ids%s)", ids[i], i,
               t->kind == FM_TOK_BYTES ? "bytes" : t->path, t->vocab,
               ids[i] >= 0 && ids[i] < t->vocab ? ", this one unused" : "");
  if (t->kind == FM_TOK_SPM) {
    char err[1024], *s;
    if (fm_spm_decode(t->spm, ids, n, &s, len, err, sizeof err))
      FM_ERROR(FM_ERR_DATA, "SentencePiece cannot decode %zu ids: %s", n, err);
    *bytes = (uint8_t *)s;
    return FM_OK;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += t->kind == FM_TOK_BYTES ? 1 : (size_t)(t->tok_off[ids[i] + 1] - t->tok_off[ids[i]]);
  uint8_t *out;
  FM_CALLOC(out, total + 1, "decoded text");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (t->kind == FM_TOK_BYTES) { out[k++] = (uint8_t)ids[i]; continue; }
    size_t l = (size_t)(t->tok_off[ids[i] + 1] - t->tok_off[ids[i]]);
    memcpy(out + k, t->tok_bytes + t->tok_off[ids[i]], l);
    k += l;
  }
  *bytes = out;
  *len = k;
  return FM_OK;
}
