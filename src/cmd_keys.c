/* cmd_keys.c - `fedmoe keys [SECTION|KEY] [--format=text|markdown|man]`: the
 * configuration keys as src/core/config_keys.c declares them (type, default, range,
 * meaning). The README's and the man page's key lists are this command's markdown
 * and man output (make update-key-docs), so the three cannot disagree. */
#include "cli.h"

#include "fedmoe/suggest.h"

#include <stdlib.h>
#include <string.h>

typedef enum { FMT_TEXT, FMT_MARKDOWN, FMT_MAN } format_t;

static const char *type_name(fm_key_type t) {
  switch (t) {
  case FM_KEY_INT:
  case FM_KEY_INT64: return "integer";
  case FM_KEY_REAL: return "number";
  case FM_KEY_BOOL: return "boolean";
  case FM_KEY_STRING: return "string";
  case FM_KEY_ENUM: return "choice";
  case FM_KEY_INTLIST: return "integers";
  case FM_KEY_REALLIST: return "numbers";
  }
  return "?";
}

/* A bound as people write it: 1e9 rather than 1e+09 or 1000000000. */
static void number(char *out, size_t len, double v) {
  char buf[48], *e;
  if (v == (double)(long long)v && v > -1e6 && v < 1e6) {
    snprintf(out, len, "%lld", (long long)v);
    return;
  }
  snprintf(buf, sizeof buf, "%g", v);
  if ((e = strchr(buf, 'e'))) { /* e+09 -> e9, e-06 -> e-6 */
    char *d = e + 1, *q = e + 1;
    if (*q == '+') q++;
    else if (*q == '-') *d++ = *q++;
    while (*q == '0' && q[1]) q++;
    memmove(d, q, strlen(q) + 1);
  }
  snprintf(out, len, "%s", buf);
}

/* The values a key takes: "1..64", ">= 0", "a|b|c", "true|false" or "" (any text). */
static void range(const fm_key *k, char *out, size_t len) {
  char lo[48], hi[48];
  out[0] = 0;
  switch (k->type) {
  case FM_KEY_ENUM: snprintf(out, len, "%s", k->choices); return;
  case FM_KEY_BOOL: snprintf(out, len, "true|false"); return;
  case FM_KEY_STRING: return;
  default: break;
  }
  number(lo, sizeof lo, k->min);
  number(hi, sizeof hi, k->max);
  if (k->max >= 1e18) snprintf(out, len, ">= %s", lo); /* BIG or the int64 limit: no bound */
  else snprintf(out, len, "%s..%s", lo, hi);
}

static int in_section(const fm_key *k, const char *sec) {
  size_t n = strlen(sec);
  return !strncmp(k->name, sec, n) && k->name[n] == '.';
}

/* Write s escaped for the format: markdown table cells lose their '|', roff its
 * backslashes, hyphens (\-) and a leading dot or quote. */
static void put(FILE *out, format_t f, const char *s) {
  for (const char *p = s; *p; p++) {
    if (f == FMT_MARKDOWN && *p == '|') fputs("\\|", out);
    else if (f == FMT_MAN && *p == '\\') fputs("\\e", out);
    else if (f == FMT_MAN && *p == '-') fputs("\\-", out);
    else {
      if (f == FMT_MAN && p == s && (*p == '.' || *p == '\'')) fputs("\\&", out); /* not a request */
      fputc(*p, out);
    }
  }
}

static void print_key(FILE *out, format_t f, const fm_key *k, int width) {
  char r[256];
  range(k, r, sizeof r);
  const char *def = k->def[0] ? k->def : "\"\"";
  switch (f) {
  case FMT_TEXT:
    fprintf(out, "%-*s  %-8s  %-14s  %-16s  %s\n", width, k->name, type_name(k->type), def, r[0] ? r : "-", k->help);
    break;
  case FMT_MARKDOWN:
    fprintf(out, "| `%s` | %s | `", k->name, type_name(k->type));
    put(out, f, def);
    fputs("` | ", out);
    put(out, f, r);
    fputs(" | ", out);
    put(out, f, k->help);
    fputs(" |\n", out);
    break;
  case FMT_MAN:
    fputs(".TP\n.B ", out);
    put(out, f, k->name);
    fprintf(out, "\n%s, default ", type_name(k->type));
    put(out, f, def);
    if (r[0]) {
      fputs(k->type == FM_KEY_ENUM ? ", one of " : ", ", out);
      put(out, f, r);
    }
    fputs(": ", out);
    put(out, f, k->help);
    fputs(".\n", out);
    break;
  }
}

static void print_section_head(FILE *out, format_t f, const char *sec, int first) {
  switch (f) {
  case FMT_TEXT: fprintf(out, "%s[%s]\n", first ? "" : "\n", sec); break;
  case FMT_MARKDOWN:
    fprintf(out, "%s`[%s]`\n\n| key | type | default | values | meaning |\n|---|---|---|---|---|\n",
            first ? "" : "\n", sec);
    break;
  case FMT_MAN: fprintf(out, ".SS [%s]\n", sec); break;
  }
}

/* No key or section called name: say so, with the close ones and the sections. */
static fm_err unknown_name(const char *name) {
  char secs[FM_SECTIONS_MAX][32], hint[256], list[512] = "";
  int ns = fm_config_sections(secs, FM_SECTIONS_MAX);
  fm_suggest s;
  fm_suggest_init(&s, name);
  const char *dot = strchr(name, '.');
  for (int i = 0; i < ns; i++) fm_suggest_add(&s, secs[i]);
  for (int i = 0; i < fm_config_nkeys; i++) {
    const char *k = fm_config_keys[i].name;
    fm_suggest_add(&s, k);
    fm_suggest_add_part(&s, k, dot ? dot + 1 : name, strchr(k, '.') + 1, 1);
  }
  for (int i = 0, off = 0; i < ns && off < (int)sizeof list; i++)
    off += snprintf(list + off, sizeof list - (size_t)off, "%s%s", i ? ", " : "", secs[i]);
  FM_ERROR(FM_ERR_ARG, "no configuration key or section '%s'%s; the sections are %s ('fedmoe keys' lists "
           "every key)", name, fm_suggest_text(&s, hint, sizeof hint), list);
}

static fm_err keys_print(FILE *out, const char *name, const char *format) {
  format_t f = FMT_TEXT;
  if (!format || !strcmp(format, "text")) f = FMT_TEXT;
  else if (!strcmp(format, "markdown")) f = FMT_MARKDOWN;
  else if (!strcmp(format, "man")) f = FMT_MAN;
  else FM_ERROR(FM_ERR_ARG, "--format: '%s' is not text, markdown or man", format);
  const fm_key *only = name ? fm_config_find_key(name) : NULL;
  int any = !name || only;
  for (int i = 0; name && !only && i < fm_config_nkeys && !any; i++) any = in_section(&fm_config_keys[i], name);
  if (!any) return unknown_name(name);
  int width = 0;
  for (int i = 0; i < fm_config_nkeys; i++) {
    int n = (int)strlen(fm_config_keys[i].name);
    if (n > width) width = n;
  }
  char sec[32] = "";
  int first = 1;
  for (int i = 0; i < fm_config_nkeys; i++) {
    const fm_key *k = &fm_config_keys[i];
    if (only ? k != only : name && !in_section(k, name)) continue;
    size_t sl = strcspn(k->name, ".");
    if (strlen(sec) != sl || strncmp(sec, k->name, sl)) {
      snprintf(sec, sizeof sec, "%.*s", (int)sl, k->name);
      print_section_head(out, f, sec, first);
      first = 0;
    }
    print_key(out, f, k, width);
  }
  return FM_OK;
}

fm_err fm_cmd_keys(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  /* the same arguments on every rank give the same answer: rank 0 prints it */
  fm_err err = rank == 0 ? keys_print(stdout, cli->positional, cli->format) : FM_OK;
  if (rank == 0) fflush(stdout);
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
