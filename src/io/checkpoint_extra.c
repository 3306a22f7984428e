/* checkpoint_extra.c - float64 arrays of the server's state in a checkpoint (the
 * server optimizer's moments), under groups of their own beside /shared. */
#include "runfile_impl.h"

#include <string.h>

fm_err fm_runfile_write_state(fm_runfile *rf, const char *path, const double *v, size_t n) {
  return fm_runfile_write_1d(rf, path, H5T_NATIVE_DOUBLE, v, n);
}

fm_err fm_runfile_read_state(fm_runfile *rf, const char *path, const char *key, double *v, size_t n) {
  /* H5Lexists on "a/b/c" fails when "a" is missing: check the path's groups first */
  char part[256];
  int there = 1;
  for (const char *p = path; there && (p = strchr(p, '/')); p++) {
    snprintf(part, sizeof part, "%.*s", (int)(p - path), path);
    there = H5Lexists(rf->ckpt, part, H5P_DEFAULT) > 0;
  }
  if (there) there = H5Lexists(rf->ckpt, path, H5P_DEFAULT) > 0;
  if (!there)
    FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint r%06d has no %s (%s differs from the run's: resume with its value)",
             rf->path, rf->ckpt_round, path, key);
  hid_t d = H5Dopen2(rf->ckpt, path, H5P_DEFAULT);
  if (d < 0) FM_ERROR(FM_ERR_FORMAT, "%s: cannot open %s in checkpoint r%06d", rf->path, path, rf->ckpt_round);
  hid_t sp = H5Dget_space(d);
  hssize_t have = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  if (have != (hssize_t)n) {
    H5Dclose(d);
    FM_ERROR(FM_ERR_FORMAT, "%s: %s has %lld values in the checkpoint, the model %zu", rf->path, path,
             (long long)have, n);
  }
  /* rank 0 keeps the server's state: the others read nothing */
  hsize_t dims = n;
  hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &dims, NULL);
  if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
  herr_t e = H5Dread(d, H5T_NATIVE_DOUBLE, ms, fs, rf->dxpl, v);
  H5Sclose(ms);
  H5Sclose(fs);
  H5Dclose(d);
  if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot read %s (corrupted checkpoint?)", rf->path, path);
  return FM_OK;
}
