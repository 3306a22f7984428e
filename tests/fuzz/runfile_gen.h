/* runfile_gen.h - build an HDF5 file from fuzz input (see runfile_gen.c). */
#ifndef FEDMOE_FUZZ_RUNFILE_GEN_H
#define FEDMOE_FUZZ_RUNFILE_GEN_H

#include <stddef.h>
#include <stdint.h>

/* Write the file the input describes to path; 0 on success. */
int fuzz_make_runfile(const char *path, const uint8_t *data, size_t size);

#endif
