/* fuzz_util.c - scratch files for the fuzz targets that read files. */
#include "fuzz.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char scratch[PATH_MAX];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st; (void)flag; (void)ftw;
  return remove(path);
}

int fuzz_rmtree(const char *path) { return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

static void remove_scratch(void) {
  if (getenv("FUZZ_KEEP")) { fprintf(stderr, "fuzz: kept %s\n", scratch); return; }
  if (scratch[0] && fuzz_rmtree(scratch)) fprintf(stderr, "fuzz: could not remove %s\n", scratch);
}

const char *fuzz_scratch(void) {
  if (scratch[0]) return scratch;
  /* /dev/shm when there is one: the targets write a file per input */
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(scratch, sizeof scratch, "%s/fedmoe-fuzz.XXXXXX", base);
  if (!mkdtemp(scratch)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(remove_scratch);
  return scratch;
}

int fuzz_write_file(const char *path, const void *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  int bad = size && fwrite(data, 1, size, f) != size;
  bad |= fclose(f) != 0;
  return bad;
}
