/* suggest.h - "did you mean": the known names closest to a mistyped one.
 *
 * Feed every known name to fm_suggest_add (or fm_suggest_add_part to compare a part
 * of it, e.g. a key's name without its section); fm_suggest_text then says
 * " (did you mean 'fl.rounds'?)" naming up to three of the closest, or "" when none
 * is close enough to be a likely typo (edit distance at most a third of the word,
 * at least 1; a swap of two neighbouring letters counts as one edit). */
#ifndef FEDMOE_SUGGEST_H
#define FEDMOE_SUGGEST_H

#include <stddef.h>

#define FM_SUGGEST_MAX 3

typedef struct {
  const char *word;
  const char *best[FM_SUGGEST_MAX];
  int dist[FM_SUGGEST_MAX];
  int n;
} fm_suggest;

void fm_suggest_init(fm_suggest *s, const char *word);
/* Consider name (compared whole). */
void fm_suggest_add(fm_suggest *s, const char *name);
/* Consider name by a part of it: word_part (a part of the word) against name_part
 * (the same part of name), e.g. a key without its section; penalty is added to the
 * distance, since a match on a part is a weaker hint than on the whole. */
void fm_suggest_add_part(fm_suggest *s, const char *name, const char *word_part, const char *name_part,
                         int penalty);
/* " (did you mean 'a'?)", " (did you mean 'a' or 'b'?)", ... or "" into out. */
const char *fm_suggest_text(const fm_suggest *s, char *out, size_t len);
/* Edit distance (optimal string alignment) between a and b. */
int fm_edit_distance(const char *a, const char *b);

#endif
