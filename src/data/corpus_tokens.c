/* corpus_tokens.c - the corpus as token ids: which tokenizer a configuration
 * means, whether model.vocab holds its ids, and the ids of every domain, read from
 * the token cache when it has them, else encoded once and cached (data.h). */
#include "fedmoe/data.h"
#include "fedmoe/log.h"
#include "fedmoe/tokenizer.h"

#include "strmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int holds_tokenizer(const char *dir) {
  static const char *const names[] = {"tokenizer.json", "tokenizer.model", "vocab.json"};
  char p[FM_PATH_MAX + 32];
  struct stat st;
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return 1;
  }
  return 0;
}

void fm_tokenizer_spec_dir(const char *dir, char *spec, size_t len) {
  snprintf(spec, len, "%s", holds_tokenizer(dir) ? dir : "bytes");
}

/* The folder of model.init (a model folder, or a file in one) when it holds a
 * tokenizer: 1 and dir set; else 0. */
static int init_tokenizer_dir(const fm_config *c, char *dir, size_t len) {
  const char *init = c->model.init;
  if (!init[0]) return 0;
  struct stat st;
  snprintf(dir, len, "%s", init);
  if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, len, ".");
  }
  return holds_tokenizer(dir);
}

void fm_tokenizer_spec(const fm_config *c, char *spec, size_t len) {
  char dir[FM_PATH_MAX];
  if (c->model.tokenizer[0]) snprintf(spec, len, "%s", c->model.tokenizer);
  else if (init_tokenizer_dir(c, dir, sizeof dir)) snprintf(spec, len, "%s", dir); /* the base's own */
  else snprintf(spec, len, "bytes");
}

/* model.tokenizer and model.init's folder both name a tokenizer: they must be one
 * (the same files' contents), or the base would read ids it was not trained on. */
static fm_err check_init_tokenizer(const fm_config *c, const fm_tokenizer *t) {
  char dir[FM_PATH_MAX];
  if (!c->model.tokenizer[0] || !init_tokenizer_dir(c, dir, sizeof dir)) return FM_OK;
  fm_tokenizer *base;
  if (fm_tokenizer_open(&base, dir)) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_error_message());
    FM_CONFIG_ERROR(c, "model.init", "the tokenizer in '%s': %s", dir, msg);
  }
  uint64_t a[2], b[2];
  fm_tokenizer_digest(t, a);
  fm_tokenizer_digest(base, b);
  char theirs[FM_PATH_MAX];
  snprintf(theirs, sizeof theirs, "%s", fm_tokenizer_path(base));
  fm_tokenizer_free(base);
  if (a[0] != b[0] || a[1] != b[1] || fm_tokenizer_kind(t) == FM_TOK_BYTES)
    FM_CONFIG_ERROR(c, "model.tokenizer", "'%s' is not the tokenizer of model.init '%s', which was trained with %s: "
                    "leave model.tokenizer out to use the folder's own", c->model.tokenizer, c->model.init, theirs);
  return FM_OK;
}

fm_err fm_tokenizer_open_config(fm_tokenizer **t, const fm_config *c) {
  char spec[FM_PATH_MAX];
  fm_tokenizer_spec(c, spec, sizeof spec);
  fm_err err = fm_tokenizer_open(t, spec);
  if (err) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_error_message());
    FM_CONFIG_ERROR(c, "model.tokenizer", "%s", msg);
  }
  int v = fm_tokenizer_vocab(*t);
  if (fm_tokenizer_kind(*t) == FM_TOK_BYTES && c->model.vocab != 256) {
    fm_tokenizer_free(*t);
    *t = NULL;
    FM_CONFIG_ERROR(c, "model.vocab", "is %d, but the tokenizer is bytes (256 ids): set model.vocab = 256, or "
                    "model.tokenizer to a tokenizer of %d ids", c->model.vocab, c->model.vocab);
  }
  if (c->model.vocab < v) {
    char path[FM_PATH_MAX];
    snprintf(path, sizeof path, "%s", fm_tokenizer_path(*t));
    fm_tokenizer_free(*t);
    *t = NULL;
    FM_CONFIG_ERROR(c, "model.vocab", "is %d, fewer than the %d ids of the tokenizer %s", c->model.vocab, v, path);
  }
  if ((err = check_init_tokenizer(c, *t))) {
    fm_tokenizer_free(*t);
    *t = NULL;
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  return FM_OK;
}

/* ---- the cache file ----
 * magic, key[2], nseg, ntokens, then per segment its token count, then the ids
 * (int32, native byte order: the file is a cache of this machine's run). */
#define MAGIC "FMTOKv1"
enum { HEAD_WORDS = 5 };

static void cache_key(const fm_corpus *cp, const fm_tokenizer *t, uint64_t key[2]) {
  fm_digest d;
  fm_digest_init(&d);
  uint64_t tk[2];
  fm_tokenizer_digest(t, tk);
  fm_digest_add(&d, tk, sizeof tk);
  for (int k = 0; k < cp->ndomains; k++) fm_digest_add(&d, cp->domain_names[k], strlen(cp->domain_names[k]) + 1);
  for (int i = 0; i < cp->nseg; i++) { /* the segments' layout and text */
    const fm_segment *g = &cp->seg[i];
    int64_t head[4] = {g->domain, g->client, g->prompt, (int64_t)g->len};
    fm_digest_add(&d, head, sizeof head);
    fm_digest_add(&d, cp->text + g->start, (size_t)g->len);
  }
  key[0] = d.h[0];
  key[1] = d.h[1];
}

static int writable_dir(const char *dir) {
  struct stat st;
  return stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK | X_OK) == 0;
}

/* The user's cache folder, made when missing; "" when there is none. */
static void user_cache_dir(char *out, size_t len) {
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char base[FM_PATH_MAX - 16];
  out[0] = 0;
  if (xdg && xdg[0]) snprintf(base, sizeof base, "%s", xdg);
  else if (home && home[0]) snprintf(base, sizeof base, "%s/.cache", home);
  else return;
  mkdir(base, 0777);
  if ((size_t)snprintf(out, len, "%s/fedmoe", base) >= len) { out[0] = 0; return; }
  mkdir(out, 0777);
  if (!writable_dir(out)) out[0] = 0;
}

/* The folders to look in, in order: beside the corpus, then the cache folder. */
static int cache_dirs(const fm_config *c, char dirs[2][FM_PATH_MAX]) {
  int n = 0;
  if (c->data.token_cache[0]) { /* a folder given: only there (made when missing) */
    snprintf(dirs[n++], FM_PATH_MAX, "%s", c->data.token_cache);
    mkdir(c->data.token_cache, 0777);
    return n;
  }
  struct stat st;
  if (stat(c->data.path, &st) == 0 && S_ISDIR(st.st_mode)) {
    snprintf(dirs[n++], FM_PATH_MAX, "%s", c->data.path);
  } else {
    snprintf(dirs[n], FM_PATH_MAX, "%s", c->data.path);
    char *slash = strrchr(dirs[n], '/');
    if (slash) *slash = 0;
    else snprintf(dirs[n], FM_PATH_MAX, ".");
    n++;
  }
  user_cache_dir(dirs[n], FM_PATH_MAX);
  if (dirs[n][0]) n++;
  return n;
}

/* Map a cache file; 1 when it holds this key and the domains' layout, else 0. */
static int cache_read(fm_corpus *cp, const char *path, const uint64_t key[2], uint64_t *lens) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return 0;
  struct stat st;
  size_t D = (size_t)cp->nseg, head = (HEAD_WORDS + D) * 8;
  if (fstat(fd, &st) != 0 || (size_t)st.st_size < head) { close(fd); return 0; }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return 0;
  const uint64_t *h = m;
  uint64_t total = 0;
  int ok = !memcmp(m, MAGIC, 8) && h[1] == key[0] && h[2] == key[1] && h[3] == D;
  for (size_t k = 0; ok && k < D; k++) total += lens[k] = h[HEAD_WORDS + k];
  ok = ok && total == h[4] && (uint64_t)st.st_size == head + total * 4;
  if (!ok) { munmap(m, (size_t)st.st_size); return 0; }
  cp->map = m;
  cp->map_len = (size_t)st.st_size;
  cp->ids = (int32_t *)((char *)m + head);
  cp->size = total;
  return 1;
}

/* Write the cache as a temporary file renamed into place: a reader never sees half. */
static fm_err cache_write(const char *path, const uint64_t key[2], const fm_corpus *cp, const uint64_t *lens,
                          const fm_ids *ids) {
  char tmp[FM_PATH_MAX + 96];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) FM_ERROR(FM_ERR_IO, "cannot write the token cache '%s': %s", tmp, strerror(errno));
  uint64_t head[HEAD_WORDS] = {0, key[0], key[1], (uint64_t)cp->nseg, ids->n};
  memcpy(head, MAGIC, 8);
  int bad = fwrite(head, 8, HEAD_WORDS, f) != HEAD_WORDS ||
            fwrite(lens, 8, (size_t)cp->nseg, f) != (size_t)cp->nseg ||
            fwrite(ids->v, 4, ids->n, f) != ids->n;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    FM_ERROR(FM_ERR_IO, "cannot write the token cache '%s': %s", path, strerror(e));
  }
  return FM_OK;
}

static void cache_name(char *out, size_t len, const char *dir, const uint64_t key[2]) {
  snprintf(out, len, "%.*s/.fedmoe-tokens-%016llx%016llx.bin", FM_PATH_MAX - 1, dir, (unsigned long long)key[0],
           (unsigned long long)key[1]);
}

/* Replace the segments' and domains' byte ranges by token ranges (segments of
 * lens[] tokens, laid out in order). */
static void set_ranges(fm_corpus *cp, const uint64_t *lens) {
  uint64_t at = 0;
  for (int k = 0; k < cp->ndomains; k++) cp->domain_len[k] = 0;
  for (int i = 0; i < cp->nseg; i++) {
    fm_segment *g = &cp->seg[i];
    if (!cp->domain_len[g->domain]) cp->domain_start[g->domain] = at;
    g->start = at;
    g->len = lens[i];
    cp->domain_len[g->domain] += lens[i];
    at += lens[i];
  }
}

fm_err fm_corpus_target_mask(fm_corpus *cp) {
  int any = 0;
  for (int i = 0; i < cp->nseg; i++) any |= cp->seg[i].prompt;
  if (!any) return FM_OK;
  FM_CALLOC(cp->target_mask, (size_t)cp->size + 1, "target mask");
  for (int i = 0; i < cp->nseg; i++)
    if (!cp->seg[i].prompt) memset(cp->target_mask + cp->seg[i].start, 1, (size_t)cp->seg[i].len);
  return FM_OK;
}

fm_err fm_corpus_tokenize(fm_corpus *cp, const fm_config *c, const fm_tokenizer *t) {
  const size_t D = (size_t)cp->nseg;
  uint64_t key[2], *lens;
  cache_key(cp, t, key);
  FM_CALLOC(lens, D + 1, "segment token counts");
  char dirs[2][FM_PATH_MAX], path[FM_PATH_MAX + 64] = ""; /* fits cp->cache */
  int ndirs = strcmp(c->data.token_cache, "off") ? cache_dirs(c, dirs) : 0;
  for (int i = 0; i < ndirs; i++) {
    cache_name(path, sizeof path, dirs[i], key);
    if (cache_read(cp, path, key, lens)) {
      snprintf(cp->cache, sizeof cp->cache, "%s", path);
      cp->cache_hit = 1;
      free(cp->text);
      cp->text = NULL;
      set_ranges(cp, lens);
      free(lens);
      return FM_OK;
    }
  }
  fm_ids ids = {0};
  fm_err err = FM_OK;
  for (size_t k = 0; k < D && !err; k++) {
    size_t before = ids.n;
    err = fm_tokenizer_encode(t, cp->text + cp->seg[k].start, (size_t)cp->seg[k].len, &ids);
    if (err) {
      char msg[2048];
      snprintf(msg, sizeof msg, "%s", fm_error_message());
      err = fm_error_set(__FILE__, __LINE__, __func__, err, "data.path '%s', domain '%s': %s", c->data.path,
                         cp->domain_names[cp->seg[k].domain], msg);
    }
    lens[k] = ids.n - before;
  }
  /* the first folder that takes the file; a corpus on a read-only disk uses the next */
  for (int i = 0; i < ndirs && !err; i++) {
    if (!writable_dir(dirs[i])) continue;
    cache_name(path, sizeof path, dirs[i], key);
    if (cache_write(path, key, cp, lens, &ids)) {
      FM_WARN("data: %s (the corpus is tokenized again next time)", fm_error_message());
      fm_error_clear();
      continue;
    }
    snprintf(cp->cache, sizeof cp->cache, "%s", path);
    break;
  }
  if (!err && ndirs && !cp->cache[0]) FM_WARN("data: no writable folder for the token cache (data.token_cache)");
  if (err) {
    fm_ids_free(&ids);
    free(lens);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  free(cp->text);
  cp->text = NULL;
  cp->ids = ids.v; /* the allocation moves to the corpus */
  cp->size = ids.n;
  set_ranges(cp, lens);
  free(lens);
  return FM_OK;
}
