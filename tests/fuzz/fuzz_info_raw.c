/* fuzz_info_raw.c - `fedmoe info` over raw file bytes. Unlike fuzz_info (which builds
 * well-formed HDF5 files), this reaches HDF5's own decoder of the file format, where
 * HDF5 1.10 has known crashes on malformed files that are not ours to fix; it is not
 * among the default targets of `make fuzz` (run it with FUZZ_TARGETS=info_raw). */
#include "fuzz.h"

#include "fedmoe/error.h"
#include "fedmoe/io.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 20) return 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/raw.h5", fuzz_scratch());
  static FILE *devnull;
  if (!devnull && !(devnull = fopen("/dev/null", "w"))) abort();
  if (fuzz_write_file(path, data, size)) abort();
  fm_runfile_info(path, devnull);
  fm_error_clear();
  return 0;
}
