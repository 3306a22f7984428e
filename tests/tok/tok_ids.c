/* tok_ids.c - the tokenizer tests' helper: `tok_ids TOKENIZER FILE...` prints, per
 * FILE, one line of the ids of its whole text (as `fedmoe tokenize --ids` does for
 * one file), so a test compares hundreds of files in one process. */
#include "fedmoe/config.h"
#include "fedmoe/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: tok_ids TOKENIZER FILE...\n");
    return 2;
  }
  fm_tokenizer *t;
  char msg[4096];
  if (fm_tokenizer_open(&t, argv[1])) {
    fm_error_format(msg, sizeof msg);
    fprintf(stderr, "tok_ids: %s\n", msg);
    return 1;
  }
  int rc = 0;
  for (int i = 2; i < argc && !rc; i++) {
    char *text;
    size_t n;
    fm_ids ids = {0};
    if (fm_read_file(argv[i], &text, &n) || fm_tokenizer_encode(t, (const uint8_t *)text, n, &ids)) {
      fm_error_format(msg, sizeof msg);
      fprintf(stderr, "tok_ids: %s: %s\n", argv[i], msg);
      rc = 1;
    }
    for (size_t k = 0; !rc && k < ids.n; k++) printf(k ? " %d" : "%d", ids.v[k]);
    if (!rc) printf("\n");
    free(text);
    fm_ids_free(&ids);
  }
  fm_tokenizer_free(t);
  return rc;
}
