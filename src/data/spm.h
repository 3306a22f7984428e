/* spm.h - the C interface of spm.cc, the wrapper around libsentencepiece (C++).
 * Every function returns 0 on success, or -1 with a message in err. */
#ifndef FEDMOE_SPM_H
#define FEDMOE_SPM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fm_spm fm_spm;

int fm_spm_load(const char *path, fm_spm **out, char *err, size_t errlen);
void fm_spm_free(fm_spm *p);
int fm_spm_vocab(const fm_spm *p);
/* Control pieces (<s>, </s>, ...) are the special tokens; unknown is one too. */
int fm_spm_is_special(const fm_spm *p, int id);
const char *fm_spm_piece(const fm_spm *p, int id);
int fm_spm_find(const fm_spm *p, const char *piece); /* -1 when absent */
/* *ids malloc'ed (caller frees), *n ids. */
int fm_spm_encode(const fm_spm *p, const char *text, size_t len, int32_t **ids, size_t *n, char *err,
                  size_t errlen);
/* *text malloc'ed and NUL-terminated, *len bytes; ids already checked in range. */
int fm_spm_decode(const fm_spm *p, const int32_t *ids, size_t n, char **text, size_t *len, char *err,
                  size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
