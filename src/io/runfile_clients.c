/* runfile_clients.c - the clients' private state in a checkpoint: one row per client
 * that has one, rows in client-id order (the same file for any number of ranks),
 * each host writing and reading its own rows. */
#include "runfile_impl.h"

#include <stdlib.h>
#include <string.h>

/* What each dataset of a private class holds (description, units attributes). */
static const char *row_doc(const char *name) {
  return !strcmp(name, "params") ? "the private class's parameters, one row per client listed in 'client'"
       : !strcmp(name, "adam_m") ? "AdamW first moment of those parameters, rows as 'client'"
       : !strcmp(name, "adam_v") ? "AdamW second moment of those parameters, rows as 'client'"
       : !strcmp(name, "adam_step") ? "AdamW steps taken, per row"
       : !strcmp(name, "values") ? "the client's state (SCAFFOLD's control variate, compression's error feedback, "
                                   "Ditto's personal model) over the shared tensors in checkpoint order, one row per "
                                   "client listed in 'client'"
       : "client id of each row, ascending";
}

static fm_err rows_io(fm_runfile *rf, hid_t g, const char *name, hid_t type, size_t n, int K, const int32_t *rows,
                      int k, void *buf, int write) {
  hsize_t dims[2] = {(hsize_t)K, (hsize_t)n};
  int nd = n ? 2 : 1;
  hid_t d;
  if (write) {
    hid_t fs0 = H5Screate_simple(nd, dims, NULL);
    d = H5Dcreate2(g, name, type, fs0, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(fs0);
    if (fm_runfile_agree(rf, d < 0 ? -1 : 0) < 0) {
      if (d >= 0) H5Dclose(d);
      RF_ERROR_ALL(FM_ERR_HDF5, "%s: HDF5 failed to create client data '%s' in a checkpoint", rf->path, name);
    }
    fm_err derr = fm_runfile_describe(rf, d, row_doc(name), "1");
    if (derr) { H5Dclose(d); return derr; }
  } else {
    d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint r%06d lacks client data '%s'", rf->path, rf->ckpt_round, name);
    hid_t sp = H5Dget_space(d);
    hsize_t have[2] = {0, 0};
    int hnd = H5Sget_simple_extent_dims(sp, have, NULL);
    H5Sclose(sp);
    if (hnd != nd || have[0] != (hsize_t)K || (n && have[1] != n)) {
      H5Dclose(d);
      FM_ERROR(FM_ERR_FORMAT, "%s: client data '%s' has shape [%llu, %llu], the model needs [%d, %zu] (the "
               "configuration changes the model's shape)", rf->path, name, (unsigned long long)have[0],
               (unsigned long long)have[1], K, n);
    }
  }
  herr_t e = 0;
  if (K > 0) {
    hid_t fs = H5Dget_space(d);
    hsize_t inner = n;
    fm_runfile_select_rows(fs, 0, rows, k, nd, &inner);
    hsize_t mdims[2] = {(hsize_t)k, (hsize_t)n};
    hid_t ms = H5Screate_simple(nd, mdims, NULL);
    if (k == 0) { H5Sselect_none(ms); H5Sselect_none(fs); }
    e = fm_runfile_agree(rf, write ? H5Dwrite(d, type, ms, fs, rf->dxpl, buf) : H5Dread(d, type, ms, fs, rf->dxpl, buf));
    H5Sclose(ms);
    H5Sclose(fs);
  }
  H5Dclose(d);
  if (e < 0)
    RF_ERROR_ALL(write ? FM_ERR_HDF5 : FM_ERR_FORMAT, "%s: cannot %s client data '%s'%s", rf->path,
             write ? "write" : "read", name, write ? "" : " (corrupted checkpoint?)");
  return FM_OK;
}

/* The checksums of this rank's k rows (row bytes each, rows ascending at data) into
 * dataset name [K] of g, at the rows' places. */
static fm_err write_sums(fm_runfile *rf, hid_t g, const char *name, const void *data, size_t row, int K,
                         const int32_t *rows, int k) {
  uint64_t *sum = calloc((size_t)k + 1, sizeof *sum);
  /* every rank reaches the collective write, or none */
  if (fm_runfile_agree(rf, sum ? 0 : -1) < 0) {
    free(sum);
    FM_ERROR(FM_ERR_MEM, "%s: out of memory for the checksums of %s on some rank", rf->path, name);
  }
  for (int j = 0; j < k; j++) sum[j] = fm_hash64((const char *)data + (size_t)j * row, row);
  fm_err err = rows_io(rf, g, name, H5T_NATIVE_UINT64, 0, K, rows, k, sum, 1);
  free(sum);
  return err;
}

fm_err fm_runfile_write_class(fm_runfile *rf, int cls, size_t n, const uint8_t *have, int k, const int32_t *ids,
                              const float *params, const float *m, const float *v, const int64_t *step) {
  /* row of client i = how many clients below i have state; the staging is agreed
   * before the first collective call, so that a rank that cannot allocate it does not
   * skip calls the others make */
  int32_t *row = NULL, *all = NULL, *mine = NULL;
  int K = 0;
  fm_err err = fm_calloc(&row, (size_t)rf->N + 1, sizeof *row, "checkpoint rows");
  for (int i = 0; !err && i < rf->N; i++) { row[i] = K; K += have[i] != 0; }
  if (!err) err = fm_calloc(&mine, (size_t)k + 1, sizeof *mine, "checkpoint rows");
  if (!err) err = fm_calloc(&all, (size_t)K + 1, sizeof *all, "checkpoint rows");
  for (int j = 0; !err && j < k; j++) mine[j] = row[ids[j]];
  for (int i = 0, j = 0; !err && i < rf->N; i++) if (have[i]) all[j++] = i;
  if ((err = fm_error_agree(err, &rf->comm))) { free(row); free(mine); free(all); return err; }
  char name[32];
  snprintf(name, sizeof name, "clients/class%d", cls);
  hid_t g = H5Gcreate2(rf->ckpt, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (fm_runfile_agree(rf, g < 0 ? -1 : 0) < 0)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot create %s", rf->path, name);
  if (!err) err = rows_io(rf, g, "params", H5T_NATIVE_FLOAT, n, K, mine, k, (void *)params, 1);
  if (!err) err = write_sums(rf, g, "params_checksum", params, n * sizeof *params, K, mine, k);
  if (!err) err = rows_io(rf, g, "adam_m", H5T_NATIVE_FLOAT, n, K, mine, k, (void *)m, 1);
  if (!err) err = write_sums(rf, g, "adam_m_checksum", m, n * sizeof *m, K, mine, k);
  if (!err) err = rows_io(rf, g, "adam_v", H5T_NATIVE_FLOAT, n, K, mine, k, (void *)v, 1);
  if (!err) err = write_sums(rf, g, "adam_v_checksum", v, n * sizeof *v, K, mine, k);
  if (!err) err = rows_io(rf, g, "adam_step", H5T_NATIVE_INT64, 0, K, mine, k, (void *)step, 1);
  if (!err) err = write_sums(rf, g, "adam_step_checksum", step, sizeof *step, K, mine, k);
  /* the ids: rank 0 writes them all (it knows them from have) */
  if (!err) {
    int32_t *r0 = NULL;
    err = fm_error_agree(fm_calloc(&r0, (size_t)K + 1, sizeof *r0, "checkpoint rows"), &rf->comm);
    for (int j = 0; !err && j < K; j++) r0[j] = j;
    if (!err) err = rows_io(rf, g, "client", H5T_NATIVE_INT32, 0, K, r0, rf->rank == 0 ? K : 0, all, 1);
    free(r0);
    uint64_t sum = fm_hash64(all, (size_t)K * sizeof *all); /* every rank has all the ids */
    if (!err && fm_runfile_agree(rf, fm_attr_u64(g, "client_checksum", sum)) < 0)
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot write %s's checksum", rf->path,
                         name);
  }
  if (g >= 0) H5Gclose(g);
  free(row);
  free(mine);
  free(all);
  return err;
}

fm_err fm_runfile_class_clients(fm_runfile *rf, int cls, int32_t **ids, int *K) {
  char name[48];
  snprintf(name, sizeof name, "clients/class%d/client", cls);
  *ids = NULL;
  hid_t d = H5Dopen2(rf->ckpt, name, H5P_DEFAULT);
  if (d < 0) FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint r%06d has no %s", rf->path, rf->ckpt_round, name);
  hid_t sp = H5Dget_space(d);
  hssize_t k = H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  /* every rank reads the list (a collective read): agree on the room for it first */
  fm_err err = fm_error_agree(fm_calloc(ids, (size_t)k + 1, sizeof **ids, "checkpoint client ids"), &rf->comm);
  if (!err && k > 0 && fm_runfile_agree(rf, H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, rf->dxpl, *ids)) < 0)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: cannot read %s", rf->path, name);
  H5Dclose(d);
  for (hssize_t j = 0; !err && j < k; j++)
    if ((*ids)[j] < 0 || (*ids)[j] >= rf->N || (j && (*ids)[j] <= (*ids)[j - 1]))
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                         "%s: %s holds client id %d out of order or range (corrupted checkpoint?)", rf->path,
                         name, (*ids)[j]);
  if (err) { free(*ids); *ids = NULL; return fm_error_trace(__FILE__, __LINE__, __func__, err); }
  *K = (int)k;
  return FM_OK;
}

fm_err fm_runfile_read_class(fm_runfile *rf, int cls, size_t n, int k, const int32_t *ids, const int32_t *all_ids,
                             int K, float *params, float *m, float *v, int64_t *step) {
  int32_t *rows = NULL;
  FM_CHECK(fm_error_agree(fm_calloc(&rows, (size_t)k + 1, sizeof *rows, "checkpoint rows"), &rf->comm));
  for (int j = 0, r = 0; j < k; j++) { /* both ascending: one merge pass */
    while (r < K && all_ids[r] < ids[j]) r++;
    rows[j] = r;
  }
  char name[32];
  snprintf(name, sizeof name, "clients/class%d", cls);
  hid_t g = H5Gopen2(rf->ckpt, name, H5P_DEFAULT);
  fm_err err = FM_OK;
  if (g < 0) err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: checkpoint r%06d has no %s",
                                rf->path, rf->ckpt_round, name);
  if (!err) err = rows_io(rf, g, "params", H5T_NATIVE_FLOAT, n, K, rows, k, params, 0);
  if (!err) err = rows_io(rf, g, "adam_m", H5T_NATIVE_FLOAT, n, K, rows, k, m, 0);
  if (!err) err = rows_io(rf, g, "adam_v", H5T_NATIVE_FLOAT, n, K, rows, k, v, 0);
  if (!err) err = rows_io(rf, g, "adam_step", H5T_NATIVE_INT64, 0, K, rows, k, step, 0);
  if (g >= 0) H5Gclose(g);
  free(rows);
  return err;
}

fm_err fm_runfile_write_client_rows(fm_runfile *rf, const char *group, size_t n, const uint8_t *have, int k,
                                    const int32_t *ids, const float *data) {
  int32_t *row, *mine = NULL, *all = NULL, *r0 = NULL;
  int K = 0;
  FM_CALLOC(row, (size_t)rf->N + 1, "checkpoint rows");
  for (int i = 0; i < rf->N; i++) { row[i] = K; K += have[i] != 0; }
  fm_err err = fm_calloc(&mine, (size_t)k + 1, sizeof *mine, "checkpoint rows");
  if (!err) err = fm_calloc(&all, (size_t)K + 1, sizeof *all, "checkpoint rows");
  if (!err) err = fm_calloc(&r0, (size_t)K + 1, sizeof *r0, "checkpoint rows");
  for (int j = 0; !err && j < k; j++) mine[j] = row[ids[j]];
  for (int i = 0, j = 0; !err && i < rf->N; i++) if (have[i]) { r0[j] = j; all[j++] = i; }
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  if (lcpl >= 0) H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = err ? -1 : H5Gcreate2(rf->ckpt, group, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  if (!err && g < 0) err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_HDF5, "%s: cannot create %s", rf->path, group);
  if (!err) err = rows_io(rf, g, "values", H5T_NATIVE_FLOAT, n, K, mine, k, (void *)data, 1);
  if (!err) err = rows_io(rf, g, "client", H5T_NATIVE_INT32, 0, K, r0, rf->rank == 0 ? K : 0, all, 1);
  if (g >= 0) H5Gclose(g);
  free(row); free(mine); free(all); free(r0);
  return err;
}

fm_err fm_runfile_read_client_rows(fm_runfile *rf, const char *group, const char *key, size_t n,
                                   int (*mine)(int client, void *arg), void *arg, int32_t **ids, int *k,
                                   float **data) {
  char name[FM_PATH_MAX];
  *ids = NULL, *data = NULL, *k = 0;
  snprintf(name, sizeof name, "%s/client", group);
  htri_t there = H5Lexists(rf->ckpt, group, H5P_DEFAULT) > 0 && H5Lexists(rf->ckpt, name, H5P_DEFAULT) > 0;
  if (!there)
    FM_ERROR(FM_ERR_FORMAT, "%s: checkpoint r%06d has no %s (%s differs from the run's: resume with its value)",
             rf->path, rf->ckpt_round, group, key);
  hid_t d = H5Dopen2(rf->ckpt, name, H5P_DEFAULT);
  hid_t sp = H5Dget_space(d);
  int K = (int)H5Sget_simple_extent_npoints(sp);
  H5Sclose(sp);
  int32_t *all = NULL, *rows = NULL;
  fm_err err = fm_calloc(&all, (size_t)K + 1, sizeof *all, "checkpoint client ids");
  if (!err && K > 0 && H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, rf->dxpl, all) < 0)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: cannot read %s", rf->path, name);
  H5Dclose(d);
  for (int j = 0; !err && j < K; j++)
    if (all[j] < 0 || all[j] >= rf->N || (j && all[j] <= all[j - 1]))
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: %s holds client id %d out of order or "
                         "range (corrupted checkpoint?)", rf->path, name, all[j]);
  if (!err) err = fm_calloc(ids, (size_t)K + 1, sizeof **ids, "checkpoint client ids");
  if (!err) err = fm_calloc(&rows, (size_t)K + 1, sizeof *rows, "checkpoint rows");
  for (int j = 0; !err && j < K; j++)
    if (mine(all[j], arg)) { rows[*k] = j; (*ids)[(*k)++] = all[j]; }
  if (!err) err = fm_calloc(data, (size_t)*k * n + 1, sizeof **data, "checkpoint client rows");
  hid_t g = err ? -1 : H5Gopen2(rf->ckpt, group, H5P_DEFAULT);
  /* every rank enters the collective read, with no rows after a local failure */
  fm_err rd = g < 0 && !err ? fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: cannot open %s",
                                          rf->path, group)
                            : FM_OK;
  if (g >= 0) rd = rows_io(rf, g, "values", H5T_NATIVE_FLOAT, n, K, rows, *k, *data, 0);
  if (g >= 0) H5Gclose(g);
  free(all);
  free(rows);
  if (!err) err = rd;
  if (err) { free(*ids); free(*data); *ids = NULL; *data = NULL; *k = 0; }
  return err;
}
