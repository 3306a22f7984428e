/* netcdf.c - the per-round metrics as a NetCDF (CDF-5) file through PnetCDF. */
#include "fedmoe/io.h"

#include <pnetcdf.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NC_CHECK(call)                                                                           \
  do {                                                                                           \
    int nc_rc_ = (call);                                                                         \
    if (nc_rc_ != NC_NOERR) {                                                                    \
      fm_err e_ = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "%s: PnetCDF: %s", path, \
                               ncmpi_strerror(nc_rc_));                                          \
      if (ncid >= 0) ncmpi_close(ncid);                                                          \
      return e_;                                                                                 \
    }                                                                                            \
  } while (0)

typedef struct {
  const char *name;
  size_t offset;
  int is_u64, is_i32;
} field_t;

/* long_name and units come from the run file's own descriptions (fm_round_field_doc) */
#define D(f) {#f, offsetof(fm_round_row, f), 0, 0}
#define U(f) {#f, offsetof(fm_round_row, f), 1, 0}
#define I(f) {#f, offsetof(fm_round_row, f), 0, 1}
static const field_t fields[] = {
  I(clients), D(mean_train), D(mean_val), D(mean_test), D(min_test), D(max_test), D(wall_s), D(t_local),
  D(t_aggregate), D(t_server), D(t_broadcast), D(t_evaluate), D(t_io), U(bytes_up), U(bytes_down),
  U(bytes_reduced), D(peak_rss_mb), D(test_loss_full), D(test_loss_emulator), D(sim_time_s), I(kept), I(late),
  I(dropped), I(offline), I(surplus), D(t_local_mean), I(host_clients_max), D(dp_epsilon), D(test_loss_global)};
#define NFIELDS (int)(sizeof fields / sizeof fields[0])

static int put_text(int ncid, int var, const char *name, const char *value) {
  return ncmpi_put_att_text(ncid, var, name, (MPI_Offset)strlen(value), value);
}

/* The file, with d, u, iv staging one column of n values on rank 0. Collective. */
static fm_err write_file(const char *path, const fm_round_row *rows, int n, const char *strategy, long long seed,
                         const char *config_text, MPI_Comm comm, int rank, double *d, unsigned long long *u,
                         int *iv) {
  int ncid = -1, dim, vround, var[NFIELDS];
  NC_CHECK(ncmpi_create(comm, path, NC_CLOBBER | NC_64BIT_DATA, MPI_INFO_NULL, &ncid));
  NC_CHECK(ncmpi_put_att_text(ncid, NC_GLOBAL, "title", 24, "fedmoe per-round metrics"));
  NC_CHECK(put_text(ncid, NC_GLOBAL, "strategy", strategy));
  NC_CHECK(ncmpi_put_att_longlong(ncid, NC_GLOBAL, "seed", NC_INT64, 1, &seed));
  NC_CHECK(put_text(ncid, NC_GLOBAL, "config", config_text ? config_text : ""));
  NC_CHECK(ncmpi_def_dim(ncid, "round", NC_UNLIMITED, &dim));
  NC_CHECK(ncmpi_def_var(ncid, "round", NC_INT, 1, &dim, &vround));
  NC_CHECK(put_text(ncid, vround, "long_name", "round, 1-based"));
  NC_CHECK(put_text(ncid, vround, "units", "1"));
  for (int f = 0; f < NFIELDS; f++) {
    nc_type t = fields[f].is_u64 ? NC_UINT64 : fields[f].is_i32 ? NC_INT : NC_DOUBLE;
    const char *desc = fields[f].name, *units = "1";
    fm_round_field_doc(fields[f].name, &desc, &units);
    NC_CHECK(ncmpi_def_var(ncid, fields[f].name, t, 1, &dim, &var[f]));
    NC_CHECK(put_text(ncid, var[f], "long_name", desc));
    NC_CHECK(put_text(ncid, var[f], "units", units));
  }
  NC_CHECK(ncmpi_enddef(ncid));
  MPI_Offset start = 0, count = rank == 0 ? n : 0;
  /* one column at a time from the rows of rank 0; the others write nothing */
  int rc = NC_NOERR;
  for (int i = 0; rank == 0 && i < n; i++) iv[i] = rows[i].round;
  rc = ncmpi_put_vara_int_all(ncid, vround, &start, &count, iv);
  for (int f = 0; f < NFIELDS && rc == NC_NOERR; f++) {
    for (int i = 0; rank == 0 && i < n; i++) {
      const char *p = (const char *)&rows[i] + fields[f].offset;
      if (fields[f].is_u64) memcpy(&u[i], p, sizeof u[i]);
      else if (fields[f].is_i32) memcpy(&iv[i], p, sizeof iv[i]);
      else memcpy(&d[i], p, sizeof d[i]);
    }
    if (fields[f].is_u64) rc = ncmpi_put_vara_ulonglong_all(ncid, var[f], &start, &count, u);
    else if (fields[f].is_i32) rc = ncmpi_put_vara_int_all(ncid, var[f], &start, &count, iv);
    else rc = ncmpi_put_vara_double_all(ncid, var[f], &start, &count, d);
  }
  NC_CHECK(rc);
  NC_CHECK(ncmpi_close(ncid));
  return FM_OK;
}

fm_err fm_netcdf_write_rounds(const char *path, const fm_round_row *rows, int n, const char *strategy,
                              long long seed, const char *config_text, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  MPI_Bcast(&n, 1, MPI_INT, 0, comm);
  /* the staging is agreed before the collective create: no rank may leave early */
  size_t m = rank == 0 && n > 0 ? (size_t)n : 1;
  double *d = calloc(m, sizeof *d);
  unsigned long long *u = calloc(m, sizeof *u);
  int *iv = calloc(m, sizeof *iv);
  fm_err err = !d || !u || !iv ? fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM,
                                              "out of memory writing '%s'", path) : FM_OK;
  err = fm_error_agree(err, &comm);
  if (!err) err = write_file(path, rows, n, strategy, seed, config_text, comm, rank, d, u, iv);
  free(d); free(u); free(iv);
  return err;
}
