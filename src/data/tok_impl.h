/* tok_impl.h - the tokenizer's insides, shared by tokenizer.c (opening, bytes,
 * SentencePiece), bpe_load.c (reading BPE files) and bpe.c (BPE encoding). */
#ifndef FEDMOE_TOK_IMPL_H
#define FEDMOE_TOK_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "fedmoe/tokenizer.h"

#include "spm.h"
#include "strmap.h"

#include <pcre2.h>

#define FM_PRETOK_MAX 16

/* One step of the pre-tokenizer: split every piece at the matches of re (the
 * matches and the text between them become pieces; Removed drops the matches),
 * after putting a space before a piece that does not start with one (ByteLevel's
 * add_prefix_space). re NULL: no split. */
typedef struct {
  pcre2_code *re;
  pcre2_match_data *md;
  int remove_matches;
  int prefix_space;
} fm_pretok_step;

typedef struct {
  int32_t byte_id[256];   /* the token of each single byte, -1 if none */
  fm_u64map merges;       /* key (left+1)<<32 | right -> a = rank, b = merged id */
  fm_strmap by_bytes;     /* a token's bytes -> its id (tokens made of mapped bytes) */
  int ignore_merges;      /* a piece that is a whole token is that token */
  int nfc;                /* the normalizer: text in Unicode NFC before pre-tokenizing */
  int32_t unk;            /* id for bytes without a token, -1: none (an error) */
  int nsteps;
  fm_pretok_step step[FM_PRETOK_MAX];
  pcre2_code *added_re;   /* the added tokens, longest first, or NULL */
  pcre2_match_data *added_md;
  fm_strmap added;        /* added token content -> id */
  /* per-word cache: piece bytes -> offset in cache_ids of [count, ids...] */
  fm_strmap cache;
  int32_t *cache_ids;
  size_t ncache_ids, cache_cap;
  /* merge scratch, grown as pieces need */
  struct fm_bpe_sym *sym;
  struct fm_bpe_merge *heap;
  size_t scratch_cap;
} fm_bpe;

struct fm_tokenizer {
  fm_tok_kind kind;
  char path[4096];
  int vocab;
  uint64_t digest[2];
  /* bytes of every token, for decoding: id i is tok_bytes[tok_off[i] .. tok_off[i+1]) */
  uint8_t *tok_bytes;
  uint64_t *tok_off;
  uint8_t *tok_missing;   /* [vocab] 1: no token has this id */
  fm_strmap names;        /* the file's spelling of each token -> id */
  int nspecial;
  int32_t *special_id;
  char **special_name;
  fm_bpe *bpe;
  fm_spm *spm;
};

/* bpe_load.c: fill t (kind BPE) from a tokenizer.json, or from vocab.json + merges.txt. */
fm_err fm_bpe_load_json(fm_tokenizer *t, const char *path);
fm_err fm_bpe_load_gpt2(fm_tokenizer *t, const char *vocab_path, const char *merges_path);
void fm_bpe_free(fm_bpe *b);
/* bpe.c */
fm_err fm_bpe_encode(fm_bpe *b, const uint8_t *text, size_t n, fm_ids *out);
/* The pattern of GPT-2's ByteLevel pre-tokenizer. */
extern const char fm_gpt2_pattern[];
/* Compile a pre-tokenizer or added-token pattern (UTF, Unicode properties, JIT when
 * available); what names the pattern's place in messages. */
fm_err fm_regex_compile(const char *pattern, size_t len, int literal, const char *what, pcre2_code **re,
                        pcre2_match_data **md);

#endif
