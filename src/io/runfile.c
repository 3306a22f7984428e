/* runfile.c - the HDF5 run file, written collectively through MPI-IO. */
#include "runfile_impl.h"

#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static fm_err attr_str(fm_runfile *rf, hid_t obj, const char *name, const char *value) {
  return fm_runfile_text_attr(rf, obj, name, value);
}

static fm_err attr_i64(fm_runfile *rf, hid_t obj, const char *name, int64_t value) {
  RF_CHECK(fm_attr_i64(obj, name, value), "write an attribute");
  return FM_OK;
}

static hid_t client_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(fm_client_row));
#define M(f, ty) H5Tinsert(t, #f, HOFFSET(fm_client_row, f), ty)
  M(round, H5T_NATIVE_INT32); M(client, H5T_NATIVE_INT32);
  M(train_loss, H5T_NATIVE_DOUBLE); M(val_loss, H5T_NATIVE_DOUBLE); M(test_loss, H5T_NATIVE_DOUBLE);
  M(tokens, H5T_NATIVE_UINT64); M(flops, H5T_NATIVE_DOUBLE); M(sim_time_s, H5T_NATIVE_DOUBLE);
  M(bytes_up, H5T_NATIVE_UINT64); M(bytes_down, H5T_NATIVE_UINT64);
  hid_t status = fm_runfile_status_type(); /* the codes' names in the file */
  M(status, status);
  H5Tclose(status);
#undef M
  return t;
}

hid_t fm_runfile_round_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(fm_round_row));
#define M(f, ty) H5Tinsert(t, #f, HOFFSET(fm_round_row, f), ty)
  M(round, H5T_NATIVE_INT32); M(clients, H5T_NATIVE_INT32);
  M(mean_train, H5T_NATIVE_DOUBLE); M(mean_val, H5T_NATIVE_DOUBLE); M(mean_test, H5T_NATIVE_DOUBLE);
  M(min_test, H5T_NATIVE_DOUBLE); M(max_test, H5T_NATIVE_DOUBLE); M(wall_s, H5T_NATIVE_DOUBLE);
  M(t_local, H5T_NATIVE_DOUBLE); M(t_aggregate, H5T_NATIVE_DOUBLE); M(t_server, H5T_NATIVE_DOUBLE);
  M(t_broadcast, H5T_NATIVE_DOUBLE); M(t_evaluate, H5T_NATIVE_DOUBLE); M(t_io, H5T_NATIVE_DOUBLE);
  M(bytes_up, H5T_NATIVE_UINT64); M(bytes_down, H5T_NATIVE_UINT64); M(bytes_reduced, H5T_NATIVE_UINT64);
  M(peak_rss_mb, H5T_NATIVE_DOUBLE); M(test_loss_full, H5T_NATIVE_DOUBLE);
  M(test_loss_emulator, H5T_NATIVE_DOUBLE); M(sim_time_s, H5T_NATIVE_DOUBLE);
  M(kept, H5T_NATIVE_INT32); M(late, H5T_NATIVE_INT32); M(dropped, H5T_NATIVE_INT32);
  M(offline, H5T_NATIVE_INT32); M(surplus, H5T_NATIVE_INT32); M(t_local_mean, H5T_NATIVE_DOUBLE);
  M(host_clients_max, H5T_NATIVE_INT32); M(dp_epsilon, H5T_NATIVE_DOUBLE);
  M(test_loss_global, H5T_NATIVE_DOUBLE);
#undef M
  return t;
}

/* A row of /routing/index: which round and client a statistics row belongs to. */
typedef struct { int32_t round, client; } index_row;

static hid_t index_type(void) {
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(index_row));
  H5Tinsert(t, "round", HOFFSET(index_row, round), H5T_NATIVE_INT32);
  H5Tinsert(t, "client", HOFFSET(index_row, client), H5T_NATIVE_INT32);
  return t;
}

/* A chunked dataset of rank nd whose first dimension grows. */
static hid_t extendible(hid_t loc, const char *name, hid_t type, int nd, const hsize_t *inner,
                        hsize_t chunk0) {
  hsize_t dims[4] = {0}, maxd[4] = {H5S_UNLIMITED}, chunk[4] = {chunk0};
  for (int i = 1; i < nd; i++) dims[i] = maxd[i] = chunk[i] = inner[i - 1];
  hid_t sp = H5Screate_simple(nd, dims, maxd);
  hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(pl, nd, chunk);
  hid_t d = H5Dcreate2(loc, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
  H5Pclose(pl);
  H5Sclose(sp);
  return d;
}

/* Rows per chunk of a [row][L][E] statistics dataset: about 64 KB, so that a round's
 * few rows do not each take a chunk, nor a chunk hold many rounds. */
static hsize_t stat_chunk(const fm_runfile *rf) {
  hsize_t row = (hsize_t)rf->L * (hsize_t)rf->E * 8;
  return row >= 65536 ? 1 : 65536 / row;
}

fm_err fm_runfile_alloc(fm_runfile **out, const char *path, const fm_config *cfg, int layers, int experts,
                        MPI_Comm comm) {
  fm_runfile *rf;
  FM_CALLOC(rf, 1, "run file");
  *out = rf;
  rf->file = rf->dxpl = rf->ckpt = rf->ckpt_file = -1;
  rf->clients_ds = rf->rounds_ds = rf->counts_ds = rf->mass_ds = rf->index_ds = -1;
  snprintf(rf->path, sizeof rf->path, "%s", path);
  rf->comm = comm;
  MPI_Comm_rank(comm, &rf->rank);
  MPI_Comm_size(comm, &rf->P);
  rf->N = cfg->fl.clients;
  rf->L = layers;
  rf->E = experts;
  rf->keep_last = cfg->run.keep_last;
  FM_CALLOC(rf->kept, (size_t)rf->keep_last + 1, "checkpoint list");
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our messages name the file and the step */
  rf->client_t = client_type();
  rf->round_t = fm_runfile_round_type();
  rf->index_t = index_type();
  rf->dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(rf->dxpl, H5FD_MPIO_COLLECTIVE);
  return FM_OK;
}

fm_err fm_runfile_create(fm_runfile **out, const char *path, const fm_config *cfg, const char *config_text,
                         int layers, int experts, MPI_Comm comm) {
  fm_runfile *rf;
  FM_CHECK(fm_runfile_alloc(&rf, path, cfg, layers, experts, comm));
  *out = rf;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  rf->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (rf->file < 0) FM_ERROR(FM_ERR_IO, "cannot create run file '%s' (does its directory exist and is it writable?)", path);
  char stamp[64];
  time_t now = time(NULL);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  MPI_Bcast(stamp, sizeof stamp, MPI_CHAR, 0, comm); /* one value on every rank */
  FM_CHECK(attr_str(rf, rf->file, "fedmoe_version", PACKAGE_VERSION));
  FM_CHECK(attr_i64(rf, rf->file, "format", FM_RUNFILE_FORMAT));
  FM_CHECK(attr_str(rf, rf->file, "strategy", fm_config_enum_name(cfg, "fl.strategy")));
  FM_CHECK(attr_str(rf, rf->file, "config", config_text));
  FM_CHECK(attr_str(rf, rf->file, "start_time", stamp));
  FM_CHECK(attr_i64(rf, rf->file, "seed", cfg->run.seed));
  FM_CHECK(attr_i64(rf, rf->file, "ranks", rf->P));
  FM_CHECK(attr_i64(rf, rf->file, "clients", rf->N));
  FM_CHECK(attr_i64(rf, rf->file, "layers", layers));
  FM_CHECK(attr_i64(rf, rf->file, "experts", experts));
  hid_t g = H5Gcreate2(rf->file, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RF_CHECK(g, "create /metrics");
  rf->clients_ds = extendible(g, "clients", rf->client_t, 1, NULL, 1024);
  rf->rounds_ds = extendible(g, "rounds", rf->round_t, 1, NULL, 64);
  H5Gclose(g);
  RF_CHECK(rf->clients_ds, "create /metrics/clients");
  RF_CHECK(rf->rounds_ds, "create /metrics/rounds");
  g = H5Gcreate2(rf->file, "routing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RF_CHECK(g, "create /routing");
  hsize_t inner[2] = {(hsize_t)layers, (hsize_t)experts};
  rf->index_ds = extendible(g, "index", rf->index_t, 1, NULL, 1024);
  rf->counts_ds = extendible(g, "counts", H5T_NATIVE_UINT64, 3, inner, stat_chunk(rf));
  rf->mass_ds = extendible(g, "gate_mass", H5T_NATIVE_DOUBLE, 3, inner, stat_chunk(rf));
  H5Gclose(g);
  RF_CHECK(rf->index_ds, "create /routing/index");
  RF_CHECK(rf->counts_ds, "create /routing/counts");
  RF_CHECK(rf->mass_ds, "create /routing/gate_mass");
  FM_CHECK(fm_runfile_describe_layout(rf));
  g = H5Gcreate2(rf->file, "checkpoints", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RF_CHECK(g, "create /checkpoints");
  H5Gclose(g);
  return FM_OK;
}

/* Grow a 1-D compound dataset by n rows written by rank 0. */
static fm_err append_rows(fm_runfile *rf, hid_t ds, hid_t type, hsize_t *nrows, const void *rows, int n) {
  int n0 = n;
  MPI_Bcast(&n0, 1, MPI_INT, 0, rf->comm);
  if (n0 == 0) return FM_OK;
  hsize_t newsize = *nrows + (hsize_t)n0;
  RF_CHECK(H5Dset_extent(ds, &newsize), "extend a metrics table");
  hid_t fs = H5Dget_space(ds);
  hsize_t start = *nrows, count = rf->rank == 0 ? (hsize_t)n0 : 0;
  hid_t ms = H5Screate_simple(1, &count, NULL);
  if (rf->rank == 0) H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
  else { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = H5Dwrite(ds, type, ms, fs, rf->dxpl, rows);
  H5Sclose(ms);
  H5Sclose(fs);
  RF_CHECK(e, "write metrics rows");
  *nrows = newsize;
  return FM_OK;
}

fm_err fm_runfile_append_clients(fm_runfile *rf, const fm_client_row *rows, int n) {
  return append_rows(rf, rf->clients_ds, rf->client_t, &rf->nclient_rows, rows, n);
}

fm_err fm_runfile_append_round(fm_runfile *rf, const fm_round_row *row) {
  FM_CHECK(append_rows(rf, rf->rounds_ds, rf->round_t, &rf->nround_rows, row, rf->rank == 0 ? 1 : 0));
  /* on disk now, before the round's checkpoint: a rank failing later does not take
   * it away from that checkpoint (--resume keeps it) */
  RF_CHECK(H5Fflush(rf->file, H5F_SCOPE_GLOBAL), "flush the run file");
  return FM_OK;
}

fm_err fm_runfile_update_round(fm_runfile *rf, const fm_round_row *row) {
  if (rf->nround_rows == 0) FM_ERROR(FM_ERR_INTERNAL, "%s: no round row to rewrite", rf->path);
  hid_t fs = H5Dget_space(rf->rounds_ds);
  hsize_t start = rf->nround_rows - 1, count = rf->rank == 0 ? 1 : 0;
  hid_t ms = H5Screate_simple(1, &count, NULL);
  if (rf->rank == 0) H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL);
  else { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = H5Dwrite(rf->rounds_ds, rf->round_t, ms, fs, rf->dxpl, row);
  H5Sclose(ms);
  H5Sclose(fs);
  RF_CHECK(e, "rewrite the round's metrics row");
  RF_CHECK(H5Fflush(rf->file, H5F_SCOPE_GLOBAL), "flush the run file");
  return FM_OK;
}

void fm_runfile_select_rows(hid_t fs, hsize_t first, const int32_t *rows, int k, int nd, const hsize_t *inner) {
  H5Sselect_none(fs);
  for (int j = 0; j < k;) {
    int e = j + 1;
    while (e < k && rows[e] == rows[e - 1] + 1) e++;
    hsize_t start[4] = {first + (hsize_t)rows[j]}, count[4] = {(hsize_t)(e - j)};
    for (int i = 1; i < nd; i++) { start[i] = 0; count[i] = inner[i - 1]; }
    H5Sselect_hyperslab(fs, H5S_SELECT_OR, start, NULL, count, NULL);
    j = e;
  }
}

/* This rank's rows of the round being written into ds, [row] (nd 1) or [row][L][E]
 * (nd 3), which first grows to hold the round. Collective. */
static fm_err write_round_rows(fm_runfile *rf, hid_t ds, hid_t type, int nd, const fm_round_rows *rr,
                               const void *buf, const char *what) {
  hsize_t dims[3] = {rf->round_first + (hsize_t)rr->n, (hsize_t)rf->L, (hsize_t)rf->E};
  RF_CHECK(H5Dset_extent(ds, dims), what);
  hid_t fs = H5Dget_space(ds);
  fm_runfile_select_rows(fs, rf->round_first, rr->row, rr->k, nd, dims + 1);
  hsize_t mdims[3] = {(hsize_t)rr->k, dims[1], dims[2]};
  hid_t ms = H5Screate_simple(nd, mdims, NULL);
  if (rr->k == 0) H5Sselect_none(ms);
  herr_t e = H5Dwrite(ds, type, ms, fs, rf->dxpl, buf);
  H5Sclose(ms);
  H5Sclose(fs);
  RF_CHECK(e, what);
  return FM_OK;
}

fm_err fm_runfile_write_routing(fm_runfile *rf, const fm_round_rows *rr, const uint64_t *counts, const double *mass) {
  rf->round_first = rf->nstat_rows;
  rf->rows_round = rr->round;
  rf->nstat_rows += (hsize_t)rr->n;
  index_row *idx;
  FM_CALLOC(idx, (size_t)rr->k, "routing index rows");
  for (int j = 0; j < rr->k; j++) idx[j] = (index_row){rr->round, rr->client[j]};
  fm_err err = write_round_rows(rf, rf->index_ds, rf->index_t, 1, rr, idx, "write /routing/index");
  free(idx);
  FM_CHECK(err);
  FM_CHECK(write_round_rows(rf, rf->counts_ds, H5T_NATIVE_UINT64, 3, rr, counts, "write /routing/counts"));
  FM_CHECK(write_round_rows(rf, rf->mass_ds, H5T_NATIVE_DOUBLE, 3, rr, mass, "write /routing/gate_mass"));
  return FM_OK;
}

/* /fl, created on first use (collective, like every metadata change). */
static hid_t fl_group(fm_runfile *rf) {
  if (H5Lexists(rf->file, "/fl", H5P_DEFAULT) > 0) return H5Gopen2(rf->file, "/fl", H5P_DEFAULT);
  return H5Gcreate2(rf->file, "/fl", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
}

fm_err fm_runfile_write_client_stat(fm_runfile *rf, const char *name, const fm_round_rows *rr, const double *data) {
  if (rr->round != rf->rows_round)
    FM_ERROR(FM_ERR_INTERNAL, "/fl/%s of round %d written before that round's routing", name, rr->round);
  int k = 0;
  while (k < rf->nstat && strcmp(rf->stat_name[k], name)) k++;
  if (k == rf->nstat) {
    if (rf->nstat == 8) FM_ERROR(FM_ERR_INTERNAL, "too many strategy statistics");
    hid_t g = fl_group(rf);
    RF_CHECK(g, "create /fl");
    hsize_t inner[2] = {(hsize_t)rf->L, (hsize_t)rf->E};
    hid_t d = H5Lexists(g, name, H5P_DEFAULT) > 0 ? H5Dopen2(g, name, H5P_DEFAULT)
                                                  : extendible(g, name, H5T_NATIVE_DOUBLE, 3, inner, stat_chunk(rf));
    H5Gclose(g);
    RF_CHECK(d, "create a /fl statistics dataset");
    FM_CHECK(fm_runfile_describe_fl(rf, d, name));
    rf->stat_ds[k] = d;
    snprintf(rf->stat_name[k], sizeof rf->stat_name[k], "%s", name);
    rf->nstat++;
  }
  return write_round_rows(rf, rf->stat_ds[k], H5T_NATIVE_DOUBLE, 3, rr, data, "write a /fl statistics dataset");
}

fm_err fm_runfile_write_client_ints(fm_runfile *rf, const char *name, const int32_t *values) {
  hid_t g = fl_group(rf);
  RF_CHECK(g, "create /fl");
  if (H5Lexists(g, name, H5P_DEFAULT) > 0) { H5Gclose(g); return FM_OK; } /* a resumed run has it */
  hsize_t n = (hsize_t)rf->N;
  hid_t fs = H5Screate_simple(1, &n, NULL);
  hid_t d = H5Dcreate2(g, name, H5T_NATIVE_INT32, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Gclose(g);
  hid_t ms = H5Screate_simple(1, &n, NULL);
  if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_INT32, ms, fs, rf->dxpl, values);
  fm_err derr = d < 0 ? FM_OK : fm_runfile_describe_fl(rf, d, name);
  H5Sclose(ms);
  H5Sclose(fs);
  if (d >= 0) H5Dclose(d);
  RF_CHECK(e, "write a per-client integer");
  return derr;
}

fm_err fm_runfile_set_attr(fm_runfile *rf, const char *name, double value) {
  MPI_Bcast(&value, 1, MPI_DOUBLE, 0, rf->comm); /* one value on every rank */
  if (H5Aexists(rf->file, name) > 0) H5Adelete(rf->file, name);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(rf->file, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_DOUBLE, &value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  RF_CHECK(e, "write a root attribute");
  return FM_OK;
}

void fm_runfile_ckpt_names(const fm_runfile *rf, int round, char *full, size_t flen, char *rel, size_t rlen) {
  const char *base = strrchr(rf->path, '/');
  base = base ? base + 1 : rf->path;
  if (full) snprintf(full, flen, "%s.ckpt/r%06d.h5", rf->path, round);
  if (rel) snprintf(rel, rlen, "%s.ckpt/r%06d.h5", base, round);
}

herr_t fm_runfile_agree(const fm_runfile *rf, herr_t e) {
  int ok = e >= 0;
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, rf->comm);
  return ok ? 0 : -1;
}

static hid_t mpio_fapl(const fm_runfile *rf) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, rf->comm, MPI_INFO_NULL);
  H5Pset_all_coll_metadata_ops(fapl, 1);
  H5Pset_coll_metadata_write(fapl, 1);
  return fapl;
}

hid_t fm_runfile_open_ckpt(const fm_runfile *rf, const char *full) {
  hid_t fapl = mpio_fapl(rf);
  hid_t f = H5Fopen(full, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  return f;
}

/* A checkpoint is a file of its own, written as "<name>.tmp" and renamed into place
 * when complete; only then does the run file link to it. A failure while writing it
 * (a killed rank, a full disk) can damage only the temporary file: the run file and
 * the previous checkpoints are never half-written. */
fm_err fm_runfile_checkpoint_begin(fm_runfile *rf, int round) {
  char full[FM_PATH_MAX + 32], tmp[FM_PATH_MAX + 40], dir[FM_PATH_MAX + 16];
  fm_runfile_ckpt_names(rf, round, full, sizeof full, NULL, 0);
  snprintf(tmp, sizeof tmp, "%s.tmp", full);
  snprintf(dir, sizeof dir, "%s.ckpt", rf->path);
  /* rank 0's errors (with its errno) are agreed: printed once, every rank returns */
  fm_err err = FM_OK;
  if (rf->rank == 0 && mkdir(dir, 0777) != 0 && errno != EEXIST)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "cannot create the checkpoint folder '%s': %s", dir,
                       strerror(errno));
  FM_CHECK(fm_error_agree(err, &rf->comm));
  hid_t fapl = mpio_fapl(rf);
  rf->ckpt_file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (rf->ckpt_file < 0)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "cannot create checkpoint file '%s'", tmp);
  FM_CHECK(fm_error_agree(err, &rf->comm));
  rf->ckpt = H5Gopen2(rf->ckpt_file, "/", H5P_DEFAULT);
  RF_CHECK(rf->ckpt, "open a checkpoint's root group");
  rf->ckpt_round = round;
  hid_t g = H5Gcreate2(rf->ckpt, "shared", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RF_CHECK(g, "create a checkpoint's shared group");
  H5Gclose(g);
  g = H5Gcreate2(rf->ckpt, "clients", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  RF_CHECK(g, "create a checkpoint's clients group");
  H5Gclose(g);
  FM_CHECK(attr_i64(rf, rf->ckpt, "round", round));
  FM_CHECK(attr_i64(rf, rf->ckpt, "checksums", 1)); /* every tensor has one (runfile_impl.h) */
  return FM_OK;
}

int fm_elink_file(hid_t g, const char *name, char *file, size_t len) {
  char val[FM_PATH_MAX + 64];
  const char *f = NULL, *obj = NULL;
  unsigned flags;
  H5L_info_t info;
  if (H5Lget_info(g, name, &info, H5P_DEFAULT) < 0 || info.type != H5L_TYPE_EXTERNAL) return 0;
  if (H5Lget_val(g, name, val, sizeof val, H5P_DEFAULT) < 0) return 0;
  val[sizeof val - 1] = 0;
  if (H5Lunpack_elink_val(val, sizeof val, &flags, &f, &obj) < 0 || !f) return 0;
  snprintf(file, len, "%s", f);
  return 1;
}

void fm_ckpt_path_by_name(const char *runfile, const char *linkfile, char *full, size_t len) {
  const char *base = strrchr(linkfile, '/');
  snprintf(full, len, "%s.ckpt/%.40s", runfile, base ? base + 1 : linkfile);
}

/* The link's folder is not followed: the file is looked for beside the run file under
 * the run file's own name, so that a copied or renamed run file uses its own .ckpt
 * folder (or finds none) and never reads or prunes the original's. */
int fm_runfile_elink_path(const fm_runfile *rf, hid_t g, const char *name, char *full, size_t len) {
  char file[FM_PATH_MAX + 64];
  if (!fm_elink_file(g, name, file, sizeof file)) return 0;
  fm_ckpt_path_by_name(rf->path, file, full, len);
  return 1;
}

/* Remove a checkpoint's link and, when it is a file of its own, the file (rank 0). */
static void drop_checkpoint(fm_runfile *rf, int round) {
  char link[64], full[FM_PATH_MAX + 64];
  snprintf(link, sizeof link, "/checkpoints/r%06d", round);
  int file = fm_runfile_elink_path(rf, rf->file, link, full, sizeof full);
  if (H5Lexists(rf->file, link, H5P_DEFAULT) > 0) H5Ldelete(rf->file, link, H5P_DEFAULT);
  if (file && rf->rank == 0) unlink(full);
}

/* One tensor of a checkpoint, group/name: matrices [rows][cols], vectors (rows 0)
 * [cols], so that h5py readers get usable arrays; with the checksum of what rank 0
 * wrote. The group is made with the first tensor. Collective. */
fm_err fm_runfile_write_tensor(fm_runfile *rf, const char *group, const char *name, const float *w, size_t rows,
                               size_t cols, const char *what) {
  char path[160];
  snprintf(path, sizeof path, "%s/%s", group, name);
  hsize_t shape[2] = {rows, cols}, dims = (hsize_t)(rows ? rows : 1) * cols;
  hid_t fs = rows ? H5Screate_simple(2, shape, NULL) : H5Screate_simple(1, &shape[1], NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(rf->ckpt, path, H5T_NATIVE_FLOAT, fs, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (fm_runfile_agree(rf, d < 0 ? -1 : 0) < 0) {
    if (d >= 0) H5Dclose(d);
    H5Sclose(fs);
    RF_ERROR_ALL(FM_ERR_HDF5, "%s: HDF5 failed to create tensor %s in a checkpoint", rf->path, path);
  }
  fm_err derr = fm_runfile_describe(rf, d, what, "1");
  hid_t ms = H5Screate_simple(1, &dims, NULL);
  if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = fm_runfile_agree(rf, H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, rf->dxpl, w));
  uint64_t sum = rf->rank == 0 ? fm_hash64(w, (size_t)dims * sizeof *w) : 0; /* of what rank 0 wrote */
  MPI_Bcast(&sum, 1, MPI_UINT64_T, 0, rf->comm);
  if (e >= 0) e = fm_runfile_agree(rf, fm_attr_u64(d, "checksum", sum));
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  if (e < 0) RF_ERROR_ALL(FM_ERR_HDF5, "%s: HDF5 failed to write checkpoint tensor %s", rf->path, path);
  return derr;
}

fm_err fm_runfile_write_shared(fm_runfile *rf, const char *name, const float *w, size_t rows, size_t cols) {
  return fm_runfile_write_tensor(rf, "shared", name, w, rows, cols,
                                 "global (aggregated) values of the model tensor after the round");
}

/* fedbiot's server keeps the full model (its bottom blocks the pretrained model's
 * (model.init), frozen; its top blocks the aggregated adapter) that the clients never see; the paper scores
 * it, and `fedmoe eval` reads it from here. */
fm_err fm_runfile_write_server(fm_runfile *rf, const char *name, const float *w, size_t rows, size_t cols) {
  return fm_runfile_write_tensor(rf, "server", name, w, rows, cols,
                                 "the server's own model (fedbiot: the full model, bottom blocks those of the "
                                 "pretrained model.init, the aggregated adapter on top) after the round");
}

/* A 1-D dataset of the checkpoint being written, path (rank 0's n values of type):
 * state beside the model's tensors (the server optimizer's moments, control
 * variates). Collective. */
fm_err fm_runfile_write_1d(fm_runfile *rf, const char *path, hid_t type, const void *buf, size_t n,
                           const char *description, const char *units) {
  hsize_t dims = n;
  hid_t fs = H5Screate_simple(1, &dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(rf->ckpt, path, type, fs, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (fm_runfile_agree(rf, d < 0 ? -1 : 0) < 0) {
    if (d >= 0) H5Dclose(d);
    H5Sclose(fs);
    RF_ERROR_ALL(FM_ERR_HDF5, "%s: HDF5 failed to create %s in a checkpoint", rf->path, path);
  }
  fm_err derr = fm_runfile_describe(rf, d, description, units);
  hid_t ms = H5Screate_simple(1, &dims, NULL);
  if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = fm_runfile_agree(rf, H5Dwrite(d, type, ms, fs, rf->dxpl, buf));
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  if (e < 0) RF_ERROR_ALL(FM_ERR_HDF5, "%s: HDF5 failed to write %s in a checkpoint", rf->path, path);
  return derr;
}

fm_err fm_runfile_checkpoint_end(fm_runfile *rf) {
  char full[FM_PATH_MAX + 32], tmp[FM_PATH_MAX + 40], rel[FM_PATH_MAX + 32], link[64];
  fm_runfile_ckpt_names(rf, rf->ckpt_round, full, sizeof full, rel, sizeof rel);
  snprintf(tmp, sizeof tmp, "%s.tmp", full);
  /* the tensors reach the file before the mark; a failure leaves only the .tmp file */
  herr_t e = fm_runfile_agree(rf, H5Fflush(rf->ckpt_file, H5F_SCOPE_LOCAL));
  if (e >= 0) {
    fm_err err = attr_i64(rf, rf->ckpt, "complete", 1);
    e = fm_runfile_agree(rf, err ? -1 : 0);
  }
  H5Gclose(rf->ckpt);
  rf->ckpt = -1;
  e = fm_runfile_agree(rf, H5Fclose(rf->ckpt_file) < 0 ? -1 : e);
  rf->ckpt_file = -1;
  if (e < 0) {
    if (rf->rank == 0) unlink(tmp);
    RF_ERROR_ALL(FM_ERR_HDF5, "%s: cannot write checkpoint file '%s' (disk full?); the previous checkpoint is "
             "intact", rf->path, tmp);
  }
  fm_err err = FM_OK;
  if (rf->rank == 0 && rename(tmp, full) != 0) /* atomic: complete, or not there */
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "cannot rename checkpoint '%s' into place: %s", tmp,
                       strerror(errno));
  FM_CHECK(fm_error_agree(err, &rf->comm));
  /* only now does the run file point at it */
  snprintf(link, sizeof link, "/checkpoints/r%06d", rf->ckpt_round);
  if (H5Lexists(rf->file, link, H5P_DEFAULT) > 0) H5Ldelete(rf->file, link, H5P_DEFAULT);
  RF_CHECK(H5Lcreate_external(rel, "/", rf->file, link, H5P_DEFAULT, H5P_DEFAULT), "link a checkpoint file");
  if (H5Lexists(rf->file, "/checkpoints/latest", H5P_DEFAULT) > 0)
    RF_CHECK(H5Ldelete(rf->file, "/checkpoints/latest", H5P_DEFAULT), "move /checkpoints/latest");
  RF_CHECK(H5Lcreate_soft(link, rf->file, "/checkpoints/latest", H5P_DEFAULT, H5P_DEFAULT),
          "link /checkpoints/latest");
  RF_CHECK(H5Fflush(rf->file, H5F_SCOPE_GLOBAL), "flush the run file");
  rf->kept[rf->nkept++] = rf->ckpt_round;
  while (rf->nkept > rf->keep_last) { /* prune the oldest */
    if (rf->kept[0] != rf->ckpt_round) drop_checkpoint(rf, rf->kept[0]);
    memmove(rf->kept, rf->kept + 1, (size_t)(--rf->nkept) * sizeof *rf->kept);
  }
  RF_CHECK(H5Fflush(rf->file, H5F_SCOPE_GLOBAL), "flush the run file");
  return FM_OK;
}

fm_err fm_runfile_close(fm_runfile *rf) {
  if (!rf) return FM_OK;
  herr_t e = 0;
  if (rf->ckpt >= 0) H5Gclose(rf->ckpt);
  if (rf->ckpt_file >= 0) H5Fclose(rf->ckpt_file);
  hid_t ds[] = {rf->clients_ds, rf->rounds_ds, rf->counts_ds, rf->mass_ds, rf->index_ds};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
    if (ds[i] > 0) H5Dclose(ds[i]);
  for (int k = 0; k < rf->nstat; k++) H5Dclose(rf->stat_ds[k]);
  if (rf->client_t > 0) H5Tclose(rf->client_t);
  if (rf->round_t > 0) H5Tclose(rf->round_t);
  if (rf->index_t > 0) H5Tclose(rf->index_t);
  if (rf->dxpl >= 0) H5Pclose(rf->dxpl);
  if (rf->file >= 0) e = H5Fclose(rf->file);
  char path[FM_PATH_MAX];
  snprintf(path, sizeof path, "%s", rf->path);
  free(rf->kept);
  free(rf);
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: HDF5 failed to close the run file", path);
  return FM_OK;
}
