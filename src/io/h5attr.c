/* h5attr.c - scalar HDF5 attributes: one 64-bit integer or one fixed-length string,
 * written and read back. Shared by the run file, its checkpoints and the pretraining
 * file; what an error means is for the caller to say (they return HDF5's status). */
#include "runfile_impl.h"

#include <stdlib.h>
#include <string.h>

static herr_t write_scalar(hid_t obj, const char *name, hid_t type, const void *value) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, type, value);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  return e;
}

static int read_scalar(hid_t obj, const char *name, hid_t type, void *value) {
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
  int ok = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 && H5Aread(a, type, value) >= 0;
  if (sp >= 0) H5Sclose(sp);
  if (a >= 0) H5Aclose(a);
  return ok;
}

herr_t fm_attr_u64(hid_t obj, const char *name, uint64_t value) {
  return write_scalar(obj, name, H5T_NATIVE_UINT64, &value);
}

int fm_attr_read_u64(hid_t obj, const char *name, uint64_t *value) {
  return read_scalar(obj, name, H5T_NATIVE_UINT64, value);
}

herr_t fm_attr_i64(hid_t obj, const char *name, int64_t value) {
  return write_scalar(obj, name, H5T_NATIVE_INT64, &value);
}

int fm_attr_read_i64(hid_t obj, const char *name, int64_t *value) {
  return read_scalar(obj, name, H5T_NATIVE_INT64, value);
}

herr_t fm_attr_text(hid_t obj, const char *name, const char *value) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, strlen(value) + 1);
  herr_t e = write_scalar(obj, name, t, value);
  H5Tclose(t);
  return e;
}
