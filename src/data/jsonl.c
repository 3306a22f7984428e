/* jsonl.c - JSON Lines files: one JSON object a line, each a record of text
 * (data.text_field) or an instruction record (data.prompt_template filled from
 * data.instruction_field and data.input_field, then data.output_field as the
 * response), with its domain and client from data.domain_field and
 * data.client_field. Parsed with jansson, line by line, so errors name the line. */
#include "bytebuf.h"
#include "records.h"

#include "fedmoe/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char alpaca[] =
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\n{instruction}\n\n### Response:\n";
static const char alpaca_input[] =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
    "### Input:\n{input}\n\n### Response:\n";

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

int fm_is_jsonl(const fm_config *c, const char *path) {
  if (c->data.format == FM_FORMAT_JSONL) return 1;
  if (c->data.format == FM_FORMAT_TEXT) return 0;
  return ends_with(path, ".jsonl");
}

static fm_err put(fm_records *rs, const void *p, size_t n) {
  return fm_bytebuf_append(&rs->text, &rs->size, &rs->textcap, p, n, "JSON Lines text");
}

/* The template with {instruction} and {input} replaced; "\n" in a template given in
 * the configuration is a newline. */
static fm_err fill(fm_records *rs, const char *tpl, const char *instruction, const char *input) {
  for (const char *p = tpl; *p;) {
    if (!strncmp(p, "{instruction}", 13)) { FM_CHECK(put(rs, instruction, strlen(instruction))); p += 13; }
    else if (!strncmp(p, "{input}", 7)) { FM_CHECK(put(rs, input, strlen(input))); p += 7; }
    else if (p[0] == '\\' && p[1] == 'n') { FM_CHECK(put(rs, "\n", 1)); p += 2; }
    else { FM_CHECK(put(rs, p, 1)); p++; }
  }
  return FM_OK;
}

/* A field's text: a string as it is, a number or true/false as JSON writes it. */
static fm_err field_text(const json_t *rec, const char *name, int required, const char *path, long line,
                         char **out) {
  const json_t *v = json_object_get(rec, name);
  *out = NULL;
  if (!v || json_is_null(v)) {
    if (!required) return FM_OK;
    FM_ERROR(FM_ERR_DATA, "%s:%ld: the record has no field '%s'", path, line, name);
  }
  if (json_is_string(v)) {
    if (strlen(json_string_value(v)) != json_string_length(v))
      FM_ERROR(FM_ERR_DATA, "%s:%ld: field '%s' holds a NUL character", path, line, name);
    *out = strdup(json_string_value(v));
  } else if (json_is_number(v) || json_is_boolean(v)) {
    *out = json_dumps(v, JSON_ENCODE_ANY);
  } else {
    FM_ERROR(FM_ERR_DATA, "%s:%ld: field '%s' is not a string (an %s)", path, line, name,
             json_is_object(v) ? "object" : "array");
  }
  if (!*out) FM_ERROR(FM_ERR_MEM, "out of memory (JSON Lines field)");
  return FM_OK;
}

static fm_err client_of(fm_records *rs, const char *value, int32_t *id) {
  uint32_t v;
  if (fm_strmap_get(&rs->client_index, value, strlen(value), &v)) { *id = (int32_t)v; return FM_OK; }
  if (rs->nclients == rs->clientcap) {
    int cap = rs->clientcap ? 2 * rs->clientcap : 64;
    char **t = realloc(rs->client_names, (size_t)cap * sizeof *t);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (clients)");
    rs->client_names = t;
    rs->clientcap = cap;
  }
  if (!(rs->client_names[rs->nclients] = strdup(value))) FM_ERROR(FM_ERR_MEM, "out of memory (clients)");
  FM_CHECK(fm_strmap_put(&rs->client_index, value, strlen(value), (uint32_t)rs->nclients));
  *id = rs->nclients++;
  return FM_OK;
}

/* One line's record. */
static fm_err record(fm_records *rs, const json_t *rec, const char *path, long line, const char *file_domain,
                     const fm_config *c) {
  const char *fields[5] = {0};
  char *val[5] = {0};
  int nf = 0;
  fm_err err = FM_OK;
  int instr = c->data.prompt_template[0] != 0;
  if (instr) {
    fields[0] = c->data.instruction_field;
    fields[1] = c->data.input_field;
    fields[2] = c->data.output_field;
    nf = 3;
  } else {
    fields[0] = c->data.text_field;
    nf = 1;
  }
  fields[3] = c->data.domain_field[0] ? c->data.domain_field : NULL;
  fields[4] = c->data.client_field[0] ? c->data.client_field : NULL;
  for (int i = 0; i < 5 && !err; i++)
    if (fields[i]) err = field_text(rec, fields[i], i != 1 || !instr ? 1 : 0, path, line, &val[i]);
  (void)nf;
  if (!err && rs->n == rs->cap) {
    size_t cap = rs->cap ? 2 * rs->cap : 1024;
    fm_record *t = realloc(rs->r, cap * sizeof *t);
    if (t) { rs->r = t; rs->cap = cap; }
    else err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory (records)");
  }
  if (!err) {
    fm_record *r = &rs->r[rs->n];
    memset(r, 0, sizeof *r);
    snprintf(r->domain, sizeof r->domain, "%s", val[3] ? val[3] : file_domain);
    r->client = -1;
    r->off = rs->size;
    r->seq = rs->n;
    if (val[4]) err = client_of(rs, val[4], &r->client);
    if (!err && instr) {
      const char *in = val[1] ? val[1] : "";
      const char *tpl = strcmp(c->data.prompt_template, "alpaca") ? c->data.prompt_template : in[0] ? alpaca_input : alpaca;
      err = fill(rs, tpl, val[0], in);
      r->prompt = rs->size - r->off;
      if (!err) err = put(rs, val[2], strlen(val[2]));
    } else if (!err) {
      err = put(rs, val[0], strlen(val[0]));
    }
    /* records end with a newline, as text files do */
    if (!err && (rs->size == r->off || rs->text[rs->size - 1] != '\n')) err = put(rs, "\n", 1);
    r->len = rs->size - r->off;
    if (!err) rs->n++;
  }
  for (int i = 0; i < 5; i++) free(val[i]);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_jsonl_read(fm_records *rs, const char *path, const char *file_domain, const fm_config *c) {
  char *text;
  size_t n;
  FM_CHECK(fm_read_file(path, &text, &n));
  fm_err err = FM_OK;
  long line = 0;
  for (size_t at = 0; at < n && !err;) {
    char *e = memchr(text + at, '\n', n - at);
    size_t len = e ? (size_t)(e - (text + at)) : n - at;
    line++;
    const char *p = text + at;
    at += len + 1;
    size_t bad = fm_utf8_invalid_at((const uint8_t *)p, len);
    if (bad < len) {
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA, "%s:%ld: invalid UTF-8 at column %zu (byte 0x%02x)",
                         path, line, bad + 1, (unsigned char)p[bad]);
      break;
    }
    size_t k = 0;
    while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
    if (k == len) continue; /* blank lines separate nothing */
    json_error_t je;
    json_t *rec = json_loadb(p, len, 0, &je);
    if (!rec) {
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA, "%s:%ld: not valid JSON (column %d): %s", path,
                         line, je.column, je.text);
      break;
    }
    if (!json_is_object(rec))
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA, "%s:%ld: a record must be a JSON object", path, line);
    else
      err = record(rs, rec, path, line, file_domain, c);
    json_decref(rec);
  }
  free(text);
  FM_CHECK(err);
  return FM_OK;
}

void fm_records_free(fm_records *rs) {
  free(rs->r);
  free(rs->text);
  fm_strmap_clear(&rs->client_index);
  for (int i = 0; i < rs->nclients; i++) free(rs->client_names[i]);
  free(rs->client_names);
  memset(rs, 0, sizeof *rs);
}
