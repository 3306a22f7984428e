/* bytebuf.h - appending to a growable byte buffer (the corpus text, the JSON Lines
 * records' text). */
#ifndef FEDMOE_BYTEBUF_H
#define FEDMOE_BYTEBUF_H

#include "fedmoe/error.h"

#include <stdint.h>

/* Append n bytes of p to *buf, which holds *size bytes in room for *cap; the room
 * doubles (from 64 KiB) when it is short. n = 0 changes nothing (p may be NULL). On
 * failure the buffer is as it was; the message names what it holds. */
fm_err fm_bytebuf_append(uint8_t **buf, uint64_t *size, uint64_t *cap, const void *p, uint64_t n, const char *what);

#endif
