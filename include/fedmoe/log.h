/* log.h - leveled logging with a rank prefix. */
#ifndef FEDMOE_LOG_H
#define FEDMOE_LOG_H

#include <stdio.h>

typedef enum { FM_LOG_ERROR = 0, FM_LOG_WARN, FM_LOG_INFO, FM_LOG_DEBUG } fm_log_level;

void fm_log_set_level(fm_log_level lvl);
fm_log_level fm_log_get_level(void);
/* Rank and world size set once after MPI_Init; -1 before (no prefix). */
void fm_log_set_rank(int rank, int size);
int fm_log_rank(void);
/* Parse "error|warn|info|debug"; returns -1 when unknown. */
int fm_log_level_parse(const char *s);

/* Print on this rank (stderr for warnings and errors, stdout otherwise),
 * prefixed "[r<rank>] " when the job has more than one rank. */
void fm_log(fm_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print only on rank 0 (or when MPI is not initialised), no prefix: the job's voice. */
void fm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define FM_INFO(...) fm_log(FM_LOG_INFO, __VA_ARGS__)
#define FM_WARN(...) fm_log(FM_LOG_WARN, __VA_ARGS__)
#define FM_DEBUG(...) fm_log(FM_LOG_DEBUG, __VA_ARGS__)

#endif
