/* fuzz_text.c - what counts as text, cleaning it, reading one text file.
 *
 * Input: the bytes of one file. fm_text_check and fm_text_clean run on them in
 * memory, fm_text_read on them written to a file. What must hold: cleaning never
 * grows the text; the check and the reader agree (a file passes the check exactly
 * when the reader accepts it), and what the reader returns is the cleaned text with
 * a final newline. */
#include "fuzz.h"

#include "fedmoe/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 20) return 0;
  char why[160] = "";
  int ok = fm_text_check(data, size, why, sizeof why);
  if (!ok && !why[0]) abort(); /* a refusal always says why */
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  size_t n = fm_text_clean(copy, size);
  if (n > size) abort();
  char path[4200];
  snprintf(path, sizeof path, "%s/text", fuzz_scratch());
  if (fuzz_write_file(path, data, size)) abort();
  uint8_t *text = NULL;
  uint64_t len = 0;
  fm_err err = fm_text_read(path, &text, &len);
  if ((err == FM_OK) != ok) {
    fprintf(stderr, "fuzz_text: check says %d, reader says %d (%s)\n", ok, !err, err ? fm_error_message() : "");
    abort();
  }
  if (!err) {
    /* the cleaned bytes, then a newline when they do not end with one */
    size_t want = n + (n && copy[n - 1] != '\n');
    if (len != want || memcmp(text, copy, n) || (len > n && text[n] != '\n')) {
      fprintf(stderr, "fuzz_text: the reader returned %llu bytes, cleaning gives %zu\n", (unsigned long long)len,
              want);
      abort();
    }
  }
  fm_error_clear();
  free(text);
  free(copy);
  return 0;
}
