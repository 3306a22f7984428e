/* toolkit_run.h - the federated-learning toolkit inside the round loop (toolkit.c):
 * what run.c calls, at a handful of places, to apply the round options of
 * include/fedmoe/toolkit.h whatever the strategy. */
#ifndef FEDMOE_FL_TOOLKIT_RUN_H
#define FEDMOE_FL_TOOLKIT_RUN_H

#include "client_state.h"
#include "fedmoe/fl.h"
#include "fedmoe/io.h"
#include "fedmoe/toolkit.h"

typedef struct {
  const fm_config *cfg;
  int nseg;
  fm_tensor *const *seg_tensor;
  const size_t *seg_off; /* [nseg + 1] the aggregation's value offsets */
  int rank, P;
  MPI_Comm comm;
  int dp, secagg;        /* DP-FedAvg on; secure aggregation on */
  int scaffold;          /* SCAFFOLD on: clients keep control variates, so they train at home */
  fm_agg cagg;           /* SCAFFOLD: sums of the clients' control-variate changes */
  double *c;             /* SCAFFOLD: [n] the server's control variate, on every rank */
  float **ci;            /* SCAFFOLD: [N] each client's (at home here), NULL until it first counts */
  float *corr;           /* SCAFFOLD: [n] c - c_i of the client training now */
  float *next;           /* SCAFFOLD: [n] its c_i+, the gradient at the global model */
  int compress;          /* FM_COMPRESS_* */
  float **ef;            /* compression: [N] each client's error feedback (at home here) */
  float *cu, *cw;        /* compression: [n] the update, its compressed form */
  int ditto;             /* Ditto: each client trains a personal model too (ditto.c) */
  int ditto_steps;       /* Ditto: its steps a round */
  float **pv;            /* Ditto: [N] each client's personal values of the shared tensors (at home here),
                          * NULL until it first trains */
  uint64_t *ditto_counts; /* Ditto: scratch routing figures of the personal steps */
  double *ditto_mass;
  int client_state;      /* SCAFFOLD, compression or Ditto: clients keep state, so they train at home */
  int server;            /* the server does more than average (an optimizer or DP noise) */
  fm_server_opt opt;     /* rank 0 */
  fm_accountant acc;
  double sigma;          /* noise multiplier in use (given, or calibrated to target_epsilon) */
  double q;              /* sampling probability (poisson) or fraction (fixed) of a round */
  double denom;          /* DP: the fixed denominator of the mean update (expected clients) */
  float *scratch;        /* [largest segment] a clipped update */
  double *delta;         /* [largest segment] rank 0: the pseudo-gradient */
  /* this round, the same on every rank */
  int round, k;          /* the mask set: the k sampled clients that started the round */
  int *members;          /* [N] */
  uint8_t *survived;     /* [N] by member: kept in the aggregate */
  int nsurvived;
} fm_toolkit;

/* Set up after the aggregation segments exist; every rank (errors are everyone's). */
fm_err fm_toolkit_create(fm_toolkit *tk, const fm_config *c, fm_tensor *const *seg_tensor, int nseg,
                         const fm_agg *agg, MPI_Comm comm);
void fm_toolkit_free(fm_toolkit *tk);
/* The round's members and survivors, from the plan (status by sample index). */
void fm_toolkit_round(fm_toolkit *tk, int round, const int *sampled, const int *status, int m);
/* Bytes and extra round trips of a client's round for the simulated clock. */
void fm_toolkit_plan(const fm_toolkit *tk, const fm_agg *agg, double shared_bytes, int m, double *down, double *up,
                     double *extra_trips);
/* Before a client's local update, its model holding the global values: SCAFFOLD's
 * gradient at them and the correction of its steps. */
fm_err fm_toolkit_client_begin(fm_toolkit *tk, fm_client_ctx *cx);
/* Training steps of a round beyond the strategy's (SCAFFOLD's gradient), for the clock. */
double fm_toolkit_extra_steps(const fm_toolkit *tk);
/* Ditto, after a client's global update and contribution: its personal steps from
 * its personal model (the model's shared tensors end up holding it); nothing without
 * fl.ditto. shared_mask: the strategy's shared classes. */
fm_err fm_ditto_update(fm_toolkit *tk, const fm_client_ctx *cx, unsigned shared_mask);
/* Ditto, for evaluation: the client's personal model into the model's shared tensors;
 * 0 (nothing done) without Ditto or before the client first trained. */
int fm_ditto_load(const fm_toolkit *tk, int client);
/* Bytes of toolkit state a client that has trained holds (SCAFFOLD's c_i, error
 * feedback, Ditto's personal model). */
double fm_toolkit_client_bytes(const fm_toolkit *tk);
/* Collective, after the aggregate's reduction: the toolkit's own sums (SCAFFOLD's). */
fm_err fm_toolkit_reduce(fm_toolkit *tk);
/* Collective, after the global values' broadcast: the toolkit's global state. */
fm_err fm_toolkit_bcast(fm_toolkit *tk);
/* A kept client's contribution to the aggregate (tw: its token weight): the
 * strategy's weights, clipping under DP, masks under secure aggregation; bytes it
 * uploads go to *bytes_up, extra bytes it downloads to *bytes_down. */
fm_err fm_toolkit_contribute(fm_toolkit *tk, fm_agg *agg, const fm_strategy *st, const fm_client_ctx *cx,
                             float *const *seg_global, double tw, uint64_t *bytes_up, uint64_t *bytes_down);
/* Rank 0 after the reduction: unmask, then the new global values (plain average, or
 * noise and the server optimizer). */
fm_err fm_toolkit_server(fm_toolkit *tk, fm_agg *agg, float *const *seg_global);
/* Epsilon after `round` rounds (NaN without DP). */
double fm_toolkit_epsilon(const fm_toolkit *tk, int round);
/* The server's state (rank 0 holds it) and the clients' (each host its own) in the
 * checkpoint being written / read (collective). */
fm_err fm_toolkit_checkpoint(fm_toolkit *tk, fm_runfile *rf);
/* Bytes those add to a checkpoint, at most, with `clients` clients holding state. */
double fm_toolkit_ckpt_bytes(const fm_toolkit *tk, double clients);
fm_err fm_toolkit_restore(fm_toolkit *tk, fm_runfile *rf);

/* After the last round, every rank (collective): fl.finetune_steps local steps per
 * client from the final model and its test loss, in the run file's attributes. */
fm_err fm_toolkit_finetune(const fm_config *c, const fm_strategy *st, const fm_dataset *data, fm_host *host,
                           fm_client_state *clients, const int *budget, int32_t *tokens, int32_t *targets,
                           fm_runfile *rf, MPI_Comm comm, int quiet);

#endif
