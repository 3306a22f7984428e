/* bench_tokenizer.c - figures of the tokenizer and the token cache (never checks).
 *   bench_tokenizer text CORPUS OUT     write the cleaned text of a corpus (data.path
 *                                       CORPUS, every domain in name order) to OUT
 *   bench_tokenizer encode TOKENIZER FILE
 *                                       tokens/s of one thread over FILE, encoded in
 *                                       chunks of about 64 KB cut after a newline (the
 *                                       cut bench/tokenizer_hf.py makes), with a cold
 *                                       then a warm word cache
 *   bench_tokenizer cache TOKENIZER FILE MB
 *                                       a corpus of copies of FILE (at least MB MB, one
 *                                       domain per copy) loaded through the tokenizer
 *                                       twice: tokenized and cached, then from the cache */
#include "fedmoe/data.h"
#include "fedmoe/timer.h"
#include "fedmoe/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static int die(void) {
  char msg[4096];
  fm_error_format(msg, sizeof msg);
  fprintf(stderr, "bench_tokenizer: %s\n", msg);
  return 1;
}

static int write_text(const char *corpus, const char *out) {
  fm_config c;
  fm_corpus cp;
  if (fm_config_init(&c)) return die();
  snprintf(c.data.path, sizeof c.data.path, "%s", corpus);
  snprintf(c.model.tokenizer, sizeof c.model.tokenizer, "bytes");
  if (fm_corpus_load(&cp, &c)) return die();
  FILE *f = fopen(out, "wb");
  if (!f) { perror(out); return 1; }
  for (int k = 0; k < cp.ndomains; k++) fwrite(cp.text + cp.domain_start[k], 1, cp.domain_len[k], f);
  fclose(f);
  printf("%s: %llu bytes of text from %d domains of %s\n", out, (unsigned long long)cp.text_bytes, cp.ndomains, corpus);
  fm_corpus_free(&cp);
  fm_config_free(&c);
  return 0;
}

/* Encode text in chunks; the number of tokens, the seconds in *s. */
static int encode_all(const fm_tokenizer *t, const char *text, size_t n, size_t *tokens, double *s) {
  *s = 0;
  fm_ids ids = {0};
  double t0 = fm_wtime();
  *tokens = 0;
  for (size_t at = 0; at < n;) {
    size_t end = at + CHUNK < n ? at + CHUNK : n;
    while (end < n && text[end - 1] != '\n') end++;
    ids.n = 0;
    if (fm_tokenizer_encode(t, (const uint8_t *)text + at, end - at, &ids)) return die();
    *tokens += ids.n;
    at = end;
  }
  *s = fm_wtime() - t0;
  fm_ids_free(&ids);
  return 0;
}

static int encode(const char *tok, const char *file) {
  double t0 = fm_wtime();
  fm_tokenizer *t;
  if (fm_tokenizer_open(&t, tok)) return die();
  double load = fm_wtime() - t0;
  char *text;
  size_t n, tokens;
  if (fm_read_file(file, &text, &n)) return die();
  printf("tokenizer %s (%s, %d ids), loaded in %.3f s\n", fm_tokenizer_path(t), fm_tokenizer_kind_name(t),
         fm_tokenizer_vocab(t), load);
  for (int pass = 0; pass < 2; pass++) {
    double s = 0;
    if (encode_all(t, text, n, &tokens, &s)) return 1;
    printf("  %s word cache: %.1f MB, %zu tokens in %.3f s: %.0f tokens/s, %.1f MB/s (one thread)\n",
           pass ? "warm" : "cold", (double)n / 1e6, tokens, s, (double)tokens / s, (double)n / 1e6 / s);
  }
  free(text);
  fm_tokenizer_free(t);
  return 0;
}

static int cache(const char *tok, const char *file, double mb) {
  char dir[256], path[512];
  snprintf(dir, sizeof dir, "%s/fedmoe-bench-tok-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir)) { perror(dir); return 1; }
  char *text;
  size_t n;
  if (fm_read_file(file, &text, &n)) return die();
  size_t copies = (size_t)(mb * 1e6 / (double)n) + 1;
  snprintf(path, sizeof path, "%s/corpus", dir);
  mkdir(path, 0777);
  for (size_t i = 0; i < copies; i++) {
    snprintf(path, sizeof path, "%s/corpus/copy%04zu", dir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, n, f) != n || fclose(f)) { perror(path); return 1; }
  }
  free(text);
  fm_config c;
  if (fm_config_init(&c)) return die();
  snprintf(c.data.path, sizeof c.data.path, "%s/corpus", dir);
  snprintf(c.model.tokenizer, sizeof c.model.tokenizer, "%s", tok);
  snprintf(c.data.token_cache, sizeof c.data.token_cache, "%s/cache", dir);
  c.model.vocab = 16777216;
  printf("corpus of %zu copies of %s (%.1f MB of text)\n", copies, file, (double)(copies * n) / 1e6);
  for (int pass = 0; pass < 2; pass++) {
    fm_corpus cp;
    double t0 = fm_wtime();
    if (fm_corpus_load(&cp, &c)) return die();
    double s = fm_wtime() - t0;
    printf("  load %d (%s): %llu tokens in %.3f s\n", pass + 1, cp.cache_hit ? "from the cache" : "tokenized, cached",
           (unsigned long long)cp.size, s);
    fm_corpus_free(&cp);
  }
  fm_config_free(&c);
  snprintf(path, sizeof path, "rm -rf '%s'", dir);
  return system(path) != 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && !strcmp(argv[1], "text")) return write_text(argv[2], argv[3]);
  if (argc == 4 && !strcmp(argv[1], "encode")) return encode(argv[2], argv[3]);
  if (argc == 5 && !strcmp(argv[1], "cache")) return cache(argv[2], argv[3], atof(argv[4]));
  fprintf(stderr, "usage: bench_tokenizer text CORPUS OUT | encode TOKENIZER FILE | cache TOKENIZER FILE MB\n");
  return 2;
}
