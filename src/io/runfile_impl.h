/* runfile_impl.h - the run file's state, shared by the writer and the resumer. */
#ifndef FEDMOE_IO_RUNFILE_IMPL_H
#define FEDMOE_IO_RUNFILE_IMPL_H

#include "fedmoe/io.h"

#include <hdf5.h>

struct fm_runfile {
  hid_t file, dxpl, client_t, round_t, index_t;
  hid_t clients_ds, rounds_ds, counts_ds, mass_ds, index_ds;
  hid_t ckpt;      /* root group of the checkpoint being written or resumed, or -1 */
  hid_t ckpt_file; /* its file (a checkpoint is a file of its own), or -1 */
  int ckpt_round;
  MPI_Comm comm;
  int rank, P, N, L, E, keep_last;
  hsize_t nclient_rows, nround_rows;
  hsize_t nstat_rows;       /* rows of /routing/index and the per-client statistics */
  hsize_t round_first;      /* the first of them of round `rows_round`, the last written */
  int rows_round;
  int *kept; /* rounds of the complete checkpoints kept, oldest first */
  int nkept;
  char path[FM_PATH_MAX];
  hid_t stat_ds[8];       /* /fl/<name> datasets opened so far */
  char stat_name[8][32];
  int nstat;
};

/* An error that every rank found at the same step (its status went through
 * fm_runfile_agree): agreed, so it is printed once and every rank returns its code. */
#define RF_ERROR_ALL(code, ...) \
  return fm_error_agree(fm_error_set(__FILE__, __LINE__, __func__, (code), __VA_ARGS__), &rf->comm)

#define RF_CHECK(call, what)                                                                  \
  do {                                                                                       \
    if ((call) < 0) FM_ERROR(FM_ERR_HDF5, "%s: HDF5 failed to %s", rf->path, what);          \
  } while (0)

/* Select, in fs of an [rows][inner...] dataset of rank nd, the k rows first + rows[j]
 * (rows ascending), runs of consecutive rows as one block each. */
void fm_runfile_select_rows(hid_t fs, hsize_t first, const int32_t *rows, int k, int nd, const hsize_t *inner);
/* The checkpoint file of a round: "<run file>.ckpt/rNNNNNN.h5" (full, for opening)
 * and the same relative to the run file's folder (for the link in the run file). */
void fm_runfile_ckpt_names(const fm_runfile *rf, int round, char *full, size_t flen, char *rel, size_t rlen);
/* Every rank learns whether a collective HDF5 step failed anywhere: a write that fails
 * on one rank only (an MPI-IO aggregator on a full disk) must not leave the others
 * going on into the next collective call. Returns e < 0 on every rank if any failed. */
herr_t fm_runfile_agree(const fm_runfile *rf, herr_t e);
/* The file name an external link g/name holds (as written); 0 when name is not an
 * external link. */
int fm_elink_file(hid_t g, const char *name, char *file, size_t len);
/* Where the checkpoint file a link names is: "<runfile>.ckpt/<its file name>", by the
 * run file's own name whatever folder the link names, so that a run file and its
 * .ckpt folder stay together when copied, moved or renamed. */
void fm_ckpt_path_by_name(const char *runfile, const char *linkfile, char *full, size_t len);
/* The checkpoint file of external link g/name (fm_ckpt_path_by_name); 0 when name is
 * not an external link. */
int fm_runfile_elink_path(const fm_runfile *rf, hid_t g, const char *name, char *full, size_t len);
/* A 1-D dataset of n values of type at path in the checkpoint being written, its
 * groups made as needed, rank 0's buf written (collective). */
fm_err fm_runfile_write_1d(fm_runfile *rf, const char *path, hid_t type, const void *buf, size_t n,
                           const char *description, const char *units);
/* Open a checkpoint file collectively (read-only) with MPI-IO; -1 on failure. */
hid_t fm_runfile_open_ckpt(const fm_runfile *rf, const char *full);
/* A checkpoint of format 3 (root attribute checksums = 1) stores an fm_hash64 per
 * tensor: attribute checksum of each shared/{name}, datasets
 * {params,adam_m,adam_v,adam_step}_checksum [K] (one per client row) and attribute
 * client_checksum of each clients/class{c} group (its client ids). */
/* A checkpoint tensor group/name with its shape (rows 0: a vector of cols) and its
 * checksum, described as `what` (runfile.c). Collective. */
fm_err fm_runfile_write_tensor(fm_runfile *rf, const char *group, const char *name, const float *w, size_t rows,
                               size_t cols, const char *what);
/* h5attr.c: scalar attributes. Write one (in a parallel file collective: the same
 * value on every rank; it must not exist yet); read one back, 0 when it is missing or
 * not one value. */
herr_t fm_attr_u64(hid_t obj, const char *name, uint64_t value);
int fm_attr_read_u64(hid_t obj, const char *name, uint64_t *value);
herr_t fm_attr_i64(hid_t obj, const char *name, int64_t value);
int fm_attr_read_i64(hid_t obj, const char *name, int64_t *value);
herr_t fm_attr_text(hid_t obj, const char *name, const char *value);
/* runfile_describe.c: description and units attributes of obj; of the datasets that
 * fm_runfile_create makes (compound ones also per field); of /fl/<name>. Collective.
 * An attribute already there (a resumed file) is kept. */
fm_err fm_runfile_describe(fm_runfile *rf, hid_t obj, const char *description, const char *units);
/* A scalar text attribute (kept as it is when obj has one already). Collective. */
fm_err fm_runfile_text_attr(fm_runfile *rf, hid_t obj, const char *name, const char *value);
fm_err fm_runfile_describe_layout(fm_runfile *rf);
fm_err fm_runfile_describe_fl(fm_runfile *rf, hid_t ds, const char *name);
/* ... of a checkpoint's /tensors table (runfile_index.c) */
fm_err fm_runfile_describe_tensor_index(fm_runfile *rf, hid_t ds);
/* The compound of a /metrics/rounds row (fm_round_row), for writing and reading: a
 * read leaves the members a file lacks (an older fedmoe's) as the buffer held them. */
hid_t fm_runfile_round_type(void);
/* The HDF5 enum of /metrics/clients status (FM_CLIENT_* and -1, evaluated only). */
hid_t fm_runfile_status_type(void);
/* A run file handle with its types and transfer list, no file yet. */
fm_err fm_runfile_alloc(fm_runfile **rf, const char *path, const fm_config *cfg, int layers, int experts,
                        MPI_Comm comm);

#endif
