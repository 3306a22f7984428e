/* batch.c - sequences of tokens from a split: random windows for training,
 * consecutive windows for evaluation. A window is T+1 tokens inside one span:
 * T inputs and, shifted by one, T next-token targets. */
#include "fedmoe/data.h"

#include <string.h>

long fm_split_windows(const fm_split *s, int T) {
  long n = 0;
  for (int i = 0; i < s->nspans; i++) n += (long)(s->spans[i].len / (uint64_t)(T + 1));
  return n;
}

static void put(const fm_corpus *cp, uint64_t at, int T, int32_t *tokens, int32_t *targets) {
  if (cp->ids) { /* a tokenizer's ids */
    memcpy(tokens, cp->ids + at, (size_t)T * sizeof *tokens);
    memcpy(targets, cp->ids + at + 1, (size_t)T * sizeof *targets);
  } else {
    const uint8_t *w = cp->text + at;
    for (int t = 0; t < T; t++) {
      tokens[t] = w[t];
      targets[t] = w[t + 1];
    }
  }
  if (cp->target_mask) /* instruction prompts: inputs, never targets (the loss skips -1) */
    for (int t = 0; t < T; t++)
      if (!cp->target_mask[at + t + 1]) targets[t] = -1;
}

/* windows that can start in a span of len bytes */
static uint64_t starts(uint64_t len, int T) { return len > (uint64_t)T ? len - (uint64_t)T : 0; }

fm_err fm_batch_sample(const fm_corpus *cp, const fm_split *s, fm_rng *rng, int B, int T,
                       int32_t *tokens, int32_t *targets, int *domains) {
  if (B < 1 || T < 1) FM_ERROR(FM_ERR_ARG, "batch of %d x %d tokens", B, T);
  uint64_t total = 0;
  for (int i = 0; i < s->nspans; i++) total += starts(s->spans[i].len, T);
  if (!total)
    FM_ERROR(FM_ERR_DATA, "a split of %llu tokens in %d spans holds no sequence of %d bytes",
             (unsigned long long)s->tokens, s->nspans, T + 1);
  for (int b = 0; b < B; b++) {
    uint64_t u = fm_rng_below(rng, total);
    int i = 0;
    for (; i < s->nspans - 1; i++) { /* every start is equally likely: pick its span */
      uint64_t k = starts(s->spans[i].len, T);
      if (u < k) break;
      u -= k;
    }
    put(cp, s->spans[i].start + u, T, tokens + (size_t)b * (size_t)T, targets + (size_t)b * (size_t)T);
    if (domains) domains[b] = s->spans[i].domain;
  }
  return FM_OK;
}

int fm_batch_sequential(const fm_corpus *cp, const fm_split *s, long i, int B, int T,
                        int32_t *tokens, int32_t *targets, int *domains) {
  if (i < 0 || B < 1 || T < 1) return 0;
  uint64_t w = (uint64_t)i * (uint64_t)B, W = (uint64_t)T + 1; /* first window wanted */
  int span = 0;
  for (; span < s->nspans; span++) { /* the span holding window w, and w within it */
    uint64_t k = s->spans[span].len / W;
    if (w < k) break;
    w -= k;
  }
  int n = 0;
  while (n < B && span < s->nspans) {
    if (w >= s->spans[span].len / W) { span++; w = 0; continue; }
    put(cp, s->spans[span].start + w * W, T, tokens + (size_t)n * (size_t)T, targets + (size_t)n * (size_t)T);
    if (domains) domains[n] = s->spans[span].domain;
    n++;
    w++;
  }
  return n;
}
