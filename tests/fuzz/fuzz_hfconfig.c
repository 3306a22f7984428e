/* fuzz_hfconfig.c - config.json of a Hugging Face folder (model.init, eval --model).
 *
 * Input: config.json text. It is parsed into a model shape, then applied to a
 * default configuration as model.init does. What must hold: an accepted shape
 * passes the model's own shape checks where it describes gpt2 blocks (the family
 * this build runs), and applying it either fails with a message or leaves a
 * configuration that validates. */
#include "fuzz.h"

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char *buf = malloc(size + 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  fm_hf_config h;
  if (!fm_hf_config_parse(buf, "fuzz/config.json", &h)) {
    if (h.s.layers < 1 || h.s.layers > FM_MAX_LAYERS || h.s.d < 1 || h.s.heads < 1 || h.s.vocab < 2) {
      fprintf(stderr, "fuzz_hfconfig: accepted an impossible shape (layers %d, d %d, heads %d, vocab %d)\n",
              h.s.layers, h.s.d, h.s.heads, h.s.vocab);
      abort();
    }
    fm_config c;
    if (fm_config_init(&c) || fm_config_set(&c, "model.init=/fuzz", "fuzz")) abort();
    if (!fm_hf_config_apply(&c, buf)) (void)fm_config_validate(&c);
    fm_config_free(&c);
  }
  fm_error_clear();
  free(buf);
  return 0;
}
