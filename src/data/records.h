/* records.h - JSON Lines records as the corpus reader collects them (jsonl.c), before
 * corpus.c groups them by domain and client. */
#ifndef FEDMOE_RECORDS_H
#define FEDMOE_RECORDS_H

#include "fedmoe/config.h"

#include "strmap.h"

#include <stdint.h>

typedef struct {
  char domain[64];        /* the record's domain */
  int32_t client;         /* index of its data.client_field value, -1: no client field */
  uint64_t off, len;      /* its text in the record buffer */
  uint64_t prompt;        /* its first bytes that are prompt: inputs, never targets */
  uint64_t seq;           /* reading order */
} fm_record;

typedef struct {
  fm_record *r;
  size_t n, cap;
  uint8_t *text;
  uint64_t size, textcap;
  fm_strmap client_index; /* client field value -> index */
  char **client_names;    /* by index, in order of first appearance */
  int nclients, clientcap;
} fm_records;

/* Whether path is read as JSON Lines (data.format, or auto and a .jsonl name). */
int fm_is_jsonl(const fm_config *c, const char *path);
/* Append path's records; their domain is data.domain_field's value, else file_domain.
 * Errors name the file, the line and the field. */
fm_err fm_jsonl_read(fm_records *rs, const char *path, const char *file_domain, const fm_config *c);
void fm_records_free(fm_records *rs);

#endif
