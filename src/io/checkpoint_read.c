/* checkpoint_read.c - a model out of a run file's latest checkpoint, read serially
 * (for `fedmoe eval`): the resolved configuration text, then the shared tensors
 * (/checkpoints/latest/shared/{name}) and one client's row of each private class
 * (/checkpoints/latest/clients/class{c}/params, tensors of class c contiguous in model
 * order): rows [K][n] for the K clients listed in clients/class{c}/client, or, in run
 * files that have no such list, [N][n] with an allocated [N] flag. A client without a
 * row was never sampled and keeps its initial values. Serial HDF5 (default file access) works with the parallel library
 * too; only the calling rank touches the file. */
#include "runfile_impl.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open path read-only as a fedmoe run file; errors name the file. */
static fm_err open_runfile(const char *path, hid_t *f) {
  *f = -1;
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  FILE *probe = fopen(path, "rb");
  if (!probe) FM_ERROR(FM_ERR_IO, "--checkpoint: cannot open '%s' (no such file, or not readable)", path);
  fclose(probe);
  if (H5Fis_hdf5(path) <= 0)
    FM_ERROR(FM_ERR_FORMAT, "--checkpoint: '%s' is not an HDF5 file, so not a fedmoe run file", path);
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (*f < 0)
    FM_ERROR(FM_ERR_FORMAT, "--checkpoint: '%s' is truncated or damaged: HDF5 finds its signature but cannot "
             "open it", path);
  if (H5Aexists(*f, "fedmoe_version") <= 0 || H5Aexists(*f, "config") <= 0) {
    H5Fclose(*f);
    *f = -1;
    FM_ERROR(FM_ERR_FORMAT,
             "--checkpoint: '%s' is an HDF5 file but not a fedmoe run file (no fedmoe_version or "
             "config attribute at /)", path);
  }
  return FM_OK;
}

/* Whether attribute a holds exactly one value (a file may hold an array there: reading
 * it into one value would overrun the buffer). */
static int one_value(hid_t a) {
  hid_t sp = H5Aget_space(a);
  int one = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1;
  if (sp >= 0) H5Sclose(sp);
  return one;
}

fm_err fm_runfile_read_config(const char *path, char **text) {
  *text = NULL;
  hid_t f;
  FM_CHECK(open_runfile(path, &f));
  hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
  hid_t t = a >= 0 ? H5Aget_type(a) : -1;
  fm_err err = FM_OK;
  if (t < 0 || H5Tget_class(t) != H5T_STRING || !one_value(a)) {
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                       "%s: the root attribute 'config' is not a string", path);
  } else {
    hid_t mt = H5Tcopy(H5T_C_S1);
    char *buf = NULL;
    if (H5Tis_variable_str(t) > 0) {
      H5Tset_size(mt, H5T_VARIABLE);
      char *vs = NULL;
      if (H5Aread(a, mt, &vs) < 0 || !vs)
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot read attribute 'config'", path);
      else if (!(err = fm_calloc(&buf, strlen(vs) + 1, 1, "configuration text")))
        memcpy(buf, vs, strlen(vs));
      if (vs) H5free_memory(vs);
    } else {
      size_t n = H5Tget_size(t);
      H5Tset_size(mt, n);
      if (!(err = fm_calloc(&buf, n + 1, 1, "configuration text")) && H5Aread(a, mt, buf) < 0)
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot read attribute 'config'", path);
    }
    H5Tclose(mt);
    if (err) free(buf);
    else *text = buf;
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  H5Fclose(f);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

/* One row [client][0..n) of a 2-D dataset of floats or bytes. */
static fm_err read_row(const char *path, hid_t g, const char *name, hid_t type, int client, size_t n, void *buf) {
  hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
  if (d < 0) FM_ERROR(FM_ERR_FORMAT, "%s: the latest checkpoint has no '%s'", path, name);
  hid_t fs = H5Dget_space(d);
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_ndims(fs);
  if (nd >= 1 && nd <= 2) H5Sget_simple_extent_dims(fs, dims, NULL);
  fm_err err = FM_OK;
  if (nd < 1 || nd > 2 || (hsize_t)client >= dims[0] || (n > 1 && (nd != 2 || dims[1] != n))) {
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                       "%s: checkpoint dataset '%s' has shape [%llu][%llu], expected [> %d][%zu] (another "
                       "model?)", path, name, (unsigned long long)dims[0], (unsigned long long)dims[1],
                       client, n);
  } else {
    hsize_t start[2] = {(hsize_t)client, 0}, count[2] = {1, nd == 2 ? dims[1] : 1};
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(1, &count[1], NULL);
    if (H5Dread(d, type, ms, fs, H5P_DEFAULT, buf) < 0)
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot read '%s'", path, name);
    H5Sclose(ms);
  }
  H5Sclose(fs);
  H5Dclose(d);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

/* group: where the shared classes' tensors are ("shared"; "server" for the server's
 * own model) */
static fm_err load(const char *path, hid_t ck, const char *group, fm_model *m, const int *shared, int client,
                   int *allocated) {
  char name[160];
  /* a checkpoint of format 3 has a checksum per tensor (runfile_impl.h): what is read is checked */
  int verify = H5Aexists(ck, "checksums") > 0;
  if (!verify)
    fprintf(stderr, "fedmoe: note: the latest checkpoint of %s has no checksums (written by a fedmoe before "
            "format 3): loaded without verification\n", path);
  /* shared classes: tensor by tensor */
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (t->cls == FM_CLASS_FROZEN || !shared[t->cls]) continue;
    snprintf(name, sizeof name, "%s/%s", group, t->name);
    hid_t d = H5Lexists(ck, group, H5P_DEFAULT) > 0 && H5Lexists(ck, name, H5P_DEFAULT) > 0
                  ? H5Dopen2(ck, name, H5P_DEFAULT) : -1;
    if (d < 0 && !strcmp(group, "server") && H5Lexists(ck, group, H5P_DEFAULT) <= 0)
      FM_ERROR(FM_ERR_FORMAT, "%s: the latest checkpoint has no server model (/server: run files before "
               "format 3 do not store fedbiot's full model)", path);
    if (d < 0) FM_ERROR(FM_ERR_FORMAT, "%s: the latest checkpoint has no tensor '%s'", path, name);
    hid_t sp = H5Dget_space(d);
    hssize_t have = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    herr_t e = have == (hssize_t)t->numel ? H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->w) : 0;
    uint64_t want = 0;
    int has = verify ? fm_attr_read_u64(d, "checksum", &want) : 0;
    H5Dclose(d);
    if (verify && e >= 0 && have == (hssize_t)t->numel && (!has || fm_hash64(t->w, t->numel * sizeof *t->w) != want))
      FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint tensor '%s' %s (the checkpoint file is damaged)", path, name,
               has ? "fails its checksum" : "has no checksum");
    if (have != (hssize_t)t->numel)
      FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint tensor '%s' has %lld values, the run's model %zu", path, name,
               (long long)have, t->numel);
    if (e < 0) FM_ERROR(FM_ERR_HDF5, "%s: cannot read '%s'", path, name);
  }
  /* private classes: the client's row of each */
  *allocated = 1;
  for (int c = 0; c < fm_model_nclass(m); c++) {
    if (shared[c] || client < 0) continue;
    size_t n = fm_model_class_numel(m, c);
    int row = client;
    snprintf(name, sizeof name, "clients/class%d/client", c);
    if (H5Lexists(ck, "clients", H5P_DEFAULT) > 0 && H5Lexists(ck, name, H5P_DEFAULT) > 0) {
      /* rows only for the clients with state, their ids ascending in .../client */
      hid_t d = H5Dopen2(ck, name, H5P_DEFAULT);
      hid_t sp = H5Dget_space(d);
      hssize_t K = H5Sget_simple_extent_npoints(sp);
      H5Sclose(sp);
      int32_t *ids = NULL;
      fm_err err = fm_calloc(&ids, (size_t)K + 1, sizeof *ids, "checkpoint client ids");
      if (!err && K > 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids) < 0)
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot read '%s'", path, name);
      H5Dclose(d);
      row = -1;
      for (hssize_t j = 0; !err && j < K; j++)
        if (ids[j] == client) row = (int)j;
      free(ids);
      FM_CHECK(err);
    } else { /* a row for every client, with an allocated flag */
      snprintf(name, sizeof name, "clients/class%d/allocated", c);
      uint8_t alloc = 0;
      FM_CHECK(read_row(path, ck, name, H5T_NATIVE_UINT8, client, 1, &alloc));
      if (!alloc) row = -1;
    }
    if (row < 0) { /* never sampled: the client still has its initial values */
      *allocated = 0;
      continue;
    }
    snprintf(name, sizeof name, "clients/class%d/params", c);
    FM_CHECK(read_row(path, ck, name, H5T_NATIVE_FLOAT, row, n, fm_model_class_params(m, c)));
    if (verify) {
      uint64_t want = 0;
      snprintf(name, sizeof name, "clients/class%d/params_checksum", c);
      FM_CHECK(read_row(path, ck, name, H5T_NATIVE_UINT64, row, 1, &want));
      if (fm_hash64(fm_model_class_params(m, c), n * sizeof(float)) != want)
        FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint tensor 'clients/class%d/params' row %d (client %d) fails its "
                 "checksum (the checkpoint file is damaged)", path, c, row, client);
    }
  }
  return FM_OK;
}

static fm_err load_latest(const char *path, const char *group, fm_model *m, const int *shared, int client,
                          int *round, int *allocated) {
  hid_t f;
  FM_CHECK(open_runfile(path, &f));
  int have = H5Lexists(f, "checkpoints", H5P_DEFAULT) > 0 && H5Lexists(f, "checkpoints/latest", H5P_DEFAULT) > 0;
  if (!have) {
    H5Fclose(f);
    FM_ERROR(FM_ERR_FORMAT, "%s: the run file has no checkpoint (/checkpoints/latest is missing: the run "
             "stopped before writing one)", path);
  }
  /* latest -> /checkpoints/rNNNNNN; a checkpoint file of its own is looked for by the
   * run file's name (beside a copy, the copy's folder), not where the link points */
  char target[128] = "", lfile[FM_PATH_MAX + 64], full[FM_PATH_MAX + 64];
  H5L_info_t li;
  if (H5Lget_info(f, "checkpoints/latest", &li, H5P_DEFAULT) >= 0 && li.type == H5L_TYPE_SOFT &&
      H5Lget_val(f, "checkpoints/latest", target, sizeof target, H5P_DEFAULT) >= 0)
    target[sizeof target - 1] = 0;
  hid_t cf = -1, ck = -1;
  if (target[0] && H5Lexists(f, target, H5P_DEFAULT) > 0 && fm_elink_file(f, target, lfile, sizeof lfile)) {
    fm_ckpt_path_by_name(path, lfile, full, sizeof full);
    cf = H5Fopen(full, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (cf < 0) {
      H5Fclose(f);
      FM_ERROR(FM_ERR_FORMAT, "%s: cannot open its latest checkpoint '%s' (a run file copied, moved or renamed "
               "without its .ckpt folder?)", path, full);
    }
    ck = H5Gopen2(cf, "/", H5P_DEFAULT);
  } else {
    ck = H5Gopen2(f, "checkpoints/latest", H5P_DEFAULT);
  }
  if (ck < 0) {
    if (cf >= 0) H5Fclose(cf);
    H5Fclose(f);
    FM_ERROR(FM_ERR_FORMAT, "%s: cannot open its latest checkpoint (damaged run file?)", path);
  }
  *round = -1;
  if (H5Aexists(ck, "round") > 0) {
    hid_t a = H5Aopen(ck, "round", H5P_DEFAULT);
    int64_t v = -1;
    if (one_value(a) && H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) *round = (int)v;
    H5Aclose(a);
  }
  int dummy;
  fm_err err = load(path, ck, group, m, shared, client, allocated ? allocated : &dummy);
  H5Gclose(ck);
  if (cf >= 0) H5Fclose(cf);
  H5Fclose(f);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

fm_err fm_checkpoint_load(const char *path, fm_model *m, const int *shared, int client, int *round,
                          int *allocated) {
  return load_latest(path, "shared", m, shared, client, round, allocated);
}

fm_err fm_checkpoint_load_server(const char *path, fm_model *m, int *round) {
  static const int one_shared[1] = {1}; /* the model has one class */
  return load_latest(path, "server", m, one_shared, -1, round, NULL);
}
