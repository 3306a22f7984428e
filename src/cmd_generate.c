/* cmd_generate.c - `fedmoe generate (--checkpoint RUNFILE [--client C] | --model DIR)
 * --prompt TEXT [--tokens N] [--temperature T] [--top-p P] [--seed S] [--tokenizer T]`:
 * the continuation of a prompt by the model of a run file's latest checkpoint, or of
 * a Hugging Face folder (the same models `fedmoe eval` scores: cmd_model.c).
 *
 * The prompt is encoded by the run's or the folder's tokenizer (as eval reads its
 * text; no special tokens added) and the model continues it through the decoder's
 * key/value cache (src/nn/model_decode.c), one token per step drawn by the sampler
 * (src/nn/sample.c: greedy at temperature 0, else the tempered softmax cut to its
 * top-p nucleus, from the counter-based stream of (seed, step): the same seed gives
 * the same text). It stops after N tokens, when the context is full, or at the
 * tokenizer's end-of-text token. stdout gets the continuation's text and a newline;
 * stderr a line with the counts, the speed and why it stopped. Rank 0 does the work;
 * the other ranks only agree on the outcome. Nothing is written to any file. */
#include "cli.h"

#include "fedmoe/data.h"
#include "fedmoe/decode.h"
#include "fedmoe/fl.h"
#include "fedmoe/nn_threads.h"
#include "fedmoe/tokenizer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PREFILL_ROWS = 64 }; /* prompt tokens per decoder step */

typedef struct {
  int tokens;
  float temperature, top_p;
  uint64_t seed;
} gen_args;

/* The numeric options, checked before any file is read. */
static fm_err parse_args(const fm_cli *cli, gen_args *a) {
  a->tokens = 64;
  a->temperature = 1.0f;
  a->top_p = 1.0f;
  a->seed = 0;
  char *end;
  if (!cli->prompt) FM_ERROR(FM_ERR_ARG, "'fedmoe generate' needs --prompt TEXT");
  if (cli->tokens) {
    errno = 0;
    long v = strtol(cli->tokens, &end, 10);
    if (end == cli->tokens || *end || errno || v < 1 || v > 1 << 30)
      FM_ERROR(FM_ERR_ARG, "--tokens %s: must be a whole number >= 1", cli->tokens);
    a->tokens = (int)v;
  }
  if (cli->temperature) {
    double v = strtod(cli->temperature, &end);
    if (end == cli->temperature || *end || !isfinite(v) || v < 0 || v > 1e6)
      FM_ERROR(FM_ERR_ARG, "--temperature %s: must be a number >= 0 (0: greedy)", cli->temperature);
    a->temperature = (float)v;
  }
  if (cli->top_p) {
    double v = strtod(cli->top_p, &end);
    if (end == cli->top_p || *end || !(v > 0 && v <= 1))
      FM_ERROR(FM_ERR_ARG, "--top-p %s: must be in (0, 1] (1: the whole distribution)", cli->top_p);
    a->top_p = (float)v;
  }
  if (cli->seed) {
    errno = 0;
    unsigned long long v = strtoull(cli->seed, &end, 10);
    if (end == cli->seed || *end || errno || strchr(cli->seed, '-'))
      FM_ERROR(FM_ERR_ARG, "--seed %s: must be a whole number 0..%llu", cli->seed, (unsigned long long)UINT64_MAX);
    a->seed = (uint64_t)v;
  }
  return FM_OK;
}

/* The tokenizer's end-of-text token, by the names the families spell it, or -1 */
static int32_t end_of_text(const fm_tokenizer *t, int V, const char **name) {
  static const char *const names[] = {"<|endoftext|>", "<|end_of_text|>", "</s>"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    int32_t id = fm_tokenizer_find(t, names[i]);
    if (id >= 0 && id < V) {
      *name = names[i];
      return id;
    }
  }
  *name = NULL;
  return -1;
}

/* The prompt's ids, checked against the model: not empty, in the vocabulary, within
 * the context. */
static fm_err encode_prompt(const fm_cli *cli, const fm_tokenizer *t, const fm_model_shape *s, fm_ids *ids) {
  const char *p = cli->prompt;
  fm_err err = fm_tokenizer_encode(t, (const uint8_t *)p, strlen(p), ids);
  if (err) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_error_message());
    return fm_error_set(__FILE__, __LINE__, __func__, err, "--prompt: %s", msg);
  }
  if (ids->n == 0)
    FM_ERROR(FM_ERR_ARG, "--prompt '%.60s' tokenizes to nothing (%s tokenizer): give some text to continue", p,
             fm_tokenizer_kind_name(t));
  if (ids->n > (size_t)s->context)
    FM_ERROR(FM_ERR_ARG, "--prompt: %zu tokens, more than the model's context of %d", ids->n, s->context);
  for (size_t i = 0; i < ids->n; i++)
    if (ids->v[i] >= s->vocab)
      FM_ERROR(FM_ERR_DATA, "--prompt: token %d at position %zu is outside the model's vocabulary 0..%d (tokenizer %s)",
               ids->v[i], i, s->vocab - 1, fm_tokenizer_kind_name(t));
  return FM_OK;
}

/* The continuation's text: the bytes that decoding prompt + continuation adds to the
 * prompt's own (SentencePiece drops a leading space of a text decoded alone), or the
 * continuation decoded alone when the prompt's bytes are not a prefix. */
static fm_err continuation_text(const fm_tokenizer *t, const fm_ids *prompt, const int32_t *out, int n,
                                uint8_t **text, size_t *len) {
  int32_t *all = malloc((prompt->n + (size_t)n + 1) * sizeof *all);
  if (!all) FM_ERROR(FM_ERR_MEM, "the generated ids");
  memcpy(all, prompt->v, prompt->n * sizeof *all);
  memcpy(all + prompt->n, out, (size_t)n * sizeof *all);
  uint8_t *a = NULL, *b = NULL;
  size_t alen = 0, blen = 0;
  fm_err err = fm_tokenizer_decode(t, prompt->v, prompt->n, &a, &alen);
  if (!err) err = fm_tokenizer_decode(t, all, prompt->n + (size_t)n, &b, &blen);
  free(all);
  if (!err && blen >= alen && !memcmp(a, b, alen)) {
    memmove(b, b + alen, blen - alen + 1);
    *text = b;
    *len = blen - alen;
    b = NULL;
  } else if (!err) {
    err = fm_tokenizer_decode(t, out, (size_t)n, text, len);
  }
  free(a);
  free(b);
  return err;
}

static const char *stop_reason(const fm_gen_result *r, const gen_args *a, const fm_model_shape *s,
                               const char *eos, char *buf, size_t len) {
  if (r->stop == FM_GEN_EOS) snprintf(buf, len, "the end-of-text token %s", eos);
  else if (r->stop == FM_GEN_CONTEXT) snprintf(buf, len, "the context length %d reached", s->context);
  else snprintf(buf, len, "--tokens %d reached", a->tokens);
  return buf;
}

static fm_err generate_rank0(const fm_cli *cli) {
  gen_args a;
  FM_CHECK(parse_args(cli, &a));
  fm_cli_model cm;
  fm_tokenizer *tok = NULL;
  fm_ids ids = {0};
  fm_decoder *d = NULL;
  int32_t *out = NULL;
  uint8_t *text = NULL;
  size_t tlen = 0;
  fm_err err = fm_cli_model_prepare(cli, &cm);
  const fm_model_shape *s = &cm.shape;
  if (!err) {
    char spec[FM_PATH_MAX];
    if (cli->tokenizer) snprintf(spec, sizeof spec, "%s", cli->tokenizer);
    else if (cm.folder) fm_tokenizer_spec_dir(cm.source, spec, sizeof spec);
    else fm_tokenizer_spec(&cm.cfg, spec, sizeof spec);
    err = fm_tokenizer_open(&tok, spec);
  }
  if (!err) err = encode_prompt(cli, tok, s, &ids);
  if (!err) err = fm_cli_model_create(&cm, 1, 1); /* weights only: the decoder has its own activations */
  const char *eos_name = NULL;
  fm_gen_opts o = {.max_new = a.tokens,
                   .sampler = {.temperature = a.temperature, .top_p = a.top_p, .seed = a.seed, .vocab = s->vocab}};
  if (!err) {
    fm_nn_set_threads(cm.have_cfg ? cm.cfg.run.threads : 1);
    o.eos = end_of_text(tok, s->vocab, &eos_name);
    if (fm_tokenizer_vocab(tok) < s->vocab) o.sampler.vocab = fm_tokenizer_vocab(tok);
    const int rows = ids.n < PREFILL_ROWS ? (int)ids.n : PREFILL_ROWS;
    const long need = (long)ids.n + a.tokens; /* the cache a generation can fill, at most the context */
    err = fm_decoder_create(&d, cm.m, rows, need < s->context ? (int)need : s->context);
  }
  fm_gen_result r = {0};
  if (!err) err = fm_calloc(&out, (size_t)a.tokens, sizeof *out, "the generated ids");
  if (!err) err = fm_generate(d, ids.v, (int)ids.n, &o, out, &r);
  if (!err) err = continuation_text(tok, &ids, out, r.generated, &text, &tlen);
  if (!err) {
    fwrite(text, 1, tlen, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    char why[128];
    if (cm.folder) fprintf(stderr, "generate %s (Hugging Face folder)", cm.source);
    else fprintf(stderr, "generate %s round %d strategy %s", cm.source, cm.round, cm.st->name);
    if (cm.client >= 0) fprintf(stderr, " client %d%s", cm.client, cm.allocated ? "" : " (never trained: initial values)");
    if (cm.server) fprintf(stderr, " (the server's full model)");
    fprintf(stderr, ", tokenizer %s%s%s", fm_tokenizer_kind_name(tok), *fm_tokenizer_path(tok) ? " " : "",
            fm_tokenizer_path(tok));
    if (eos_name) fprintf(stderr, ", end of text %s (id %d)", eos_name, o.eos);
    fputc('\n', stderr);
    fprintf(stderr, "generate: prompt %d tokens in %.3f s, %d new tokens in %.3f s (%.1f tokens/s, %d thread%s); "
            "stopped: %s\n", r.prompt, r.prefill_s, r.generated, r.decode_s,
            r.decode_s > 0 ? r.generated / r.decode_s : 0.0, fm_nn_threads(), fm_nn_threads() == 1 ? "" : "s",
            stop_reason(&r, &a, s, eos_name, why, sizeof why));
  }
  free(text);
  free(out);
  fm_decoder_free(d);
  fm_ids_free(&ids);
  fm_tokenizer_free(tok);
  fm_cli_model_free(&cm);
  return err;
}

fm_err fm_cmd_generate(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_err err = rank == 0 ? generate_rank0(cli) : FM_OK;
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
