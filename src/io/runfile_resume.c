/* runfile_resume.c - reopening a run file at its latest checkpoint. */
#include "runfile_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether attribute a holds exactly one value (a file may hold an array there: reading
 * it into one value would overrun the buffer). */
static int one_value(hid_t a) {
  hid_t sp = H5Aget_space(a);
  int one = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1;
  if (sp >= 0) H5Sclose(sp);
  return one;
}

/* Rank of a dataset's dataspace (-1 on error). */
static int ndims(hid_t d) {
  hid_t sp = H5Dget_space(d);
  int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (sp >= 0) H5Sclose(sp);
  return nd;
}

static fm_err check_attr(fm_runfile *rf, const char *name, long long want) {
  long long have = -1;
  hid_t a = H5Aexists(rf->file, name) > 0 ? H5Aopen(rf->file, name, H5P_DEFAULT) : -1;
  if (a >= 0) {
    int64_t v;
    if (one_value(a) && H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) have = v;
    H5Aclose(a);
  }
  if (have != want)
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: the run file has %s = %lld, the configuration %lld", rf->path, name,
             have, want);
  return FM_OK;
}

/* A file of another layout (format 1: dense per-client statistics) cannot be
 * continued: its statistics datasets have other shapes. */
static fm_err check_format(fm_runfile *rf) {
  long long format = 1; /* files before the attribute */
  hid_t a = H5Aexists(rf->file, "format") > 0 ? H5Aopen(rf->file, "format", H5P_DEFAULT) : -1;
  if (a >= 0) {
    int64_t v;
    format = one_value(a) && H5Aread(a, H5T_NATIVE_INT64, &v) >= 0 ? v : -1;
    H5Aclose(a);
  }
  if (format != FM_RUNFILE_FORMAT && format != 2) /* 2: flat tensors, read the same way */
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: the run file has layout format %lld%s, this fedmoe continues "
             "formats 2 and %d only (finish the run with the fedmoe that wrote it, or start a new one)", rf->path,
             format, format == 1 ? " (dense per-client statistics, fedmoe 0.1.0)" : "", FM_RUNFILE_FORMAT);
  return FM_OK;
}

typedef struct {
  int *rounds, *external; /* complete checkpoints: round, and whether a file of its own */
  int n, cap;
  const fm_runfile *rf;
} walk_t;

static int is_complete(hid_t c) {
  int complete = 0;
  if (c >= 0 && H5Aexists(c, "complete") > 0) {
    hid_t a = H5Aopen(c, "complete", H5P_DEFAULT);
    int64_t v = 0;
    complete = one_value(a) && H5Aread(a, H5T_NATIVE_INT64, &v) >= 0 && v == 1;
    H5Aclose(a);
  }
  return complete;
}

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  walk_t *w = data;
  int round, complete = 0, external = info->type == H5L_TYPE_EXTERNAL;
  if ((info->type != H5L_TYPE_HARD && !external) || sscanf(name, "r%d", &round) != 1) return 0;
  if (external) { /* a checkpoint file: complete when its mark says so (every rank opens it) */
    char full[FM_PATH_MAX + 64];
    if (!fm_runfile_elink_path(w->rf, g, name, full, sizeof full)) return 0;
    hid_t f = fm_runfile_open_ckpt(w->rf, full);
    if (f >= 0) {
      hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
      complete = is_complete(root);
      if (root >= 0) H5Gclose(root);
      H5Fclose(f);
    }
  } else { /* a checkpoint group inside the run file (files of earlier versions) */
    hid_t c = H5Gopen2(g, name, H5P_DEFAULT);
    complete = is_complete(c);
    if (c >= 0) H5Gclose(c);
  }
  if (!complete) return 0;
  if (w->n == w->cap) {
    w->cap = w->cap ? 2 * w->cap : 8;
    int *nr = realloc(w->rounds, (size_t)w->cap * sizeof *nr), *ne = realloc(w->external, (size_t)w->cap * sizeof *ne);
    if (nr) w->rounds = nr;
    if (ne) w->external = ne;
    if (!nr || !ne) return -1;
  }
  w->external[w->n] = external;
  w->rounds[w->n++] = round;
  return 0;
}

fm_err fm_runfile_open_resume(fm_runfile **out, const char *path, const fm_config *cfg, int layers, int experts,
                              MPI_Comm comm, int *round) {
  fm_runfile *rf;
  FM_CHECK(fm_runfile_alloc(&rf, path, cfg, layers, experts, comm));
  *out = rf;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (H5Fis_hdf5(path) <= 0) FM_ERROR(FM_ERR_FORMAT, "--resume: '%s' is not an HDF5 file (or cannot be read)", path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  rf->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  if (rf->file < 0) FM_ERROR(FM_ERR_IO, "--resume: cannot open '%s' for writing", path);
  if (H5Aexists(rf->file, "fedmoe_version") <= 0)
    FM_ERROR(FM_ERR_FORMAT, "--resume: '%s' is an HDF5 file but not a fedmoe run file", path);
  FM_CHECK(check_format(rf));
  /* what must not change between the run and its continuation */
  FM_CHECK(check_attr(rf, "clients", cfg->fl.clients));
  FM_CHECK(check_attr(rf, "layers", layers));
  FM_CHECK(check_attr(rf, "experts", experts));
  FM_CHECK(check_attr(rf, "seed", cfg->run.seed));
  char strategy[64] = "";
  hid_t a = H5Aopen(rf->file, "strategy", H5P_DEFAULT);
  if (a >= 0) {
    hid_t t = H5Aget_type(a), mt = H5Tcopy(H5T_C_S1);
    size_t n = H5Tget_size(t);
    if (n > 0 && n < sizeof strategy && one_value(a) && H5Tget_class(t) == H5T_STRING) {
      H5Tset_size(mt, n);
      if (H5Aread(a, mt, strategy) < 0) n = 0;
      strategy[n] = 0;
    }
    H5Tclose(mt); H5Tclose(t); H5Aclose(a);
  }
  if (strcmp(strategy, fm_config_enum_name(cfg, "fl.strategy")))
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: the run file's strategy is '%s', the configuration's '%s'", path,
             strategy, fm_config_enum_name(cfg, "fl.strategy"));
  rf->clients_ds = H5Dopen2(rf->file, "/metrics/clients", H5P_DEFAULT);
  rf->rounds_ds = H5Dopen2(rf->file, "/metrics/rounds", H5P_DEFAULT);
  rf->counts_ds = H5Dopen2(rf->file, "/routing/counts", H5P_DEFAULT);
  rf->mass_ds = H5Dopen2(rf->file, "/routing/gate_mass", H5P_DEFAULT);
  rf->index_ds = H5Dopen2(rf->file, "/routing/index", H5P_DEFAULT);
  if (rf->clients_ds < 0 || rf->rounds_ds < 0 || rf->counts_ds < 0 || rf->mass_ds < 0 || rf->index_ds < 0)
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: metrics or routing datasets are missing", path);
  if (ndims(rf->clients_ds) != 1 || ndims(rf->rounds_ds) != 1 || ndims(rf->counts_ds) != 3 ||
      ndims(rf->mass_ds) != 3 || ndims(rf->index_ds) != 1)
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: metrics or routing datasets have the wrong rank", path);
  /* complete checkpoints, oldest first */
  walk_t w = {.rf = rf};
  hid_t g = H5Gopen2(rf->file, "/checkpoints", H5P_DEFAULT);
  if (g >= 0) { H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect, &w); }
  if (w.n == 0) {
    if (g >= 0) H5Gclose(g);
    free(w.rounds);
    free(w.external);
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: no complete checkpoint", path);
  }
  int keep = w.n > rf->keep_last ? rf->keep_last : w.n;
  for (int i = 0; i < keep; i++) rf->kept[i] = w.rounds[w.n - keep + i];
  rf->nkept = keep;
  *round = w.rounds[w.n - 1];
  int external = w.external[w.n - 1];
  free(w.rounds);
  free(w.external);
  char name[64], full[FM_PATH_MAX + 64];
  snprintf(name, sizeof name, "r%06d", *round);
  rf->ckpt_round = *round;
  if (external) { /* open the checkpoint's own file, collectively */
    if (fm_runfile_elink_path(rf, g, name, full, sizeof full)) rf->ckpt_file = fm_runfile_open_ckpt(rf, full);
    if (rf->ckpt_file >= 0) rf->ckpt = H5Gopen2(rf->ckpt_file, "/", H5P_DEFAULT);
  } else {
    rf->ckpt = H5Gopen2(g, name, H5P_DEFAULT);
  }
  H5Gclose(g);
  if (rf->ckpt < 0) FM_ERROR(FM_ERR_FORMAT, "%s: cannot open checkpoint /checkpoints/%s", path, name);
  return FM_OK;
}

fm_err fm_runfile_read_shared(fm_runfile *rf, const char *name, float *w, size_t n) {
  char path[160];
  snprintf(path, sizeof path, "shared/%s", name);
  hid_t d = H5Dopen2(rf->ckpt, path, H5P_DEFAULT);
  if (d < 0) FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint r%06d has no shared tensor '%s' (a different model?)", rf->path, rf->ckpt_round, name);
  hid_t sp = H5Dget_space(d);
  hssize_t have = H5Sget_simple_extent_npoints(sp);
  if (have != (hssize_t)n) {
    H5Sclose(sp);
    H5Dclose(d);
    FM_ERROR(FM_ERR_FORMAT, "%s: shared tensor '%s' has %lld values in the checkpoint, the model %zu (the "
             "configuration changes the model's shape)", rf->path, name, (long long)have, n);
  }
  /* [rows][cols] (format 3) or [n] (format 2) in the file, n floats in memory */
  hsize_t dn = n;
  hid_t ms = H5Screate_simple(1, &dn, NULL);
  herr_t e = H5Dread(d, H5T_NATIVE_FLOAT, ms, sp, rf->dxpl, w);
  H5Sclose(ms);
  H5Sclose(sp);
  H5Dclose(d);
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot read shared tensor '%s' (corrupted checkpoint?)", rf->path, name);
  return FM_OK;
}

/* Rows of a table with a rising round column (/metrics/clients, /routing/index) up to
 * and including `round`. */
static fm_err rows_upto(fm_runfile *rf, hid_t ds, const char *name, int round, hsize_t *keep) {
  hid_t sp = H5Dget_space(ds);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, NULL);
  H5Sclose(sp);
  int32_t *r = malloc((n ? n : 1) * sizeof *r);
  if (!r) FM_ERROR(FM_ERR_MEM, "out of memory reading '%s'", rf->path);
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(int32_t));
  H5Tinsert(t, "round", 0, H5T_NATIVE_INT32);
  herr_t e = n ? H5Dread(ds, t, H5S_ALL, H5S_ALL, rf->dxpl, r) : 0;
  H5Tclose(t);
  hsize_t k = 0;
  while (e >= 0 && k < n && r[k] <= round) k++;
  free(r);
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot read %s", rf->path, name);
  *keep = k;
  return FM_OK;
}

/* Checkpoint groups of rounds after a given one: what a failure while writing left. */
typedef struct { int after, n; char names[64][32]; } later_t;

static herr_t later(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  later_t *w = data;
  int round;
  (void)g;
  if (info->type == H5L_TYPE_HARD && sscanf(name, "r%d", &round) == 1 && round > w->after && w->n < 64 &&
      strlen(name) < sizeof w->names[0])
    strcpy(w->names[w->n++], name);
  return 0;
}

/* Cut a /fl per-client statistics dataset ([row][L][E]; the [client] ones stay) to
 * the rows kept. */
static herr_t cut_fl(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  const fm_runfile *rf = data;
  if (info->type != H5L_TYPE_HARD) return 0;
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  if (d < 0) return 0; /* a group: not ours */
  hsize_t dims[3] = {0, (hsize_t)rf->L, (hsize_t)rf->E};
  hid_t sp = H5Dget_space(d);
  int nd = H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  herr_t e = 0;
  if (nd == 3 && dims[0] > rf->nstat_rows) {
    dims[0] = rf->nstat_rows;
    e = H5Dset_extent(d, dims);
  }
  H5Dclose(d);
  return e;
}

/* Rows of the per-client statistics (/routing, /fl) of rounds up to `round`. */
static fm_err truncate_client_stats(fm_runfile *rf, int round) {
  FM_CHECK(rows_upto(rf, rf->index_ds, "/routing/index", round, &rf->nstat_rows));
  hsize_t dims[3] = {rf->nstat_rows, (hsize_t)rf->L, (hsize_t)rf->E};
  herr_t e = H5Dset_extent(rf->index_ds, dims);
  if (e >= 0) e = H5Dset_extent(rf->counts_ds, dims);
  if (e >= 0) e = H5Dset_extent(rf->mass_ds, dims);
  if (e >= 0 && H5Lexists(rf->file, "/fl", H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(rf->file, "/fl", H5P_DEFAULT);
    e = g < 0 ? -1 : H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, cut_fl, rf);
    if (g >= 0) H5Gclose(g);
  }
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot truncate the per-client statistics to round %d", rf->path, round);
  return FM_OK;
}

fm_err fm_runfile_truncate(fm_runfile *rf, int round) {
  /* an incomplete checkpoint of a later round (a failure in checkpoint_write, a full
   * disk) would be in the way of the one the continued run writes for that round. It is
   * renamed, not deleted: deleting reads its object header, which a failed flush may
   * have left unreadable; renaming changes only the link in /checkpoints. */
  later_t w = {.after = round};
  hid_t g = H5Gopen2(rf->file, "/checkpoints", H5P_DEFAULT);
  if (g >= 0) {
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, later, &w);
    for (int i = 0; i < w.n; i++) {
      char to[64];
      for (int k = 0;; k++) {
        snprintf(to, sizeof to, "incomplete-%s-%d", w.names[i], k);
        if (H5Lexists(g, to, H5P_DEFAULT) <= 0) break;
      }
      if (H5Lmove(g, w.names[i], g, to, H5P_DEFAULT, H5P_DEFAULT) < 0) {
        H5Gclose(g);
        FM_ERROR(FM_ERR_HDF5, "%s: cannot set aside the incomplete checkpoint %s", rf->path, w.names[i]);
      }
    }
    H5Gclose(g);
  }
  hsize_t keep;
  FM_CHECK(rows_upto(rf, rf->clients_ds, "/metrics/clients", round, &keep));
  rf->nclient_rows = keep;
  /* one row per round; a crash after the checkpoint but before its round's row leaves one fewer */
  hid_t sp = H5Dget_space(rf->rounds_ds);
  hsize_t have = 0;
  H5Sget_simple_extent_dims(sp, &have, NULL);
  H5Sclose(sp);
  rf->nround_rows = have < (hsize_t)round ? have : (hsize_t)round;
  if (H5Dset_extent(rf->clients_ds, &keep) < 0 || H5Dset_extent(rf->rounds_ds, &rf->nround_rows) < 0)
    FM_ERROR(FM_ERR_HDF5, "%s: cannot truncate the metrics to round %d", rf->path, round);
  FM_CHECK(truncate_client_stats(rf, round));
  /* shrinking a chunked dataset rewrites the cut part of its last chunk with fill
   * values in HDF5's chunk cache; written out later, that chunk would overwrite the
   * rows the continued run writes there through MPI-IO (they read back as zeros) */
  if (H5Fflush(rf->file, H5F_SCOPE_GLOBAL) < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot flush the truncated run file", rf->path);
  H5Gclose(rf->ckpt);
  rf->ckpt = -1;
  if (rf->ckpt_file >= 0) H5Fclose(rf->ckpt_file);
  rf->ckpt_file = -1;
  return FM_OK;
}
