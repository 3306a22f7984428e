/* data.h - corpora, byte tokenizer, client partitions, batches.
 *
 * The corpus is read once per rank (every rank reads the same files and builds the
 * same partition deterministically from the seed); clients index into it, so memory
 * does not grow with the number of clients. A domain is a file or a sub-directory
 * of data.path. Each domain's text is cut into a public part (held by the server
 * only) and a client part; a client's data is a list of spans of its domains' client
 * parts, split into train / validation / test by data.*_frac, all disjoint.
 *
 * Tokens. model.tokenizer (include/fedmoe/tokenizer.h) turns each domain's text, as
 * one string, into token ids; with the byte tokenizer a token is a byte (vocabulary
 * 256) and the corpus text IS the token sequence. Spans, splits, windows and
 * data.client_bytes count tokens (bytes with bytes); data.min_domain_bytes and
 * data.max_domain_bytes count bytes of text. With a tokenizer, every file must be
 * valid UTF-8 (an error names the file and line), and model.vocab must hold the
 * tokenizer's ids (with bytes it must be 256).
 *
 * Token cache (corpus_cache.c). The ids of a corpus are written once to
 * .fedmoe-tokens-KEY.bin beside it (in data.path, or the directory of a single
 * file), or, when that is not writable, in data.token_cache or $XDG_CACHE_HOME/fedmoe
 * (~/.cache/fedmoe); KEY is a hash of the tokenizer's files and of the cleaned text
 * of every domain (names included). A later load with the same tokenizer and text
 * maps the file instead of tokenizing. data.token_cache = off disables it.
 *
 * Domains (corpus.c). data.path is a directory (or a single text file: one domain).
 * Each regular file directly in it is one domain named after the file; each
 * sub-directory is one domain named after the directory, made of all its files
 * (recursively), in name order. Skipped: names starting with '.', "X.dat" (strfile
 * indexes of fortunes), "X.u8" when "X" exists beside it (the fortunes packages ship
 * X.u8 as a UTF-8 copy or link of X, or an empty file; X itself is UTF-8 text), any
 * directory named "off" (offensive fortunes), empty files, and a file reached a second
 * time through a link (same device and inode): it belongs to the first domain that
 * reaches it, sub-directories being scanned before the top-level files, so the
 * top-level Italian links of fortunes-it stay in "it" and cz/ and sk/ (links into cs/)
 * are empty and vanish. Domains with fewer than data.min_domain_bytes bytes are
 * dropped; data.max_domain_bytes (0: no cap) keeps only a domain's first bytes.
 * Domains are ordered by name.
 *
 * Text cleaning. Lines holding only '%' (fortune separators) become empty lines, CRLF
 * becomes LF, and overstruck characters (c BACKSPACE c') keep c' only. A newline is
 * added after a file that does not end with one.
 *
 * Text check. A file is text when it has no NUL byte and at most 10% of its bytes are
 * control characters (other than TAB LF VT FF CR, BACKSPACE, ESC) or bytes outside valid
 * UTF-8 sequences. Anything else is an error naming the file (a corpus must not
 * silently contain binaries). Legacy 8-bit text with many non-ASCII letters (KOI8-R,
 * ...) fails the rule: convert it with iconv first.
 *
 * JSON Lines (jsonl.c; data.format, auto: files named *.jsonl). One JSON object a line
 * (blank lines skipped), each a record: data.text_field's text, or, with
 * data.prompt_template, an instruction record: the template (alpaca, or text with
 * {instruction} and {input}, "\n" a newline) filled from data.instruction_field and
 * data.input_field (optional), then data.output_field, the response. Prompt tokens are
 * inputs only: their targets are -1, which the loss skips (only response tokens are
 * predicted). Every record ends with a newline. A record's domain is data.domain_field's
 * value, else its file's domain; a domain holds its text files, then its records
 * grouped by client. A malformed line, a missing field, a field that is not a string
 * or number, or invalid UTF-8 fails naming the file, the line and the field.
 * Segments: each domain's text is cut where the client or the prompt/response kind
 * changes; each segment is tokenized on its own.
 *
 * Public split (partition.c). The last floor(data.public_frac x tokens) of each domain;
 * the rest of the domain, its client part, is where clients take their data. So the
 * public split is disjoint from every client's data.
 *
 * Clients. Everything about client c comes from its own stream
 * fm_rng_init(seed, c, 0, FM_RNG_DATA) and the corpus, never from fl.clients or from
 * the number of ranks: client 7 has the same data whether 8 or 10,000 clients exist.
 *  - size n_c: data.client_bytes, or (sizes = lognormal) client_bytes x exp(sigma z -
 *    sigma^2/2), z ~ N(0,1), whose mean is client_bytes; at least one minimum piece.
 *  - mixture: by_domain: domain c mod D; dirichlet: shares ~ Dir(alpha); iid: shares
 *    proportional to the domains' client parts. A domain's piece is n_c x share bytes;
 *    pieces under the minimum piece, ceil((seq_len+1) / smallest nonzero split
 *    fraction) bytes, are dropped (the largest is always kept) and the rest rescaled
 *    to n_c, so every split of every piece holds at least one window.
 *    A piece is capped at its domain's client part (a client never holds a byte twice).
 *  - placement: each piece is one contiguous region of the domain's client part, cut
 *    in order into train | val | test (floor(piece x frac) tokens each): the splits of one
 *    client are disjoint.
 *    Disjoint clients (the rule, data.allow_overlap = false): in each domain the pieces
 *    lie side by side in client order. When a domain's clients ask for more than its
 *    client part holds, every piece in it shrinks by the same factor (room / asked); a
 *    shrunk piece under the minimum piece is dropped, or, if it is its client's largest,
 *    loading fails naming the domain, what it holds and what its clients ask for. A
 *    client's data then depends on the other clients (on fl.clients): the price of no
 *    client's test text being another's training text.
 *    Overlap allowed (data.allow_overlap = true, the placement before the rule):
 *    by_domain: the k-th client of a domain (k = c / D) takes slot k of consecutive
 *    data.client_bytes slots while the domain has room; later clients (and all clients
 *    of dirichlet and iid) place their regions at a uniform random offset from their
 *    stream, so regions of different clients may overlap, and a client's data depends
 *    on (seed, c, corpus, config) only, never on fl.clients.
 *    fedmoe data prints, per domain, the tokens asked and held.
 *  - data.client_field (JSON Lines): one client per distinct value, numbered in the
 *    order of the values (sorted as bytes); fl.clients must equal their number (left
 *    out, it is taken from the data). A client's piece in a domain is all its records
 *    there; the last data.public_frac of each piece is the public split's; sizes,
 *    mixtures and data.client_bytes do not apply.
 *  - domain_mix[d] is the realised share of the client's tokens from domain d.
 * Each client split with a nonzero fraction must hold at least one window of
 * train.seq_len+1 bytes, and the public split too when data.public_frac > 0; otherwise
 * loading fails naming the client, the split and the keys to change.
 *
 * Batches (batch.c) are drawn from a split with the caller's stream, for the runtime
 * fm_rng_init(seed, client, round, FM_RNG_BATCH). */
#ifndef FEDMOE_DATA_H
#define FEDMOE_DATA_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/rng.h"
#include "fedmoe/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

enum { FM_SPLIT_TRAIN, FM_SPLIT_VAL, FM_SPLIT_TEST, FM_SPLIT_PUBLIC, FM_NSPLITS };

typedef struct { uint64_t start, len; int domain; } fm_span; /* bytes of the corpus */

/* A piece of a domain's text of one kind: tokenized on its own, so that a token
 * never straddles a prompt and its response or two clients' records. */
typedef struct {
  uint64_t start, len;     /* in the corpus: bytes before tokenizing, tokens after */
  int32_t domain, client;  /* client: index of its data.client_field value, -1: none */
  uint8_t prompt;          /* 1: instruction prompt, inputs only (never a target) */
} fm_segment;

typedef struct {
  int ndomains;
  char (*domain_names)[64];
  int nseg;
  fm_segment *seg;         /* in order, covering every domain's text */
  uint8_t *target_mask;    /* [size] 0: a prompt token, never a target; NULL: all are targets */
  int nclient_names;       /* distinct data.client_field values (0: no client field) */
  char (*client_names)[64];
  uint8_t *text;           /* all domains concatenated: the tokens of the byte tokenizer;
                              NULL once a tokenizer has turned the text into ids */
  int32_t *ids;            /* the token ids with a tokenizer (NULL with bytes) */
  uint64_t size;           /* tokens (bytes with the byte tokenizer) */
  uint64_t *domain_start, *domain_len; /* per domain, in tokens */
  uint64_t *domain_bytes;  /* per domain, bytes of text */
  uint64_t text_bytes;     /* bytes of text in all domains */
  int vocab;               /* the tokenizer's ids: 0..vocab-1 */
  char tokenizer[FM_PATH_MAX + 16]; /* "bytes" or "bpe FILE", "sentencepiece FILE" */
  char cache[FM_PATH_MAX + 64];    /* the token cache file used ("": none) */
  int cache_hit;           /* 1: the ids were read from the cache */
  void *map;               /* the cache file's mapping holding ids, or NULL (ids malloc'ed) */
  size_t map_len;
  /* what loading saw, for the summary */
  int nfiles;              /* files read */
  int nskipped;            /* files skipped: .dat, .u8 copies, links to files already read, empty */
  int ndropped;            /* domains under data.min_domain_bytes */
  uint64_t dropped_bytes;  /* their bytes */
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
  uint64_t *domain_asked;  /* [ndomains] tokens the clients asked of each domain */
  uint64_t *domain_given;  /* [ndomains] tokens they hold (less when shrunk to be disjoint) */
  /* storage the clients point into: one allocation each, whatever the client count */
  fm_span *span_pool;
  double *mix_pool;
} fm_dataset;

/* Load data.path and partition fl.clients clients. Errors name the path or key. */
fm_err fm_dataset_load(fm_dataset *d, const fm_config *c);
void fm_dataset_free(fm_dataset *d);
/* The same, collectively over comm (an MPI_Comm passed as void*): rank 0 reads the
 * files and broadcasts the corpus (one file-system pass per job, not per rank), every
 * rank partitions. Errors are agreed: every rank returns non-zero, printed once. */
fm_err fm_dataset_load_shared(fm_dataset *d, const fm_config *c, const void *comm);

/* The steps of fm_dataset_load, for callers that need only one of them. */
fm_err fm_corpus_load(fm_corpus *cp, const fm_config *c);
void fm_corpus_free(fm_corpus *cp);
/* Partition d->corpus (loaded) among c->fl.clients clients. */
fm_err fm_partition(fm_dataset *d, const fm_config *c);
/* Broadcast a corpus loaded on root to every rank of comm (MPI_Comm as void*).
 * Collective; an allocation failure on any rank is agreed before any text moves. */
fm_err fm_corpus_bcast(fm_corpus *cp, int root, const void *comm);
/* The tokenizer of a model folder: the folder when it holds tokenizer.json,
 * tokenizer.model or vocab.json, else "bytes". */
void fm_tokenizer_spec_dir(const char *dir, char *spec, size_t len);

/* The tokenizer a configuration means (model.tokenizer, else the tokenizer of
 * model.init's folder, else "bytes"), as a spec for fm_tokenizer_open. */
void fm_tokenizer_spec(const fm_config *c, char *spec, size_t len);
/* Open it and check model.vocab against it; errors name model.tokenizer or model.vocab. */
fm_err fm_tokenizer_open_config(fm_tokenizer **t, const fm_config *c);
/* Turn a loaded corpus's text into t's ids (cp->text freed, cp->ids set, domains in
 * tokens), through the token cache (data.h, corpus_tokens.c). */
fm_err fm_corpus_tokenize(fm_corpus *cp, const fm_config *c, const fm_tokenizer *t);
/* The number of distinct data.client_field values in the corpus (reads its files). */
fm_err fm_data_count_clients(const fm_config *c, int *n);
/* cp->target_mask from the segments (left NULL when no segment is a prompt). */
fm_err fm_corpus_target_mask(fm_corpus *cp);

/* Read one text file (checked and cleaned as corpus files are), e.g. for evaluation.
 * *text is malloc'ed (caller frees). */
fm_err fm_text_read(const char *path, uint8_t **text, uint64_t *len);
/* The text rule above: 1 when p[0..n) is text, else 0 with the reason in why. */
int fm_text_check(const uint8_t *p, size_t n, char *why, size_t whylen);
/* Clean text in place (separators, CRLF, overstrikes); returns the new length. */
size_t fm_text_clean(uint8_t *p, size_t n);

/* "train", "val", "test", "public". */
const char *fm_split_name(int split);

/* B windows of T+1 bytes drawn uniformly from a split, from stream rng:
 * tokens[b*T+t] = window[t], targets[b*T+t] = window[t+1]. A window never crosses
 * a span's end. The window's domain per sequence goes to domains[b] (may be NULL).
 * Every full window of the split is equally likely. Fails (FM_ERR_DATA) when the split
 * holds no window. */
fm_err fm_batch_sample(const fm_corpus *cp, const fm_split *s, fm_rng *rng, int B, int T,
                       int32_t *tokens, int32_t *targets, int *domains);
/* The i-th of the consecutive non-overlapping windows of T+1 bytes of a split
 * (for evaluation: deterministic, covers the split); returns 0 past the end.
 * Precisely: batch i holds windows i*B .. i*B+B-1 of the split (span by span, window w
 * of a span starting at byte w*(T+1)); returns how many it wrote (B, fewer in the last
 * batch, 0 past the end). Rows past the count are left untouched. */
int fm_batch_sequential(const fm_corpus *cp, const fm_split *s, long i, int B, int T,
                        int32_t *tokens, int32_t *targets, int *domains);
/* Number of full windows of T+1 bytes in a split. */
long fm_split_windows(const fm_split *s, int T);

#endif
