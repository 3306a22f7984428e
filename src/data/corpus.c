/* corpus.c - reading data.path into one corpus: domains of byte tokens.
 * Domain detection and the skip rules are stated in include/fedmoe/data.h. */
#include "fedmoe/data.h"

#include "fedmoe/log.h"

#include "bytebuf.h"
#include "records.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MAX_DEPTH 32

typedef struct {
  char name[64];
  uint64_t start, len;
} domain;

/* The corpus as it is being read. */
typedef struct {
  uint8_t *text;
  uint64_t size, cap;
  domain *dom;
  int ndom, domcap;
  uint64_t *seen;       /* open-addressed set of (device, inode) keys of files and dirs read */
  size_t nseen, seencap;
  uint64_t max_domain;  /* data.max_domain_bytes, 0: no cap */
  int nfiles, nskipped;
  int utf8;             /* a tokenizer reads the text: every file must be valid UTF-8 */
  const fm_config *c;
  fm_records recs;      /* JSON Lines records, grouped into the domains at the end */
  fm_segment *seg;      /* the text's segments (bytes), once grouped */
  int nseg;
} builder;

static void builder_free(builder *b) {
  fm_records_free(&b->recs);
  free(b->seg);
  free(b->text);
  free(b->dom);
  free(b->seen);
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

/* Mark (dev, ino) seen; returns 1 when it was seen already. Key 0 marks an empty slot. */
static fm_err seen_before(builder *b, const struct stat *st, int *was) {
  uint64_t key = mix64((uint64_t)st->st_ino * 0x9E3779B97F4A7C15ULL ^ mix64((uint64_t)st->st_dev)) | 1;
  if (2 * (b->nseen + 1) > b->seencap) { /* grow and rehash */
    size_t cap = b->seencap ? 2 * b->seencap : 1024;
    uint64_t *t = calloc(cap, sizeof *t);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (file set)");
    for (size_t i = 0; i < b->seencap; i++)
      if (b->seen[i]) {
        size_t j = b->seen[i] & (cap - 1);
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = b->seen[i];
      }
    free(b->seen);
    b->seen = t;
    b->seencap = cap;
  }
  size_t j = key & (b->seencap - 1);
  while (b->seen[j]) {
    if (b->seen[j] == key) { *was = 1; return FM_OK; }
    j = (j + 1) & (b->seencap - 1);
  }
  b->seen[j] = key;
  b->nseen++;
  *was = 0;
  return FM_OK;
}


/* Read one file into the current (last) domain. */
static fm_err add_file(builder *b, const char *path, const struct stat *st) {
  int was;
  FM_CHECK(seen_before(b, st, &was));
  domain *d = &b->dom[b->ndom - 1];
  if (was || st->st_size == 0) { b->nskipped++; return FM_OK; }
  if (fm_is_jsonl(b->c, path)) { /* records, placed in their domains once all are read */
    FM_CHECK(fm_jsonl_read(&b->recs, path, d->name, b->c));
    b->nfiles++;
    return FM_OK;
  }
  if (b->max_domain && d->len >= b->max_domain) return FM_OK; /* the domain is full */
  uint8_t *t;
  uint64_t n;
  FM_CHECK(fm_text_read(path, &t, &n));
  size_t bad = b->utf8 ? fm_utf8_invalid_at(t, n) : n;
  if (bad < n) {
    long line = 1;
    for (size_t i = 0; i < bad; i++) line += t[i] == '\n';
    uint8_t byte = t[bad];
    free(t);
    FM_ERROR(FM_ERR_DATA, "%s:%ld: invalid UTF-8 (byte 0x%02x at offset %zu of the cleaned text), and the "
             "tokenizer reads UTF-8 text: convert the file (iconv) or use model.tokenizer = bytes", path, line,
             byte, bad);
  }
  if (b->max_domain && d->len + n > b->max_domain) n = b->max_domain - d->len;
  /* n = 0: a file that cleaning emptied adds nothing (and t may be NULL) */
  fm_err err = fm_bytebuf_append(&b->text, &b->size, &b->cap, t, n, "the corpus text");
  free(t);
  FM_CHECK(err);
  d->len += n;
  b->nfiles++;
  return FM_OK;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted, without "." and "..". */
static fm_err list_dir(const char *path, char ***names, int *n) {
  *names = NULL;
  *n = 0;
  DIR *dir = opendir(path);
  if (!dir) FM_ERROR(FM_ERR_IO, "cannot open directory '%s': %s", path, strerror(errno));
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(dir))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      char **t = realloc(*names, (size_t)cap * sizeof *t);
      if (!t) { closedir(dir); FM_ERROR(FM_ERR_MEM, "out of memory listing '%s'", path); }
      *names = t;
    }
    if (!((*names)[(*n)++] = strdup(e->d_name))) {
      closedir(dir);
      FM_ERROR(FM_ERR_MEM, "out of memory listing '%s'", path);
    }
  }
  closedir(dir);
  if (*n) qsort(*names, (size_t)*n, sizeof **names, by_name);
  return FM_OK;
}

static void free_names(char **names, int n) {
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* Whether names[i] of a sorted directory listing is skipped by name: dot files,
 * strfile indexes, X.u8 beside X. Directories named "off" are skipped by the caller. */
static int skip_name(char **names, int n, int i) {
  const char *s = names[i];
  if (s[0] == '.') return 1;
  if (ends_with(s, ".dat")) return 1;
  if (ends_with(s, ".u8")) {
    char base[1024];
    size_t len = strlen(s) - 3;
    if (len >= sizeof base) return 0;
    memcpy(base, s, len);
    base[len] = 0;
    const char *key = base;
    return bsearch(&key, names, (size_t)n, sizeof *names, by_name) != NULL;
  }
  return 0;
}

static fm_err join(char *out, size_t len, const char *dir, const char *name) {
  if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
    FM_ERROR(FM_ERR_IO, "path too long: '%s/%s'", dir, name);
  return FM_OK;
}

/* Every file under a sub-directory, in name order, into the current domain. */
static fm_err add_dir(builder *b, const char *path, int depth) {
  if (depth > MAX_DEPTH) FM_ERROR(FM_ERR_DATA, "'%s': directories nested deeper than %d", path, MAX_DEPTH);
  char **names;
  int n;
  FM_CHECK(list_dir(path, &names, &n));
  fm_err err = FM_OK;
  for (int i = 0; i < n && !err; i++) {
    if (skip_name(names, n, i)) { b->nskipped += names[i][0] != '.'; continue; }
    char sub[4096];
    struct stat st;
    if ((err = join(sub, sizeof sub, path, names[i]))) break;
    if (stat(sub, &st) != 0) {
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "cannot read '%s': %s", sub,
                         strerror(errno));
      break;
    }
    if (S_ISDIR(st.st_mode)) {
      int was;
      if (!strcmp(names[i], "off")) continue;
      if ((err = seen_before(b, &st, &was)) || was) continue;
      err = add_dir(b, sub, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      err = add_file(b, sub, &st);
    }
  }
  free_names(names, n);
  FM_CHECK(err);
  return FM_OK;
}

static fm_err new_domain(builder *b, const char *name) {
  if (b->ndom == b->domcap) {
    int cap = b->domcap ? 2 * b->domcap : 64;
    domain *t = realloc(b->dom, (size_t)cap * sizeof *t);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (domains)");
    b->dom = t;
    b->domcap = cap;
  }
  domain *d = &b->dom[b->ndom++];
  memset(d, 0, sizeof *d);
  snprintf(d->name, sizeof d->name, "%s", name);
  d->start = b->size;
  return FM_OK;
}

static int by_domain_name(const void *a, const void *b) {
  return strcmp(((const domain *)a)->name, ((const domain *)b)->name);
}

static fm_err scan(builder *b, const fm_config *c) {
  const char *path = c->data.path;
  struct stat st;
  if (!path[0]) FM_CONFIG_ERROR(c, "data.path", "is empty: name a directory of text files");
  if (stat(path, &st) != 0) FM_CONFIG_ERROR(c, "data.path", "'%s': %s", path, strerror(errno));
  if (S_ISREG(st.st_mode)) { /* a single file: one domain */
    const char *base = strrchr(path, '/');
    FM_CHECK(new_domain(b, base ? base + 1 : path));
    FM_CHECK(add_file(b, path, &st));
    return FM_OK;
  }
  if (!S_ISDIR(st.st_mode)) FM_CONFIG_ERROR(c, "data.path", "'%s' is not a directory", path);
  int was;
  FM_CHECK(seen_before(b, &st, &was));
  char **names;
  int n;
  FM_CHECK(list_dir(path, &names, &n));
  fm_err err = FM_OK;
  /* pass 0: sub-directories (they own the files that top-level links point to); pass 1: files */
  for (int pass = 0; pass < 2 && !err; pass++)
    for (int i = 0; i < n && !err; i++) {
      if (skip_name(names, n, i)) { b->nskipped += pass == 1 && names[i][0] != '.'; continue; }
      char sub[4096];
      struct stat s;
      if ((err = join(sub, sizeof sub, path, names[i]))) break;
      if (stat(sub, &s) != 0) {
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "cannot read '%s': %s", sub,
                           strerror(errno));
        break;
      }
      int made = 0;
      if (pass == 0 && S_ISDIR(s.st_mode) && strcmp(names[i], "off")) {
        if ((err = seen_before(b, &s, &was)) || was) continue;
        if (!(err = new_domain(b, names[i]))) { made = 1; err = add_dir(b, sub, 1); }
      } else if (pass == 1 && S_ISREG(s.st_mode)) {
        if (!(err = new_domain(b, names[i]))) { made = 1; err = add_file(b, sub, &s); }
      }
      if (!err && made && b->dom[b->ndom - 1].len == 0)
        b->ndom--; /* nothing new in it: links to files read already, empty files */
    }
  free_names(names, n);
  FM_CHECK(err);
  return FM_OK;
}

/* Whether name is one of the comma-separated names of list (spaces around names ignored). */
static int in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    if ((size_t)(t - p) == n && n && !strncmp(p, name, n)) return 1;
    p = e;
  }
  return 0;
}

/* Every name of data.domains must be a domain of the corpus. */
static fm_err check_domains_found(const fm_config *c, const builder *b) {
  char name[64];
  for (const char *p = c->data.domains; *p;) {
    while (*p == ' ' || *p == ',') p++;
    const char *e = p;
    while (*e && *e != ',') e++;
    const char *t = e;
    while (t > p && t[-1] == ' ') t--;
    size_t n = (size_t)(t - p) < sizeof name - 1 ? (size_t)(t - p) : sizeof name - 1;
    memcpy(name, p, n);
    name[n] = 0;
    int found = 0;
    for (int i = 0; i < b->ndom && !found; i++) found = !strcmp(b->dom[i].name, name);
    if (n && !found) FM_CONFIG_ERROR(c, "data.domains", "'%s' is not a domain of '%s'", name, c->data.path);
    p = e;
  }
  return FM_OK;
}

static fm_err load_text(fm_corpus *cp, const fm_config *c, int utf8);

static const fm_records *sort_recs; /* qsort has no context argument */
static const int *sort_rank;        /* client index -> rank of its value */

static int by_domain_client(const void *x, const void *y) {
  const fm_record *a = x, *b = y;
  int d = strcmp(a->domain, b->domain);
  if (d) return d;
  int ca = a->client < 0 ? -1 : sort_rank[a->client], cb = b->client < 0 ? -1 : sort_rank[b->client];
  if (ca != cb) return ca < cb ? -1 : 1;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int by_value(const void *x, const void *y) {
  return strcmp(sort_recs->client_names[*(const int *)x], sort_recs->client_names[*(const int *)y]);
}

static fm_err add_segment(builder *b, int domain, uint64_t start, uint64_t len, int32_t client, int prompt) {
  if (!len) return FM_OK;
  fm_segment *last = b->nseg ? &b->seg[b->nseg - 1] : NULL;
  if (last && last->domain == domain && last->client == client && last->prompt == prompt &&
      last->start + last->len == start) {
    last->len += len; /* one piece of text per client and kind: tokenized together */
    return FM_OK;
  }
  if ((b->nseg & (b->nseg - 1)) == 0) { /* grow at powers of two */
    fm_segment *t = realloc(b->seg, (size_t)(b->nseg ? 2 * b->nseg : 1) * sizeof *t);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (text segments)");
    b->seg = t;
  }
  b->seg[b->nseg++] = (fm_segment){start, len, domain, client, (uint8_t)prompt};
  return FM_OK;
}

/* The text laid out again domain by domain: a domain's text files, then its records
 * client by client (clients in the order of their values), in segments of one
 * client and kind (prompt or not). Clients are renumbered in value order. */
static fm_err group(builder *b) {
  fm_records *rs = &b->recs;
  for (size_t i = 0; i < rs->n; i++) { /* record domains are domains too */
    int found = 0;
    for (int k = 0; k < b->ndom && !found; k++) found = !strcmp(b->dom[k].name, rs->r[i].domain);
    if (!found) {
      FM_CHECK(new_domain(b, rs->r[i].domain));
      b->dom[b->ndom - 1].start = b->size;
    }
  }
  int *order, *rank;
  FM_CALLOC(order, (size_t)rs->nclients + 1, "clients");
  fm_err err = fm_calloc(&rank, (size_t)rs->nclients + 1, sizeof *rank, "clients");
  if (err) { free(order); return err; }
  for (int i = 0; i < rs->nclients; i++) order[i] = i;
  sort_recs = rs;
  qsort(order, (size_t)rs->nclients, sizeof *order, by_value);
  for (int i = 0; i < rs->nclients; i++) rank[order[i]] = i;
  sort_rank = rank;
  qsort(rs->r, rs->n, sizeof *rs->r, by_domain_client);
  /* + 16: PCRE2's JIT may read a vector past the end of the text it matches (never a
   * page further); the slack keeps those reads inside the buffer */
  uint8_t *text = calloc(b->size + rs->size + 16, 1);
  if (!text) err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory (corpus text)");
  uint64_t at = 0;
  size_t r = 0;
  qsort(b->dom, (size_t)b->ndom, sizeof *b->dom, by_domain_name);
  for (int k = 0; k < b->ndom && !err; k++) {
    domain *d = &b->dom[k];
    memcpy(text + at, b->text + d->start, d->len);
    err = add_segment(b, k, at, d->len, -1, 0);
    d->start = at;
    at += d->len;
    while (r < rs->n && strcmp(rs->r[r].domain, d->name) < 0) r++;
    for (; r < rs->n && !err && !strcmp(rs->r[r].domain, d->name); r++) {
      const fm_record *q = &rs->r[r];
      if (b->max_domain && d->len + q->len > b->max_domain) continue; /* whole records only */
      memcpy(text + at, rs->text + q->off, q->len);
      int32_t client = q->client < 0 ? -1 : rank[q->client];
      err = add_segment(b, k, at, q->prompt, client, 1);
      if (!err) err = add_segment(b, k, at + q->prompt, q->len - q->prompt, client, 0);
      at += q->len;
      d->len += q->len;
    }
  }
  /* the client values in their new order */
  char **names = rs->nclients ? malloc((size_t)rs->nclients * sizeof *names) : NULL;
  if (!err && rs->nclients && !names) err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory");
  if (!err) {
    for (int i = 0; i < rs->nclients; i++) names[i] = rs->client_names[order[i]];
    free(rs->client_names);
    rs->client_names = names;
  } else {
    free(names);
  }
  free(order);
  free(rank);
  if (err) {
    free(text);
    return err;
  }
  free(b->text);
  b->text = text;
  b->size = b->cap = at;
  return FM_OK;
}

fm_err fm_corpus_load(fm_corpus *cp, const fm_config *c) {
  memset(cp, 0, sizeof *cp);
  fm_tokenizer *tok;
  FM_CHECK(fm_tokenizer_open_config(&tok, c));
  fm_err err = load_text(cp, c, fm_tokenizer_kind(tok) != FM_TOK_BYTES);
  cp->vocab = fm_tokenizer_vocab(tok);
  if (fm_tokenizer_kind(tok) == FM_TOK_BYTES) snprintf(cp->tokenizer, sizeof cp->tokenizer, "bytes");
  else snprintf(cp->tokenizer, sizeof cp->tokenizer, "%s %s", fm_tokenizer_kind_name(tok), fm_tokenizer_path(tok));
  if (!err && fm_tokenizer_kind(tok) != FM_TOK_BYTES) err = fm_corpus_tokenize(cp, c, tok);
  if (!err) err = fm_corpus_target_mask(cp);
  fm_tokenizer_free(tok);
  if (err) {
    fm_corpus_free(cp);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  return FM_OK;
}

fm_err fm_data_count_clients(const fm_config *c, int *n) {
  fm_corpus cp;
  memset(&cp, 0, sizeof cp);
  fm_err err = load_text(&cp, c, 0);
  *n = cp.nclient_names;
  fm_corpus_free(&cp);
  FM_CHECK(err);
  return FM_OK;
}

/* The text of every domain, bytes; utf8: every file must be valid UTF-8. */
static fm_err load_text(fm_corpus *cp, const fm_config *c, int utf8) {
  builder b;
  memset(&b, 0, sizeof b);
  b.max_domain = (uint64_t)c->data.max_domain_bytes;
  b.utf8 = utf8;
  b.c = c;
  fm_err err = scan(&b, c);
  if (!err) err = group(&b);
  if (err) {
    builder_free(&b);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  if (b.ndom == 0) {
    builder_free(&b);
    FM_CONFIG_ERROR(c, "data.path", "'%s' holds no text files", c->data.path);
  }
  if (c->data.domains[0] && (err = check_domains_found(c, &b))) {
    builder_free(&b);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  /* keep the domains asked for, drop small ones, order by name */
  int keep = 0, *remap = calloc((size_t)b.ndom + 1, sizeof *remap); /* old domain index -> kept one, or -1 */
  uint64_t largest = 0;
  const char *largest_name = "";
  if (!remap) {
    builder_free(&b);
    FM_ERROR(FM_ERR_MEM, "out of memory (domains)");
  }
  for (int i = 0; i < b.ndom; i++) {
    remap[i] = -1;
    if (!b.dom[i].len) continue; /* a JSON Lines file's own domain when its records went to others */
    if (c->data.domains[0] && !in_list(c->data.domains, b.dom[i].name)) continue;
    if (b.dom[i].len > largest) { largest = b.dom[i].len; largest_name = b.dom[i].name; }
    if (b.dom[i].len < (uint64_t)c->data.min_domain_bytes) {
      cp->ndropped++;
      cp->dropped_bytes += b.dom[i].len;
      FM_DEBUG("data: dropping domain '%s' (%llu bytes < data.min_domain_bytes)", b.dom[i].name,
               (unsigned long long)b.dom[i].len);
    } else {
      remap[i] = keep;
      b.dom[keep++] = b.dom[i];
    }
  }
  if (keep == 0) {
    free(remap);
    char msg[1024];
    snprintf(msg, sizeof msg, "every domain of '%s' has fewer bytes than this (the largest, '%s', has %llu)",
             c->data.path, largest_name, (unsigned long long)largest);
    builder_free(&b);
    FM_CONFIG_ERROR(c, "data.min_domain_bytes", "%s", msg);
  }
  /* the domains are in name order already (group); the kept segments, renumbered */
  int nseg = 0;
  for (int i = 0; i < b.nseg; i++)
    if (remap[b.seg[i].domain] >= 0) {
      b.seg[nseg] = b.seg[i];
      b.seg[nseg++].domain = remap[b.seg[i].domain];
    }
  free(remap);
  cp->seg = b.seg;
  cp->nseg = nseg;
  b.seg = NULL;
  cp->nclient_names = b.recs.nclients;
  if (cp->nclient_names) {
    cp->client_names = calloc((size_t)cp->nclient_names, sizeof *cp->client_names);
    for (int i = 0; cp->client_names && i < cp->nclient_names; i++)
      snprintf(cp->client_names[i], sizeof cp->client_names[i], "%s", b.recs.client_names[i]);
  }
  cp->ndomains = keep;
  cp->text = b.text;
  cp->size = b.size;
  cp->nfiles = b.nfiles;
  cp->nskipped = b.nskipped;
  b.text = NULL;
  cp->domain_names = calloc((size_t)keep, sizeof *cp->domain_names);
  cp->domain_start = calloc((size_t)keep, sizeof *cp->domain_start);
  cp->domain_len = calloc((size_t)keep, sizeof *cp->domain_len);
  cp->domain_bytes = calloc((size_t)keep, sizeof *cp->domain_bytes);
  if (!cp->domain_names || !cp->domain_start || !cp->domain_len || !cp->domain_bytes ||
      (cp->nclient_names && !cp->client_names)) {
    builder_free(&b);
    fm_corpus_free(cp);
    FM_ERROR(FM_ERR_MEM, "out of memory (domains)");
  }
  for (int i = 0; i < keep; i++) {
    memcpy(cp->domain_names[i], b.dom[i].name, sizeof cp->domain_names[i]);
    cp->domain_start[i] = b.dom[i].start;
    cp->domain_len[i] = cp->domain_bytes[i] = b.dom[i].len;
    cp->text_bytes += b.dom[i].len;
  }
  builder_free(&b);
  return FM_OK;
}

void fm_corpus_free(fm_corpus *cp) {
  free(cp->text);
  if (cp->map) munmap(cp->map, cp->map_len);
  else free(cp->ids);
  free(cp->domain_bytes);
  free(cp->seg);
  free(cp->target_mask);
  free(cp->client_names);
  free(cp->domain_names);
  free(cp->domain_start);
  free(cp->domain_len);
  memset(cp, 0, sizeof *cp);
}
