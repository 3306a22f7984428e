/* log.c - leveled logging with a rank prefix. */
#include "fedmoe/log.h"

#include <stdarg.h>
#include <string.h>

static fm_log_level log_level = FM_LOG_INFO;
static int log_rank = -1, log_size = 1;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void fm_log_set_level(fm_log_level lvl) { log_level = lvl; }
fm_log_level fm_log_get_level(void) { return log_level; }
void fm_log_set_rank(int rank, int size) { log_rank = rank; log_size = size; }
int fm_log_rank(void) { return log_rank; }

int fm_log_level_parse(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

void fm_log(fm_log_level lvl, const char *fmt, ...) {
  if (lvl > log_level) return;
  FILE *out = lvl <= FM_LOG_WARN ? stderr : stdout;
  char line[2048];
  int off = 0;
  if (log_rank >= 0 && log_size > 1) off = snprintf(line, sizeof line, "[r%d] ", log_rank);
  if (lvl == FM_LOG_WARN) off += snprintf(line + off, sizeof line - (size_t)off, "warning: ");
  if (lvl == FM_LOG_ERROR) off += snprintf(line + off, sizeof line - (size_t)off, "error: ");
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
  va_end(ap);
  /* one fputs per line, so lines of different ranks do not interleave mid-line */
  size_t n = strlen(line);
  if (n == 0 || line[n - 1] != '\n') {
    if (n + 1 < sizeof line) { line[n] = '\n'; line[n + 1] = 0; }
  }
  fputs(line, out);
  fflush(out);
}

void fm_say(const char *fmt, ...) {
  if (log_rank > 0) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fflush(stdout);
}
