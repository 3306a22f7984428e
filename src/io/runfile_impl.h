/* runfile_impl.h - the run file's state, shared by the writer and the resumer. */
#ifndef FEDMOE_IO_RUNFILE_IMPL_H
#define FEDMOE_IO_RUNFILE_IMPL_H

#include "fedmoe/io.h"

#include <hdf5.h>

struct fm_runfile {
  hid_t file, dxpl, client_t, round_t;
  hid_t clients_ds, rounds_ds, counts_ds, mass_ds;
  hid_t ckpt; /* current checkpoint group, or -1 */
  int ckpt_round;
  MPI_Comm comm;
  int rank, P, N, L, E, keep_last;
  hsize_t nclient_rows, nround_rows;
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

/* A run file handle with its types and transfer list, no file yet. */
fm_err fm_runfile_alloc(fm_runfile **rf, const char *path, const fm_config *cfg, int layers, int experts,
                        MPI_Comm comm);

#endif
