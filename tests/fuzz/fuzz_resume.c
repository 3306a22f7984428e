/* fuzz_resume.c - the run-file reader of --resume: fm_runfile_open_resume, then the
 * reads of a checkpoint and the truncation, over run files built from the input
 * (runfile_gen.c). One MPI process (MPI_COMM_SELF), as `fedmoe run -np 1` would
 * open it (a rank 0 reads no client rows: the private classes are not read here); the
 * configuration is the defaults with the values the generator draws
 * from (so that some files pass the checks and reach the checkpoint reads). */
#include "fuzz.h"
#include "runfile_gen.h"

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/io.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

static void finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  int init = 0;
  MPI_Initialized(&init);
  if (!init) MPI_Init(argc, argv);
  atexit(finalize);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/resume.h5", fuzz_scratch());
  if (fuzz_make_runfile(path, data, size)) return 0;
  fm_config c;
  if (fm_config_init(&c)) abort();
  c.run.seed = 42;
  c.run.keep_last = 2;
  fm_runfile *rf = NULL;
  int round = -1;
  fm_err err = fm_runfile_open_resume(&rf, path, &c, 2, 4, MPI_COMM_SELF, &round);
  if (!err) {
    float w[16];
    fm_runfile_read_shared(rf, "wte", w, 16);
    fm_runfile_truncate(rf, round);
  }
  fm_runfile_close(rf);
  fm_error_clear();
  fm_config_free(&c);
  return 0;
}
