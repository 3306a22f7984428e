/* data.h - corpora, byte tokenizer, client partitions, batches.
 *
 * The corpus is read once per rank (every rank reads the same files and builds the
 * same partition deterministically from the seed); clients index into it, so memory
 * does not grow with the number of clients. A domain is a file or a sub-directory
 * of data.path. Each domain's text is cut into a public part (held by the server
 * only) and a client part; a client's data is a list of spans of its domains' client
 * parts, split into train / validation / test by data.*_frac, all disjoint. */
#ifndef FEDMOE_DATA_H
#define FEDMOE_DATA_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/rng.h"

#include <stddef.h>
#include <stdint.h>

enum { FM_SPLIT_TRAIN, FM_SPLIT_VAL, FM_SPLIT_TEST, FM_SPLIT_PUBLIC, FM_NSPLITS };

typedef struct { uint64_t start, len; int domain; } fm_span; /* bytes of the corpus */

typedef struct {
  int ndomains;
  char (*domain_names)[64];
  uint8_t *text;           /* all domains concatenated (the byte tokens) */
  uint64_t size;
  uint64_t *domain_start, *domain_len; /* per domain, in text */
} fm_corpus;

typedef struct {
  int nspans;
  fm_span *spans;          /* in order; together the split's bytes */
  uint64_t tokens;         /* total bytes */
} fm_split;

typedef struct {
  int id;
  fm_split split[FM_NSPLITS - 1]; /* train, val, test */
  double *domain_mix;      /* [ndomains] share of this client's bytes per domain */
} fm_client_data;

typedef struct {
  fm_corpus corpus;
  int nclients;
  fm_client_data *clients;
  fm_split public_split;   /* server only */
} fm_dataset;

/* Load data.path and partition fl.clients clients. Errors name the path or key. */
fm_err fm_dataset_load(fm_dataset *d, const fm_config *c);
void fm_dataset_free(fm_dataset *d);

/* B windows of T+1 bytes drawn uniformly from a split, from stream rng:
 * tokens[b*T+t] = window[t], targets[b*T+t] = window[t+1]. A window never crosses
 * a span's end. The window's domain per sequence goes to domains[b] (may be NULL). */
fm_err fm_batch_sample(const fm_corpus *cp, const fm_split *s, fm_rng *rng, int B, int T,
                       int32_t *tokens, int32_t *targets, int *domains);
/* The i-th of the consecutive non-overlapping windows of T+1 bytes of a split
 * (for evaluation: deterministic, covers the split); returns 0 past the end. */
int fm_batch_sequential(const fm_corpus *cp, const fm_split *s, long i, int B, int T,
                        int32_t *tokens, int32_t *targets, int *domains);
/* Number of full windows of T+1 bytes in a split. */
long fm_split_windows(const fm_split *s, int T);

#endif
