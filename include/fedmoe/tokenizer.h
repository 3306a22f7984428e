/* tokenizer.h - text to token ids and back.
 *
 * A tokenizer is opened from model.tokenizer's value:
 *  - "bytes": every byte is its own token (vocabulary 256); the text is the ids.
 *  - a Hugging Face tokenizer.json whose model is BPE with the ByteLevel
 *    pre-tokenizer (GPT-2, Llama 3, SmolLM, Qwen, OLMoE): the text is split at the
 *    added tokens (leftmost, longest first), each other part is normalised (NFC, when
 *    the file's normalizer says so; no other normalizer is read) and split by the
 *    pre-tokenizer's regular expressions (its Split patterns, Digits, and ByteLevel's
 *    GPT-2 pattern when use_regex is true) and every piece is merged by rank, the
 *    lowest rank first, the leftmost of equal ranks first, on the piece's bytes;
 *  - GPT-2's own vocab.json with merges.txt beside it (the same, with the ByteLevel
 *    defaults and no added tokens);
 *  - a SentencePiece model (tokenizer.model: Llama 2, TinyLlama, Mixtral), encoded
 *    by libsentencepiece;
 *  - a directory: its tokenizer.json, else tokenizer.model, else vocab.json and
 *    merges.txt.
 * Encoding never adds special tokens (no BOS or EOS): the ids are the text's own.
 * Text must be valid UTF-8 (except for bytes, which takes anything).
 *
 * The digest is a hash of the tokenizer's file contents: ids cached under it are
 * the ids this tokenizer gives. */
#ifndef FEDMOE_TOKENIZER_H
#define FEDMOE_TOKENIZER_H

#include "fedmoe/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fm_tokenizer fm_tokenizer;

typedef enum { FM_TOK_BYTES, FM_TOK_BPE, FM_TOK_SPM } fm_tok_kind;

/* A growing array of token ids. */
typedef struct {
  int32_t *v;
  size_t n, cap;
} fm_ids;

fm_err fm_ids_push(fm_ids *ids, int32_t id);
void fm_ids_free(fm_ids *ids);

/* Open "bytes", a tokenizer file or a directory holding one. Errors name the file
 * and, for JSON, the line and the field. */
fm_err fm_tokenizer_open(fm_tokenizer **t, const char *spec);
void fm_tokenizer_free(fm_tokenizer *t);

fm_tok_kind fm_tokenizer_kind(const fm_tokenizer *t);
const char *fm_tokenizer_kind_name(const fm_tokenizer *t); /* bytes, bpe, sentencepiece */
const char *fm_tokenizer_path(const fm_tokenizer *t);      /* the file read ("" for bytes) */
/* Ids are 0 .. vocab-1 (added tokens included). */
int fm_tokenizer_vocab(const fm_tokenizer *t);
void fm_tokenizer_digest(const fm_tokenizer *t, uint64_t digest[2]);

/* Special tokens: the added tokens marked special (tokenizer.json) or the control
 * pieces (SentencePiece: <s>, </s>, ...), in id order. name is NUL-terminated. */
int fm_tokenizer_nspecial(const fm_tokenizer *t);
void fm_tokenizer_special(const fm_tokenizer *t, int i, const char **name, int32_t *id);
/* The id of the token spelled exactly name (a special token, say), or -1. */
int32_t fm_tokenizer_find(const fm_tokenizer *t, const char *name);

/* Append the ids of text[0..n) to out. Fails (FM_ERR_DATA) on invalid UTF-8, the
 * message naming the byte offset and line. */
fm_err fm_tokenizer_encode(const fm_tokenizer *t, const uint8_t *text, size_t n, fm_ids *out);
/* The bytes of ids[0..n) (malloc'ed, *len bytes, NUL-terminated). An id outside
 * 0..vocab-1 is an error naming its position. */
fm_err fm_tokenizer_decode(const fm_tokenizer *t, const int32_t *ids, size_t n, uint8_t **bytes,
                           size_t *len);

/* Offset of the first byte of p[0..n) that is not part of valid UTF-8, or n. */
size_t fm_utf8_invalid_at(const uint8_t *p, size_t n);

#endif
