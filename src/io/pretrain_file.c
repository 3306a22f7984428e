/* pretrain_file.c - the run file and checkpoints of `fedmoe pretrain` (layout in
 * include/fedmoe/pretrain.h). Serial HDF5 on rank 0: data-parallel pretraining keeps
 * the same state on every rank, so one writer is all it needs, and no rank can be
 * left inside a collective HDF5 call by another's failure. */
#include "fedmoe/pretrain.h"

#include "runfile_impl.h" /* fm_hash64, fm_attr_* */

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fm_pretrain_file {
  hid_t file, rows_ds, row_t;
  hsize_t nrows;
  int keep_last;
  char path[FM_PATH_MAX];
};

#define PF_CHECK(call, what)                                                           \
  do {                                                                                 \
    if ((call) < 0) FM_ERROR(FM_ERR_HDF5, "%s: HDF5 failed to %s", f->path, what);     \
  } while (0)

static hid_t row_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(fm_pretrain_row));
#define M(fl, ty) H5Tinsert(t, #fl, HOFFSET(fm_pretrain_row, fl), ty)
  M(step, H5T_NATIVE_INT64); M(train_loss, H5T_NATIVE_DOUBLE); M(val_loss, H5T_NATIVE_DOUBLE);
  M(lr, H5T_NATIVE_DOUBLE); M(grad_norm, H5T_NATIVE_DOUBLE); M(tokens, H5T_NATIVE_UINT64);
  M(tokens_per_s, H5T_NATIVE_DOUBLE); M(wall_s, H5T_NATIVE_DOUBLE);
#undef M
  return t;
}

/* pretrain's counters (the latest checkpoint, a checkpoint's step) are rewritten in
 * place: an existing attribute is replaced */
static herr_t attr_i64(hid_t obj, const char *name, int64_t v) {
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  return fm_attr_i64(obj, name, v);
}

/* A text attribute, malloc'ed; NULL when missing. */
static char *read_text(hid_t obj, const char *name) {
  if (H5Aexists(obj, name) <= 0) return NULL;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = a >= 0 ? H5Aget_type(a) : -1;
  char *s = NULL;
  if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
    size_t n = H5Tget_size(t);
    s = calloc(n + 1, 1);
    if (s && H5Aread(a, t, s) < 0) { free(s); s = NULL; }
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return s;
}

static fm_err alloc(fm_pretrain_file **out, const char *path, const fm_config *cfg) {
  fm_pretrain_file *f;
  FM_CALLOC(f, 1, "pretrain run file");
  f->file = f->rows_ds = -1;
  f->row_t = row_type();
  f->keep_last = cfg->run.keep_last;
  snprintf(f->path, sizeof f->path, "%s", path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file and the step */
  *out = f;
  return FM_OK;
}

fm_err fm_pretrain_file_create(fm_pretrain_file **out, const char *path, const fm_config *cfg,
                               const char *config_text, int ranks, const char *tokenizer, size_t nparams) {
  fm_pretrain_file *f;
  FM_CHECK(alloc(&f, path, cfg));
  *out = f;
  f->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f->file < 0) FM_ERROR(FM_ERR_IO, "run.output: cannot create '%s' (does its folder exist, is it writable?)", path);
  char stamp[64];
  time_t now = time(NULL);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  PF_CHECK(fm_attr_text(f->file, "fedmoe_version", PACKAGE_VERSION), "write an attribute");
  PF_CHECK(attr_i64(f->file, "format", FM_PRETRAIN_FORMAT), "write an attribute");
  PF_CHECK(fm_attr_text(f->file, "kind", "pretrain"), "write an attribute");
  PF_CHECK(fm_attr_text(f->file, "config", config_text), "write an attribute");
  PF_CHECK(fm_attr_text(f->file, "start_time", stamp), "write an attribute");
  PF_CHECK(fm_attr_text(f->file, "tokenizer", tokenizer), "write an attribute");
  PF_CHECK(attr_i64(f->file, "seed", cfg->run.seed), "write an attribute");
  PF_CHECK(attr_i64(f->file, "ranks", ranks), "write an attribute");
  PF_CHECK(attr_i64(f->file, "parameters", (int64_t)nparams), "write an attribute");
  hid_t g = H5Gcreate2(f->file, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  PF_CHECK(g, "create /metrics");
  hsize_t dims[1] = {0}, maxd[1] = {H5S_UNLIMITED}, chunk[1] = {256};
  hid_t sp = H5Screate_simple(1, dims, maxd), pl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(pl, 1, chunk);
  f->rows_ds = H5Dcreate2(g, "steps", f->row_t, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  H5Pclose(pl);
  H5Sclose(sp);
  H5Gclose(g);
  PF_CHECK(f->rows_ds, "create /metrics/steps");
  PF_CHECK(fm_attr_text(f->rows_ds, "description", "one row per optimizer step: mean training loss of the step's "
                     "global batch (nats), validation loss (nats; NaN between evaluations), learning rate, gradient "
                     "norm before clipping, tokens trained so far, tokens per second of this step, wall seconds "
                     "since this invocation started"), "write an attribute");
  g = H5Gcreate2(f->file, "checkpoints", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  PF_CHECK(g, "create /checkpoints");
  PF_CHECK(attr_i64(g, "latest", 0), "write an attribute");
  H5Gclose(g);
  PF_CHECK(H5Fflush(f->file, H5F_SCOPE_GLOBAL), "flush");
  return FM_OK;
}

/* The configuration may differ on resume only in the keys marked FM_RESUME_FREE, and
 * pretrain.steps not under the cosine schedule (it sets every step's learning rate). */
static fm_err check_config(fm_pretrain_file *f, const fm_config *cfg) {
  char *text = read_text(f->file, "config");
  if (!text) FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: no stored configuration (root attribute config)", f->path);
  fm_config old;
  char where[FM_PATH_MAX + 16];
  snprintf(where, sizeof where, "%s:/config", f->path);
  fm_err err = fm_config_init(&old);
  if (!err) err = fm_config_parse(&old, text, where);
  free(text);
  for (int i = 0; !err && i < fm_config_nkeys; i++) {
    const fm_key *k = &fm_config_keys[i];
    if (k->on_resume == FM_RESUME_FREE &&
        !(!strcmp(k->name, "pretrain.steps") && cfg->train.schedule == FM_SCHED_COSINE))
      continue;
    char was[600], now[600];
    fm_config_value_text(&old, k, was, sizeof was);
    fm_config_value_text(cfg, k, now, sizeof now);
    if (strcmp(was, now))
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_CONFIG,
                         "%s: cannot resume: %s is '%s' in the run file, '%s' now (from %s); a resumed pretraining "
                         "keeps every key that decides what it computes%s", f->path, k->name, was, now, cfg->origin[i],
                         !strcmp(k->name, "pretrain.steps") ? " (pretrain.steps may grow with train.schedule = constant)"
                                                            : "");
  }
  fm_config_free(&old);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_pretrain_file_open(fm_pretrain_file **out, const char *path, const fm_config *cfg, long *latest) {
  fm_pretrain_file *f;
  FM_CHECK(alloc(&f, path, cfg));
  *out = f;
  if (access(path, F_OK) != 0)
    FM_ERROR(FM_ERR_IO, "run.output: '%s' does not exist: nothing to resume (leave out --resume to start)", path);
  if (H5Fis_hdf5(path) <= 0) FM_ERROR(FM_ERR_FORMAT, "run.output: '%s' is not an HDF5 file: cannot resume it", path);
  f->file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f->file < 0) FM_ERROR(FM_ERR_IO, "run.output: cannot open '%s' for writing", path);
  char *kind = read_text(f->file, "kind");
  int ok = kind && !strcmp(kind, "pretrain");
  free(kind);
  if (!ok)
    FM_ERROR(FM_ERR_FORMAT, "%s: not a pretrain run file (root attribute kind is not 'pretrain'): "
             "`fedmoe run --resume` continues federated runs", path);
  int64_t format = 0;
  if (!fm_attr_read_i64(f->file, "format", &format) || format != FM_PRETRAIN_FORMAT)
    FM_ERROR(FM_ERR_FORMAT, "%s: pretrain run file format %lld, this fedmoe continues format %d", path,
             (long long)format, FM_PRETRAIN_FORMAT);
  FM_CHECK(check_config(f, cfg));
  f->rows_ds = H5Dopen2(f->file, "metrics/steps", H5P_DEFAULT);
  PF_CHECK(f->rows_ds, "open /metrics/steps");
  hid_t sp = H5Dget_space(f->rows_ds);
  H5Sget_simple_extent_dims(sp, &f->nrows, NULL);
  H5Sclose(sp);
  hid_t g = H5Gopen2(f->file, "checkpoints", H5P_DEFAULT);
  int64_t step = 0;
  int have = g >= 0 && fm_attr_read_i64(g, "latest", &step);
  if (g >= 0) H5Gclose(g);
  if (!have) FM_ERROR(FM_ERR_FORMAT, "%s: no /checkpoints attribute latest: cannot resume", path);
  if (step <= 0)
    FM_ERROR(FM_ERR_FORMAT, "%s: holds no complete checkpoint yet: start again (without --resume, with --overwrite)",
             path);
  *latest = (long)step;
  return FM_OK;
}

fm_err fm_pretrain_file_set_count(fm_pretrain_file *f, const char *name, int64_t value) {
  PF_CHECK(attr_i64(f->file, name, value), "write an attribute");
  return FM_OK;
}

fm_err fm_pretrain_file_append(fm_pretrain_file *f, const fm_pretrain_row *row) {
  hsize_t n = f->nrows + 1, one = 1, at = f->nrows;
  PF_CHECK(H5Dset_extent(f->rows_ds, &n), "extend /metrics/steps");
  hid_t fs = H5Dget_space(f->rows_ds), ms = H5Screate_simple(1, &one, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
  herr_t e = H5Dwrite(f->rows_ds, f->row_t, ms, fs, H5P_DEFAULT, row);
  H5Sclose(ms);
  H5Sclose(fs);
  PF_CHECK(e, "append to /metrics/steps");
  f->nrows = n;
  return FM_OK;
}

static void ckpt_dir(const fm_pretrain_file *f, char *out, size_t len) { snprintf(out, len, "%s.ckpt", f->path); }
static void ckpt_name(const fm_pretrain_file *f, long step, char *out, size_t len) {
  snprintf(out, len, "%s.ckpt/s%08ld.h5", f->path, step);
}

/* The checkpoint steps in the .ckpt folder, ascending (*steps malloc'ed). */
static fm_err list_ckpts(const fm_pretrain_file *f, long **steps, int *n) {
  char dir[FM_PATH_MAX + 16];
  ckpt_dir(f, dir, sizeof dir);
  *steps = NULL;
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return FM_OK;
  int cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    long s;
    char tail[8];
    if (sscanf(e->d_name, "s%8ld.h%1[5]", &s, tail) != 2 || strlen(e->d_name) != 12) continue;
    if (*n == cap) {
      long *g = realloc(*steps, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *g);
      if (!g) { closedir(d); FM_ERROR(FM_ERR_MEM, "out of memory listing %s", dir); }
      *steps = g;
    }
    (*steps)[(*n)++] = s;
  }
  closedir(d);
  for (int i = 1; i < *n; i++) /* insertion sort: a handful of files */
    for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
      long t = (*steps)[j]; (*steps)[j] = (*steps)[j - 1]; (*steps)[j - 1] = t;
    }
  return FM_OK;
}

fm_err fm_pretrain_file_truncate(fm_pretrain_file *f, long step) {
  /* rows are in step order: keep those up to step */
  hsize_t keep = f->nrows;
  fm_pretrain_row row;
  while (keep > 0) {
    hsize_t at = keep - 1, one = 1;
    hid_t fs = H5Dget_space(f->rows_ds), ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    herr_t e = H5Dread(f->rows_ds, f->row_t, ms, fs, H5P_DEFAULT, &row);
    H5Sclose(ms);
    H5Sclose(fs);
    PF_CHECK(e, "read /metrics/steps");
    if (row.step <= step) break;
    keep--;
  }
  PF_CHECK(H5Dset_extent(f->rows_ds, &keep), "truncate /metrics/steps");
  f->nrows = keep;
  long *steps;
  int n;
  FM_CHECK(list_ckpts(f, &steps, &n));
  char name[FM_PATH_MAX + 32];
  for (int i = 0; i < n; i++)
    if (steps[i] > step) { ckpt_name(f, steps[i], name, sizeof name); unlink(name); }
  free(steps);
  PF_CHECK(H5Fflush(f->file, H5F_SCOPE_GLOBAL), "flush");
  return FM_OK;
}

static herr_t write_vec(hid_t file, const char *name, const float *x, size_t n) {
  hsize_t d = n;
  hid_t sp = H5Screate_simple(1, &d, NULL);
  hid_t ds = H5Dcreate2(file, name, H5T_NATIVE_FLOAT, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
  if (e >= 0) e = fm_attr_u64(ds, "checksum", fm_hash64(x, n * sizeof *x));
  if (ds >= 0) H5Dclose(ds);
  H5Sclose(sp);
  return e;
}

fm_err fm_pretrain_file_checkpoint(fm_pretrain_file *f, long step, const float *params, const float *m,
                                   const float *v, size_t n, long adam_step) {
  char dir[FM_PATH_MAX + 16], name[FM_PATH_MAX + 32], tmp[FM_PATH_MAX + 40];
  ckpt_dir(f, dir, sizeof dir);
  if (mkdir(dir, 0777) && errno != EEXIST) FM_ERROR(FM_ERR_IO, "cannot create folder '%s': %s", dir, strerror(errno));
  ckpt_name(f, step, name, sizeof name);
  snprintf(tmp, sizeof tmp, "%s.tmp", name);
  hid_t c = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (c < 0) FM_ERROR(FM_ERR_IO, "cannot create checkpoint '%s'", tmp);
  herr_t e = attr_i64(c, "step", step);
  if (e >= 0) e = attr_i64(c, "adam_step", adam_step);
  if (e >= 0) e = write_vec(c, "params", params, n);
  if (e >= 0) e = write_vec(c, "adam_m", m, n);
  if (e >= 0) e = write_vec(c, "adam_v", v, n);
  if (H5Fclose(c) < 0) e = -1;
  if (e < 0 || rename(tmp, name)) {
    unlink(tmp);
    FM_ERROR(FM_ERR_IO, "%s: cannot write checkpoint '%s' (full disk?); the previous checkpoint is intact", f->path,
             name);
  }
  /* the run file names it only once it is complete */
  hid_t g = H5Gopen2(f->file, "checkpoints", H5P_DEFAULT);
  PF_CHECK(g, "open /checkpoints");
  e = attr_i64(g, "latest", step);
  H5Gclose(g);
  PF_CHECK(e, "write /checkpoints latest");
  PF_CHECK(H5Fflush(f->file, H5F_SCOPE_GLOBAL), "flush");
  long *steps;
  int k;
  FM_CHECK(list_ckpts(f, &steps, &k));
  for (int i = 0; i + f->keep_last < k; i++)
    if (steps[i] != step) { ckpt_name(f, steps[i], name, sizeof name); unlink(name); }
  free(steps);
  return FM_OK;
}

static fm_err read_vec(const fm_pretrain_file *f, hid_t file, const char *ck, const char *name, float *x, size_t n) {
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  if (ds < 0) FM_ERROR(FM_ERR_FORMAT, "%s: no dataset '%s'", ck, name);
  hid_t sp = H5Dget_space(ds);
  hssize_t have = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  uint64_t want_sum = 0;
  int has_sum = fm_attr_read_u64(ds, "checksum", &want_sum);
  herr_t e = have == (hssize_t)n ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) : -1;
  H5Dclose(ds);
  if (have != (hssize_t)n)
    FM_ERROR(FM_ERR_FORMAT, "%s: '%s' holds %lld values, the model has %zu parameters", ck, name, (long long)have, n);
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot read '%s'", ck, name);
  if (!has_sum || fm_hash64(x, n * sizeof *x) != want_sum)
    FM_ERROR(FM_ERR_FORMAT, "%s: '%s' does not match its checksum (damaged checkpoint)", ck, name);
  (void)f;
  return FM_OK;
}

fm_err fm_pretrain_file_load(fm_pretrain_file *f, long step, float *params, float *m, float *v, size_t n,
                             long *adam_step) {
  char name[FM_PATH_MAX + 32];
  ckpt_name(f, step, name, sizeof name);
  hid_t c = H5Fis_hdf5(name) > 0 ? H5Fopen(name, H5F_ACC_RDONLY, H5P_DEFAULT) : -1;
  if (c < 0) FM_ERROR(FM_ERR_IO, "%s: its latest checkpoint '%s' is missing or not HDF5", f->path, name);
  int64_t s = -1, as = -1;
  fm_err err = FM_OK;
  if (!fm_attr_read_i64(c, "step", &s) || s != step || !fm_attr_read_i64(c, "adam_step", &as))
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: not the checkpoint of step %ld", name, step);
  if (!err) err = read_vec(f, c, name, "params", params, n);
  if (!err) err = read_vec(f, c, name, "adam_m", m, n);
  if (!err) err = read_vec(f, c, name, "adam_v", v, n);
  H5Fclose(c);
  FM_CHECK(err);
  *adam_step = (long)as;
  return FM_OK;
}

fm_err fm_pretrain_file_close(fm_pretrain_file *f) {
  if (!f) return FM_OK;
  herr_t e = 0;
  if (f->rows_ds >= 0) e |= H5Dclose(f->rows_ds);
  if (f->file >= 0) e |= H5Fclose(f->file);
  H5Tclose(f->row_t);
  char path[FM_PATH_MAX];
  snprintf(path, sizeof path, "%s", f->path);
  free(f);
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: HDF5 failed to close the file", path);
  return FM_OK;
}

fm_err fm_pretrain_file_info(const char *path, FILE *out) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) FM_ERROR(FM_ERR_FORMAT, "'%s' cannot be opened as HDF5", path);
  char *version = read_text(file, "fedmoe_version"), *start = read_text(file, "start_time");
  char *tok = read_text(file, "tokenizer"), *config = read_text(file, "config");
  int64_t format = 0, seed = 0, ranks = 0, params = 0, ctok = 0, ttok = 0, vtok = 0, latest = 0;
  fm_attr_read_i64(file, "format", &format);
  fm_attr_read_i64(file, "seed", &seed);
  fm_attr_read_i64(file, "ranks", &ranks);
  fm_attr_read_i64(file, "parameters", &params);
  fm_attr_read_i64(file, "corpus_tokens", &ctok);
  fm_attr_read_i64(file, "train_tokens", &ttok);
  fm_attr_read_i64(file, "val_tokens", &vtok);
  hid_t g = H5Gopen2(file, "checkpoints", H5P_DEFAULT);
  if (g >= 0) { fm_attr_read_i64(g, "latest", &latest); H5Gclose(g); }
  fprintf(out, "run file   %s (fedmoe pretrain)\nfedmoe     %s\nformat     %lld\nstarted    %s\nseed       %lld\n"
          "ranks      %lld\nparameters %lld\ntokenizer  %s\ntokens     %lld in the corpus: %lld training, %lld "
          "validation\n", path, version ? version : "?", (long long)format, start ? start : "?", (long long)seed,
          (long long)ranks, (long long)params, tok ? tok : "?", (long long)ctok, (long long)ttok, (long long)vtok);
  hid_t ds = H5Dopen2(file, "metrics/steps", H5P_DEFAULT);
  hsize_t n = 0;
  fm_pretrain_row *rows = NULL;
  if (ds >= 0) {
    hid_t sp = H5Dget_space(ds), t = row_type();
    H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    rows = n ? calloc(n, sizeof *rows) : NULL;
    if (rows && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) < 0) { free(rows); rows = NULL; }
    H5Tclose(t);
    H5Dclose(ds);
  }
  if (!rows) fprintf(out, "steps      none recorded\n");
  else {
    double tps = 0, val = NAN;
    long long vstep = 0;
    for (hsize_t i = 0; i < n; i++) {
      tps += rows[i].tokens_per_s / (double)n;
      if (!isnan(rows[i].val_loss)) val = rows[i].val_loss, vstep = (long long)rows[i].step;
    }
    const fm_pretrain_row *l = &rows[n - 1];
    fprintf(out, "steps      %lld recorded, the last %lld: train loss %.4f nats, %llu tokens; mean %.0f tokens/s\n",
            (unsigned long long)n, (long long)l->step, l->train_loss, (unsigned long long)l->tokens, tps);
    if (!isnan(val)) fprintf(out, "validation %.4f nats at step %lld\n", val, vstep);
  }
  fprintf(out, "checkpoints%s\n", latest > 0 ? "" : " none");
  if (latest > 0) fprintf(out, "  latest: step %lld (%s.ckpt/s%08lld.h5)\n", (long long)latest, path, (long long)latest);
  if (config) fprintf(out, "configuration\n%s", config);
  free(rows);
  free(version);
  free(start);
  free(tok);
  free(config);
  H5Fclose(file);
  return FM_OK;
}
