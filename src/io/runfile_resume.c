/* runfile_resume.c - reopening a run file at its latest checkpoint. */
#include "runfile_impl.h"

#include "fedmoe/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  /* format 2 differs only in its checkpoints, which lack checksums: continued, its new
   * checkpoints have them */
  if (format != FM_RUNFILE_FORMAT && format != 2)
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: the run file has layout format %lld%s, this fedmoe continues "
             "formats 2 and %d only (finish the run with the fedmoe that wrote it, or start a new one)", rf->path,
             format, format == 1 ? " (dense per-client statistics, fedmoe 0.1.0)" : "", FM_RUNFILE_FORMAT);
  return FM_OK;
}

/* The stored configuration attribute `config` (every rank reads it); NULL if absent. */
static char *stored_config(fm_runfile *rf) {
  char *text = NULL;
  hid_t a = H5Aexists(rf->file, "config") > 0 ? H5Aopen(rf->file, "config", H5P_DEFAULT) : -1;
  hid_t t = a >= 0 ? H5Aget_type(a) : -1;
  if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) <= 0 && one_value(a)) {
    size_t n = H5Tget_size(t);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    text = calloc(n + 1, 1);
    if (text && H5Aread(a, mt, text) < 0) { free(text); text = NULL; }
    H5Tclose(mt);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return text;
}

/* The configuration may change on resume only in the keys marked FM_RESUME_FREE in
 * the key table (outputs, fl.rounds, logging, threads): a change of any other key
 * would continue a run that the stored configuration no longer describes. With the
 * cosine schedule fl.rounds sets the learning rate of every step, so it must stay. */
static fm_err check_config(fm_runfile *rf, const fm_config *cfg) {
  char *text = stored_config(rf);
  if (!text) FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: the run file has no stored configuration (root "
                      "attribute config)", rf->path);
  fm_config old;
  char where[FM_PATH_MAX + 16];
  snprintf(where, sizeof where, "%s:/config", rf->path);
  fm_err err = fm_config_init(&old);
  if (!err) err = fm_config_parse(&old, text, where);
  free(text);
  if (err) {
    fm_config_free(&old);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  for (int i = 0; !err && i < fm_config_nkeys; i++) {
    const fm_key *k = &fm_config_keys[i];
    int free_key = k->on_resume == FM_RESUME_FREE &&
                   !(!strcmp(k->name, "fl.rounds") && cfg->train.schedule == FM_SCHED_COSINE);
    if (free_key) continue;
    char was[600], now[600];
    fm_config_value_text(&old, k, was, sizeof was);
    fm_config_value_text(cfg, k, now, sizeof now);
    if (strcmp(was, now)) {
      char list[1024] = ""; /* the keys marked free in config_keys.c, named in the message */
      size_t off = 0;
      for (int j = 0; j < fm_config_nkeys && off < sizeof list; j++)
        if (fm_config_keys[j].on_resume == FM_RESUME_FREE)
          off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "", fm_config_keys[j].name);
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_CONFIG,
                         "%s: cannot resume: %s is '%s' in the run file, '%s' now (from %s); a resumed run may change "
                         "only %s%s", rf->path, k->name, was, now, cfg->origin[i], list,
                         cfg->train.schedule == FM_SCHED_COSINE ? " (fl.rounds not with train.schedule = cosine)" : "");
    }
  }
  fm_config_free(&old);
  return err;
}

typedef struct {
  int *rounds, *external; /* complete checkpoints: round, and whether a file of its own */
  int n, cap;
  const fm_runfile *rf;
  int nlinks;                        /* checkpoint files the run file links to */
  char linked[FM_PATH_MAX + 64];     /* the first one's name as its link holds it */
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
    if (!w->nlinks++) fm_elink_file(g, name, w->linked, sizeof w->linked);
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
  /* the list decides which checkpoint every rank opens next (collectively): a file
   * that one rank cannot open (a descriptor limit) makes it incomplete for all */
  complete = fm_runfile_agree(w->rf, complete ? 0 : -1) >= 0;
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

/* ---- checking a checkpoint against its checksums, collectively ---- */

typedef struct { char (*name)[160]; int n, cap; } names_t;

static herr_t add_name(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  names_t *w = data;
  (void)g;
  if (info->type != H5L_TYPE_HARD || strlen(name) >= sizeof w->name[0]) return 0;
  if (w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 64;
    char (*nn)[160] = realloc(w->name, (size_t)cap * sizeof *nn);
    if (!nn) return -1;
    w->name = nn;
    w->cap = cap;
  }
  snprintf(w->name[w->n++], sizeof w->name[0], "%s", name);
  return 0;
}

/* The names in group path of root (same order on every rank); -1 if it cannot be read. */
static int list_names(hid_t root, const char *path, names_t *w) {
  memset(w, 0, sizeof *w);
  if (H5Lexists(root, path, H5P_DEFAULT) <= 0) return 0;
  hid_t g = H5Gopen2(root, path, H5P_DEFAULT);
  herr_t e = g < 0 ? -1 : H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_name, w);
  if (g >= 0) H5Gclose(g);
  return e < 0 ? -1 : 0;
}

#define BAD(...) do { if (!why[0]) snprintf(why, len, __VA_ARGS__); } while (0)

/* Rank 0 reads all of dataset d (values of type, esize bytes each) and compares it
 * with the checksum in attribute attr of obj; label names it in why. Collective. */
static void verify_whole(fm_runfile *rf, hid_t d, hid_t type, size_t esize, hid_t obj, const char *attr,
                         const char *label, char *why, size_t len) {
  uint64_t want = 0;
  int has = fm_attr_read_u64(obj, attr, &want);
  hid_t fs = H5Dget_space(d);
  hssize_t np = H5Sget_simple_extent_npoints(fs);
  size_t n = np > 0 ? (size_t)np : 0;
  unsigned char *buf = rf->rank == 0 ? malloc(n * esize + 1) : NULL;
  herr_t e = fm_runfile_agree(rf, rf->rank == 0 && !buf ? -1 : 0);
  if (e >= 0) {
    hsize_t cnt = rf->rank == 0 ? n : 0;
    hid_t ms = H5Screate_simple(1, &cnt, NULL);
    if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
    e = fm_runfile_agree(rf, H5Dread(d, type, ms, fs, rf->dxpl, buf));
    H5Sclose(ms);
  }
  if (e < 0) BAD("%s cannot be read", label);
  else if (!has) BAD("%s has no checksum", label);
  else if (rf->rank == 0 && fm_hash64(buf, n * esize) != want) BAD("%s fails its checksum", label);
  free(buf);
  H5Sclose(fs);
}

/* Each shared tensor against its checksum (rank 0 reads). */
static void verify_shared(fm_runfile *rf, hid_t root, char *why, size_t len) {
  names_t w;
  if (list_names(root, "shared", &w) < 0) BAD("its group shared cannot be read");
  for (int i = 0; i < w.n; i++) {
    char path[200], label[220];
    snprintf(path, sizeof path, "shared/%s", w.name[i]);
    snprintf(label, sizeof label, "tensor %s", path);
    hid_t d = H5Dopen2(root, path, H5P_DEFAULT);
    if (d < 0) { BAD("%s cannot be opened", label); continue; }
    verify_whole(rf, d, H5T_NATIVE_FLOAT, sizeof(float), d, "checksum", label, why, len);
    H5Dclose(d);
  }
  free(w.name);
}

/* Each rank checks a block of the rows of dataset name [K][n] (or [K]) of group g
 * against name_checksum [K]. */
static void verify_rows(fm_runfile *rf, hid_t g, const char *cls, const char *name, hid_t type, size_t esize,
                        char *why, size_t len) {
  char sname[64];
  snprintf(sname, sizeof sname, "%s_checksum", name);
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT), ds = H5Dopen2(g, sname, H5P_DEFAULT);
  hsize_t dims[2] = {0, 1}, sdims[1] = {0};
  int nd = 0;
  if (d >= 0) {
    hid_t sp = H5Dget_space(d);
    nd = H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
  }
  if (ds >= 0) {
    hid_t sp = H5Dget_space(ds);
    if (H5Sget_simple_extent_ndims(sp) == 1) H5Sget_simple_extent_dims(sp, sdims, NULL);
    H5Sclose(sp);
  }
  if (d < 0 || nd < 1 || nd > 2) BAD("%s/%s cannot be opened", cls, name);
  else if (ds < 0 || sdims[0] != dims[0]) BAD("%s/%s has no checksums", cls, name);
  if (d < 0 || ds < 0 || nd < 1 || nd > 2 || sdims[0] != dims[0]) {
    if (d >= 0) H5Dclose(d);
    if (ds >= 0) H5Dclose(ds);
    return;
  }
  hsize_t K = dims[0], n = nd == 2 ? dims[1] : 1;
  hsize_t r0 = K * (hsize_t)rf->rank / (hsize_t)rf->P, r1 = K * (hsize_t)(rf->rank + 1) / (hsize_t)rf->P, k = r1 - r0;
  unsigned char *buf = malloc((size_t)(k * n * esize) + 1);
  uint64_t *sum = malloc((size_t)k * sizeof *sum + 1);
  herr_t e = fm_runfile_agree(rf, buf && sum ? 0 : -1);
  for (int pass = 0; pass < 2 && e >= 0; pass++) { /* the rows, then their checksums */
    hid_t dd = pass ? ds : d;
    hid_t fs = H5Dget_space(dd);
    hsize_t start[2] = {r0, 0}, count[2] = {k, n};
    hid_t ms = H5Screate_simple(pass ? 1 : nd, count, NULL);
    if (k) H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    else { H5Sselect_none(fs); H5Sselect_none(ms); }
    e = fm_runfile_agree(rf, H5Dread(dd, pass ? H5T_NATIVE_UINT64 : type, ms, fs, rf->dxpl, pass ? (void *)sum : buf));
    H5Sclose(ms);
    H5Sclose(fs);
  }
  if (e < 0) BAD("%s/%s cannot be read", cls, name);
  for (hsize_t j = 0; e >= 0 && j < k; j++)
    if (fm_hash64(buf + j * n * esize, (size_t)(n * esize)) != sum[j]) {
      BAD("%s/%s row %llu fails its checksum", cls, name, (unsigned long long)(r0 + j));
      break;
    }
  free(buf);
  free(sum);
  H5Dclose(d);
  H5Dclose(ds);
}

/* The private classes: each rank a block of every dataset's rows; the client ids
 * (rank 0) against their group's attribute. */
static void verify_clients(fm_runfile *rf, hid_t root, char *why, size_t len) {
  names_t w;
  if (list_names(root, "clients", &w) < 0) BAD("its group clients cannot be read");
  for (int i = 0; i < w.n; i++) {
    char path[200];
    snprintf(path, sizeof path, "clients/%s", w.name[i]);
    hid_t g = H5Gopen2(root, path, H5P_DEFAULT);
    if (g < 0) { BAD("%s cannot be opened", path); continue; }
    verify_rows(rf, g, path, "params", H5T_NATIVE_FLOAT, sizeof(float), why, len);
    verify_rows(rf, g, path, "adam_m", H5T_NATIVE_FLOAT, sizeof(float), why, len);
    verify_rows(rf, g, path, "adam_v", H5T_NATIVE_FLOAT, sizeof(float), why, len);
    verify_rows(rf, g, path, "adam_step", H5T_NATIVE_INT64, sizeof(int64_t), why, len);
    char label[220];
    snprintf(label, sizeof label, "%s/client", path);
    hid_t d = H5Dopen2(g, "client", H5P_DEFAULT);
    if (d < 0) BAD("%s cannot be opened", label);
    else verify_whole(rf, d, H5T_NATIVE_INT32, sizeof(int32_t), g, "client_checksum", label, why, len);
    if (d >= 0) H5Dclose(d);
    H5Gclose(g);
  }
  free(w.name);
}

/* Whether checkpoint root (open on every rank) holds what its checksums say: 1 yes,
 * 0 no (why says which tensor, the same on every rank), -1 it has none (a checkpoint
 * of format 2). Collective. */
static int verify_checkpoint(fm_runfile *rf, hid_t root, char *why, size_t len) {
  why[0] = 0;
  int64_t mark = 0;
  hid_t a = H5Aexists(root, "checksums") > 0 ? H5Aopen(root, "checksums", H5P_DEFAULT) : -1;
  if (a >= 0) {
    if (!one_value(a) || H5Aread(a, H5T_NATIVE_INT64, &mark) < 0) mark = 0;
    H5Aclose(a);
  }
  if (mark != 1) return -1;
  verify_shared(rf, root, why, len);
  verify_clients(rf, root, why, len);
  /* every rank has been through every collective read; now the lowest rank that found
   * something says what */
  int first = why[0] ? rf->rank : rf->P;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, rf->comm);
  if (first == rf->P) return 1;
  MPI_Bcast(why, (int)len, MPI_CHAR, first, rf->comm);
  return 0;
}
#undef BAD

/* Open checkpoint round (a file of its own when external) as rf->ckpt; 0 on success. */
static int open_checkpoint(fm_runfile *rf, hid_t g, int round, int external) {
  char name[64], full[FM_PATH_MAX + 64];
  snprintf(name, sizeof name, "r%06d", round);
  rf->ckpt_round = round;
  if (external) {
    if (fm_runfile_elink_path(rf, g, name, full, sizeof full)) rf->ckpt_file = fm_runfile_open_ckpt(rf, full);
    if (rf->ckpt_file >= 0) rf->ckpt = H5Gopen2(rf->ckpt_file, "/", H5P_DEFAULT);
  } else {
    rf->ckpt = H5Gopen2(g, name, H5P_DEFAULT);
  }
  return rf->ckpt >= 0 ? 0 : -1;
}

static void close_checkpoint(fm_runfile *rf) {
  if (rf->ckpt >= 0) H5Gclose(rf->ckpt);
  if (rf->ckpt_file >= 0) H5Fclose(rf->ckpt_file);
  rf->ckpt = rf->ckpt_file = -1;
}

fm_err fm_runfile_open_resume(fm_runfile **out, const char *path, const fm_config *cfg, int layers, int experts,
                              MPI_Comm comm, int *round) {
  fm_runfile *rf;
  FM_CHECK(fm_runfile_alloc(&rf, path, cfg, layers, experts, comm));
  *out = rf;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (access(path, F_OK) != 0) FM_ERROR(FM_ERR_IO, "--resume: '%s' does not exist", path);
  if (H5Fis_hdf5(path) <= 0) FM_ERROR(FM_ERR_FORMAT, "--resume: '%s' is not an HDF5 file (or cannot be read)", path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  rf->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
  H5Pclose(fapl);
  if (rf->file < 0) { /* the signature is there: a file cut short, or one we may not write */
    if (access(path, R_OK | W_OK) != 0)
      FM_ERROR(FM_ERR_IO, "--resume: cannot open '%s' for writing: %s", path, strerror(errno));
    FM_ERROR(FM_ERR_FORMAT, "--resume: '%s' is truncated or damaged: HDF5 finds its signature but cannot open it "
             "(a copy cut short, a full disk?)", path);
  }
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
  FM_CHECK(check_config(rf, cfg));
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
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    int moved = w.nlinks && (strncmp(w.linked, base, bl) || strncmp(w.linked + bl, ".ckpt/", 6));
    if (moved) /* links written under another name, no file where this name says: copied without its folder */
      FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: no complete checkpoint in '%s.ckpt' (the run file links %d "
               "checkpoint file%s, the first written as '%s'; a run file copied, moved or renamed must take its "
               ".ckpt folder along, renamed to match)", path, path, w.nlinks, w.nlinks > 1 ? "s" : "", w.linked);
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: no complete checkpoint (looked in the run file and in '%s.ckpt')",
             path, path);
  }
  /* the newest checkpoint that its checksums confirm; an unusable one is said to be so
   * before an older one is taken */
  int use = -1;
  char why[300] = "", first_why[300] = "";
  for (int i = w.n - 1; i >= 0 && use < 0; i--) {
    int ok = open_checkpoint(rf, g, w.rounds[i], w.external[i]) == 0;
    int v = ok ? verify_checkpoint(rf, rf->ckpt, why, sizeof why) : 0;
    if (!ok) snprintf(why, sizeof why, "it cannot be opened");
    if (v != 0) {
      use = i;
      if (v < 0)
        fm_say("fedmoe: note: checkpoint r%06d of %s has no checksums (written by a fedmoe before format 3): "
               "loaded without verification\n", w.rounds[i], path);
      break;
    }
    close_checkpoint(rf);
    if (!first_why[0]) snprintf(first_why, sizeof first_why, "r%06d: %s", w.rounds[i], why);
    if (i > 0)
      fm_say("fedmoe: checkpoint r%06d of %s is unusable (%s): falling back to r%06d\n", w.rounds[i], path, why,
             w.rounds[i - 1]);
  }
  H5Gclose(g);
  if (use < 0) {
    int n = w.n;
    free(w.rounds);
    free(w.external);
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot resume: none of its %d complete checkpoint%s is usable (the latest, %s; "
             "corrupted checkpoint files?)", path, n, n > 1 ? "s" : "", first_why);
  }
  int keep = use + 1 > rf->keep_last ? rf->keep_last : use + 1;
  for (int i = 0; i < keep; i++) rf->kept[i] = w.rounds[use + 1 - keep + i];
  rf->nkept = keep;
  *round = w.rounds[use];
  free(w.rounds);
  free(w.external);
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
  /* hard: a group of an older fedmoe; external: a checkpoint file found unusable */
  if ((info->type == H5L_TYPE_HARD || info->type == H5L_TYPE_EXTERNAL) && sscanf(name, "r%d", &round) == 1 &&
      round > w->after && w->n < 64 &&
      strlen(name) < sizeof w->names[0])
    strcpy(w->names[w->n++], name);
  return 0;
}

/* Cut a /fl per-client statistics dataset ([row][L][E]; the [client] ones stay) to
 * the rows kept. Every rank sees the same shapes (metadata is read collectively), so
 * every rank makes the same collective H5Dset_extent calls; a failure is everyone's. */
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
  return fm_runfile_agree(rf, e);
}

/* The per-client statistics (/routing, /fl) cut to nstat_rows rows. */
static fm_err truncate_client_stats(fm_runfile *rf, int round) {
  hsize_t dims[3] = {rf->nstat_rows, (hsize_t)rf->L, (hsize_t)rf->E};
  herr_t e = fm_runfile_agree(rf, H5Dset_extent(rf->index_ds, dims));
  if (e >= 0) e = fm_runfile_agree(rf, H5Dset_extent(rf->counts_ds, dims));
  if (e >= 0) e = fm_runfile_agree(rf, H5Dset_extent(rf->mass_ds, dims));
  if (e >= 0 && H5Lexists(rf->file, "/fl", H5P_DEFAULT) > 0) {
    hid_t g = H5Gopen2(rf->file, "/fl", H5P_DEFAULT);
    e = fm_runfile_agree(rf, g < 0 ? -1 : 0);
    if (e >= 0) e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, cut_fl, rf);
    if (g >= 0) H5Gclose(g);
  }
  if (e < 0) RF_ERROR_ALL(FM_ERR_HDF5, "%s: cannot truncate the per-client statistics to round %d", rf->path, round);
  return FM_OK;
}

/* How many rows of /metrics/clients and of the per-client statistics stay. Every rank
 * reads the round columns, and no rank may change the file before all have read them:
 * these reads are independent (the compound subset needs a type conversion, so HDF5
 * does not read collectively), and shrinking a dataset rewrites the cut rows of its
 * last chunk with fill values. A rank slow to read (a loaded machine) then read those
 * rows as round 0 from the chunk a faster rank had already cut, counted them as kept,
 * and called the collective H5Dset_extent with other sizes than the rest: an HDF5
 * error on that rank, the others waiting in H5Fclose. The error agreement below is an
 * Allreduce, which no rank leaves before every rank has entered it (done reading);
 * the counts are then compared, so that ranks can never go on with different ones. */
static fm_err rows_kept(fm_runfile *rf, int round, hsize_t *clients, hsize_t *stats) {
  *clients = *stats = 0;
  fm_err err = rows_upto(rf, rf->clients_ds, "/metrics/clients", round, clients);
  if (!err) err = rows_upto(rf, rf->index_ds, "/routing/index", round, stats);
  FM_CHECK(fm_error_agree(err, &rf->comm));
  long long v[4] = {(long long)*clients, (long long)*stats, -(long long)*clients, -(long long)*stats};
  if (MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_LONG_LONG, MPI_MAX, rf->comm) != MPI_SUCCESS)
    FM_ERROR(FM_ERR_MPI, "%s: cannot compare the rows kept across ranks", rf->path);
  if (v[0] != -v[2] || v[1] != -v[3])
    RF_ERROR_ALL(FM_ERR_INTERNAL, "%s: the ranks read different row counts (/metrics/clients %lld..%lld, "
             "/routing/index %lld..%lld rows up to round %d)", rf->path, -v[2], v[0], -v[3], v[1], round);
  return FM_OK;
}

fm_err fm_runfile_truncate(fm_runfile *rf, int round) {
  /* an incomplete checkpoint of a later round (a failure in checkpoint_write, a full
   * disk) would be in the way of the one the continued run writes for that round. It is
   * renamed, not deleted: deleting reads its object header, which a failed flush may
   * have left unreadable; renaming changes only the link in /checkpoints. Every step
   * below is agreed: all ranks make the same collective calls, or fail together. */
  later_t w = {.after = round};
  hid_t g = H5Gopen2(rf->file, "/checkpoints", H5P_DEFAULT);
  if (fm_runfile_agree(rf, g < 0 ? -1 : 0) >= 0) {
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, later, &w);
    for (int i = 0; i < w.n; i++) {
      char to[64];
      for (int k = 0;; k++) {
        snprintf(to, sizeof to, "incomplete-%s-%d", w.names[i], k);
        if (H5Lexists(g, to, H5P_DEFAULT) <= 0) break;
      }
      if (fm_runfile_agree(rf, H5Lmove(g, w.names[i], g, to, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        H5Gclose(g);
        RF_ERROR_ALL(FM_ERR_HDF5, "%s: cannot set aside the incomplete checkpoint %s", rf->path, w.names[i]);
      }
    }
  }
  if (g >= 0) H5Gclose(g);
  hsize_t keep;
  FM_CHECK(rows_kept(rf, round, &keep, &rf->nstat_rows));
  rf->nclient_rows = keep;
  /* one row per round; a crash after the checkpoint but before its round's row leaves one fewer */
  hid_t sp = H5Dget_space(rf->rounds_ds);
  hsize_t have = 0;
  H5Sget_simple_extent_dims(sp, &have, NULL);
  H5Sclose(sp);
  rf->nround_rows = have < (hsize_t)round ? have : (hsize_t)round;
  herr_t e = fm_runfile_agree(rf, H5Dset_extent(rf->clients_ds, &keep));
  if (e >= 0) e = fm_runfile_agree(rf, H5Dset_extent(rf->rounds_ds, &rf->nround_rows));
  if (e < 0) RF_ERROR_ALL(FM_ERR_HDF5, "%s: cannot truncate the metrics to round %d", rf->path, round);
  FM_CHECK(truncate_client_stats(rf, round));
  /* shrinking a chunked dataset rewrites the cut part of its last chunk with fill
   * values in HDF5's chunk cache; written out later, that chunk would overwrite the
   * rows the continued run writes there through MPI-IO (they read back as zeros) */
  if (fm_runfile_agree(rf, H5Fflush(rf->file, H5F_SCOPE_GLOBAL)) < 0)
    RF_ERROR_ALL(FM_ERR_HDF5, "%s: cannot flush the truncated run file", rf->path);
  H5Gclose(rf->ckpt);
  rf->ckpt = -1;
  e = rf->ckpt_file >= 0 ? H5Fclose(rf->ckpt_file) : 0; /* collective */
  rf->ckpt_file = -1;
  if (fm_runfile_agree(rf, e) < 0) RF_ERROR_ALL(FM_ERR_HDF5, "%s: cannot close checkpoint r%06d", rf->path, round);
  return FM_OK;
}
