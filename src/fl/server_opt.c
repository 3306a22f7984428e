/* server_opt.c - server optimizers on the pseudo-gradient (Reddi et al., "Adaptive
 * Federated Optimization", ICLR 2021, Algorithm 2; FedAvgM after Hsu et al. 2019).
 *
 * The round's pseudo-gradient is delta = aggregate - global. With moments m, v kept
 * across rounds (in double, in the checkpoints) and the global values x:
 *   avg      x += lr delta                        (lr 1: plain FedAvg)
 *   avgm     m = beta1 m + delta;                  x += lr m
 *   adagrad  m = beta1 m + (1 - beta1) delta;  v += delta^2;                      x += lr m / (sqrt(v) + tau)
 *   adam     m as adagrad;                     v = beta2 v + (1 - beta2) delta^2; same step
 *   yogi     m as adagrad;                     v -= (1 - beta2) delta^2 sign(v - delta^2); same step
 * v starts at tau^2 (the paper's v_{-1} >= tau^2). Rank 0 alone runs it, in a fixed
 * order, from the exact sum: the result does not depend on the rank count. */
#include "fedmoe/toolkit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fm_err fm_server_opt_create(fm_server_opt *o, const fm_config *c, size_t n) {
  memset(o, 0, sizeof *o);
  o->kind = c->fltk.server_opt;
  o->lr = c->fltk.server_lr;
  o->beta1 = c->fltk.server_momentum;
  o->beta2 = c->fltk.server_beta2;
  o->tau = c->fltk.server_eps;
  o->n = n;
  if (o->kind == FM_SERVER_AVG) return FM_OK;
  FM_CALLOC(o->m, n, "server optimizer first moment");
  if (o->kind == FM_SERVER_AVGM) return FM_OK;
  FM_CALLOC(o->v, n, "server optimizer second moment");
  for (size_t i = 0; i < n; i++) o->v[i] = o->tau * o->tau;
  return FM_OK;
}

void fm_server_opt_free(fm_server_opt *o) {
  free(o->m);
  free(o->v);
  memset(o, 0, sizeof *o);
}

void fm_server_opt_step(fm_server_opt *o, size_t off, size_t n, const double *delta, float *x) {
  double lr = o->lr, b1 = o->beta1, b2 = o->beta2, tau = o->tau;
  double *m = o->m ? o->m + off : NULL, *v = o->v ? o->v + off : NULL;
  for (size_t i = 0; i < n; i++) {
    double d = delta[i], step;
    switch (o->kind) {
    case FM_SERVER_AVG: step = d; break;
    case FM_SERVER_AVGM: step = m[i] = b1 * m[i] + d; break;
    default: {
      m[i] = b1 * m[i] + (1 - b1) * d;
      double d2 = d * d;
      if (o->kind == FM_SERVER_ADAGRAD) v[i] += d2;
      else if (o->kind == FM_SERVER_ADAM) v[i] = b2 * v[i] + (1 - b2) * d2;
      else v[i] -= (1 - b2) * d2 * (v[i] > d2 ? 1.0 : v[i] < d2 ? -1.0 : 0.0); /* yogi */
      step = m[i] / (sqrt(v[i]) + tau);
    }
    }
    x[i] = (float)((double)x[i] + lr * step);
  }
}
