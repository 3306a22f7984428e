/* fuzz_eval.c - what `fedmoe eval` reads of a run file before it builds a model:
 * fm_runfile_read_config (the resolved configuration stored in the file), and the
 * configuration parser over that text, as eval does. Files are built from the input
 * (runfile_gen.c). fm_checkpoint_load (the tensors) needs a model of the run's shape
 * and is exercised by tests/mpi/eval.sh, not here. */
#include "fuzz.h"
#include "runfile_gen.h"

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/io.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char path[4200];
  snprintf(path, sizeof path, "%s/eval.h5", fuzz_scratch());
  if (fuzz_make_runfile(path, data, size)) return 0;
  char *text = NULL;
  if (fm_runfile_read_config(path, &text) == FM_OK) {
    fm_config c;
    if (fm_config_init(&c)) abort();
    if (fm_config_parse(&c, text, path) == FM_OK) fm_config_validate(&c);
    fm_config_free(&c);
    free(text);
  }
  fm_error_clear();
  return 0;
}
