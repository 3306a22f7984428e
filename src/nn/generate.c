/* generate.c - the generation loop: the prompt through the decoder in steps of the
 * decoder's rows, then one token at a time, each drawn from the logits of the one
 * before (sample.c) and fed back, until max_new tokens, the end of the context or
 * the end-of-text token. */
#include "fedmoe/decode.h"
#include "fedmoe/timer.h"

#include <stdlib.h>

fm_err fm_generate(fm_decoder *d, const int32_t *prompt, int n, const fm_gen_opts *o, int32_t *out,
                   fm_gen_result *res) {
  const int ctx = fm_decoder_context(d);
  res->prompt = n;
  res->generated = 0;
  res->prefill_s = res->decode_s = 0.0;
  res->stop = FM_GEN_TOKENS;
  if (n < 1 || n > ctx) FM_ERROR(FM_ERR_ARG, "a prompt of %d tokens: the context holds 1..%d", n, ctx);
  if (o->max_new < 1) FM_ERROR(FM_ERR_ARG, "%d tokens to generate: need at least 1", o->max_new);
  if (fm_decoder_pos(d) != 0) FM_ERROR(FM_ERR_INTERNAL, "generation from a decoder that is not reset");
  const int rows = fm_decoder_rows(d), V = fm_decoder_vocab(d);
  const float *logits = NULL;
  double t0 = fm_wtime();
  for (int p = 0; p < n; p += rows) /* the prompt in as few steps as the decoder takes */
    FM_CHECK(fm_decoder_step(d, prompt + p, n - p < rows ? n - p : rows, 0, &logits));
  double t1 = fm_wtime();
  res->prefill_s = t1 - t0;
  void *work = malloc(fm_sample_scratch(V));
  if (!work) FM_ERROR(FM_ERR_MEM, "sampling scratch for %d ids", V);
  fm_err err = FM_OK;
  for (int k = 0; k < o->max_new; k++) {
    const int32_t t = fm_sample(&o->sampler, logits, V, k, work);
    if (t == o->eos) {
      res->stop = FM_GEN_EOS;
      break;
    }
    out[res->generated++] = t;
    if (res->generated == o->max_new) break;
    if (fm_decoder_pos(d) == ctx) {
      res->stop = FM_GEN_CONTEXT;
      break;
    }
    if ((err = fm_decoder_step(d, &t, 1, 0, &logits))) break;
  }
  free(work);
  res->decode_s = fm_wtime() - t1;
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}
