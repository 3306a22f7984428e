/* sample.c - the next token from a row of logits: greedy, or a draw from the
 * tempered softmax, optionally cut to its nucleus (top-p). The draw's uniform number
 * is the first of the counter-based stream (seed, step) (rng.c), so a generation is
 * reproducible from its seed alone: token k depends on the seed, k and the logits. */
#include "fedmoe/decode.h"
#include "fedmoe/rng.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
  double p;   /* unnormalised probability */
  int32_t id;
} cand;

size_t fm_sample_scratch(int V) { return (size_t)(V > 0 ? V : 1) * sizeof(cand); }

/* most probable first; equal probabilities in id order (a total order: the nucleus
 * does not depend on qsort's algorithm) */
static int more_probable(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->p != y->p) return x->p > y->p ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

int32_t fm_sample(const fm_sampler *s, const float *logits, int V, long step, void *work) {
  const int n = s->vocab > 0 && s->vocab < V ? s->vocab : V;
  int32_t best = 0;
  for (int i = 1; i < n; i++)
    if (logits[i] > logits[best]) best = i;
  if (s->temperature <= 0.0f) return best;
  /* p_i = exp((l_i - max) / T), in double: the tail of a 10^5-word vocabulary adds up */
  cand *c = work;
  const double mx = logits[best], invt = 1.0 / (double)s->temperature;
  double total = 0.0;
  for (int i = 0; i < n; i++) {
    c[i].p = exp(((double)logits[i] - mx) * invt);
    c[i].id = i;
    total += c[i].p;
  }
  int keep = n;
  if (s->top_p < 1.0f) { /* the nucleus: the fewest most probable ids reaching top_p of the mass */
    qsort(c, (size_t)n, sizeof *c, more_probable);
    const double target = (double)s->top_p * total;
    double cum = 0.0;
    for (keep = 0; keep < n;) {
      cum += c[keep++].p;
      if (cum >= target) break;
    }
    total = cum;
  }
  fm_rng r;
  fm_rng_init(&r, s->seed, 0, (uint32_t)step, FM_RNG_GENERATE);
  const double u = fm_rng_uniform(&r) * total;
  double acc = 0.0;
  for (int i = 0; i < keep; i++) {
    acc += c[i].p;
    if (u < acc) return c[i].id;
  }
  return c[keep - 1].id; /* u within rounding of the total */
}
