/* router.c - MoE routing: softmax over the allowed experts, top-k, renormalisation.
 *   p = softmax(logits) over allowed experts (0 for the others)
 *   K = the keff = min(k, #allowed) largest p, ties to the lower index
 *   w_e = p_e / sum_{j in K} p_j  for e in K  (renorm: Mixtral, norm_topk_prob), or
 *   w_e = p_e                                (without: OLMoE, Qwen2-MoE by default) */
#include "nn.h"

#include <math.h>

/* logits [N,E] -> probs [N,E], picks [N,k] (-1 beyond keff), wts [N,k]; returns keff */
int fm_router_forward(float *probs, int32_t *picks, float *wts, const float *logits,
                      const uint8_t *allowed, int N, int E, int k, int renorm) {
  int nallowed = 0;
  for (int e = 0; e < E; e++) nallowed += !allowed || allowed[e];
  const int keff = k < nallowed ? k : nallowed;
  for (int n = 0; n < N; n++) {
    const float *restrict z = logits + (size_t)n * E;
    float *restrict p = probs + (size_t)n * E;
    int32_t *pk = picks + (size_t)n * k;
    float *w = wts + (size_t)n * k;
    float mx = -INFINITY;
    for (int e = 0; e < E; e++)
      if ((!allowed || allowed[e]) && z[e] > mx) mx = z[e];
    float s = 0.0f;
    for (int e = 0; e < E; e++) {
      p[e] = (!allowed || allowed[e]) ? expf(z[e] - mx) : 0.0f;
      s += p[e];
    }
    float inv = 1.0f / s;
    for (int e = 0; e < E; e++) p[e] *= inv;
    /* k passes of argmax; strict '>' keeps the lower index on ties */
    uint64_t taken = 0;
    float psum = 0.0f;
    for (int j = 0; j < keff; j++) {
      int best = -1;
      for (int e = 0; e < E; e++) {
        if ((taken >> e) & 1 || (allowed && !allowed[e])) continue;
        if (best < 0 || p[e] > p[best]) best = e;
      }
      taken |= (uint64_t)1 << best;
      pk[j] = best;
      psum += p[best];
    }
    if (renorm)
      for (int j = 0; j < keff; j++) w[j] = p[pk[j]] / psum;
    else
      for (int j = 0; j < keff; j++) w[j] = p[pk[j]];
    for (int j = keff; j < k; j++) {
      pk[j] = -1;
      w[j] = 0.0f;
    }
  }
  return keff;
}

/* dlogits[N,E] (written). Through the renormalisation, for j in K with S = sum_K p:
 *   dp_j = (dw_j - sum_{e in K} dw_e w_e) / S  (without it dp_j = dw_j);
 *   dp_e += dprobs_e (all e);
 * through the softmax over the allowed experts (p = 0 elsewhere, so no gradient):
 *   dlogit_e = p_e (dp_e - sum_j p_j dp_j). */
void fm_router_backward(float *dlogits, const float *dwts, const float *dprobs, const float *probs,
                        const int32_t *picks, const float *wts, int N, int E, int k, int renorm) {
  for (int n = 0; n < N; n++) {
    const float *restrict p = probs + (size_t)n * E;
    const int32_t *pk = picks + (size_t)n * k;
    const float *w = wts + (size_t)n * k, *dw = dwts + (size_t)n * k;
    float *restrict d = dlogits + (size_t)n * E;
    if (dprobs)
      for (int e = 0; e < E; e++) d[e] = dprobs[(size_t)n * E + e];
    else
      for (int e = 0; e < E; e++) d[e] = 0.0f;
    if (renorm) {
      float S = 0.0f, dot = 0.0f;
      for (int j = 0; j < k && pk[j] >= 0; j++) {
        S += p[pk[j]];
        dot += dw[j] * w[j];
      }
      for (int j = 0; j < k && pk[j] >= 0; j++) d[pk[j]] += (dw[j] - dot) / S;
    } else {
      for (int j = 0; j < k && pk[j] >= 0; j++) d[pk[j]] += dw[j];
    }
    float pd = 0.0f;
    for (int e = 0; e < E; e++) pd += p[e] * d[e];
    for (int e = 0; e < E; e++) d[e] = p[e] * (d[e] - pd);
  }
}
