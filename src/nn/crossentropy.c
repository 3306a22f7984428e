/* crossentropy.c - softmax cross-entropy over the vocabulary, fused. */
#include "nn.h"
#include "vmath.h"

#include <math.h>

/* sum_j exp(z[j] - mx), in the 8 lanes of vmath.h. Always inlined: as a function of
 * its own GCC compiled it once, for the baseline only, where its exp stayed scalar
 * (the forward's pass over [N,V] logits then took 10x the backward's). */
static inline __attribute__((always_inline)) float sum_exp(const float *restrict z, int V, float mx) {
  float acc[FM_LANES] = {0};
  int j = 0;
  for (; j + FM_LANES <= V; j += FM_LANES)
    for (int l = 0; l < FM_LANES; l++) acc[l] += fm_vexpf(z[j + l] - mx);
  for (int l = 0; j < V; j++, l++) acc[l] += fm_vexpf(z[j] - mx);
  return fm_lanes_sum(acc);
}

/* logits [N,V], targets [N] (< 0: ignored) -> mean over counted rows of
 * lse - logit[target]; keeps lse [N] (log-sum-exp of each row) for backward. */
FM_VEC double fm_crossentropy_forward(float *lse, const float *logits, const int32_t *targets, int N,
                               int V, int *nvalid) {
  double sum = 0.0;
  int cnt = 0;
  for (int n = 0; n < N; n++) {
    const float *restrict z = logits + (size_t)n * V;
    const float mx = fm_vmax(z, V);
    lse[n] = mx + logf(sum_exp(z, V, mx));
    if (targets[n] >= 0) {
      sum += (double)lse[n] - (double)z[targets[n]];
      cnt++;
    }
  }
  *nvalid = cnt;
  return cnt ? sum / cnt : 0.0;
}

/* dlogits[N,V] = dloss / nvalid * (softmax(logits) - onehot(target)) on counted rows,
 * 0 on ignored rows (written). */
FM_VEC void fm_crossentropy_backward(float *dlogits, const float *logits, const float *lse,
                              const int32_t *targets, int N, int V, int nvalid, float dloss) {
  const float scale = nvalid ? dloss / (float)nvalid : 0.0f;
  for (int n = 0; n < N; n++) {
    const float *restrict z = logits + (size_t)n * V;
    float *restrict d = dlogits + (size_t)n * V;
    if (targets[n] < 0) {
      for (int j = 0; j < V; j++) d[j] = 0.0f;
      continue;
    }
    const float l = lse[n];
    for (int j = 0; j < V; j++) d[j] = scale * fm_vexpf(z[j] - l);
    d[targets[n]] -= scale;
  }
}
