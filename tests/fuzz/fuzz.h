/* fuzz.h - what every fuzz target defines, and helpers they share.
 *
 * A target is one file tests/fuzz/fuzz_<name>.c defining the libFuzzer entry
 * LLVMFuzzerTestOneInput (and, when it needs set-up, LLVMFuzzerInitialize). The
 * same file is linked twice: with clang -fsanitize=fuzzer,address for `make fuzz`,
 * and with the normal compiler and replay.c for `make check`, which runs the entry
 * over the seed corpus tests/fuzz/<name>/ and the crashes once found,
 * tests/fuzz/regressions/<name>/. */
#ifndef FEDMOE_FUZZ_H
#define FEDMOE_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A fresh scratch folder for this process (removed at exit); its path. */
const char *fuzz_scratch(void);
/* Write data to path (whole file, truncated); 0 on success. */
int fuzz_write_file(const char *path, const void *data, size_t size);

/* rm -rf path (links are removed, not followed); 0 on success. */
int fuzz_rmtree(const char *path);

#endif
