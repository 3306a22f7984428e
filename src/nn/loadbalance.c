/* loadbalance.c - the Switch-Transformer auxiliary loss of one MoE layer:
 *   lb = coef * E * sum_e f_e P_e,
 * f_e = fraction of rows whose top-1 pick is e (counts: no gradient),
 * P_e = mean over rows of p_e (the gradient flows through it into the router). */
#include "nn.h"

/* probs [N,E], picks [N,k] -> f [E]; returns lb */
double fm_loadbalance_forward(float *f, const float *probs, const int32_t *picks, int N, int E,
                              int k, float coef) {
  for (int e = 0; e < E; e++) f[e] = 0.0f;
  if (N <= 0) return 0.0;
  for (int n = 0; n < N; n++) f[picks[(size_t)n * k]] += 1.0f;
  double lb = 0.0;
  for (int e = 0; e < E; e++) {
    f[e] /= (float)N;
    double P = 0.0;
    for (int n = 0; n < N; n++) P += probs[(size_t)n * E + e];
    lb += (double)f[e] * (P / N);
  }
  return (double)coef * E * lb;
}

/* dprobs[N,E] += dlb * coef * E * f_e / N */
void fm_loadbalance_backward(float *dprobs, const float *f, int N, int E, float coef, float dlb) {
  if (N <= 0) return;
  float c[FM_MAX_EXPERTS];
  for (int e = 0; e < E; e++) c[e] = dlb * coef * (float)E * f[e] / (float)N;
  for (int n = 0; n < N; n++) {
    float *restrict d = dprobs + (size_t)n * E;
    for (int e = 0; e < E; e++) d[e] += c[e];
  }
}
