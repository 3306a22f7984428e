/* checkpoint_server.c - the server's own model in a checkpoint: /server/{tensor}.
 * fedbiot's server keeps the full model (its bottom blocks frozen after pretraining,
 * its top blocks the aggregated adapter) that the clients never see; the paper scores
 * it, and `fedmoe eval` reads it from here. Rank 0 holds the values; the write is
 * collective like every checkpoint write. */
#include "runfile_impl.h"

#include <stdio.h>

fm_err fm_runfile_write_server(fm_runfile *rf, const char *name, const float *w, size_t n) {
  char path[160];
  snprintf(path, sizeof path, "server/%s", name);
  hsize_t dims = n;
  hid_t fs = H5Screate_simple(1, &dims, NULL);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1); /* /server on the first tensor */
  hid_t d = H5Dcreate2(rf->ckpt, path, H5T_NATIVE_FLOAT, fs, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (fm_runfile_agree(rf, d < 0 ? -1 : 0) < 0) {
    if (d >= 0) H5Dclose(d);
    H5Sclose(fs);
    FM_ERROR(FM_ERR_HDF5, "%s: HDF5 failed to create server tensor %s in a checkpoint", rf->path, name);
  }
  fm_err derr = fm_runfile_describe(rf, d, "the server's own model (fedbiot: the full model, bottom blocks frozen "
                                     "after pretraining, the aggregated adapter on top) after the round", "1");
  hid_t ms = H5Screate_simple(1, &dims, NULL);
  if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = fm_runfile_agree(rf, H5Dwrite(d, H5T_NATIVE_FLOAT, ms, fs, rf->dxpl, w));
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  RF_CHECK(e, "write a server tensor");
  return derr;
}
