/* bench_checkpoint.c - checkpoint write bandwidth against the disk's sequential write.
 *
 * usage: mpirun -np P bench_checkpoint DIR [MB]
 * Writes a checkpoint of about MB megabytes (the private state of as many clients,
 * spread over the host ranks as the runtime does) into DIR/bench.h5 through the run
 * file's own writer, three times, and prints MB/s of the best; the caller compares
 * with dd (make bench-checkpoint does). A benchmark: it prints, it never asserts. */
#include "fedmoe/config.h"
#include "fedmoe/io.h"
#include "fedmoe/timer.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, P;
  MPI_Comm comm = MPI_COMM_WORLD;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  if (argc < 2 || P < 2) {
    if (rank == 0) fprintf(stderr, "usage: mpirun -np P (>= 2) bench_checkpoint DIR [MB]\n");
    MPI_Finalize();
    return 2;
  }
  double mb = argc > 2 ? atof(argv[2]) : 256;
  const size_t n = 1 << 18; /* floats per client and tensor: 1 MB of params, 3 MB with Adam */
  int N = (int)(mb / 3.0 + 0.5);
  if (N < P - 1) N = P - 1;
  fm_config c;
  fm_config_init(&c);
  c.fl.clients = N;
  char path[1024];
  snprintf(path, sizeof path, "%s/bench.h5", argv[1]);
  int k = 0;
  int32_t *ids = calloc((size_t)N, sizeof *ids);
  uint8_t *have = calloc((size_t)N, 1);
  for (int i = 0; i < N; i++) {
    have[i] = 1;
    if (rank > 0 && 1 + i % (P - 1) == rank) ids[k++] = i;
  }
  float *p = malloc((size_t)k * n * sizeof *p + 1), *m = malloc((size_t)k * n * sizeof *m + 1),
        *v = malloc((size_t)k * n * sizeof *v + 1);
  int64_t *step = calloc((size_t)k + 1, sizeof *step);
  for (size_t i = 0; i < (size_t)k * n; i++) p[i] = m[i] = v[i] = (float)i * 1e-6f;
  double best = 1e300;
  for (int rep = 0; rep < 3; rep++) {
    fm_runfile *rf = NULL;
    fm_err err = fm_runfile_create(&rf, path, &c, "bench", 1, 1, comm);
    MPI_Barrier(comm);
    double t0 = fm_wtime();
    if (!err) err = fm_runfile_checkpoint_begin(rf, 1);
    if (!err) err = fm_runfile_write_class(rf, 0, n, have, k, ids, p, m, v, step);
    if (!err) err = fm_runfile_checkpoint_end(rf);
    fm_runfile_close(rf);
    MPI_Barrier(comm);
    double dt = fm_wtime() - t0;
    if (err) {
      if (rank == 0) fprintf(stderr, "bench_checkpoint: %s\n", fm_error_message());
      MPI_Abort(comm, 1);
    }
    if (dt < best) best = dt;
  }
  double bytes = 3.0 * N * n * sizeof(float);
  if (rank == 0) {
    printf("checkpoint: %d clients x 3 x %zu floats = %.0f MB on %d ranks: best of 3 %.3f s = %.0f MB/s\n", N, n,
           bytes / 1e6, P, best, bytes / 1e6 / best);
    unlink(path);
  }
  free(p); free(m); free(v); free(step); free(ids); free(have);
  fm_config_free(&c);
  MPI_Finalize();
  return 0;
}
