/* checkpoint_server.c - the server's own model in a checkpoint: /server/{tensor}.
 * fedbiot's server keeps the full model (its bottom blocks frozen after pretraining,
 * its top blocks the aggregated adapter) that the clients never see; the paper scores
 * it, and `fedmoe eval` reads it from here. Rank 0 holds the values; the write is
 * collective like every checkpoint write, and each tensor has its shape and checksum
 * as the shared ones do. */
#include "runfile_impl.h"

fm_err fm_runfile_write_server(fm_runfile *rf, const char *name, const float *w, size_t rows, size_t cols) {
  return fm_runfile_write_tensor(rf, "server", name, w, rows, cols,
                                 "the server's own model (fedbiot: the full model, bottom blocks frozen after "
                                 "pretraining, the aggregated adapter on top) after the round");
}
