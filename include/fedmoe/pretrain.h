/* pretrain.h - `fedmoe pretrain`: central, data-parallel training of a base model on
 * a public corpus, written as a Hugging Face folder with its tokenizer.
 *
 * Data parallel over every rank (rank 0 included). The global batch of step s is
 * train.batch / pretrain.micro_batch micro-batches, micro-batch j drawn from the
 * stream (seed, j, s, FM_RNG_PRETRAIN) out of the training split; rank p computes the
 * gradients of the micro-batches j = p, p + P, ... Each micro-batch's gradient (and its
 * loss) goes into the fixed-point sums of the aggregation engine (fm_agg, 2^-40), one
 * MPI_Allreduce of int64 sums them exactly, and every rank takes the same clipped
 * AdamW step on the mean: the weights are bit-identical for any rank count. (The
 * sums resolve 2^-40 of a gradient entry: far below float32's resolution of the
 * entries that matter; an entry at or above 2^22 is refused as divergence.)
 *
 * Splits: the last data.val_frac of every domain's tokens is validation, the rest
 * training (a domain too short for a window of train.seq_len + 1 tokens in a split
 * adds none to it). The validation loss is the mean over train.eval_batches
 * consecutive micro-batches of the validation split, the same windows every time.
 *
 * The run file (run.output; HDF5, written by rank 0, which holds the same state as
 * every rank):
 *   /                attrs fedmoe_version, format (FM_PRETRAIN_FORMAT), kind "pretrain",
 *                    config (the resolved text), seed, ranks, start_time, tokenizer,
 *                    parameters, corpus_tokens, train_tokens, val_tokens
 *   /metrics/steps   compound, extendible: step, train_loss, val_loss (NaN between
 *                    evaluations), lr, grad_norm (before clipping), tokens (so far),
 *                    tokens_per_s (this step's), wall_s
 *   /checkpoints     attr latest (the step of the newest complete checkpoint)
 * A checkpoint is "<run file>.ckpt/sNNNNNNNN.h5" (written as .tmp, renamed): params,
 * adam_m, adam_v float32 [parameters] in the model's tensor order, each with a
 * checksum attribute (fm_hash64), and attrs step, adam_step. Resuming continues after
 * the latest one, bit-identically; metrics rows after it are dropped first. */
#ifndef FEDMOE_PRETRAIN_H
#define FEDMOE_PRETRAIN_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"

#include <mpi.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define FM_PRETRAIN_FORMAT 1

typedef struct {
  const char *config_text; /* the resolved configuration, stored in the run file */
  int resume;              /* continue run.output from its latest checkpoint */
  int overwrite;           /* replace an existing run file / base folder (fedmoe's own only) */
  int quiet;
} fm_pretrain_opts;

typedef struct {
  long steps_done;
  double final_train, final_val; /* nats */
  double seconds, tokens_per_s;  /* this invocation */
} fm_pretrain_summary;

/* Collective over comm; errors agreed on every rank. */
fm_err fm_pretrain(const fm_config *cfg, const fm_pretrain_opts *opts, MPI_Comm comm, fm_pretrain_summary *sum);

/* ---- the pretrain run file (pretrain_file.c; serial: rank 0 only) ---- */
typedef struct {
  int64_t step;
  double train_loss, val_loss, lr, grad_norm;
  uint64_t tokens;
  double tokens_per_s, wall_s;
} fm_pretrain_row;

typedef struct fm_pretrain_file fm_pretrain_file;

/* Create (truncate) path; the root attributes as above. */
fm_err fm_pretrain_file_create(fm_pretrain_file **f, const char *path, const fm_config *cfg,
                               const char *config_text, int ranks, const char *tokenizer, size_t nparams);
/* Open path to continue it: a fedmoe pretrain run file of this format whose stored
 * configuration equals cfg but for the keys marked FM_RESUME_FREE (pretrain.steps not
 * with the cosine schedule); *latest: its newest complete checkpoint's step. */
fm_err fm_pretrain_file_open(fm_pretrain_file **f, const char *path, const fm_config *cfg, long *latest);
/* An integer attribute of the root group. */
fm_err fm_pretrain_file_set_count(fm_pretrain_file *f, const char *name, int64_t value);
fm_err fm_pretrain_file_append(fm_pretrain_file *f, const fm_pretrain_row *row);
/* Drop the metrics rows after step and the checkpoint files newer than it. */
fm_err fm_pretrain_file_truncate(fm_pretrain_file *f, long step);
/* Write the checkpoint of step (n values each), make it the latest, keep the newest
 * run.keep_last. */
fm_err fm_pretrain_file_checkpoint(fm_pretrain_file *f, long step, const float *params, const float *m,
                                   const float *v, size_t n, long adam_step);
/* Read the checkpoint of step; sizes and checksums checked. */
fm_err fm_pretrain_file_load(fm_pretrain_file *f, long step, float *params, float *m, float *v, size_t n,
                             long *adam_step);
fm_err fm_pretrain_file_close(fm_pretrain_file *f);
/* `fedmoe info` of a pretrain run file: attributes, steps recorded, the last
 * losses, the mean tokens/s, the latest checkpoint, the configuration. Serial. */
fm_err fm_pretrain_file_info(const char *path, FILE *out);

#endif
