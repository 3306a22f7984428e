/* runfile_index.c - a checkpoint's table of tensors, /tensors, so that h5py users can
 * cut the private classes' rows into arrays: one row per model tensor, in model
 * order, {name, where, cls, offset, ndim, rows, cols}. where: 1 = the dataset
 * /shared/<name> ([rows][cols], or [cols] when ndim is 1), 2 = values offset ..
 * offset + rows*cols of each row of /clients/class<cls>/params, 0 = not stored (a
 * frozen tensor: the run's initial value, or model.init's). */
#include "runfile_impl.h"

#include "fedmoe/hf.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  char name[64];
  int32_t where, cls;
  int64_t offset;
  int32_t ndim, rows, cols;
} index_row;

static hid_t index_type(void) {
  hid_t s = H5Tcopy(H5T_C_S1);
  H5Tset_size(s, sizeof ((index_row *)0)->name);
  hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(index_row));
  H5Tinsert(t, "name", HOFFSET(index_row, name), s);
  H5Tinsert(t, "where", HOFFSET(index_row, where), H5T_NATIVE_INT32);
  H5Tinsert(t, "cls", HOFFSET(index_row, cls), H5T_NATIVE_INT32);
  H5Tinsert(t, "offset", HOFFSET(index_row, offset), H5T_NATIVE_INT64);
  H5Tinsert(t, "ndim", HOFFSET(index_row, ndim), H5T_NATIVE_INT32);
  H5Tinsert(t, "rows", HOFFSET(index_row, rows), H5T_NATIVE_INT32);
  H5Tinsert(t, "cols", HOFFSET(index_row, cols), H5T_NATIVE_INT32);
  H5Tclose(s);
  return t;
}

fm_err fm_runfile_write_tensor_index(fm_runfile *rf, fm_model *m, const int *shared) {
  const int nt = fm_model_ntensors(m);
  index_row *rows;
  FM_CALLOC(rows, (size_t)nt, "checkpoint tensor table");
  for (int i = 0; i < nt; i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    index_row *r = &rows[i];
    snprintf(r->name, sizeof r->name, "%s", t->name);
    r->cls = t->cls;
    r->where = t->cls == FM_CLASS_FROZEN ? 0 : shared[t->cls] ? 1 : 2;
    r->offset = (int64_t)t->offset;
    r->ndim = fm_tensor_ndim(t);
    r->rows = t->rows;
    r->cols = t->cols;
  }
  hid_t type = index_type();
  hsize_t dims = (hsize_t)nt;
  hid_t fs = H5Screate_simple(1, &dims, NULL);
  hid_t d = H5Dcreate2(rf->ckpt, "tensors", type, fs, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = fm_runfile_agree(rf, d < 0 ? -1 : 0);
  if (e >= 0) {
    hid_t ms = H5Screate_simple(1, &dims, NULL);
    if (rf->rank != 0) { H5Sselect_none(fs); H5Sselect_none(ms); }
    e = fm_runfile_agree(rf, H5Dwrite(d, type, ms, fs, rf->dxpl, rows));
    H5Sclose(ms);
  }
  fm_err derr = e >= 0 ? fm_runfile_describe_tensor_index(rf, d) : FM_OK;
  if (d >= 0) H5Dclose(d);
  H5Sclose(fs);
  H5Tclose(type);
  free(rows);
  RF_CHECK(e, "write a checkpoint's tensor table");
  return derr;
}
