/* bytebuf.c - appending to a growable byte buffer. */
#include "bytebuf.h"

#include <stdlib.h>
#include <string.h>

fm_err fm_bytebuf_append(uint8_t **buf, uint64_t *size, uint64_t *cap, const void *p, uint64_t n, const char *what) {
  if (n == 0) return FM_OK;
  if (*size + n > *cap) {
    uint64_t c = *cap ? *cap : (uint64_t)1 << 16;
    while (c < *size + n) c *= 2;
    uint8_t *t = realloc(*buf, c);
    if (!t) FM_ERROR(FM_ERR_MEM, "out of memory (%s: %llu bytes)", what, (unsigned long long)c);
    *buf = t;
    *cap = c;
  }
  memcpy(*buf + *size, p, n);
  *size += n;
  return FM_OK;
}
