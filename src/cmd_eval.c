/* cmd_eval.c - `fedmoe eval (--checkpoint RUNFILE [--client N] | --model DIR) --text
 * FILE [--context N] [--tokenizer T] [--device cpu|cuda [--precision P]]`: the mean
 * next-token cross-entropy (nats) of the model in the run file's latest checkpoint, or
 * of a Hugging Face folder, over a text file, on the CPU or rank 0's GPU.
 *
 * FILE is read through a tokenizer (--tokenizer; else the run's model.tokenizer, or
 * the folder's own tokenizer; bytes when there is none), tokenized once with no
 * special tokens, and its ids cut into consecutive, non-overlapping blocks of N + 1
 * tokens (N: --context, default the model's context; a last partial block is
 * dropped); in each block the first N tokens predict the next ones, and the figure is
 * the mean over every prediction of every block. Which model: cmd_model.c (fedbiot:
 * the server's full model, the paper's figure). Rank 0 reads and computes; the other
 * ranks only agree on the outcome. */
#include "config.h"

#include "cli.h"

#include "fedmoe/data.h"
#include "fedmoe/fl.h"
#include "fedmoe/io.h"
#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EVAL_BATCH = 16 }; /* blocks per forward pass */

/* Mean cross-entropy of m over the blocks of T + 1 ids of the text. */
static fm_err eval_blocks(fm_model *m, const int32_t *text, size_t len, int T, double *mean, long *nblocks) {
  const size_t blk = (size_t)T + 1;
  const long nb = (long)(len / blk);
  int32_t *tok = NULL, *tgt = NULL;
  FM_CALLOC(tok, (size_t)EVAL_BATCH * T, "eval tokens");
  fm_err err = fm_calloc(&tgt, (size_t)EVAL_BATCH * T, sizeof *tgt, "eval targets");
  double sum = 0.0;
  for (long b0 = 0; !err && b0 < nb; b0 += EVAL_BATCH) {
    const int nbat = nb - b0 < EVAL_BATCH ? (int)(nb - b0) : EVAL_BATCH;
    for (int b = 0; b < nbat; b++) {
      const int32_t *p = text + (size_t)(b0 + b) * blk;
      for (int t = 0; t < T; t++) {
        tok[(size_t)b * T + t] = p[t];
        tgt[(size_t)b * T + t] = p[t + 1];
      }
    }
    float ce = 0;
    err = fm_model_forward(m, tok, tgt, nbat, T, &ce, NULL);
    sum += (double)ce * nbat; /* every block has T predictions: mean of means */
  }
  free(tok);
  free(tgt);
  FM_CHECK(err);
  *mean = sum / (double)nb;
  *nblocks = nb;
  return FM_OK;
}

static fm_err context_arg(const fm_cli *cli, int model_ctx, int *T) {
  *T = model_ctx;
  if (!cli->context) return FM_OK;
  char *end;
  long v = strtol(cli->context, &end, 10);
  if (end == cli->context || *end || v < 1 || v > model_ctx)
    FM_ERROR(FM_ERR_ARG, "--context %s: must be 1..%d (the model's context)", cli->context, model_ctx);
  *T = (int)v;
  return FM_OK;
}

/* The text as the tokenizer reads it, checked against the model's vocabulary and
 * the block length before any model work. */
static fm_err read_ids(const fm_cli *cli, const fm_cli_model *cm, int T, fm_ids *ids, int *bytes) {
  char spec[FM_PATH_MAX];
  if (cli->tokenizer) snprintf(spec, sizeof spec, "%s", cli->tokenizer);
  else if (cm->folder) fm_tokenizer_spec_dir(cm->source, spec, sizeof spec);
  else fm_tokenizer_spec(&cm->cfg, spec, sizeof spec);
  fm_tokenizer *tok = NULL;
  char *text = NULL;
  size_t len = 0;
  fm_err err = fm_tokenizer_open(&tok, spec);
  if (!err) err = fm_read_file(cli->text, &text, &len);
  if (!err && (err = fm_tokenizer_encode(tok, (const uint8_t *)text, len, ids))) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", fm_error_message());
    err = fm_error_set(__FILE__, __LINE__, __func__, err, "--text %s: %s", cli->text, msg);
  }
  *bytes = tok && fm_tokenizer_kind(tok) == FM_TOK_BYTES;
  const int V = cm->shape.vocab;
  if (!err && ids->n < (size_t)T + 1)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA,
                       "--text %s: %zu %s, shorter than one block of context + 1 = %d", cli->text, ids->n,
                       *bytes ? "bytes" : "tokens", T + 1);
  for (size_t i = 0; !err && i < ids->n; i++)
    if (ids->v[i] >= V)
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA,
                         "--text %s: %s %d at %s %zu is outside the model's vocabulary 0..%d", cli->text,
                         *bytes ? "byte" : "token", ids->v[i], *bytes ? "offset" : "position", i, V - 1);
  fm_tokenizer_free(tok);
  free(text);
  return err;
}

/* --device and --precision as run.device and run.precision: *dev is set when the GPU
 * opened (rank 0's alone: the other ranks do no model work) */
static fm_err open_device(const fm_cli *cli, fm_backend **dev) {
  *dev = NULL;
  const char *d = cli->device ? cli->device : "cpu", *p = cli->precision ? cli->precision : "fp32";
  if (strcmp(d, "cpu") && strcmp(d, "cuda")) FM_ERROR(FM_ERR_ARG, "--device %s: the devices are cpu and cuda", d);
  const int prec = !strcmp(p, "fp32") ? FM_PRECISION_FP32 : !strcmp(p, "tf32") ? FM_PRECISION_TF32
                   : !strcmp(p, "bf16") ? FM_PRECISION_BF16 : -1;
  if (prec < 0) FM_ERROR(FM_ERR_ARG, "--precision %s: the precisions are fp32, tf32 and bf16", p);
  if (!strcmp(d, "cpu")) {
    if (prec != FM_PRECISION_FP32) FM_ERROR(FM_ERR_ARG, "--precision %s needs --device cuda (the CPU computes in fp32)", p);
    return FM_OK;
  }
#ifndef FEDMOE_HAVE_CUDA
  FM_ERROR(FM_ERR_ARG, "--device cuda: this fedmoe was built without CUDA (configure it --with-cuda on a machine "
           "with the CUDA toolkit)");
#endif
  fm_config c;
  FM_CHECK(fm_config_init(&c));
  c.run.device = FM_DEVICE_CUDA;
  c.run.precision = prec;
  fm_err err = fm_cli_open_device(&c, MPI_COMM_SELF, dev);
  fm_config_free(&c);
  return err;
}

static fm_err eval_on(const fm_cli *cli) {
  if (!cli->text) FM_ERROR(FM_ERR_ARG, "'fedmoe eval' needs --text FILE");
  fm_cli_model cm;
  fm_ids ids = {0};
  int T = 0, bytes = 1;
  fm_err err = fm_cli_model_prepare(cli, &cm);
  const fm_model_shape *shape = &cm.shape;
  if (!err) err = context_arg(cli, shape->context, &T);
  if (!err) err = read_ids(cli, &cm, T, &ids, &bytes);
  if (!err) err = fm_cli_model_create(&cm, EVAL_BATCH, T);
  double mean = 0;
  long nb = 0;
  if (!err) {
    fm_nn_set_threads(cm.have_cfg ? cm.cfg.run.threads : 1);
    err = eval_blocks(cm.m, ids.v, ids.n, T, &mean, &nb);
  }
  if (!err) {
    if (cm.folder) {
      printf("eval %s (Hugging Face folder)", cm.source);
    } else {
      printf("eval %s round %d strategy %s", cm.source, cm.round, cm.st->name);
      if (cm.client >= 0) printf(" client %d%s", cm.client, cm.allocated ? "" : " (never trained: initial values)");
      if (cm.server)
        printf(" model: the server's full model (%d blocks: the bottom ones frozen after pretraining, the "
               "aggregated adapter on top; not the clients' emulator)", shape->layers);
    }
    if (cli->device && !strcmp(cli->device, "cuda"))
      printf(" on the GPU, %s", cli->precision ? cli->precision : "fp32");
    printf("\ntext %s: %ld blocks of %d %s, %ld predictions\n", cli->text, nb, T + 1, bytes ? "bytes" : "tokens",
           nb * T);
    printf("cross_entropy %.6f nats\n", mean);
    fflush(stdout);
  }
  fm_ids_free(&ids);
  fm_cli_model_free(&cm);
  return err;
}

static fm_err eval_rank0(const fm_cli *cli) {
  fm_backend *dev = NULL;
  FM_CHECK(open_device(cli, &dev));
  fm_err err = eval_on(cli);
  fm_cli_close_device(dev);
  return err;
}

fm_err fm_cmd_eval(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_err err = rank == 0 ? eval_rank0(cli) : FM_OK;
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
