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
/* The file an external link g/name names, relative to the run file's folder; 0 when
 * name is not an external link. */
int fm_runfile_elink_path(const fm_runfile *rf, hid_t g, const char *name, char *full, size_t len);
/* A 1-D dataset of n values of type at path in the checkpoint being written, its
 * groups made as needed, rank 0's buf written (collective). */
fm_err fm_runfile_write_1d(fm_runfile *rf, const char *path, hid_t type, const void *buf, size_t n);
/* Open a checkpoint file collectively (read-only) with MPI-IO; -1 on failure. */
hid_t fm_runfile_open_ckpt(const fm_runfile *rf, const char *full);
/* A run file handle with its types and transfer list, no file yet. */
fm_err fm_runfile_alloc(fm_runfile **rf, const char *path, const fm_config *cfg, int layers, int experts,
                        MPI_Comm comm);

#endif
