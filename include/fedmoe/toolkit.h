/* toolkit.h - the federated-learning toolkit: options of the round that work with
 * every strategy (where it makes sense), not strategies of their own.
 *
 *   server optimizers  fl.server_opt = avg|avgm|adam|yogi|adagrad on the pseudo-gradient
 *                      aggregate - global of the shared tensors (Reddi et al., ICLR 2021)
 *   FedProx            fl.prox_mu: mu/2 ||w - w_global||^2 on the shared tensors in the
 *                      local steps (Li et al., MLSys 2020)
 *   DP-FedAvg          privacy.*: each client's update of the shared tensors clipped in L2,
 *                      Gaussian noise on the exact sum, a Renyi-DP accountant
 *                      (McMahan et al., ICLR 2018; Mironov et al. 2019)
 *   secure aggregation fl.secure_agg: pairwise masks on the fixed-point contributions,
 *                      cancelling in the sum; dropped clients' masks removed
 *                      (Bonawitz et al., CCS 2017)
 *
 * Everything the server computes happens on rank 0 from the exact fixed-point sum and
 * streams addressed by (seed, round, purpose), so runs stay bit-identical for any rank
 * count; the server optimizer's state is in the checkpoints, so resumes stay exact. */
#ifndef FEDMOE_TOOLKIT_H
#define FEDMOE_TOOLKIT_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/model.h"

#include <stddef.h>
#include <stdint.h>

/* Purposes of the toolkit's random streams (beyond those of rng.h). */
enum { FM_RNG_DP_NOISE = 101, FM_RNG_SECAGG_PAIR, FM_RNG_SECAGG_SELF, FM_RNG_SCAFFOLD, FM_RNG_FINETUNE };

/* Cross-key checks of the toolkit's keys (called by fm_config_validate). */
fm_err fm_toolkit_validate(const fm_config *c);

/* ---- Renyi-DP accountant of the sampled Gaussian mechanism (accountant.c) ---- */
/* RDP at order alpha > 1 of one step of the Gaussian mechanism with noise multiplier
 * sigma on a sum of sensitivity 1, each record included independently with
 * probability q (Poisson; add/remove adjacency): Mironov, Talwar, Zhang 2019, Sec. 3.3,
 * integer alpha by the finite sum, fractional alpha by the two series. */
double fm_rdp_poisson(double q, double sigma, double alpha);
/* RDP at integer order alpha >= 2 of one step with a fixed-size sample of m = q n
 * records without replacement (replace-one adjacency): Wang, Balle, Kasiviswanathan
 * 2019, Theorem 9, on the Gaussian mechanism whose replace-one sensitivity is 2 (one
 * client's clipped update swapped for another's moves the sum by up to 2 clip), i.e.
 * base RDP 2 j / sigma^2 at order j; or that base RDP itself (no amplification) where
 * it is smaller, as it is at large q and orders, where Theorem 9 is loose for the
 * Gaussian (its eps(inf) is infinite). */
double fm_rdp_fixed(double q, double sigma, int alpha);
/* Smallest epsilon at delta over orders [n] with RDP rdp[n] (Balle et al. 2020,
 * Prop. 12: eps = rdp + log1p(-1/a) - log(delta a)/(a - 1)); classic: the original
 * conversion rdp + log(1/delta)/(a - 1) (Mironov 2017, Prop. 3). *order may be NULL. */
double fm_rdp_epsilon(const double *orders, const double *rdp, int n, double delta, int classic, double *order);

typedef struct {
  int n;
  double orders[160];
  double step[160];  /* RDP of one round at each order */
  double delta;
} fm_accountant;
/* The accountant of a run: per-round RDP for sampling probability q (poisson) or a
 * fixed fraction q, noise multiplier sigma (0: no privacy, epsilon infinite). */
void fm_accountant_init(fm_accountant *a, double q, double sigma, int poisson, double delta);
/* Epsilon after `rounds` rounds (infinite without noise). */
double fm_accountant_epsilon(const fm_accountant *a, long rounds);
/* The smallest noise multiplier whose epsilon after `rounds` rounds is at most target
 * (bisection to 1e-4 relative); 0 when even a multiplier of 1e4 does not reach it. */
double fm_accountant_calibrate(double q, int poisson, double delta, long rounds, double target);

/* ---- FedProx (prox.c) ---- */
/* mu/2 sum (w - g)^2 over the unfrozen tensors of the classes in class_mask that have
 * global values (global[cls] != NULL; the shared classes), and its gradient
 * mu (w - g) added to their gradients. Returns the term's value. */
double fm_prox_apply(fm_model *m, float *const *global, unsigned class_mask, double mu);

/* Ditto's proximal step (prox.c), after an AdamW step o on class cls at learning rate
 * lr: each value w of the class's unfrozen tensors to (w + e lambda g) / (1 + e lambda),
 * g its global value and e = lr / (sqrt(vhat) + eps) the step size AdamW gave it - the
 * exact minimiser of lambda/2 (u - g)^2 + (u - w)^2 / (2 e). Its fixed points solve
 * grad F + lambda (w - g) = 0 (AdamW's first moment standing for grad F); it is stable
 * for any lambda, 0 leaves w as it is and lambda -> infinity gives g. */
void fm_prox_step(fm_model *m, int cls, const fm_adamw *o, const float *global, double lambda, double lr,
                  double beta2, double eps);

/* ---- server optimizers (server_opt.c) ---- */
typedef struct {
  int kind;          /* FM_SERVER_* */
  double lr, beta1, beta2, tau;
  size_t n;          /* shared values */
  double *m, *v;     /* [n] first and second moments (m NULL for avg, v for avg and avgm) */
} fm_server_opt;

fm_err fm_server_opt_create(fm_server_opt *o, const fm_config *c, size_t n);
void fm_server_opt_free(fm_server_opt *o);
/* x += step(delta) for n values at offset off: delta is the round's pseudo-gradient
 * (aggregate - global), x the global values. Only the segments the round updated are
 * passed, so a sparse strategy's untouched tensors keep their moments. */
void fm_server_opt_step(fm_server_opt *o, size_t off, size_t n, const double *delta, float *x);

/* ---- compressed updates (compress.c) ---- */
/* Top-k: keep the k = ceil(ratio candidates) entries of u[n] largest in magnitude
 * (ties to the lower index; candidates: the entries that may be nonzero), zero the
 * others; returns k (n when k >= n). scratch has room for n floats. */
size_t fm_compress_topk(float *u, size_t n, size_t candidates, double ratio, float *scratch);
/* 8-bit: u[n] to q s with q = round(u / s) in [-127, 127], s = max|u| / 127 (all 0
 * when u is); returns s, which travels with the n bytes of q. */
float fm_compress_int8(float *u, size_t n);

/* ---- secure aggregation (secagg.c) ---- */
/* Add to a client's fixed-point contribution q[n] its masks: for each other member j
 * of the round's mask set (members[k], ascending: the clients that started the round),
 * +PRG(seed, round, pair) if client < j, -PRG if client > j, and its self mask
 * PRG(seed, round, client); wrap-around 64-bit arithmetic. */
void fm_secagg_mask(uint64_t seed, int round, int client, const int *members, int k, uint64_t *q, size_t n);
/* On the server, after the sum of the survivors' masked contributions: remove the
 * survivors' self masks and the pairwise masks between a survivor and a member that
 * dropped out (whose seeds the survivors reveal in Bonawitz et al.'s unmasking round). */
void fm_secagg_unmask(uint64_t seed, int round, const int *members, int k, const uint8_t *survived, uint64_t *q,
                      size_t n);
/* Bytes of the protocol's key agreement and secret sharing per client of a round of k
 * members (beyond the masked vector): up and down. */
void fm_secagg_overhead(int k, double *up, double *down);

#endif
