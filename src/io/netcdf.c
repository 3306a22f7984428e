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
  const char *name, *units;
  size_t offset;
  int is_u64, is_i32;
} field_t;

#define D(f, u) {#f, u, offsetof(fm_round_row, f), 0, 0}
#define U(f, u) {#f, u, offsetof(fm_round_row, f), 1, 0}
#define I(f, u) {#f, u, offsetof(fm_round_row, f), 0, 1}
static const field_t fields[] = {
  I(clients, "1"), D(mean_train, "nats"), D(mean_val, "nats"), D(mean_test, "nats"), D(min_test, "nats"),
  D(max_test, "nats"), D(wall_s, "s"), D(t_local, "s"), D(t_aggregate, "s"), D(t_server, "s"),
  D(t_broadcast, "s"), D(t_evaluate, "s"), D(t_io, "s"), U(bytes_up, "bytes"), U(bytes_down, "bytes"),
  U(bytes_reduced, "bytes"), D(peak_rss_mb, "MB"), D(test_loss_full, "nats"), D(test_loss_emulator, "nats"),
  D(sim_time_s, "s"), I(kept, "1"), I(late, "1"), I(dropped, "1"), I(offline, "1"), I(surplus, "1"),
  D(t_local_mean, "s"), I(host_clients_max, "1"), D(dp_epsilon, "1")};
#define NFIELDS (int)(sizeof fields / sizeof fields[0])

fm_err fm_netcdf_write_rounds(const char *path, const fm_round_row *rows, int n, const char *strategy,
                              MPI_Comm comm) {
  int rank, ncid = -1, dim, vround, var[NFIELDS];
  MPI_Comm_rank(comm, &rank);
  MPI_Bcast(&n, 1, MPI_INT, 0, comm);
  NC_CHECK(ncmpi_create(comm, path, NC_CLOBBER | NC_64BIT_DATA, MPI_INFO_NULL, &ncid));
  NC_CHECK(ncmpi_put_att_text(ncid, NC_GLOBAL, "title", 24, "fedmoe per-round metrics"));
  NC_CHECK(ncmpi_put_att_text(ncid, NC_GLOBAL, "strategy", (MPI_Offset)strlen(strategy), strategy));
  NC_CHECK(ncmpi_def_dim(ncid, "round", NC_UNLIMITED, &dim));
  NC_CHECK(ncmpi_def_var(ncid, "round", NC_INT, 1, &dim, &vround));
  for (int f = 0; f < NFIELDS; f++) {
    nc_type t = fields[f].is_u64 ? NC_UINT64 : fields[f].is_i32 ? NC_INT : NC_DOUBLE;
    NC_CHECK(ncmpi_def_var(ncid, fields[f].name, t, 1, &dim, &var[f]));
    NC_CHECK(ncmpi_put_att_text(ncid, var[f], "units", (MPI_Offset)strlen(fields[f].units), fields[f].units));
  }
  NC_CHECK(ncmpi_enddef(ncid));
  MPI_Offset start = 0, count = rank == 0 ? n : 0;
  /* one column at a time from the rows of rank 0; the others write nothing */
  size_t m = rank == 0 && n > 0 ? (size_t)n : 1;
  double *d = calloc(m, sizeof *d);
  unsigned long long *u = calloc(m, sizeof *u);
  int *iv = calloc(m, sizeof *iv);
  if (!d || !u || !iv) {
    free(d); free(u); free(iv);
    ncmpi_close(ncid);
    FM_ERROR(FM_ERR_MEM, "out of memory writing '%s'", path);
  }
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
  free(d); free(u); free(iv);
  NC_CHECK(rc);
  NC_CHECK(ncmpi_close(ncid));
  return FM_OK;
}
