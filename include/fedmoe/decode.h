/* decode.h - text generation: the model's inference forward with a key/value cache,
 * next-token sampling, and the generation loop.
 *
 * A decoder runs one sequence through a model (fm_model, every family) a few tokens
 * at a time: each step embeds the new tokens at the positions after those already
 * seen, and their attention reads the keys and values of every earlier position
 * from the cache instead of recomputing the prefix. A step's logits equal those of
 * fm_model_forward over the whole sequence at the same positions (the same kernels
 * on the same rows; tests/unit/test_decode.c checks it for every family). The
 * decoder reads the model's weights and route masks at every step and writes none
 * of the model's state. */
#ifndef FEDMOE_DECODE_H
#define FEDMOE_DECODE_H

#include "fedmoe/error.h"
#include "fedmoe/model.h"

#include <stdint.h>

typedef struct fm_decoder fm_decoder;

/* A decoder of m taking up to rows tokens per step, whose cache holds positions
 * 0..positions-1 (1 <= rows <= positions <= the model's context; 0: the context). A
 * cache of the positions a generation needs, not the whole context, keeps long-context
 * models small: the cache takes 2 layers x positions x kv_heads x head_dim floats. */
fm_err fm_decoder_create(fm_decoder **d, fm_model *m, int rows, int positions);
void fm_decoder_free(fm_decoder *d);
/* Forget the sequence: the next step starts at position 0. */
void fm_decoder_reset(fm_decoder *d);
int fm_decoder_pos(const fm_decoder *d);     /* positions filled so far */
int fm_decoder_context(const fm_decoder *d); /* positions the cache holds (its capacity) */
int fm_decoder_rows(const fm_decoder *d);    /* tokens a step may take */
int fm_decoder_vocab(const fm_decoder *d);   /* the model's vocabulary: logits per row */

/* Feed tok[0..n) (1 <= n <= rows, ids < vocab) at the next n positions. *logits
 * points at the decoder's own [n, vocab] logits of those positions (all != 0), or at
 * the [1, vocab] logits of the last one (all == 0); valid until the next step. A
 * step past the context fails (FM_ERR_ARG) and leaves the cache as it was. */
fm_err fm_decoder_step(fm_decoder *d, const int32_t *tok, int n, int all, const float **logits);

/* ---- sample.c: the next token from a row of logits ----
 * temperature 0: the largest logit (the lowest id of equal ones). Otherwise the
 * softmax of logits / temperature, cut to its nucleus when top_p < 1 (the fewest
 * most probable ids, ties in id order, whose probabilities sum to at least top_p of
 * the whole), and one draw from it with the uniform number of the counter-based
 * stream (seed, step): the same seed and step give the same token on any machine.
 * Ids at or above vocab are never drawn (a tokenizer smaller than the model's
 * vocabulary cannot spell them). */
typedef struct {
  float temperature; /* >= 0 */
  float top_p;       /* (0, 1] */
  uint64_t seed;
  int vocab;         /* ids 0..vocab-1 may be drawn */
} fm_sampler;

/* logits [V]; work: fm_sample_scratch(V) bytes of scratch. */
size_t fm_sample_scratch(int V);
int32_t fm_sample(const fm_sampler *s, const float *logits, int V, long step, void *work);

/* ---- generate.c: the loop ---- */
typedef enum {
  FM_GEN_TOKENS,  /* max_new tokens generated */
  FM_GEN_CONTEXT, /* the context is full */
  FM_GEN_EOS      /* the end-of-text token was drawn (not kept) */
} fm_gen_stop;

typedef struct {
  int max_new;       /* >= 1 */
  int32_t eos;       /* the end-of-text id, or -1 when the tokenizer has none */
  fm_sampler sampler;
} fm_gen_opts;

typedef struct {
  int prompt, generated; /* tokens */
  double prefill_s, decode_s; /* wall seconds of the prompt's pass and of the rest */
  fm_gen_stop stop;
} fm_gen_result;

/* From a reset decoder: the prompt (1..positions tokens), then up to max_new tokens
 * into out[max_new], token k drawn at step k. A prompt of n tokens leaves room for
 * positions - n + 1 new ones (the last one is drawn but never fed): a decoder of
 * min(context, n + max_new) positions stops at the context only when that is what
 * runs out (FM_GEN_CONTEXT). */
fm_err fm_generate(fm_decoder *d, const int32_t *prompt, int n, const fm_gen_opts *o, int32_t *out,
                   fm_gen_result *res);

#endif
