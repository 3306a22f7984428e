/* fuzz_config.c - the configuration parser: INI text, --set overrides, validation.
 *
 * Input: INI text, then NUL-separated --set assignments ("section.key=value"), as a
 * user's file and command line would give them. Every stage runs while the ones
 * before succeeded; any outcome but a crash, a hang or a sanitizer report is fine.
 * What must hold after a successful parse: the resolved text is produced, and it
 * parses again to the same text (the run file stores it, --resume reads it). */
#include "fuzz.h"

#include "fedmoe/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 16) return 0;
  char *buf = malloc(size + 1); /* the parser takes NUL-terminated text */
  if (!buf) return 0;
  memcpy(buf, data, size);
  buf[size] = 0;
  fm_config c;
  if (fm_config_init(&c)) abort(); /* the defaults must always be valid */
  fm_err err = fm_config_parse(&c, buf, "fuzz.ini");
  /* the --set arguments: every NUL-terminated piece after the first */
  for (size_t off = strlen(buf) + 1; !err && off <= size; off += strlen(buf + off) + 1)
    err = fm_config_set(&c, buf + off, "--set");
  if (!err) err = fm_config_validate(&c);
  if (!err) {
    char *text = NULL, *again = NULL;
    if (fm_config_to_text(&c, &text)) abort();
    fm_config c2;
    if (fm_config_init(&c2)) abort();
    /* the resolved text is a configuration file naming every key */
    if (fm_config_parse(&c2, text, "resolved")) {
      fprintf(stderr, "fuzz_config: the resolved configuration does not parse again:\n%s\n%s\n", text,
              fm_error_message());
      abort();
    }
    if (fm_config_to_text(&c2, &again)) abort();
    /* origins differ ("resolved:N" against "fuzz.ini:N"): compare the values only */
    for (char *p = text, *q = again; p && q;) {
      char *pe = strchr(p, '#'), *qe = strchr(q, '#');
      if (!pe || !qe || pe - p != qe - q || memcmp(p, q, (size_t)(pe - p))) {
        if (!pe && !qe) break;
        fprintf(stderr, "fuzz_config: resolved text changes when read back:\n%s\n---\n%s\n", text, again);
        abort();
      }
      p = strchr(pe, '\n');
      q = strchr(qe, '\n');
      if (p) p++;
      if (q) q++;
    }
    free(again);
    free(text);
    fm_config_free(&c2);
  }
  fm_error_clear();
  fm_config_free(&c);
  free(buf);
  return 0;
}
