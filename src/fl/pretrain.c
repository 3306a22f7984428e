/* pretrain.c - `fedmoe pretrain`: data-parallel central training of a base model
 * (include/fedmoe/pretrain.h says how it stays bit-identical for any rank count). */
#include "fedmoe/pretrain.h"

#include "fedmoe/data.h"
#include "fedmoe/fl.h"
#include "fedmoe/hf.h"
#include "fedmoe/io.h"
#include "fedmoe/log.h"
#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"
#include "fedmoe/timer.h"
#include "fedmoe/watchdog.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCHED(what, stmt) \
  do {                      \
    fm_watch_enter(what);   \
    stmt;                   \
    fm_watch_leave();       \
  } while (0)

typedef struct {
  const fm_config *cfg;
  const fm_pretrain_opts *opts;
  MPI_Comm comm;
  int rank, P;
  fm_corpus corpus;
  fm_split train, val;
  fm_model *model;
  fm_adamw opt;
  fm_agg agg, eval_agg;     /* [gradients, loss]; [loss] */
  int32_t *tokens, *targets;
  int micro;                /* micro-batches per step */
  fm_pretrain_file *pf;     /* rank 0 */
  fm_output_lock *lock;
} pt_t;

/* Bad input found from the configuration alone: the same on every rank. */
static fm_err check_config(const fm_config *c) {
  const fm_key *k = fm_config_find_key("data.path");
  if (!c->data.path[0])
    FM_CONFIG_ERROR(c, "data.path", "is empty: pretraining needs a corpus (a folder of domains or a text file)");
  if (!strcmp(c->origin[k - fm_config_keys], "default"))
    FM_CONFIG_ERROR(c, "data.path", "pretraining needs a corpus: set data.path to the public text to train on "
                    "(a folder of domains or a file; the default '%s' is the federated clients' corpus)", c->data.path);
  if (!c->pretrain.output[0]) FM_CONFIG_ERROR(c, "pretrain.output", "is empty: name the folder the base goes to");
  if (c->train.batch % c->pretrain.micro_batch)
    FM_CONFIG_ERROR(c, "pretrain.micro_batch", "%d does not divide train.batch %d (the global batch is a whole "
                    "number of micro-batches)", c->pretrain.micro_batch, c->train.batch);
  if (!(c->data.val_frac > 0 && c->data.val_frac < 1))
    FM_CONFIG_ERROR(c, "data.val_frac", "is %g: pretraining keeps that share of every domain for validation, in "
                    "(0,1)", c->data.val_frac);
  return FM_OK;
}

/* The base folder: absent, empty, or (with --overwrite) a model folder of ours. */
static fm_err check_output_dir(const fm_config *c, int overwrite) {
  const char *dir = c->pretrain.output;
  struct stat st;
  if (stat(dir, &st) != 0) return FM_OK;
  if (!S_ISDIR(st.st_mode)) FM_CONFIG_ERROR(c, "pretrain.output", "'%s' exists and is not a folder", dir);
  DIR *d = opendir(dir);
  int empty = 1;
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
  if (d) closedir(d);
  if (empty) return FM_OK;
  if (!overwrite)
    FM_CONFIG_ERROR(c, "pretrain.output", "'%s' exists and is not empty: pass --overwrite to replace the base in "
                    "it, or choose another pretrain.output", dir);
  char cj[FM_PATH_MAX + 16];
  snprintf(cj, sizeof cj, "%s/config.json", dir);
  if (access(cj, F_OK) != 0)
    FM_CONFIG_ERROR(c, "pretrain.output", "'%s' is not empty and holds no config.json: fedmoe replaces only model "
                    "folders, even with --overwrite", dir);
  return FM_OK;
}

/* Training and validation splits: per domain, its last val_frac tokens validate. */
static fm_err make_splits(pt_t *p) {
  const fm_corpus *cp = &p->corpus;
  uint64_t W = (uint64_t)p->cfg->train.seq_len + 1;
  FM_CALLOC(p->train.spans, (size_t)cp->ndomains + 1, "training spans");
  FM_CALLOC(p->val.spans, (size_t)cp->ndomains + 1, "validation spans");
  for (int d = 0; d < cp->ndomains; d++) {
    uint64_t s = cp->domain_start[d], n = cp->domain_len[d];
    uint64_t nv = (uint64_t)floor((double)n * p->cfg->data.val_frac);
    if (nv >= W) p->val.spans[p->val.nspans++] = (fm_span){s + n - nv, nv, d};
    else nv = 0;
    if (n - nv >= W) p->train.spans[p->train.nspans++] = (fm_span){s, n - nv, d};
  }
  for (int i = 0; i < p->train.nspans; i++) p->train.tokens += p->train.spans[i].len;
  for (int i = 0; i < p->val.nspans; i++) p->val.tokens += p->val.spans[i].len;
  if (!p->train.nspans || !p->val.nspans)
    FM_CONFIG_ERROR(p->cfg, "data.path", "'%s': %llu tokens in %d domains hold no %s window of train.seq_len + 1 = "
                    "%llu tokens", p->cfg->data.path, (unsigned long long)cp->size, cp->ndomains,
                    p->train.nspans ? "validation" : "training", (unsigned long long)W);
  return FM_OK;
}

static fm_err load_data(pt_t *p) {
  fm_err err = p->rank == 0 ? fm_corpus_load(&p->corpus, p->cfg) : FM_OK;
  FM_CHECK(fm_error_agree(err, &p->comm));
  FM_CHECK(fm_corpus_bcast(&p->corpus, 0, &p->comm));
  if (!p->corpus.ndomains) /* the loader refuses an empty corpus; a second guard costs nothing */
    FM_CHECK(fm_error_agree(fm_config_error(p->cfg, "data.path", "'%s' holds no text", p->cfg->data.path), &p->comm));
  FM_CHECK(fm_error_agree(make_splits(p), &p->comm));
  return FM_OK;
}

/* Every rank broadcasts the model's values and AdamW state from rank 0 (model.init,
 * a resumed checkpoint). */
static fm_err bcast_state(pt_t *p, int with_opt) {
  float *bufs[3] = {fm_model_class_params(p->model, 0), p->opt.m, p->opt.v};
  size_t n = fm_model_class_numel(p->model, 0);
  for (int b = 0; b < (with_opt ? 3 : 1); b++)
    for (size_t o = 0; o < n; o += (size_t)1 << 30) {
      size_t len = n - o < ((size_t)1 << 30) ? n - o : ((size_t)1 << 30);
      FM_MPI(MPI_Bcast(bufs[b] + o, (int)len, MPI_FLOAT, 0, p->comm));
    }
  if (with_opt) FM_MPI(MPI_Bcast(&p->opt.step, 1, MPI_LONG, 0, p->comm));
  return FM_OK;
}

static fm_err setup_model(pt_t *p) {
  const fm_config *c = p->cfg;
  fm_model_shape shape;
  FM_CHECK(fm_model_shape_from_config(c, &shape));
  int mb = c->pretrain.micro_batch, T = c->train.seq_len;
  FM_CHECK(fm_model_create(&p->model, &shape, mb, T, 1, NULL, NULL)); /* one class: everything trains */
  FM_CHECK(fm_model_init(p->model, (uint64_t)c->run.seed));
  size_t n = fm_model_class_numel(p->model, 0);
  FM_CHECK(fm_adamw_create(&p->opt, n));
  size_t seg[2] = {n, 1}, one = 1;
  FM_CHECK(fm_agg_create(&p->agg, seg, 2, 1));
  FM_CHECK(fm_agg_create(&p->eval_agg, &one, 1, 1));
  FM_CALLOC(p->tokens, (size_t)mb * T, "batch tokens");
  FM_CALLOC(p->targets, (size_t)mb * T, "batch targets");
  p->micro = c->train.batch / mb;
  return FM_OK;
}

/* model.init: continue from a folder's weights (rank 0 reads, everyone gets them). */
static fm_err load_init(pt_t *p) {
  if (!p->cfg->model.init[0]) return FM_OK;
  fm_err err = p->rank == 0 ? fm_hf_load(p->model, p->cfg->model.init, p->cfg->model.upcycle) : FM_OK;
  FM_CHECK(fm_error_agree(err, &p->comm));
  FM_CHECK(fm_error_agree(bcast_state(p, 0), &p->comm));
  return FM_OK;
}

/* One optimizer step: this rank's micro-batches into the fixed-point sums, one
 * allreduce, the same AdamW step everywhere. *loss: the step's mean training loss. */
static fm_err train_step(pt_t *p, long step, double *loss, double *gnorm) {
  const fm_config *c = p->cfg;
  int mb = c->pretrain.micro_batch, T = c->train.seq_len;
  float *g = fm_model_class_grads(p->model, 0);
  fm_agg_zero(&p->agg);
  fm_err err = FM_OK;
  for (int j = p->rank; j < p->micro && !err; j += p->P) {
    fm_rng r;
    fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)j, (uint32_t)step, FM_RNG_PRETRAIN);
    float ce = 0;
    err = fm_batch_sample(&p->corpus, &p->train, &r, mb, T, p->tokens, p->targets, NULL);
    fm_model_zero_grads(p->model);
    if (!err) err = fm_model_forward(p->model, p->tokens, p->targets, mb, T, &ce, NULL);
    if (!err) err = fm_model_backward(p->model);
    if (!err) err = fm_agg_add(&p->agg, 0, g, 1.0);
    if (!err) err = fm_agg_add(&p->agg, 1, &ce, 1.0);
  }
  /* a rank that failed must not leave the others in the allreduce */
  FM_CHECK(fm_error_agree(err, &p->comm));
  WATCHED("pretrain: gradient allreduce", err = fm_agg_allreduce(&p->agg, p->comm));
  FM_CHECK(fm_error_agree(err, &p->comm));
  float lossf = 0, *out[2] = {g, &lossf};
  fm_agg_result(&p->agg, out); /* the mean over the step's micro-batches */
  *loss = lossf;
  *gnorm = fm_model_grad_norm(p->model, 1u);
  fm_adamw_hparams h = {fm_lr_at(c, step - 1, c->pretrain.steps, (float)c->train.lr), (float)c->train.beta1,
                        (float)c->train.beta2, (float)c->train.eps, (float)c->train.weight_decay,
                        fm_model_clip_factor(p->model, 1u, c->train.grad_clip)};
  fm_adamw_step(&p->opt, p->model, 0, &h);
  return FM_OK;
}

/* Mean loss over train.eval_batches consecutive validation micro-batches (the split
 * from its start, wrapping), dealt to the ranks and summed in fixed point. */
static fm_err validate(pt_t *p, double *loss) {
  const fm_config *c = p->cfg;
  int mb = c->pretrain.micro_batch, T = c->train.seq_len;
  long nb = (fm_split_windows(&p->val, T) + mb - 1) / mb;
  fm_agg_zero(&p->eval_agg);
  fm_err err = FM_OK;
  for (int j = p->rank; j < c->train.eval_batches && !err; j += p->P) {
    int k = fm_batch_sequential(&p->corpus, &p->val, j % nb, mb, T, p->tokens, p->targets, NULL);
    for (int b = k; b < mb; b++) /* a short last micro-batch: its missing rows are not scored */
      for (int t = 0; t < T; t++) p->tokens[(size_t)b * T + t] = 0, p->targets[(size_t)b * T + t] = -1;
    float ce = 0;
    err = fm_model_forward(p->model, p->tokens, p->targets, mb, T, &ce, NULL);
    if (!err) err = fm_agg_add(&p->eval_agg, 0, &ce, 1.0);
  }
  FM_CHECK(fm_error_agree(err, &p->comm));
  WATCHED("pretrain: validation allreduce", err = fm_agg_allreduce(&p->eval_agg, p->comm));
  FM_CHECK(fm_error_agree(err, &p->comm));
  float v = NAN, *out[1] = {&v};
  fm_agg_result(&p->eval_agg, out);
  *loss = v;
  return FM_OK;
}

/* Copy the file src to dst (as dst.tmp, renamed). */
static fm_err copy_file(const char *src, const char *dst) {
  char *text = NULL;
  size_t n = 0;
  FM_CHECK(fm_read_file(src, &text, &n));
  char tmp[FM_PATH_MAX + 80];
  snprintf(tmp, sizeof tmp, "%s.tmp", dst);
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(text, 1, n, f) == n;
  if (f && fclose(f)) ok = 0;
  free(text);
  if (!ok || rename(tmp, dst)) {
    unlink(tmp);
    FM_ERROR(FM_ERR_IO, "cannot write %s (copying %s): %s", dst, src, strerror(errno));
  }
  return FM_OK;
}

/* The tokenizer the base was trained with, beside its weights, under the name
 * model.init looks for (tokenizer.json, tokenizer.model, or vocab.json + merges.txt). */
static fm_err copy_tokenizer(const fm_config *c, const char *dir) {
  fm_tokenizer *t;
  FM_CHECK(fm_tokenizer_open_config(&t, c));
  char src[FM_PATH_MAX + 16], dst[FM_PATH_MAX + 32];
  snprintf(src, sizeof src, "%s", fm_tokenizer_path(t));
  fm_tok_kind kind = fm_tokenizer_kind(t);
  fm_tokenizer_free(t);
  if (kind == FM_TOK_BYTES) return FM_OK;
  const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
  if (kind == FM_TOK_SPM) {
    snprintf(dst, sizeof dst, "%s/tokenizer.model", dir);
    FM_CHECK(copy_file(src, dst));
  } else if (!strcmp(base, "vocab.json")) { /* GPT-2's pair */
    snprintf(dst, sizeof dst, "%s/vocab.json", dir);
    FM_CHECK(copy_file(src, dst));
    snprintf(src + (base - src), sizeof src - (size_t)(base - src), "merges.txt");
    snprintf(dst, sizeof dst, "%s/merges.txt", dir);
    FM_CHECK(copy_file(src, dst));
  } else {
    snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
    FM_CHECK(copy_file(src, dst));
  }
  return FM_OK;
}

static fm_err write_base(pt_t *p) {
  const char *dir = p->cfg->pretrain.output;
  FM_CHECK(fm_hf_export(p->model, dir, p->opts->overwrite, 0));
  FM_CHECK(copy_tokenizer(p->cfg, dir));
  return FM_OK;
}

/* Open or create the run file on rank 0; resuming loads the latest checkpoint
 * everywhere. *done: the steps already taken. */
static fm_err open_run(pt_t *p, long *done) {
  const fm_config *c = p->cfg;
  size_t n = fm_model_class_numel(p->model, 0);
  fm_err err = FM_OK;
  *done = 0;
  if (p->opts->resume) {
    long latest = 0, astep = 0;
    if (p->rank == 0) {
      err = fm_pretrain_file_open(&p->pf, c->run.output, c, &latest);
      if (!err && latest >= c->pretrain.steps)
        err = fm_config_error(c, "pretrain.steps", "the run file '%s' already holds %ld steps: nothing to resume "
                              "(raise pretrain.steps, with train.schedule = constant, to train further)",
                              c->run.output, latest);
      if (!err) err = fm_pretrain_file_load(p->pf, latest, fm_model_class_params(p->model, 0), p->opt.m, p->opt.v, n,
                                            &astep);
      if (!err) err = fm_pretrain_file_truncate(p->pf, latest);
      p->opt.step = astep;
    }
    FM_CHECK(fm_error_agree(err, &p->comm));
    FM_MPI(MPI_Bcast(&latest, 1, MPI_LONG, 0, p->comm));
    FM_CHECK(fm_error_agree(bcast_state(p, 1), &p->comm));
    *done = latest;
    fm_say("fedmoe: resuming %s after step %ld\n", c->run.output, latest);
    return FM_OK;
  }
  if (p->rank == 0) {
    err = fm_pretrain_file_create(&p->pf, c->run.output, c, p->opts->config_text ? p->opts->config_text : "", p->P,
                                  p->corpus.tokenizer, n);
    if (!err) err = fm_pretrain_file_set_count(p->pf, "corpus_tokens", (int64_t)p->corpus.size);
    if (!err) err = fm_pretrain_file_set_count(p->pf, "train_tokens", (int64_t)p->train.tokens);
    if (!err) err = fm_pretrain_file_set_count(p->pf, "val_tokens", (int64_t)p->val.tokens);
    if (err) fm_pretrain_file_close(p->pf), p->pf = NULL;
  }
  FM_CHECK(fm_error_agree(err, &p->comm));
  return FM_OK;
}

/* mkdir -p of the run file's folder. */
static fm_err make_parent(const char *path) {
  char dir[FM_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return FM_OK;
  *slash = 0;
  for (char *q = dir + 1;; q++) {
    if (*q && *q != '/') continue;
    char end = *q;
    *q = 0;
    if (mkdir(dir, 0777) && errno != EEXIST)
      FM_ERROR(FM_ERR_IO, "run.output: cannot create folder '%s': %s", dir, strerror(errno));
    *q = end;
    if (!end) break;
  }
  return FM_OK;
}

static fm_err steps(pt_t *p, long first, fm_pretrain_summary *sum) {
  const fm_config *c = p->cfg;
  long last = c->pretrain.steps;
  if (c->run.stop_after > 0 && first + c->run.stop_after - 1 < last) last = first + c->run.stop_after - 1;
  double t_start = fm_wtime(), tok_step = (double)c->train.batch * c->train.seq_len;
  uint64_t tokens = (uint64_t)((first - 1) * tok_step);
  fm_err err = FM_OK;
  for (long s = first; s <= last && !err; s++) {
    fm_watch_phase("pretrain", (int)s);
    double t0 = fm_wtime(), loss = 0, gnorm = 0, val = NAN;
    FM_CHECK(train_step(p, s, &loss, &gnorm));
    /* not at run.stop_after: an interrupted run's rows are an uninterrupted one's */
    int eval_now = s == c->pretrain.steps || (c->pretrain.eval_every && s % c->pretrain.eval_every == 0);
    if (eval_now) FM_CHECK(validate(p, &val));
    tokens += (uint64_t)tok_step;
    double dt = fm_wtime() - t0;
    fm_pretrain_row row = {s, loss, val, fm_lr_at(c, s - 1, c->pretrain.steps, (float)c->train.lr), gnorm, tokens,
                           dt > 0 ? tok_step / dt : 0, fm_wtime() - t_start};
    int ckpt = s == last || (c->pretrain.checkpoint_every && s % c->pretrain.checkpoint_every == 0);
    if (p->rank == 0) {
      err = fm_pretrain_file_append(p->pf, &row);
      if (!err && ckpt)
        err = fm_pretrain_file_checkpoint(p->pf, s, fm_model_class_params(p->model, 0), p->opt.m, p->opt.v,
                                          fm_model_class_numel(p->model, 0), p->opt.step);
      char vtext[48] = "";
      if (!isnan(val)) snprintf(vtext, sizeof vtext, ", val loss %.4f", val);
      if (!err && (eval_now || s == first))
        fm_say("step %ld/%d: train loss %.4f%s, %.0f tokens/s\n", s, c->pretrain.steps, loss, vtext, row.tokens_per_s);
    }
    WATCHED("pretrain: run file", err = fm_error_agree(err, &p->comm));
    sum->steps_done = s;
    sum->final_train = loss;
    if (!isnan(val)) sum->final_val = val;
  }
  FM_CHECK(err);
  sum->seconds = fm_wtime() - t_start;
  sum->tokens_per_s = sum->seconds > 0 ? (double)(sum->steps_done - first + 1) * tok_step / sum->seconds : 0;
  return FM_OK;
}

static void teardown(pt_t *p) {
  fm_pretrain_file_close(p->pf);
  fm_output_lock_release(p->lock);
  if (p->model) fm_model_free(p->model);
  fm_adamw_free(&p->opt);
  fm_agg_free(&p->agg);
  fm_agg_free(&p->eval_agg);
  free(p->tokens);
  free(p->targets);
  free(p->train.spans);
  free(p->val.spans);
  fm_corpus_free(&p->corpus);
}

static fm_err pretrain_watched(pt_t *p, fm_pretrain_summary *sum) {
  const fm_config *c = p->cfg;
  fm_nn_set_threads(c->run.threads);
  /* every output checked before anything is read or written: a refused run changes no file */
  fm_err err = fm_error_agree(p->rank == 0 ? check_output_dir(c, p->opts->overwrite) : FM_OK, &p->comm);
  if (!err && !p->opts->resume) err = fm_error_agree(p->rank == 0 ? make_parent(c->run.output) : FM_OK, &p->comm);
  if (!err) err = fm_output_lock_take(&p->lock, c->run.output, p->comm);
  if (!err) err = fm_output_check(c->run.output, !p->opts->resume, NULL, p->opts->overwrite, p->comm);
  if (!err) err = load_data(p);
  if (!err) err = fm_error_agree(setup_model(p), &p->comm);
  if (!err) err = load_init(p);
  long done = 0;
  if (!err) err = open_run(p, &done);
  if (!err && p->rank == 0 && !p->opts->quiet)
    fm_say("fedmoe: pretraining %zu parameters on %d rank%s: %d steps of %d micro-batches of %d x %d tokens; "
           "%llu training, %llu validation tokens (%s)\n", fm_model_class_numel(p->model, 0), p->P,
           p->P > 1 ? "s" : "", c->pretrain.steps, p->micro, c->pretrain.micro_batch, c->train.seq_len,
           (unsigned long long)p->train.tokens, (unsigned long long)p->val.tokens, p->corpus.tokenizer);
  if (!err) err = steps(p, done + 1, sum);
  if (!err && sum->steps_done == c->pretrain.steps)
    WATCHED("pretrain: base folder", err = fm_error_agree(p->rank == 0 ? write_base(p) : FM_OK, &p->comm));
  if (!err && p->rank == 0 && sum->steps_done == c->pretrain.steps && !p->opts->quiet)
    fm_say("fedmoe: base written to %s\n", c->pretrain.output);
  return err;
}

fm_err fm_pretrain(const fm_config *cfg, const fm_pretrain_opts *opts, MPI_Comm comm, fm_pretrain_summary *sum) {
  pt_t p;
  memset(&p, 0, sizeof p);
  memset(sum, 0, sizeof *sum);
  sum->final_val = NAN;
  p.cfg = cfg;
  p.opts = opts;
  p.comm = comm;
  MPI_Comm_rank(comm, &p.rank);
  MPI_Comm_size(comm, &p.P);
  FM_CHECK(fm_error_agree(check_config(cfg), &comm));
  FM_CHECK(fm_error_agree(fm_watchdog_start(cfg->run.collective_timeout, &comm), &comm));
  fm_err err = pretrain_watched(&p, sum);
  teardown(&p);
  fm_watchdog_stop();
  return err;
}
