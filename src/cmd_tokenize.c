/* cmd_tokenize.c - `fedmoe tokenize TOKENIZER FILE [--ids | --decode]`: the ids of a
 * file's text (tokenized once, as it is: no cleaning, no special tokens added), or,
 * with --decode, the text of a file of ids. Rank 0 does the work; every rank agrees
 * on its outcome. Nothing is printed unless all of it succeeded. */
#include "cli.h"

#include "fedmoe/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ids of a file of whitespace-separated decimal ids; errors name line and word. */
static fm_err read_ids(const char *path, const char *text, size_t len, fm_ids *ids) {
  long line = 1;
  for (size_t i = 0; i < len;) {
    char c = text[i];
    if (c == '\n') { line++; i++; continue; }
    if (c == ' ' || c == '\t' || c == '\r') { i++; continue; }
    size_t j = i;
    long long v = 0;
    while (j < len && text[j] >= '0' && text[j] <= '9' && v <= INT32_MAX) v = 10 * v + (text[j++] - '0');
    if (j == i || (j < len && !strchr(" \t\r\n", text[j])) || v > INT32_MAX) {
      size_t e = i;
      while (e < len && !strchr(" \t\r\n", text[e])) e++;
      FM_ERROR(FM_ERR_DATA, "%s:%ld: '%.*s' (id %zu) is not a token id (a whole number)", path, line,
               (int)(e - i > 40 ? 40 : e - i), text + i, ids->n + 1);
    }
    FM_CHECK(fm_ids_push(ids, (int32_t)v));
    i = j;
  }
  return FM_OK;
}

/* The current error, restated with the file it is about in front. */
static fm_err name_file(fm_err err, const char *path) {
  char msg[2048];
  snprintf(msg, sizeof msg, "%s", fm_error_message());
  return fm_error_set(__FILE__, __LINE__, __func__, err, "%s: %s", path, msg);
}

static fm_err tokenize(const fm_cli *cli) {
  fm_tokenizer *t;
  FM_CHECK(fm_tokenizer_open(&t, cli->positional));
  char *text = NULL;
  size_t len = 0;
  fm_ids ids = {0};
  uint8_t *out = NULL;
  size_t outlen = 0;
  fm_err err = fm_read_file(cli->positional2, &text, &len);
  if (!err && cli->decode) {
    err = read_ids(cli->positional2, text, len, &ids);
    if (!err && (err = fm_tokenizer_decode(t, ids.v, ids.n, &out, &outlen))) err = name_file(err, cli->positional2);
  } else if (!err) {
    if ((err = fm_tokenizer_encode(t, (const uint8_t *)text, len, &ids))) err = name_file(err, cli->positional2);
  }
  if (!err && cli->decode) {
    fwrite(out, 1, outlen, stdout);
  } else if (!err) {
    printf("tokens %zu\n", ids.n);
    if (cli->ids) {
      for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.v[i]);
      printf("\n");
    }
  }
  fflush(stdout);
  free(out);
  free(text);
  fm_ids_free(&ids);
  fm_tokenizer_free(t);
  FM_CHECK(err);
  return FM_OK;
}

fm_err fm_cmd_tokenize(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  FM_CHECK(fm_error_agree(rank == 0 ? tokenize(cli) : FM_OK, &comm));
  return FM_OK;
}
