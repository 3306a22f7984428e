/* fl.h - the federated runtime: roles, rounds, client state, strategies, aggregation.
 *
 * Rank 0 is the server; ranks 1..P-1 host clients, run one after another inside a
 * round. A client with private state (a strategy with a class not shared) lives on
 * rank 1 + c mod (P-1), where its state is kept; otherwise a client is nothing but
 * its data and its random streams, which every rank has, so each round deals its
 * sampled clients to the hosts by predicted work (fm_deal_clients). Every decision
 * that must agree across ranks (the clients sampled in a round, their aggregation
 * weights, where they run) is computed on every rank from the seed, so nothing
 * depends on P but where the work runs.
 *
 * A strategy (src/strategies) says which tensor belongs to which sharing class,
 * which classes are shared (aggregated by the server) or private (kept by each
 * client between rounds), how a client trains locally, how much each client
 * contributes to each shared tensor, and what the server does after aggregating.
 * It never calls MPI: this module performs every collective. */
#ifndef FEDMOE_FL_H
#define FEDMOE_FL_H

#include "fedmoe/config.h"
#include "fedmoe/data.h"
#include "fedmoe/model.h"
#include "fedmoe/rng.h"

#include <mpi.h>
#include <stdint.h>

struct fm_runfile; /* io.h */

#define FM_MAX_CLASSES 8
enum { FM_BUDGET_NONE, FM_BUDGET_EXPERTS, FM_BUDGET_SPECIALISTS };

/* ---- what one client's local work reports ---- */
typedef struct {
  double train_loss;  /* mean training CE of the round's steps */
  double val_loss, test_loss; /* after aggregation, on the client's own model */
  uint64_t tokens;    /* training tokens processed */
  double flops;       /* model FLOPs of the local work: per token of a step, 4 N_active + 2 N_trained +
                       * 12 L D T (fm_model_step_flops_per_token: only what the step trains gets
                       * the weight gradient's share) */
  uint64_t bytes_up, bytes_down;
} fm_client_result;

/* ---- a client as a strategy sees it during its local work ---- */
typedef struct fm_client_ctx {
  const fm_config *cfg;
  const fm_dataset *data;
  fm_model *model;       /* the host's model, holding this client's state */
  int client, round;     /* round is 1-based */
  int budget;            /* hfedmoe: experts it may train per layer; comigs: its specialists */
  fm_rng batch_rng;      /* (seed, client, round, FM_RNG_BATCH) */
  fm_adamw *opt;         /* [nclass] this client's optimizer states */
  long step;             /* local steps taken by this client so far (LR schedule) */
  long total_steps;      /* steps this client would take over the run (LR schedule) */
  int32_t *tokens, *targets; /* [B*T] batch buffers */
  /* routing statistics accumulated over the round's training batches */
  uint64_t *route_counts; /* [layers][E] top-k picks */
  double *gate_mass;      /* [layers][E] summed router probability */
  fm_client_result *res;
  /* [layers][E] or NULL: experts with 0 get no gradient and no optimizer step */
  const uint8_t *expert_trainable;
  /* [nstats][layers][E]: this round's per-expert figures the strategy reports
   * (fm_strategy.stat_names), written to the run file as /fl/<name> */
  double *stats;
  /* [nclass] the global values of the shared classes (NULL for private ones), what
   * FedProx pulls the local model towards */
  float *const *global;
  /* optional: called after every backward of a training step, before clipping, to
   * add to the gradients of the classes in class_mask (SCAFFOLD's correction) */
  void (*grad_hook)(void *arg, fm_model *m, unsigned class_mask);
  void *grad_hook_arg;
} fm_client_ctx;

/* ---- strategies ---- */
typedef struct fm_strategy {
  const char *name;
  int nclass;
  int shared[FM_MAX_CLASSES]; /* 1: aggregated by the server; 0: private to the client */
  /* class of a tensor (see fm_classify_fn); ctx is the fm_config */
  fm_classify_fn classify;
  /* optional: set up routing masks etc. after the client's state is loaded */
  fm_err (*client_begin)(fm_client_ctx *cx);
  /* the client's local update (K steps or what the strategy does) */
  fm_err (*local_update)(fm_client_ctx *cx);
  /* optional: weight of this client's contribution to tensor t (default: its train
   * tokens share). 0 means the client does not contribute to t (sparse). */
  double (*contribution)(const fm_client_ctx *cx, const fm_tensor *t, double token_weight);
  /* optional: the clients' model differs from the configured one (fedbiot's emulator) */
  fm_err (*client_shape)(const fm_config *cfg, fm_model_shape *s);
  /* optional server-side work, on rank 0 only, with the server's copy of the model
   * (its shared classes hold the global values before and are read back after):
   * init before round 1 (may set the initial global values), a step after every
   * aggregation, an evaluation over the given clients' test splits (reported as
   * /metrics/rounds test_loss_full), and freeing the state. */
  fm_err (*server_init)(void **state, fm_model *model, const fm_config *cfg, const fm_dataset *data);
  fm_err (*server_step)(void *state, fm_model *model, const fm_config *cfg, int round);
  fm_err (*server_eval)(void *state, fm_model *model, const fm_config *cfg, const fm_dataset *data,
                        const int *clients, int n, double *loss);
  void (*server_free)(void *state);
  /* optional: a model the server keeps beside the clients' (fedbiot's full model),
   * with the global values of model's shared classes in place; saved in every
   * checkpoint as /server/{tensor} and what `fedmoe eval` scores for this strategy */
  fm_err (*server_model)(void *state, fm_model *model, fm_model **full);
  /* optional, with server_init: the rest of the server's state that lives across
   * rounds (fedbiot: its emulator's AdamW moments), into the checkpoint being written
   * and back from the one being resumed (after the shared classes), through
   * fm_runfile_write_state / fm_runfile_read_state. Collective: every rank calls it,
   * state NULL except on rank 0. A strategy with server_init and no server_restore
   * cannot be resumed. */
  fm_err (*server_checkpoint)(void *state, fm_model *model, struct fm_runfile *rf);
  fm_err (*server_restore)(void *state, fm_model *model, struct fm_runfile *rf);
  /* optional: bytes server_checkpoint writes (the free-space check before a round) */
  double (*server_ckpt_bytes)(const fm_model *model);
  /* per-expert figures reported per round and client (see fm_client_ctx.stats) */
  int nstats;
  const char *stat_names[4];
  /* a per-client budget the runtime sets from the resource class (and memory, with
   * system.auto_budget): FM_BUDGET_EXPERTS (hfedmoe.budgets) or FM_BUDGET_SPECIALISTS
   * (comigs.specialists); recorded as /fl/budget [client] */
  int budget_kind;
  /* optional: local steps of a round (for the simulated clock; default fl.local_steps) */
  double (*steps_per_round)(const fm_config *cfg);
} fm_strategy;

const fm_strategy *fm_strategy_get(int id); /* FM_STRAT_* */

/* model.train (train_scope.c): the strategy's classifier narrowed to what is
 * trained at all - with lora, every tensor but the LoRA pairs and routers is frozen.
 * Create models with fm_scope_classify and a fm_scope as its context. */
typedef struct { const fm_strategy *st; const fm_config *cfg; } fm_scope;
int fm_scope_classify(const fm_tensor *t, void *scope);
/* model.train = lora with this strategy and shape: an error naming the key when the
 * strategy trains full tensors or the shape has no LoRA pair. */
fm_err fm_scope_check(const fm_config *c, const fm_strategy *st, const fm_model_shape *s);
extern const fm_strategy fm_strategy_local, fm_strategy_fedavg, fm_strategy_comigs, fm_strategy_hfedmoe,
    fm_strategy_fedbiot;

/* Local training helpers for strategies. */
/* One optimizer step on a batch of split s: forward, backward, clip, AdamW on the
 * classes in class_mask (bit c), learning rate scaled by lr_scale. Adds the CE to *loss. */
fm_err fm_client_train_step(fm_client_ctx *cx, int split, unsigned class_mask, float lr, double *loss);
/* The last forward's routing of ntok tokens (the slot set, after a forward of client
 * slots) added to the client's round totals (route_counts, gate_mass). */
void fm_client_add_routing(fm_client_ctx *cx, int ntok);
/* fl.local_steps steps on the training split for the classes in class_mask (at the
 * schedule's rate); their mean loss goes to cx->res->train_loss. The local update
 * of local, fedavg and fedbiot. */
fm_err fm_client_train_round(fm_client_ctx *cx, unsigned class_mask);
/* Learning rate of local step k (0-based) of this round: the train.* schedule over
 * the run's rounds x local_steps, peak base_lr. */
float fm_client_lr(const fm_client_ctx *cx, int k, double base_lr);
/* Mean CE over train.eval_batches batches of split s, the same windows every round. */
fm_err fm_client_eval(fm_client_ctx *cx, int split, double *loss);

/* run.client_batch (client_batch.c): an error naming the key when this run cannot
 * train several clients at once (model.train, strategy, a toolkit option
 * that works on each client's gradients). */
fm_err fm_client_batch_check(const fm_config *c);
/* The local update of fedavg and local (fl.local_steps steps of the classes in
 * class_mask) for n clients at once, client g in slot g of their host's model of
 * client slots; tokens, targets: room for every slot's batch. Each client samples
 * its own batches and gets its own loss, clipping and AdamW step (cx[g]->opt). */
fm_err fm_client_train_group(fm_client_ctx *const *cx, int n, unsigned class_mask, int32_t *tokens,
                             int32_t *targets);
/* fm_client_eval of split s for n clients at once (client g in slot g): loss[g]. */
fm_err fm_client_eval_group(fm_client_ctx *const *cx, int n, int split, int32_t *tokens, int32_t *targets,
                            double *loss);

/* ---- aggregation engine ---- */
/* Sums weight x tensor over clients, per segment (a tensor), and the weights, in one
 * buffer, reduced in one collective. Fixed point (int64, 2^-40) makes the sum exact
 * and so bit-identical for any number of ranks and any order; float mode sums doubles. */
#define FM_AGG_SCALE 1099511627776.0 /* 2^40: one unit of the fixed-point sums */
typedef struct {
  size_t n;         /* values */
  int nseg;         /* segments (tensors) */
  int fixed;        /* 1: int64 fixed point */
  int64_t *q;       /* [n + nseg] fixed-point sums: values, then segment weights */
  double *d;        /* [n + nseg] float sums */
  size_t *seg_off;  /* [nseg + 1] value offset of each segment */
  uint64_t bytes_reduced; /* counters: bytes this rank sent into reductions */
} fm_agg;

fm_err fm_agg_create(fm_agg *a, const size_t *seg_len, int nseg, int fixed);
void fm_agg_free(fm_agg *a);
void fm_agg_zero(fm_agg *a);
/* Add w x values[seg] (values of one segment) and w to the segment's weight. */
fm_err fm_agg_add(fm_agg *a, int seg, const float *values, double w);
/* Sum over comm onto root (in place on root). */
fm_err fm_agg_reduce(fm_agg *a, int root, MPI_Comm comm);
/* Sum over comm onto every rank (in place): data-parallel gradients (pretraining). */
fm_err fm_agg_allreduce(fm_agg *a, MPI_Comm comm);
/* out[seg] = sum(w x) / sum(w) where sum(w) > 0, into the segment's own array
 * seg_out[seg]; segments nobody contributed to keep their values. Returns how many
 * segments were updated. */
int fm_agg_result(const fm_agg *a, float *const *seg_out);

/* ---- the run ---- */
typedef struct {
  const char *resume;  /* run file to resume from, or NULL */
  const char *netcdf;  /* NetCDF metrics file, or NULL */
  const char *config_text; /* the resolved configuration, stored in the run file */
  int quiet;
  int overwrite;       /* --overwrite: an existing run.output (a run file) or NetCDF file may be replaced */
} fm_run_opts;

/* Summary returned to the caller (same on every rank after the run). */
typedef struct {
  int rounds_done;
  double final_train, final_val, final_test; /* means over clients, nats */
  double final_test_full; /* fedbiot: the full model's test loss (the clients' is the emulator's); NaN otherwise */
  uint64_t bytes_up, bytes_down;  /* totals over the run */
  double seconds;
} fm_run_summary;

fm_err fm_run(const fm_config *cfg, const fm_run_opts *opts, MPI_Comm comm, fm_run_summary *sum);

/* Where client c lives among P ranks (P >= 2): its home, which keeps its private state. */
static inline int fm_client_host(int c, int P) { return 1 + c % (P - 1); }
/* Deal m items of work[j] >= 0 to `hosts` bins, largest first, each to the least
 * loaded bin (ties: the earlier item, the lower bin): host[j] in 0..hosts-1. The same
 * on every rank; the largest load is at most the mean plus the largest item. */
fm_err fm_deal_clients(const double *work, int m, int hosts, int *host);
/* The clients sampled in round r (1-based), sorted; returns how many (fl.over_select
 * more than the fraction or count asks, up to all; with fl.sampling = poisson each
 * client on its own with probability fl.sample_fraction, so any count, 0 included).
 * out has room for cfg->fl.clients entries. Deterministic from the seed and r only. */
int fm_sample_clients(const fm_config *cfg, int round, int *out);

#endif
