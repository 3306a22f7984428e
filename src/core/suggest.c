/* suggest.c - "did you mean": edit distance to the known names, closest kept. */
#include "fedmoe/suggest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORD_MAX 128 /* longer words are never typos of our names: no suggestion */

int fm_edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n >= WORD_MAX || m >= WORD_MAX) return WORD_MAX;
  /* three rows of the dynamic programme: the transposition looks two rows back */
  int rows[3][WORD_MAX + 1];
  int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= m; j++) {
      int cost = a[i - 1] != b[j - 1];
      int d = prev[j] + 1;                                 /* deletion */
      if (cur[j - 1] + 1 < d) d = cur[j - 1] + 1;          /* insertion */
      if (prev[j - 1] + cost < d) d = prev[j - 1] + cost;  /* substitution */
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && prev2[j - 2] + 1 < d)
        d = prev2[j - 2] + 1;                              /* swap of neighbours */
      cur[j] = d;
    }
    int *t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return prev[m];
}

void fm_suggest_init(fm_suggest *s, const char *word) {
  memset(s, 0, sizeof *s);
  s->word = word;
}

void fm_suggest_add_part(fm_suggest *s, const char *name, const char *word_part, const char *name_part,
                         int penalty) {
  size_t len = strlen(word_part);
  int limit = (int)(len / 3) > 1 ? (int)(len / 3) : 1;
  int d = fm_edit_distance(word_part, name_part);
  if (d > limit || (d == 0 && penalty == 0)) return; /* far off, or the word itself */
  d += penalty;
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->best[i], name)) { /* seen already (whole and by part): keep the better */
      if (d >= s->dist[i]) return;
      memmove(&s->best[i], &s->best[i + 1], (size_t)(s->n - i - 1) * sizeof s->best[0]);
      memmove(&s->dist[i], &s->dist[i + 1], (size_t)(s->n - i - 1) * sizeof s->dist[0]);
      s->n--;
      break;
    }
  int p;
  if (s->n < FM_SUGGEST_MAX) p = s->n++;
  else if (d < s->dist[FM_SUGGEST_MAX - 1]) p = FM_SUGGEST_MAX - 1; /* replaces the farthest */
  else return;
  while (p > 0 && s->dist[p - 1] > d) { /* stable: among equals, the first added first */
    s->best[p] = s->best[p - 1];
    s->dist[p] = s->dist[p - 1];
    p--;
  }
  s->best[p] = name;
  s->dist[p] = d;
}

void fm_suggest_add(fm_suggest *s, const char *name) { fm_suggest_add_part(s, name, s->word, name, 0); }

const char *fm_suggest_text(const fm_suggest *s, char *out, size_t len) {
  size_t off = 0;
  out[0] = 0;
  if (!s->n || len == 0) return out;
  off += (size_t)snprintf(out + off, len - off, " (did you mean");
  for (int i = 0; i < s->n && off < len; i++)
    off += (size_t)snprintf(out + off, len - off, "%s'%s'", i == 0 ? " " : i == s->n - 1 ? " or " : ", ",
                            s->best[i]);
  if (off < len) snprintf(out + off, len - off, "?)");
  return out;
}
