/* replay.c - main() for `make check`: run a fuzz target's entry over its inputs.
 *
 * Built with the normal compiler (no clang, no libFuzzer), linked with one
 * fuzz_<target>.c. Without arguments it replays the seeds tests/fuzz/<target>/ and the
 * regression inputs tests/fuzz/regressions/<target>/ under $top_srcdir; with arguments
 * it replays those files or folders. A crash fails the test (and, in the sanitizer
 * build, so does a sanitizer report); a missing seed folder fails too, so a target
 * cannot pass by finding nothing to run. */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET must name the target"
#endif

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); return 1; }
  size_t cap = 4096, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) { fprintf(stderr, "%s: out of memory\n", path); return 1; }
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

/* Replay a file, or every file of a folder (in name order); count what ran. */
static int replay(const char *path, int must_exist, int *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (!must_exist) return 0;
    perror(path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) { ++*count; return replay_file(path); }
  DIR *d = opendir(path);
  if (!d) { perror(path); return 1; }
  char **names = NULL;
  size_t n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.' || !strcmp(e->d_name, "README")) continue;
    if (n == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names))) abort();
    if (!(names[n++] = strdup(e->d_name))) abort();
  }
  closedir(d);
  qsort(names, n, sizeof *names, by_name);
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    char file[4096];
    snprintf(file, sizeof file, "%s/%s", path, names[i]);
    if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
      ++*count;
      bad |= replay_file(file);
    }
    free(names[i]);
  }
  free(names);
  return bad;
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int bad = 0, count = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) bad |= replay(argv[i], 1, &count);
  } else {
    const char *top = getenv("top_srcdir") ? getenv("top_srcdir") : ".";
    char seeds[4096], regressions[4096];
    snprintf(seeds, sizeof seeds, "%s/tests/fuzz/%s", top, FUZZ_TARGET);
    snprintf(regressions, sizeof regressions, "%s/tests/fuzz/regressions/%s", top, FUZZ_TARGET);
    bad |= replay(seeds, 1, &count);
    bad |= replay(regressions, 0, &count);
  }
  printf("fuzz replay %s: %d inputs, %s\n", FUZZ_TARGET, count, bad ? "FAILED" : "no crash");
  return bad || count == 0;
}
