/* config.c - INI parsing, --set overrides, typed and range-checked values. */
#include "fedmoe/config.h"
#include "fedmoe/fault.h"
#include "fedmoe/suggest.h"
#include "fedmoe/toolkit.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ORIGIN_LEN (FM_PATH_MAX + 16)

const fm_key *fm_config_find_key(const char *name) {
  for (int i = 0; i < fm_config_nkeys; i++)
    if (strcmp(fm_config_keys[i].name, name) == 0) return &fm_config_keys[i];
  return NULL;
}

static int key_index(const fm_key *k) { return (int)(k - fm_config_keys); }

static char *trim(char *s) {
  while (isspace((unsigned char)*s)) s++;
  char *e = s + strlen(s);
  while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
  return s;
}

/* Position of choice s in "a|b|c", or -1. */
static int enum_index(const char *choices, const char *s) {
  size_t n = strlen(s);
  int i = 0;
  for (const char *p = choices; *p; i++) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && strncmp(p, s, n) == 0) return i;
    if (!bar) break;
    p = bar + 1;
  }
  return -1;
}

/* Numbers are decimal only: strtoll's base 0 would read "012" as octal 10 and
 * "0x10" as 16, and strtod reads hex floats, "nan" and "inf"; none of these is
 * what someone writing a configuration or a device trace means. */
static int decimal_only(const char *s) {
  for (const char *q = s; *q; q++)
    if (*q == 'x' || *q == 'X' || *q == 'p' || *q == 'P') return 0;
  return 1;
}

int fm_parse_int64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || end == s || *trim(end)) return 0;
  *out = v;
  return 1;
}

int fm_parse_real(const char *s, double *out) {
  char *end;
  errno = 0;
  if (!decimal_only(s)) return 0;
  double v = strtod(s, &end);
  if (errno || end == s || *trim(end) || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static fm_err value_error(const fm_key *k, const char *where, const char *value, const char *why) {
  FM_ERROR(FM_ERR_CONFIG, "%s: key '%s': %s (got '%s')", where, k->name, why, value);
}

static fm_err range_error(const fm_key *k, const char *where, const char *value) {
  char why[160];
  snprintf(why, sizeof why, "value out of range [%g, %g]", k->min, k->max);
  return value_error(k, where, value, why);
}

/* A comma-separated list of numbers (integers for FM_KEY_INTLIST), each in range.
 * An empty entry ("1,,1", "1,") is an error: strtok would skip it and shift the
 * entries after it to the wrong resource class. */
static fm_err parse_list(const fm_key *k, const char *where, const char *value, double *v, int *n) {
  char buf[512];
  int integer = k->type == FM_KEY_INTLIST;
  if (strlen(value) >= sizeof buf) return value_error(k, where, value, "list too long");
  strcpy(buf, value);
  *n = 0;
  if (!*trim(buf)) return value_error(k, where, value, "empty list");
  for (char *tok = buf, *comma; tok; tok = comma ? comma + 1 : NULL) {
    comma = strchr(tok, ',');
    if (comma) *comma = 0;
    int64_t iv;
    double dv;
    char why[64];
    if (*n == FM_LIST_MAX) return value_error(k, where, value, "more than 32 entries");
    if (!*trim(tok)) {
      snprintf(why, sizeof why, "entry %d of the list is empty", *n + 1);
      return value_error(k, where, value, why);
    }
    if (integer ? !fm_parse_int64(trim(tok), &iv) : !fm_parse_real(trim(tok), &dv))
      return value_error(k, where, value,
                         integer ? "expected a list of integers (decimal digits)" : "expected a list of numbers");
    if (integer) dv = (double)iv;
    if (dv < k->min || dv > k->max) return range_error(k, where, value);
    v[(*n)++] = dv;
  }
  return FM_OK;
}

/* Convert text to the key's type and store it in c. */
static fm_err assign(fm_config *c, const fm_key *k, const char *value, const char *where) {
  char *field = (char *)c + k->offset;
  int64_t iv;
  double dv;
  switch (k->type) {
  case FM_KEY_INT:
  case FM_KEY_INT64:
    if (!fm_parse_int64(value, &iv)) return value_error(k, where, value, "expected an integer (decimal digits)");
    if ((double)iv < k->min || (double)iv > k->max) return range_error(k, where, value);
    if (k->type == FM_KEY_INT) *(int *)field = (int)iv; else *(int64_t *)field = iv;
    break;
  case FM_KEY_REAL:
    if (!fm_parse_real(value, &dv)) return value_error(k, where, value, "expected a number");
    if (dv < k->min || dv > k->max) return range_error(k, where, value);
    *(double *)field = dv;
    break;
  case FM_KEY_BOOL:
    if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "1") || !strcmp(value, "on"))
      *(int *)field = 1;
    else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "0") || !strcmp(value, "off"))
      *(int *)field = 0;
    else
      return value_error(k, where, value, "expected true or false");
    break;
  case FM_KEY_STRING:
    if (strlen(value) >= k->size) return value_error(k, where, value, "value too long");
    /* the resolved text (stored in the run file) must read back as the same value */
    for (const char *q = value; *q; q++) {
      if ((unsigned char)*q < 32 || *q == 127) return value_error(k, where, value, "control character in value");
      if ((*q == '#' || *q == ';') && (q == value || isspace((unsigned char)q[-1])))
        return value_error(k, where, value, "'#' or ';' at the start or after a space would start a comment");
    }
    strcpy(field, value);
    break;
  case FM_KEY_ENUM: {
    int i = enum_index(k->choices, value);
    if (i < 0) {
      char why[256];
      snprintf(why, sizeof why, "expected one of %s", k->choices);
      return value_error(k, where, value, why);
    }
    *(int *)field = i;
    break;
  }
  case FM_KEY_REALLIST:
  case FM_KEY_INTLIST: {
    double v[FM_LIST_MAX];
    int n = 0;
    fm_err err = parse_list(k, where, value, v, &n);
    if (err) return err;
    if (k->type == FM_KEY_REALLIST) {
      fm_floatlist *l = (fm_floatlist *)field;
      l->n = n;
      for (int q = 0; q < n; q++) l->v[q] = v[q];
    } else {
      fm_intlist *l = (fm_intlist *)field;
      l->n = n;
      for (int q = 0; q < n; q++) l->v[q] = (int)v[q];
    }
    break;
  }
  }
  snprintf(c->origin[key_index(k)], ORIGIN_LEN, "%s", where);
  return FM_OK;
}

fm_err fm_config_init(fm_config *c) {
  memset(c, 0, sizeof *c);
  c->nkeys = fm_config_nkeys;
  FM_CHECK(fm_calloc(&c->origin, (size_t)fm_config_nkeys, ORIGIN_LEN, "configuration origins"));
  for (int i = 0; i < fm_config_nkeys; i++)
    FM_CHECK(assign(c, &fm_config_keys[i], fm_config_keys[i].def, "default"));
  return FM_OK;
}

void fm_config_free(fm_config *c) {
  free(c->origin);
  c->origin = NULL;
}

fm_err fm_read_file(const char *path, char **text, size_t *len) {
  *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) FM_ERROR(FM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) { fclose(f); FM_ERROR(FM_ERR_MEM, "out of memory reading '%s'", path); }
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1) break;
    cap *= 2;
    char *nb = realloc(buf, cap);
    if (!nb) free(buf);
    buf = nb;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) { free(buf); FM_ERROR(FM_ERR_IO, "cannot read '%s'", path); }
  buf[n] = 0;
  *text = buf;
  if (len) *len = n;
  return FM_OK;
}

fm_err fm_text_refuse_nul(const char *text, size_t len, const char *name) {
  const char *nul = memchr(text, 0, len);
  if (!nul) return FM_OK;
  int line = 1;
  for (const char *q = text; q < nul; q++) line += *q == '\n';
  FM_ERROR(FM_ERR_CONFIG, "%s:%d: NUL byte (offset %zu): a text file holds none; the rest of the file would "
           "be ignored", name, line, (size_t)(nul - text));
}

/* " (did you mean ...?)" for an unknown key: the whole names, and the key part
 * alone (a key put in the wrong section). */
static const char *key_suggestion(const char *full, char *out, size_t len) {
  fm_suggest s;
  fm_suggest_init(&s, full);
  const char *dot = strchr(full, '.');
  for (int i = 0; i < fm_config_nkeys; i++) {
    const char *name = fm_config_keys[i].name;
    fm_suggest_add(&s, name);
    fm_suggest_add_part(&s, name, dot ? dot + 1 : full, strchr(name, '.') + 1, 1);
  }
  return fm_suggest_text(&s, out, len);
}

static const char *section_suggestion(const char *sec, char *out, size_t len) {
  fm_suggest s;
  char names[FM_SECTIONS_MAX][32];
  int n = fm_config_sections(names, FM_SECTIONS_MAX);
  fm_suggest_init(&s, sec);
  for (int i = 0; i < n; i++) fm_suggest_add(&s, names[i]);
  return fm_suggest_text(&s, out, len);
}

int fm_config_sections(char (*names)[32], int max) {
  int n = 0;
  for (int i = 0; i < fm_config_nkeys; i++) {
    const char *k = fm_config_keys[i].name;
    size_t sl = strcspn(k, ".");
    if (sl >= 32) continue;
    if (n > 0 && strlen(names[n - 1]) == sl && !strncmp(names[n - 1], k, sl)) continue;
    if (n == max) break;
    memcpy(names[n], k, sl);
    names[n++][sl] = 0;
  }
  return n;
}

/* Keys fedmoe once had: a run file's stored configuration may hold them (they are
 * skipped there, so old run files still read); a configuration file or --set that
 * sets one is told why it went. */
static const struct {
  const char *name, *why;
} retired_keys[] = {
  {"fedbiot.pretrain_steps", "fedbiot now fine-tunes the pretrained model of model.init (the server's "
                             "stand-in pretraining on its public split is gone): set model.init to a Hugging "
                             "Face folder (`make bases` builds one, `fedmoe export` writes one from a run)"},
};

static const char *retired_key(const char *name) {
  for (size_t i = 0; i < sizeof retired_keys / sizeof *retired_keys; i++)
    if (!strcmp(retired_keys[i].name, name)) return retired_keys[i].why;
  return NULL;
}

/* depth: include nesting, -1 where includes are refused (a stored configuration) */
static fm_err parse_text(fm_config *c, const char *text, const char *name, int depth);

enum { MAX_INCLUDE_DEPTH = 8 };

/* `include = FILE` before the first section: FILE's keys are read there, so the lines
 * after it override them (a base experiment and per-strategy files holding only what
 * differs). A relative FILE is found beside the including file. Every rank reads it,
 * as it reads the corpus. */
static fm_err include_file(fm_config *c, const char *file, const char *name, const char *where, int depth) {
  if (depth >= MAX_INCLUDE_DEPTH)
    FM_ERROR(FM_ERR_CONFIG, "%s: include '%s' nested more than %d deep (does a file include itself?)", where, file,
             MAX_INCLUDE_DEPTH);
  if (!*file) FM_ERROR(FM_ERR_CONFIG, "%s: include needs a file name", where);
  char path[FM_PATH_MAX];
  const char *slash = strrchr(name, '/');
  int n = file[0] == '/' || !slash ? snprintf(path, sizeof path, "%s", file)
                                   : snprintf(path, sizeof path, "%.*s/%s", (int)(slash - name), name, file);
  if (n < 0 || (size_t)n >= sizeof path) FM_ERROR(FM_ERR_CONFIG, "%s: include path too long", where);
  struct stat st;
  if (stat(path, &st) != 0) FM_ERROR(FM_ERR_CONFIG, "%s: cannot include '%s': %s", where, path, strerror(errno));
  if (!S_ISREG(st.st_mode)) FM_ERROR(FM_ERR_CONFIG, "%s: cannot include '%s': not a regular file", where, path);
  char *text = NULL;
  size_t len = 0;
  fm_err err = fm_read_file(path, &text, &len);
  if (!err) err = fm_text_refuse_nul(text, len, path);
  if (!err) err = parse_text(c, text, path, depth + 1);
  free(text);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

fm_err fm_config_parse(fm_config *c, const char *text, const char *name) { return parse_text(c, text, name, -1); }

fm_err fm_config_parse_file(fm_config *c, const char *text, const char *path) {
  return parse_text(c, text, path, 0);
}

/* line_of[i]: the line of this text that set key i (0: none), for duplicates; an
 * included file has its own (the including file may override what it sets). */
static fm_err parse_lines(fm_config *c, const char *text, const char *name, int depth, int *line_of) {
  char section[64] = "";
  int lineno = 0;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    char line[1024], where[ORIGIN_LEN], hint[256];
    lineno++;
    snprintf(where, sizeof where, "%s:%d", name, lineno);
    if (len >= sizeof line) FM_ERROR(FM_ERR_CONFIG, "%s: line too long", where);
    memcpy(line, p, len);
    line[len] = 0;
    p = nl ? nl + 1 : p + len;
    /* comments: '#' or ';' at the start or after white space */
    for (char *q = line; *q; q++)
      if ((*q == '#' || *q == ';') && (q == line || isspace((unsigned char)q[-1]))) { *q = 0; break; }
    char *s = trim(line);
    if (!*s) continue;
    if (*s == '[') {
      char *e = strchr(s, ']');
      if (!e || *trim(e + 1)) FM_ERROR(FM_ERR_CONFIG, "%s: malformed section header '%s'", where, s);
      *e = 0;
      char *sec = trim(s + 1);
      if (!*sec || strlen(sec) >= sizeof section)
        FM_ERROR(FM_ERR_CONFIG, "%s: bad section name '%s'", where, sec);
      /* a section is known when some key lives in it */
      int known = 0;
      size_t sl = strlen(sec);
      for (int i = 0; i < fm_config_nkeys && !known; i++)
        known = !strncmp(fm_config_keys[i].name, sec, sl) && fm_config_keys[i].name[sl] == '.';
      if (!known)
        FM_ERROR(FM_ERR_CONFIG, "%s: unknown section [%s]%s", where, sec, section_suggestion(sec, hint, sizeof hint));
      strcpy(section, sec);
      continue;
    }
    char *eq = strchr(s, '=');
    if (!eq) FM_ERROR(FM_ERR_CONFIG, "%s: expected 'key = value', got '%s'", where, s);
    *eq = 0;
    char *key = trim(s), *value = trim(eq + 1);
    if (!section[0] && !strcmp(key, "include")) {
      /* a run file's stored configuration is resolved: it has no includes to follow */
      if (depth < 0) FM_ERROR(FM_ERR_CONFIG, "%s: include is allowed in a configuration file only", where);
      FM_CHECK(include_file(c, value, name, where, depth));
      continue;
    }
    if (!section[0])
      FM_ERROR(FM_ERR_CONFIG, "%s: key '%s' outside any [section]%s", where, key,
               key_suggestion(key, hint, sizeof hint));
    char full[160];
    snprintf(full, sizeof full, "%s.%s", section, key);
    const fm_key *k = fm_config_find_key(full);
    const char *why = k ? NULL : retired_key(full);
    if (why && depth < 0) continue; /* an older run file's */
    if (why) FM_ERROR(FM_ERR_CONFIG, "%s: key '%s' was removed: %s", where, full, why);
    if (!k)
      FM_ERROR(FM_ERR_CONFIG, "%s: unknown key '%s' in section [%s]%s", where, key, section,
               key_suggestion(full, hint, sizeof hint));
    /* one value per key and file: a second one is more likely a mistake (an edit in
     * the wrong place) than meant, and which would win is not obvious */
    int *first = &line_of[key_index(k)];
    if (*first)
      FM_ERROR(FM_ERR_CONFIG, "%s: key '%s' is set twice in this file, at %s:%d and %s:%d; remove one", where,
               k->name, name, *first, name, lineno);
    *first = lineno;
    FM_CHECK(assign(c, k, value, where));
  }
  return FM_OK;
}

static fm_err parse_text(fm_config *c, const char *text, const char *name, int depth) {
  int *line_of = NULL;
  FM_CHECK(fm_calloc(&line_of, (size_t)fm_config_nkeys, sizeof *line_of, "configuration lines"));
  fm_err err = parse_lines(c, text, name, depth, line_of);
  free(line_of);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

fm_err fm_config_set(fm_config *c, const char *assignment, const char *where) {
  char buf[1024];
  if (strlen(assignment) >= sizeof buf) FM_ERROR(FM_ERR_CONFIG, "%s: override too long", where);
  strcpy(buf, assignment);
  char *eq = strchr(buf, '=');
  if (!eq) FM_ERROR(FM_ERR_CONFIG, "%s: expected section.key=value, got '%s'", where, assignment);
  *eq = 0;
  char *key = trim(buf), *value = trim(eq + 1);
  const fm_key *k = fm_config_find_key(key);
  char hint[256];
  if (!k && retired_key(key)) FM_ERROR(FM_ERR_CONFIG, "%s: key '%s' was removed: %s", where, key, retired_key(key));
  if (!k) FM_ERROR(FM_ERR_CONFIG, "%s: unknown key '%s'%s", where, key, key_suggestion(key, hint, sizeof hint));
  FM_CHECK(assign(c, k, value, where));
  return FM_OK;
}

fm_err fm_config_error(const fm_config *c, const char *key, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const fm_key *k = fm_config_find_key(key);
  const char *where = k && c->origin ? c->origin[key_index(k)] : "configuration";
  return fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_CONFIG, "%s: key '%s': %s", where, key, msg);
}

const char *fm_config_enum_name(const fm_config *c, const char *key) {
  static char out[8][64];
  static int slot;
  const fm_key *k = fm_config_find_key(key);
  if (!k || k->type != FM_KEY_ENUM) return "?";
  int v = *(const int *)((const char *)c + k->offset), i = 0;
  const char *p = k->choices;
  while (i < v && (p = strchr(p, '|'))) { p++; i++; }
  if (!p) return "?";
  char *o = out[slot++ & 7];
  size_t len = strcspn(p, "|");
  if (len >= 64) len = 63;
  memcpy(o, p, len);
  o[len] = 0;
  return o;
}

fm_err fm_config_validate(const fm_config *c) {
  if (!c->model.head_dim && c->model.d_model % c->model.heads)
    FM_CONFIG_ERROR(c, "model.heads", "model.d_model = %d is not divisible by %d heads", c->model.d_model,
                    c->model.heads);
  if (c->model.top_k > c->model.experts)
    FM_CONFIG_ERROR(c, "model.top_k", "top_k = %d exceeds model.experts = %d", c->model.top_k,
                    c->model.experts);
  if (c->train.seq_len > c->model.context)
    FM_CONFIG_ERROR(c, "train.seq_len", "seq_len = %d exceeds model.context = %d", c->train.seq_len,
                    c->model.context);
  if (c->data.train_frac + c->data.val_frac + c->data.test_frac > 1.0 + 1e-9)
    FM_CONFIG_ERROR(c, "data.test_frac", "data.train_frac + val_frac + test_frac = %g exceeds 1",
                    c->data.train_frac + c->data.val_frac + c->data.test_frac);
  if (c->data.train_frac <= 0) FM_CONFIG_ERROR(c, "data.train_frac", "must be > 0");
  if (c->data.domains[0]) { /* a list of names: no empty entry ("a,,b", "a,") */
    int entry = 1, empty = 1;
    for (const char *q = c->data.domains;; q++) {
      if (*q == ',' || !*q) {
        if (empty) FM_CONFIG_ERROR(c, "data.domains", "entry %d of the list '%s' is empty", entry, c->data.domains);
        if (!*q) break;
        entry++;
        empty = 1;
      } else if (!isspace((unsigned char)*q)) {
        empty = 0;
      }
    }
  }
  if (c->fl.sample_fraction <= 0 || c->fl.sample_fraction > 1)
    FM_CONFIG_ERROR(c, "fl.sample_fraction", "must be in (0,1], got %g", c->fl.sample_fraction);
  if (c->fl.sample_count > c->fl.clients)
    FM_CONFIG_ERROR(c, "fl.sample_count", "%d exceeds fl.clients = %d", c->fl.sample_count, c->fl.clients);
  if (c->fedbiot.keep <= 0) FM_CONFIG_ERROR(c, "fedbiot.keep", "must be in (0,1], got %g", c->fedbiot.keep);
  if (c->train.lr_min > c->train.lr)
    FM_CONFIG_ERROR(c, "train.lr_min", "%g exceeds train.lr = %g", c->train.lr_min, c->train.lr);
  if (c->fl.strategy == FM_STRAT_COMIGS) {
    /* client i has G generalists and s_i specialists out of model.experts */
    if (c->comigs.generalists < 1)
      FM_CONFIG_ERROR(c, "comigs.generalists", "at least one generalist expert is needed");
    for (int i = 0; i < c->comigs.specialists.n; i++) {
      int s = c->comigs.specialists.v[i];
      if (c->comigs.generalists + s > c->model.experts)
        FM_CONFIG_ERROR(c, "comigs.specialists",
                        "class %d: %d specialists + %d generalists exceed model.experts = %d", i, s,
                        c->comigs.generalists, c->model.experts);
      if (c->model.top_k > c->comigs.generalists + s)
        FM_CONFIG_ERROR(c, "model.top_k", "top_k = %d exceeds the %d experts of resource class %d",
                        c->model.top_k, c->comigs.generalists + s, i);
    }
  }
  FM_CHECK(fm_fault_validate(c));
  FM_CHECK(fm_toolkit_validate(c));
  {
    /* resource classes: every system list has one entry per class, or one for all */
    const char *names[] = {"system.flops", "system.memory_mb", "system.up_mbps", "system.down_mbps",
                           "system.latency_ms", "system.availability", "system.dropout"};
    const fm_floatlist *lists[] = {&c->system.flops, &c->system.memory_mb, &c->system.up_mbps,
                                   &c->system.down_mbps, &c->system.latency_ms, &c->system.availability,
                                   &c->system.dropout};
    for (int i = 0; i < 7; i++)
      if (lists[i]->n != 1 && lists[i]->n != c->system.share.n)
        FM_CONFIG_ERROR(c, names[i], "has %d entries for %d resource classes (system.share); give one per "
                        "class or one for all", lists[i]->n, c->system.share.n);
    double tot = 0;
    for (int i = 0; i < c->system.share.n; i++) tot += c->system.share.v[i];
    if (tot <= 0) FM_CONFIG_ERROR(c, "system.share", "the shares sum to zero");
  }
  if (c->fl.strategy == FM_STRAT_FEDBIOT) {
    if (!c->model.init[0])
      FM_CONFIG_ERROR(c, "model.init", "fedbiot compresses a pretrained model into its emulator and needs one: "
                      "set model.init to a Hugging Face folder (`make bases` builds one, `fedmoe export` "
                      "writes one from a run)");
    if (c->fedbiot.adapter_layers >= c->model.layers)
      FM_CONFIG_ERROR(c, "fedbiot.adapter_layers", "%d adapter blocks leave no emulator in a %d-block model",
                      c->fedbiot.adapter_layers, c->model.layers);
    if (c->data.public_frac <= 0)
      FM_CONFIG_ERROR(c, "data.public_frac", "fedbiot aligns its emulator on the server's public split: "
                      "it must be > 0");
    if (c->fedbiot.adapter == FM_EXPERT_LORA)
      FM_CONFIG_ERROR(c, "fedbiot.adapter", "LoRA adapters are not implemented yet; use full");
  }
  if (c->fl.strategy == FM_STRAT_HFEDMOE)
    for (int i = 0; i < c->hfedmoe.budgets.n; i++)
      if (c->hfedmoe.budgets.v[i] > c->model.experts)
        FM_CONFIG_ERROR(c, "hfedmoe.budgets", "class %d: budget %d exceeds model.experts = %d", i,
                        c->hfedmoe.budgets.v[i], c->model.experts);
  return FM_OK;
}

static size_t append(char **buf, size_t *cap, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t append(char **buf, size_t *cap, size_t off, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*buf ? *buf + off : NULL, *buf ? *cap - off : 0, fmt, ap);
    va_end(ap);
    if (*buf && off + (size_t)n < *cap) return off + (size_t)n;
    size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)n;
    char *nb = realloc(*buf, ncap);
    if (!nb) return off; /* keep what fits; caller checks *buf */
    *buf = nb;
    *cap = ncap;
  }
}

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void format_real(char *out, size_t len, double v) {
  snprintf(out, len, "%.15g", v);
  if (strtod(out, NULL) != v) snprintf(out, len, "%.17g", v);
}

void fm_config_value_text(const fm_config *c, const fm_key *k, char *out, size_t len) {
  const char *field = (const char *)c + k->offset;
  switch (k->type) {
  case FM_KEY_INT: snprintf(out, len, "%d", *(const int *)field); break;
  case FM_KEY_INT64: snprintf(out, len, "%lld", (long long)*(const int64_t *)field); break;
  case FM_KEY_REAL: format_real(out, len, *(const double *)field); break;
  case FM_KEY_BOOL: snprintf(out, len, "%s", *(const int *)field ? "true" : "false"); break;
  case FM_KEY_STRING: snprintf(out, len, "%s", field); break;
  case FM_KEY_ENUM: snprintf(out, len, "%s", fm_config_enum_name(c, k->name)); break;
  case FM_KEY_REALLIST: {
    const fm_floatlist *l = (const fm_floatlist *)field;
    size_t o = 0;
    out[0] = 0;
    for (int j = 0; j < l->n && o < len - 32; j++) {
      char one[32];
      format_real(one, sizeof one, l->v[j]);
      o += (size_t)snprintf(out + o, len - o, j ? ",%s" : "%s", one);
    }
    break;
  }
  case FM_KEY_INTLIST: {
    const fm_intlist *l = (const fm_intlist *)field;
    size_t o = 0;
    out[0] = 0;
    for (int j = 0; j < l->n && o + 16 < len; j++) o += (size_t)snprintf(out + o, len - o, j ? ",%d" : "%d", l->v[j]);
    break;
  }
  }
}

fm_err fm_config_to_text(const fm_config *c, char **text) {
  char *buf = NULL;
  size_t cap = 0, off = 0;
  char section[64] = "";
  for (int i = 0; i < fm_config_nkeys; i++) {
    const fm_key *k = &fm_config_keys[i];
    const char *dot = strchr(k->name, '.');
    size_t sl = (size_t)(dot - k->name);
    if (strlen(section) != sl || strncmp(section, k->name, sl)) {
      memcpy(section, k->name, sl);
      section[sl] = 0;
      off = append(&buf, &cap, off, "%s[%s]\n", off ? "\n" : "", section);
    }
    char val[600];
    fm_config_value_text(c, k, val, sizeof val);
    off = append(&buf, &cap, off, "%-16s = %-28s # %s\n", dot + 1, val, c->origin[i]);
  }
  if (!buf) FM_ERROR(FM_ERR_MEM, "out of memory formatting the configuration");
  *text = buf;
  return FM_OK;
}
