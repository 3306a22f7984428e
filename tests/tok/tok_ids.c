/* tok_ids.c - the tokenizer tests' helper: `tok_ids TOKENIZER FILE...` prints, per
 * FILE, one line of the ids of its whole text (as `fedmoe tokenize --ids` does for
 * one file), so a test compares hundreds of files in one process.
 * `tok_ids -d TOKENIZER FILE...`: each FILE holds space-separated ids; prints the
 * decoded bytes of each, every one followed by a NUL byte.
 * `tok_ids -v TOKENIZER`: prints the vocabulary size. */
#include "fedmoe/config.h"
#include "fedmoe/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ids of a file of space-separated ids (a test's own files: no error paths). */
static int read_ids(const char *text, fm_ids *ids) {
  for (const char *p = text; *p;) {
    char *e;
    long v = strtol(p, &e, 10);
    if (e == p) break;
    if (fm_ids_push(ids, (int32_t)v)) return 1;
    p = e;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "-v")) {
    fm_tokenizer *t;
    if (fm_tokenizer_open(&t, argv[2])) return 1;
    printf("%d\n", fm_tokenizer_vocab(t));
    fm_tokenizer_free(t);
    return 0;
  }
  int decode = argc > 1 && !strcmp(argv[1], "-d");
  argv += decode;
  argc -= decode;
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
    if (decode) {
      uint8_t *out = NULL;
      size_t len = 0;
      if (fm_read_file(argv[i], &text, &n) || read_ids(text, &ids) ||
          fm_tokenizer_decode(t, ids.v, ids.n, &out, &len)) {
        fm_error_format(msg, sizeof msg);
        fprintf(stderr, "tok_ids: %s: %s\n", argv[i], msg);
        rc = 1;
      } else {
        fwrite(out, 1, len, stdout);
        fputc(0, stdout);
      }
      free(out);
      free(text);
      fm_ids_free(&ids);
      continue;
    }
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
