/* checkpoint_extra.c - float64 arrays of the server's state in a checkpoint (the
 * server optimizer's moments), under groups of their own beside /shared. */
#include "runfile_impl.h"

#include <string.h>

/* What a state array holds, by the start of its path (description and units attributes) */
static const struct {
  const char *prefix, *description, *units;
} state_docs[] = {
  {"server_opt/m/", "the server optimizer's first moment of this shared tensor (fl.server_opt)", "1"},
  {"server_opt/v/", "the server optimizer's second moment of this shared tensor (fl.server_opt)", "1"},
  {"scaffold/c/", "SCAFFOLD's server control variate of this shared tensor (fl.scaffold)", "1"},
  {"fedbiot/emulator_adam/m", "fedbiot: the AdamW first moment of the emulator's alignment, over the emulator "
                              "class in model order", "1"},
  {"fedbiot/emulator_adam/v", "fedbiot: the AdamW second moment of the emulator's alignment, over the emulator "
                              "class in model order", "1"},
  {"fedbiot/emulator_adam/step", "fedbiot: AdamW steps of the emulator's alignment so far", "1"},
};

fm_err fm_runfile_write_state(fm_runfile *rf, const char *path, const double *v, size_t n) {
  const char *what = "the server's state kept across rounds", *units = "1";
  for (size_t i = 0; i < sizeof state_docs / sizeof *state_docs; i++)
    if (!strncmp(path, state_docs[i].prefix, strlen(state_docs[i].prefix)))
      what = state_docs[i].description, units = state_docs[i].units;
  return fm_runfile_write_1d(rf, path, H5T_NATIVE_DOUBLE, v, n, what, units);
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
