/* text.c - the byte tokenizer's input: what counts as text, and cleaning it.
 * The rules are stated in include/fedmoe/data.h. */
#include "fedmoe/data.h"
#include "fedmoe/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Length of the valid UTF-8 sequence starting at p (1..4), or 0 when it is invalid
 * (bad lead byte, missing continuation, overlong form, surrogate, past U+10FFFF). */
static size_t utf8_len(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  size_t k;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) k = 2;
  else if (c >= 0xE0 && c <= 0xEF) k = 3;
  else if (c >= 0xF0 && c <= 0xF4) k = 4;
  else return 0;
  if (k > n) return 0;
  for (size_t i = 1; i < k; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) || (c == 0xF0 && p[1] < 0x90) ||
      (c == 0xF4 && p[1] >= 0x90))
    return 0;
  return k;
}

size_t fm_utf8_invalid_at(const uint8_t *p, size_t n) {
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) { i++; continue; }
    size_t k = utf8_len(p + i, n - i);
    if (!k) return i;
    i += k;
  }
  return n;
}

/* Control characters that text may hold: TAB LF VT FF CR, BACKSPACE (overstrike), ESC. */
static int control_ok(uint8_t c) { return (c >= 8 && c <= 13) || c == 27; }

int fm_text_check(const uint8_t *p, size_t n, char *why, size_t whylen) {
  const uint8_t *nul = memchr(p, 0, n);
  if (nul) {
    snprintf(why, whylen, "not a text file: it contains NUL bytes (the first at byte %zu)",
             (size_t)(nul - p));
    return 0;
  }
  size_t bad = 0;
  for (size_t i = 0; i < n;) {
    uint8_t c = p[i];
    if (c < 0x80) {
      bad += (c < 32 && !control_ok(c)) || c == 127;
      i++;
    } else {
      size_t k = utf8_len(p + i, n - i);
      if (k) i += k;
      else { bad++; i++; }
    }
  }
  if (bad * 10 > n) {
    snprintf(why, whylen,
             "not a text file: %.1f%% of its bytes are control characters or invalid UTF-8 "
             "(text has at most 10%%)", 100.0 * (double)bad / (double)n);
    return 0;
  }
  return 1;
}

size_t fm_text_clean(uint8_t *p, size_t n) {
  size_t o = 0, line = 0; /* output length; where the current output line starts */
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i];
    if (c == '\r' && i + 1 < n && p[i + 1] == '\n') continue; /* CRLF -> LF */
    if (c == '\b') { /* overstrike: the character after the backspace wins */
      while (o > line && (p[o - 1] & 0xC0) == 0x80) o--; /* a whole UTF-8 character */
      if (o > line) o--;
      continue;
    }
    if (c == '\n') {
      if (o - line == 1 && p[line] == '%') o = line; /* a fortune separator line */
      p[o++] = '\n';
      line = o;
      continue;
    }
    p[o++] = c;
  }
  if (o - line == 1 && p[line] == '%') o = line;
  return o;
}

fm_err fm_text_read(const char *path, uint8_t **text, uint64_t *len) {
  *text = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) FM_ERROR(FM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    FM_ERROR(FM_ERR_IO, "'%s' is not a regular file", path);
  }
  size_t n = (size_t)st.st_size;
  uint8_t *buf = malloc(n + 1);
  if (!buf) {
    fclose(f);
    FM_ERROR(FM_ERR_MEM, "out of memory reading '%s' (%zu bytes)", path, n);
  }
  size_t got = fread(buf, 1, n, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || got != n) {
    free(buf);
    FM_ERROR(FM_ERR_IO, "cannot read '%s'", path);
  }
  char why[160];
  if (!fm_text_check(buf, n, why, sizeof why)) {
    free(buf);
    FM_ERROR(FM_ERR_DATA, "'%s' is %s", path, why);
  }
  n = fm_text_clean(buf, n);
  if (n && buf[n - 1] != '\n') buf[n++] = '\n'; /* room: n shrank or the +1 above */
  *text = buf;
  *len = n;
  return FM_OK;
}

const char *fm_split_name(int split) {
  static const char *const names[FM_NSPLITS] = {"train", "val", "test", "public"};
  return split >= 0 && split < FM_NSPLITS ? names[split] : "?";
}
