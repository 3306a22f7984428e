/* accountant.c - Renyi differential privacy of the sampled Gaussian mechanism.
 *
 * A round of DP-FedAvg releases sum(clipped updates) + N(0, (sigma clip)^2): the
 * Gaussian mechanism on a sum of L2 sensitivity clip, applied to a random sample of the
 * clients. Its RDP at order alpha composes additively over rounds; epsilon at delta is
 * the best conversion over a grid of orders. Every sum is taken in log space, so large
 * orders and small q do not overflow. */
#include "fedmoe/toolkit.h"

#include <math.h>

/* log(exp(a) + exp(b)) */
static double log_add(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  double hi = a > b ? a : b, lo = a > b ? b : a;
  return hi + log1p(exp(lo - hi));
}

/* log(exp(a) - exp(b)), a >= b; -inf when equal */
static double log_sub(double a, double b) {
  if (b == -INFINITY) return a;
  if (a <= b) return -INFINITY;
  return a + log1p(-exp(b - a));
}

/* log erfc(x), accurate in the far tail where erfc underflows (asymptotic series). */
static double log_erfc(double x) {
  if (x < 25) return log(erfc(x));
  double x2 = x * x;
  return -x2 - log(x) - 0.5 * log(M_PI) + log1p(-0.5 / x2 + 0.75 / (x2 * x2) - 1.875 / (x2 * x2 * x2));
}

static double log_binom(double n, double k) { return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1); }

/* log A_alpha for integer alpha: sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2 - k) / (2 sigma^2)),
 * Mironov et al. 2019, Sec. 3.3 (the expectation of (mu/mu0)^alpha under mu0). */
static double log_a_int(double q, double sigma, int alpha) {
  double s = -INFINITY, lq = log(q), l1q = log1p(-q);
  for (int k = 0; k <= alpha; k++)
    s = log_add(s, log_binom(alpha, k) + k * lq + (alpha - k) * l1q + (double)(k * (double)k - k) / (2 * sigma * sigma));
  return s;
}

/* log A_alpha for fractional alpha: A = A0 + A1, the integrals of mu0 (mu/mu0)^alpha
 * below and above z0 = sigma^2 log(1/q - 1) + 1/2 expanded in the generalised binomial
 * series (Mironov et al. 2019, Sec. 3.3), whose terms change sign past k > alpha: the
 * positive and negative parts are summed apart in log space. */
static double log_a_frac(double q, double sigma, double alpha) {
  double pos0 = -INFINITY, neg0 = -INFINITY, pos1 = -INFINITY, neg1 = -INFINITY;
  double z0 = sigma * sigma * log(1 / q - 1) + 0.5, lq = log(q), l1q = log1p(-q), r2s = sqrt(2.0) * sigma;
  double lc = 0; /* log |C(alpha, k)| */
  int sign = 1;  /* sign of C(alpha, k) */
  for (int k = 0; k < 100000; k++) {
    double j = alpha - k;
    double t0 = lc + k * lq + j * l1q + (k * (double)k - k) / (2 * sigma * sigma) + log(0.5) + log_erfc((k - z0) / r2s);
    double t1 = lc + j * lq + k * l1q + (j * j - j) / (2 * sigma * sigma) + log(0.5) + log_erfc((z0 - j) / r2s);
    if (sign > 0) { pos0 = log_add(pos0, t0); pos1 = log_add(pos1, t1); }
    else { neg0 = log_add(neg0, t0); neg1 = log_add(neg1, t1); }
    double tot = log_add(pos0, pos1);
    if (k > alpha + 1 && t0 < tot - 40 && t1 < tot - 40) break; /* the rest is below 1e-17 of the sum */
    /* C(alpha, k + 1) = C(alpha, k) (alpha - k) / (k + 1) */
    double f = (alpha - k) / (k + 1);
    if (f == 0) break;
    if (f < 0) sign = -sign;
    lc += log(fabs(f));
  }
  return log_add(log_sub(pos0, neg0), log_sub(pos1, neg1));
}

double fm_rdp_poisson(double q, double sigma, double alpha) {
  if (q <= 0) return 0;
  if (sigma <= 0) return INFINITY;
  if (q >= 1) return alpha / (2 * sigma * sigma);
  double la = alpha == floor(alpha) ? log_a_int(q, sigma, (int)alpha) : log_a_frac(q, sigma, alpha);
  return la / (alpha - 1);
}

double fm_rdp_fixed(double q, double sigma, int alpha) {
  if (q <= 0) return 0;
  if (sigma <= 0) return INFINITY;
  double base2 = 2.0 * 2 / (sigma * sigma); /* base RDP at order j: 2 j / sigma^2 */
  if (q >= 1) return base2 / 2 * alpha;     /* everyone takes part: no amplification */
  /* Theorem 9 with eps(inf) = inf for the Gaussian (so min{2, (e^eps(inf) - 1)^j} = 2):
   * 1 + q^2 C(a,2) min{4 (e^eps(2) - 1), 2 e^eps(2)} + sum_{j=3}^a 2 q^j C(a,j) e^((j-1) eps(j)) */
  double lq = log(q);
  double t2 = fmin(log(4.0) + log(expm1(base2)), log(2.0) + base2);
  double s = log_add(0, 2 * lq + log_binom(alpha, 2) + t2);
  for (int j = 3; j <= alpha; j++) {
    double epsj = 2.0 * j / (sigma * sigma);
    s = log_add(s, log(2.0) + j * lq + log_binom(alpha, j) + (j - 1) * epsj);
  }
  /* with eps(inf) infinite the bound loses to no amplification at large q and orders:
   * both hold, so the smaller does */
  return fmin(s / (alpha - 1), base2 / 2 * alpha);
}

double fm_rdp_epsilon(const double *orders, const double *rdp, int n, double delta, int classic, double *order) {
  double best = INFINITY, at = NAN;
  for (int i = 0; i < n; i++) {
    double a = orders[i], r = rdp[i], e;
    if (!(r < INFINITY) || a <= 1) continue;
    if (classic) e = r + log(1 / delta) / (a - 1);
    else if (delta * delta + expm1(-r) >= 0) e = 0; /* the KL bound already gives delta */
    else if (a > 1.01) e = r + log1p(-1 / a) - log(delta * a) / (a - 1);
    else continue; /* the bound is unstable near 1 and useless there */
    if (e < best) { best = e; at = a; }
  }
  if (order) *order = at;
  return best < 0 ? 0 : best;
}

void fm_accountant_init(fm_accountant *a, double q, double sigma, int poisson, double delta) {
  a->n = 0;
  a->delta = delta;
  /* fractional orders 1.1 .. 10.9 (Poisson only: the fixed-size bound is for integers),
   * every integer to 64, then a few large ones for tiny epsilons */
  if (poisson)
    for (int i = 11; i < 110; i++)
      if (i % 10) a->orders[a->n++] = i / 10.0;
  for (int i = 2; i <= 64; i++) a->orders[a->n++] = i;
  a->orders[a->n++] = 128;
  a->orders[a->n++] = 256;
  for (int i = 0; i < a->n; i++)
    a->step[i] = poisson ? fm_rdp_poisson(q, sigma, a->orders[i]) : fm_rdp_fixed(q, sigma, (int)a->orders[i]);
}

double fm_accountant_epsilon(const fm_accountant *a, long rounds) {
  double rdp[160];
  if (rounds <= 0) return 0;
  for (int i = 0; i < a->n; i++) rdp[i] = a->step[i] * (double)rounds;
  return fm_rdp_epsilon(a->orders, rdp, a->n, a->delta, 0, NULL);
}

double fm_accountant_calibrate(double q, int poisson, double delta, long rounds, double target) {
  fm_accountant a;
  double lo = 1e-3, hi = 1e4;
  fm_accountant_init(&a, q, hi, poisson, delta);
  if (fm_accountant_epsilon(&a, rounds) > target) return 0;
  /* epsilon falls as sigma grows: bisect in log sigma */
  while (hi / lo > 1 + 1e-4) {
    double mid = sqrt(lo * hi);
    fm_accountant_init(&a, q, mid, poisson, delta);
    if (fm_accountant_epsilon(&a, rounds) > target) lo = mid;
    else hi = mid;
  }
  return hi;
}
