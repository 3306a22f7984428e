/* fuzz_info.c - `fedmoe info`: fm_runfile_info over run files built from the input
 * (runfile_gen.c). fuzz_info_raw.c feeds it raw bytes instead. */
#include "fuzz.h"
#include "runfile_gen.h"

#include "fedmoe/error.h"
#include "fedmoe/io.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/info.h5", fuzz_scratch());
  static FILE *devnull;
  if (!devnull && !(devnull = fopen("/dev/null", "w"))) abort();
  if (fuzz_make_runfile(path, data, size)) return 0;
  /* FUZZ_VERBOSE=1: print what info says (to look at what an input builds) */
  if (fm_runfile_info(path, getenv("FUZZ_VERBOSE") ? stdout : devnull) && getenv("FUZZ_VERBOSE"))
    printf("info: %s\n", fm_error_message());
  fm_error_clear();
  return 0;
}
