/* sample.c - which clients take part in a round. */
#include "fedmoe/fl.h"

#include <math.h>

int fm_sample_clients(const fm_config *cfg, int round, int *out) {
  int n = cfg->fl.clients;
  if (cfg->fltk.sampling == FM_SAMPLING_POISSON) { /* each client on its own coin: any count, even 0 */
    fm_rng r;
    fm_rng_init(&r, (uint64_t)cfg->run.seed, FM_RNG_SERVER, (uint32_t)round, FM_RNG_SAMPLE);
    int k = 0;
    for (int i = 0; i < n; i++)
      if (fm_rng_uniform(&r) < cfg->fl.sample_fraction) out[k++] = i;
    return k;
  }
  int m = cfg->fl.sample_count > 0 ? cfg->fl.sample_count
                                   : (int)llround(cfg->fl.sample_fraction * (double)n);
  if (m < 1) m = 1;
  m += cfg->fl.over_select;
  if (m > n) m = n;
  if (m == n) {
    for (int i = 0; i < n; i++) out[i] = i;
    return n;
  }
  /* the server's stream of this round: every rank draws the same sample */
  fm_rng r;
  fm_rng_init(&r, (uint64_t)cfg->run.seed, FM_RNG_SERVER, (uint32_t)round, FM_RNG_SAMPLE);
  /* selection sampling keeps the ids sorted; O(n) per round */
  int chosen = 0;
  for (int i = 0; i < n && chosen < m; i++)
    if ((int)fm_rng_below(&r, (uint64_t)(n - i)) < m - chosen) out[chosen++] = i;
  return chosen;
}
