/* run.c - the round loop: sample, broadcast, local work, reduce, server step,
 * evaluate, report. Every rank runs this; rank 0 is the server. */
#include "client_state.h"
#include "report.h"
#include "toolkit_run.h"

#include "fedmoe/fault.h"
#include "fedmoe/hf.h"
#include "fedmoe/io.h"
#include "fedmoe/log.h"
#include "fedmoe/nn_threads.h"
#include "fedmoe/system.h"
#include "fedmoe/timer.h"
#include "fedmoe/watchdog.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <sys/stat.h>

/* One row per client and round, gathered on the server. */
enum { ROW_CLIENT, ROW_TRAIN, ROW_VAL, ROW_TEST, ROW_TOKENS, ROW_FLOPS, ROW_UP, ROW_DOWN, ROW_SIM, ROW_STATUS,
       ROW_TEST_GLOBAL, ROW_LEN };

typedef struct {
  const fm_config *cfg;
  const fm_strategy *st;
  MPI_Comm comm;
  int rank, P;
  fm_dataset data;
  fm_model *model;
  fm_host host;
  fm_agg agg;
  fm_toolkit tk;            /* the round options of the toolkit (server optimizer, DP, secure aggregation) */
  int nseg;
  float **seg_global;      /* per segment: its values in host.global */
  fm_tensor **seg_tensor;  /* per segment: the model tensor */
  fm_client_state *clients;/* [N]: private state of the clients at home here */
  int nhome;                /* clients at home here: rank-1, rank-1+(P-1), ... */
  int deal;                 /* 1: no private state, so the hosts share each round's clients by work */
  int *sampled;
  int *host_of;             /* [N] by sample index: the rank that runs the client this round */
  int *mine;                /* [N] sample indices run here this round, ascending */
  int nmine, most;          /* ... how many; the most on one host */
  fm_round_rows trained;    /* the round's per-client statistics rows: its clients that train */
  int32_t *trained_row, *trained_client; /* [N] those of them that train here */
  fm_adamw opts[FM_MAX_CLASSES];
  int32_t *tokens, *targets; /* [client_batch][B*T] */
  int cb;                   /* run.client_batch here: clients trained at once (rank 0: 1) */
  fm_adamw (*slot_opts)[FM_MAX_CLASSES];   /* [cb] each slot's optimizer states ... */
  fm_adamw (*slot_shared)[FM_MAX_CLASSES]; /* [cb] ... for a shared class: its own, reset per client */
  int cap, LE;              /* clients the statistics below have room for; layers x experts */
  uint64_t *route_counts;   /* [cap][L][E] of the clients that train here, this round */
  double *gate_mass;        /* [cap][L][E] */
  double *stats;            /* [cap][nstats][L][E] the strategy's figures, this round */
  fm_runfile *rf;
  const char *run_path;     /* the run file (run.output, or the --resume file) */
  void *server_state;       /* rank 0: the strategy's server-side state */
  fm_system sys;            /* the simulated devices */
  int *budget;              /* [N] per-client budget (hfedmoe experts, comigs specialists) */
  int *status;              /* [N] this round's fate of each sampled client, by sample index */
  double *simtime, *pflops; /* [N] simulated time, predicted work, by sample index */
  double step_fpt;          /* FLOPs per token of a training step of every tensor the run trains
                             * (fm_model_step_flops_per_token): the predicted work's rate */
  double baseline_full;     /* rank 0: server_eval before round 1 */
  size_t shared_bytes;
  int ph_local, ph_reduce, ph_server, ph_bcast, ph_eval, ph_gather, ph_io;
} run_t;

/* A step that waits for the other ranks (collective MPI or HDF5 calls), watched by
 * the collective watchdog under its name. */
#define WATCHED(what, stmt)   \
  do {                        \
    fm_watch_enter(what);     \
    stmt;                     \
    fm_watch_leave();         \
  } while (0)

/* Every client id, 0..n-1 (the server's evaluation of every client). */
static fm_err all_clients(int n, int **out) {
  FM_CALLOC(*out, (size_t)n, "client list");
  for (int i = 0; i < n; i++) (*out)[i] = i;
  return FM_OK;
}

/* Bytes a client needs for a training step: every parameter (4 B); gradient and
 * Adam's m and v (12 B) for each parameter it trains - with a budget, only that many
 * experts (hfedmoe) or generalists plus that many specialists (comigs); and the
 * activations of a step, per token and block about 8D + H T + the FFN's (8D, or
 * 8D k + 2E for MoE), plus the head's 2V. An estimate: it decides budgets. */
static double step_activation_bytes(const fm_config *c, const fm_model_shape *s) {
  double D = s->d, per_token = 2.0 * s->vocab + 10 * D;
  for (int l = 0; l < s->layers; l++)
    per_token += 8 * D + (double)s->heads * c->train.seq_len +
                 ((s->moe_mask >> l & 1) ? 8 * D * s->top_k + 2.0 * s->experts : 8 * D);
  return 4 * per_token * c->train.batch * c->train.seq_len;
}

static double client_memory(const run_t *r, int budget) {
  const fm_config *c = r->cfg;
  const fm_model_shape *s = fm_model_get_shape(r->model);
  double params = 0, trained = 0;
  for (int i = 0; i < fm_model_ntensors(r->model); i++) {
    const fm_tensor *t = fm_model_tensor(r->model, i);
    params += (double)t->numel;
    if (t->cls == FM_CLASS_FROZEN) continue;
    if (t->group == FM_GROUP_EXPERT && r->st->budget_kind == FM_BUDGET_EXPERTS && t->expert >= budget) continue;
    if (t->group == FM_GROUP_EXPERT && r->st->budget_kind == FM_BUDGET_SPECIALISTS &&
        t->expert >= c->comigs.generalists + budget)
      continue;
    trained += (double)t->numel;
  }
  double personal = c->fltk.ditto ? 4 * trained : 0; /* Ditto: the personal model beside the global one */
  return 4 * params + 12 * trained + personal + step_activation_bytes(c, s);
}

/* Every client's budget from its resource class's list entry; with
 * system.auto_budget, the largest that fits the class's memory. A client whose
 * memory cannot hold its model is an error naming the class. */
static fm_err client_budgets(run_t *r) {
  const fm_config *c = r->cfg;
  int kind = r->st->budget_kind;
  const fm_intlist *list = kind == FM_BUDGET_EXPERTS ? &c->hfedmoe.budgets : &c->comigs.specialists;
  int lowest = kind == FM_BUDGET_EXPERTS ? 1 : 0;
  FM_CALLOC(r->budget, (size_t)c->fl.clients, "client budgets");
  for (int i = 0; i < c->fl.clients; i++) {
    const fm_device *d = &r->sys.dev[i];
    int b = kind == FM_BUDGET_NONE ? 0 : list->v[fm_resource_class(&r->sys, i, list->n)];
    if (kind != FM_BUDGET_NONE && c->system.auto_budget)
      while (b > lowest && client_memory(r, b) > d->memory_bytes) b--;
    double need = client_memory(r, b);
    if (need > d->memory_bytes)
      FM_CONFIG_ERROR(c, "system.memory_mb", "client %d (resource class %d) has %.3f MiB, its model, optimizer "
                      "state and activations need %.3f MiB%s", i, d->cls, d->memory_bytes / 1048576.0,
                      need / 1048576.0, kind != FM_BUDGET_NONE && !c->system.auto_budget
                                            ? " (system.auto_budget = true fits budgets to memory)" : "");
    r->budget[i] = b;
  }
  return FM_OK;
}

/* Room for the statistics of k clients this round, zeroed. */
static fm_err reserve_stats(run_t *r, int k) {
  size_t LE = (size_t)r->LE, ns = (size_t)r->st->nstats;
  if (k > r->cap) {
    free(r->route_counts);
    free(r->gate_mass);
    free(r->stats);
    r->route_counts = NULL, r->gate_mass = NULL, r->stats = NULL, r->cap = 0;
    FM_CALLOC(r->route_counts, (size_t)k * LE, "routing counts");
    FM_CALLOC(r->gate_mass, (size_t)k * LE, "gate mass");
    FM_CALLOC(r->stats, (size_t)k * ns * LE, "strategy statistics");
    r->cap = k;
  }
  memset(r->route_counts, 0, (size_t)k * LE * sizeof *r->route_counts);
  memset(r->gate_mass, 0, (size_t)k * LE * sizeof *r->gate_mass);
  memset(r->stats, 0, (size_t)k * ns * LE * sizeof *r->stats);
  return FM_OK;
}

/* model.init: refuse, before allocating, a model too large for the clients'
 * memory or this machine - 4 bytes per parameter, 16 for those it trains (gradient,
 * AdamW m and v). client_budgets checks the whole need (activations too) later. */
static fm_err check_init_memory(const run_t *r, const fm_model_shape *s) {
  const fm_config *c = r->cfg;
  int n = fm_shape_tensors(s, NULL);
  fm_tensor *t;
  FM_CALLOC(t, (size_t)n, "tensor list");
  fm_shape_tensors(s, t);
  double need = 0, mem = INFINITY;
  fm_scope sc = {r->st, c};
  for (int i = 0; i < n; i++) need += (fm_scope_classify(&t[i], &sc) == FM_CLASS_FROZEN ? 4.0 : 16.0) * t[i].numel;
  free(t);
  for (int i = 0; i < c->system.memory_mb.n; i++) mem = fmin(mem, c->system.memory_mb.v[i]);
  FM_CHECK(fm_hf_check_memory(need, mem, c->model.init, "its weights, and the gradients and AdamW m and v of what is trained"));
  return FM_OK;
}

/* run.client_batch = n on the CPU: refuse, before allocating, a host model of n client
 * slots larger than this machine - the frozen base once, the trained tensors (with
 * gradients and AdamW m and v) and a step's activations n times. Every rank checks
 * (the server too, for its hosts), so all refuse before any allocates. (On a GPU
 * the model's own check counts the same against the GPU's memory.) */
static fm_err check_slot_memory(const run_t *r, const fm_model_shape *s) {
  const fm_config *c = r->cfg;
  const int cb = c->run.client_batch;
  if (cb <= 1 || c->run.device != FM_DEVICE_CPU) return FM_OK;
  int n = fm_shape_tensors(s, NULL);
  fm_tensor *t;
  FM_CALLOC(t, (size_t)n, "tensor list");
  fm_shape_tensors(s, t);
  double frozen = 0, trained = 0;
  fm_scope sc = {r->st, c};
  for (int i = 0; i < n; i++) *(fm_scope_classify(&t[i], &sc) == FM_CLASS_FROZEN ? &frozen : &trained) += t[i].numel;
  free(t);
  const double need = 4 * frozen + cb * (16 * trained + step_activation_bytes(c, s));
  const double machine = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  if (machine > 0 && need > machine)
    FM_CONFIG_ERROR(c, "run.client_batch", "%d client slots need about %.1f MiB on each host (the frozen base once; "
                    "the trained tensors with gradients and AdamW state, and a step's activations, %d times), more "
                    "than this machine's %.1f MiB: lower run.client_batch", cb, need / 1048576.0, cb,
                    machine / 1048576.0);
  return FM_OK;
}

/* The model, at its initial values: every tensor from (seed, name). */
static fm_err setup_model(run_t *r) {
  const fm_config *c = r->cfg;
  fm_model_shape shape;
  FM_CHECK(fm_model_shape_from_config(c, &shape));
  if (r->st->client_shape) FM_CHECK(r->st->client_shape(c, &shape));
  FM_CHECK(fm_scope_check(c, r->st, &shape));
  FM_CHECK(fm_client_batch_check(c));
  if (c->model.init[0]) FM_CHECK(check_init_memory(r, &shape));
  fm_scope sc = {r->st, c};
  /* the hosts train client_batch clients at once in slots of one model; the server trains none */
  r->cb = r->rank > 0 ? c->run.client_batch : 1;
  FM_CHECK(check_slot_memory(r, &shape));
  FM_CHECK(fm_model_create_slots(&r->model, &shape, c->train.batch, c->train.seq_len, r->cb, r->st->nclass,
                                 fm_scope_classify, &sc));
  FM_CHECK(fm_model_init(r->model, (uint64_t)c->run.seed));
  /* every class trainable: the tensors a local step may train, alike on every rank */
  for (int k = 0; k < fm_model_nclass(r->model); k++) fm_model_freeze_class(r->model, k, 0);
  r->step_fpt = fm_model_step_flops_per_token(r->model, c->train.seq_len);
  return FM_OK;
}

/* model.init: rank 0 reads the folder into the model, then every class buffer (the
 * frozen one too: frozen tensors never travel otherwise) goes to every rank; what the
 * folder does not hold (routers and experts of upcycling, LoRA pairs) keeps its
 * initial value, the same on every rank. Collective; errors agreed. Strategies
 * whose clients run another shape (fedbiot's emulator) load the server's full
 * model in server_init instead. */
static fm_err load_init(run_t *r) {
  const fm_config *c = r->cfg;
  if (!c->model.init[0] || r->st->client_shape) return FM_OK;
  fm_err err = r->rank == 0 ? fm_hf_load(r->model, c->model.init, c->model.upcycle) : FM_OK;
  FM_CHECK(fm_error_agree(err, &r->comm));
  for (int k = -1; k < fm_model_nclass(r->model); k++) {
    float *p = fm_model_class_params(r->model, k);
    size_t n = fm_model_class_numel(r->model, k);
    for (size_t o = 0; o < n; o += (size_t)1 << 30) {
      size_t len = n - o < ((size_t)1 << 30) ? n - o : ((size_t)1 << 30);
      FM_MPI(MPI_Bcast(p + o, (int)len, MPI_FLOAT, 0, r->comm));
    }
  }
  return FM_OK;
}

static fm_err setup(run_t *r) {
  const fm_config *c = r->cfg;
  FM_CHECK(fm_dataset_load(&r->data, c));
  r->baseline_full = NAN;
  if (r->rank == 0 && r->st->server_init) { /* the server prepares the initial global model */
    FM_CHECK(r->st->server_init(&r->server_state, r->model, c, &r->data));
    if (r->st->server_eval) {
      int *all;
      FM_CHECK(all_clients(c->fl.clients, &all));
      fm_err err = r->st->server_eval(r->server_state, r->model, c, &r->data, all, c->fl.clients, &r->baseline_full);
      free(all);
      FM_CHECK(err);
    }
  }
  FM_CHECK(fm_host_create(&r->host, r->st, r->model, c->run.device_state_mb));
  FM_CHECK(fm_system_create(&r->sys, c));
  FM_CALLOC(r->status, (size_t)c->fl.clients, "client status");
  FM_CALLOC(r->simtime, (size_t)c->fl.clients, "simulated times");
  FM_CALLOC(r->pflops, (size_t)c->fl.clients, "predicted work");
  FM_CHECK(client_budgets(r));
  /* aggregation segments: the tensors of the shared classes, in model order */
  int nt = fm_model_ntensors(r->model);
  size_t *len;
  FM_CALLOC(len, (size_t)nt, "segment lengths");
  FM_CALLOC(r->seg_global, (size_t)nt, "segments");
  FM_CALLOC(r->seg_tensor, (size_t)nt, "segments");
  for (int i = 0; i < nt; i++) {
    fm_tensor *t = fm_model_tensor(r->model, i);
    if (t->cls < 0 || !r->st->shared[t->cls]) continue;
    r->seg_tensor[r->nseg] = t;
    r->seg_global[r->nseg] = r->host.global[t->cls] + t->offset;
    len[r->nseg++] = t->numel;
    r->shared_bytes += t->numel * sizeof(float);
  }
  fm_err err = fm_agg_create(&r->agg, len, r->nseg, c->fl.aggregation == FM_AGG_FIXED);
  free(len);
  FM_CHECK(err);
  FM_CHECK(fm_toolkit_create(&r->tk, c, r->seg_tensor, r->nseg, &r->agg, r->comm));
  FM_CALLOC(r->clients, (size_t)c->fl.clients, "client states");
  FM_CALLOC(r->sampled, (size_t)c->fl.clients, "sampled clients");
  FM_CALLOC(r->host_of, (size_t)c->fl.clients, "client placement");
  FM_CALLOC(r->mine, (size_t)c->fl.clients, "client placement");
  FM_CALLOC(r->trained_row, (size_t)c->fl.clients, "statistics rows");
  FM_CALLOC(r->trained_client, (size_t)c->fl.clients, "statistics rows");
  size_t bt = (size_t)c->train.batch * (size_t)c->train.seq_len;
  FM_CALLOC(r->tokens, bt * (size_t)r->cb, "batch tokens");
  FM_CALLOC(r->targets, bt * (size_t)r->cb, "batch targets");
  if (r->cb > 1) {
    FM_CALLOC(r->slot_opts, (size_t)r->cb, "client slot optimizers");
    FM_CALLOC(r->slot_shared, (size_t)r->cb, "client slot optimizers");
    for (int g = 0; g < r->cb; g++)
      for (int k = 0; k < r->st->nclass; k++)
        if (r->st->shared[k]) FM_CHECK(fm_adamw_create(&r->slot_shared[g][k], fm_model_class_numel(r->model, k)));
  }
  /* clients at home here: rank p holds p-1, p-1+(P-1), ... */
  r->nhome = r->rank == 0 ? 0 : (c->fl.clients - r->rank + 1 + r->P - 2) / (r->P - 1);
  if (r->nhome < 0) r->nhome = 0;
  r->deal = 1;
  for (int k = 0; k < r->st->nclass; k++)
    if (!r->st->shared[k]) r->deal = 0;
  if (r->tk.client_state) r->deal = 0; /* the clients keep the toolkit's state at home */
  r->LE = fm_model_get_shape(r->model)->layers * fm_model_get_shape(r->model)->experts;
  return reserve_stats(r, 1);
}

static void teardown(run_t *r) {
  if (r->clients)
    for (int i = 0; i < r->cfg->fl.clients; i++) fm_client_state_free(&r->clients[i], r->st->nclass);
  free(r->clients);
  free(r->sampled);
  free(r->host_of);
  free(r->mine);
  free(r->trained_row);
  free(r->trained_client);
  free(r->seg_global);
  free(r->seg_tensor);
  free(r->tokens);
  free(r->targets);
  if (r->slot_shared)
    for (int g = 0; g < r->cb; g++)
      for (int k = 0; k < FM_MAX_CLASSES; k++) fm_adamw_free(&r->slot_shared[g][k]);
  free(r->slot_shared);
  free(r->slot_opts);
  free(r->route_counts);
  free(r->gate_mass);
  free(r->stats);
  free(r->budget);
  free(r->status);
  free(r->simtime);
  free(r->pflops);
  fm_system_free(&r->sys);
  fm_agg_free(&r->agg);
  fm_toolkit_free(&r->tk);
  fm_host_free(&r->host);
  if (r->server_state && r->st->server_free) r->st->server_free(r->server_state);
  if (r->model) fm_model_free(r->model);
  fm_dataset_free(&r->data);
}

/* The context of a client; slot: its row of this round's statistics (-1: none, as in
 * evaluation, which gathers none). */
static void client_ctx(run_t *r, fm_client_ctx *cx, int client, int slot, int round, fm_client_result *res) {
  memset(cx, 0, sizeof *cx);
  cx->cfg = r->cfg;
  cx->data = &r->data;
  cx->model = r->model;
  cx->client = client;
  cx->round = round;
  cx->opt = r->opts;
  cx->tokens = r->tokens;
  cx->targets = r->targets;
  if (slot >= 0) {
    size_t li = (size_t)slot * (size_t)r->LE;
    cx->route_counts = r->route_counts + li;
    cx->gate_mass = r->gate_mass + li;
    cx->stats = r->stats + li * (size_t)r->st->nstats;
  }
  cx->budget = r->budget[client];
  cx->res = res;
  cx->global = r->host.global;
  fm_rng_init(&cx->batch_rng, (uint64_t)r->cfg->run.seed, (uint32_t)client, (uint32_t)round, FM_RNG_BATCH);
}

/* Load a client into the model: its private state, the global shared values. */
static fm_err load_client(run_t *r, fm_client_ctx *cx, int keep) {
  FM_CHECK(fm_host_load(&r->host, &r->clients[cx->client], r->opts, keep));
  if (r->st->client_begin) FM_CHECK(r->st->client_begin(cx));
  return FM_OK;
}

/* Where each sampled client runs this round (host_of, the same on every rank), what
 * this rank runs (mine), and the run-file rows of the statistics of those that train
 * here: one row per client that trains, in client-id order over all hosts. Without
 * private state the clients are dealt by predicted work (training, unless offline,
 * and evaluation); with it each runs at home, where its state is. */
static fm_err place_clients(run_t *r, int round, int m) {
  if (r->deal) {
    const fm_config *c = r->cfg;
    double tokens = (double)c->train.batch * c->train.seq_len;
    /* evaluation: forward passes (a third of a training step's FLOPs) on val and test */
    double eval = fm_model_flops_per_token(r->model, c->train.seq_len) / 3 * tokens * 2 * c->train.eval_batches;
    double *work;
    FM_CALLOC(work, (size_t)m, "predicted work");
    for (int j = 0; j < m; j++) work[j] = (r->status[j] == FM_CLIENT_OFFLINE ? 0 : r->pflops[j]) + eval;
    fm_err err = fm_deal_clients(work, m, r->P - 1, r->host_of);
    free(work);
    FM_CHECK(err);
    for (int j = 0; j < m; j++) r->host_of[j] += 1;
  } else {
    for (int j = 0; j < m; j++) r->host_of[j] = fm_client_host(r->sampled[j], r->P);
  }
  int *per_host;
  FM_CALLOC(per_host, (size_t)r->P, "clients per host");
  int k = 0, n = 0;
  r->nmine = r->most = 0;
  for (int j = 0; j < m; j++) {
    if (++per_host[r->host_of[j]] > r->most) r->most = per_host[r->host_of[j]];
    int trains = r->status[j] != FM_CLIENT_OFFLINE;
    if (r->host_of[j] == r->rank) {
      r->mine[r->nmine++] = j;
      if (trains) { r->trained_row[k] = n; r->trained_client[k++] = r->sampled[j]; }
    }
    n += trains;
  }
  free(per_host);
  r->trained = (fm_round_rows){round, n, k, r->trained_row, r->trained_client};
  return reserve_stats(r, k);
}

/* Bit k set: class k is shared. */
static unsigned shared_mask(const fm_strategy *st) {
  unsigned m = 0;
  for (int k = 0; k < st->nclass; k++)
    if (st->shared[k]) m |= 1u << k;
  return m;
}

static fm_err local_work_batched(run_t *r, int round, double wsum, double *rows, int *nrows);

/* The statistics row of sampled client j (sample index) after its local work. */
static void client_row(const run_t *r, int j, const fm_client_result *res, double *row) {
  row[ROW_CLIENT] = r->sampled[j];
  row[ROW_TRAIN] = res->train_loss;
  row[ROW_TOKENS] = (double)res->tokens;
  row[ROW_FLOPS] = res->flops;
  row[ROW_UP] = (double)res->bytes_up;
  row[ROW_DOWN] = (double)res->bytes_down;
  row[ROW_SIM] = r->status[j] == FM_CLIENT_OFFLINE ? 0 : r->simtime[j];
  row[ROW_STATUS] = r->status[j];
}

/* The sampled clients placed here train and add their contributions: those online
 * train; only those the round keeps (in time, not dropped, not surplus) contribute. */
static fm_err local_work(run_t *r, int round, double wsum, double *rows, int *nrows) {
  const fm_config *c = r->cfg;
  if (r->cb > 1) return local_work_batched(r, round, wsum, rows, nrows);
  fm_agg_zero(&r->agg);
  for (int k = 0, slot = 0; k < r->nmine; k++) {
    int j = r->mine[k], i = r->sampled[j];
    fm_client_result res = {0};
    fm_client_ctx cx;
    client_ctx(r, &cx, i, r->status[j] != FM_CLIENT_OFFLINE ? slot++ : -1, round, &res);
    if (r->status[j] != FM_CLIENT_OFFLINE) {
      FM_CHECK(load_client(r, &cx, 1));
      fm_fault_point(c, r->rank, "local_update", round);
      FM_CHECK(fm_toolkit_client_begin(&r->tk, &cx));
      FM_CHECK(r->st->local_update(&cx));
      FM_CHECK(fm_model_sync(r->model)); /* the trained values where the tensors point (a GPU's come down) */
      res.bytes_down = r->shared_bytes;
      double tw = (double)r->data.clients[i].split[FM_SPLIT_TRAIN].tokens / wsum;
      if (r->status[j] == FM_CLIENT_KEPT)
        FM_CHECK(fm_toolkit_contribute(&r->tk, &r->agg, r->st, &cx, r->seg_global, tw, &res.bytes_up,
                                       &res.bytes_down));
      fm_host_save(&r->host, &r->clients[i], r->opts);
      /* Ditto: the personal model trains whatever became of the upload: it stays on the device */
      FM_CHECK(fm_ditto_update(&r->tk, &cx, shared_mask(r->st)));
    }
    client_row(r, j, &res, rows + (size_t)(*nrows)++ * ROW_LEN);
  }
  return FM_OK;
}

/* local_work with run.client_batch > 1: the clients that train, in their order here,
 * in groups of up to cb, each group in the slots of the model (client_batch.c); they
 * contribute and are saved in the same order as one at a time. */
static fm_err local_work_batched(run_t *r, int round, double wsum, double *rows, int *nrows) {
  const fm_config *c = r->cfg;
  fm_agg_zero(&r->agg);
  fm_client_result *res = NULL;
  fm_client_ctx *cx = NULL, **cxp = NULL;
  int *ks = NULL;
  fm_err err = fm_calloc(&res, (size_t)r->nmine + 1, sizeof *res, "client results");
  if (!err) err = fm_calloc(&cx, (size_t)r->cb, sizeof *cx, "client group");
  if (!err) err = fm_calloc(&cxp, (size_t)r->cb, sizeof *cxp, "client group");
  if (!err) err = fm_calloc(&ks, (size_t)r->cb, sizeof *ks, "client group");
  for (int k = 0, stat = 0; k < r->nmine && !err;) {
    int n = 0;
    for (; k < r->nmine && n < r->cb; k++)
      if (r->status[r->mine[k]] != FM_CLIENT_OFFLINE) ks[n++] = k;
    for (int g = 0; g < n && !err; g++) { /* client g into slot g */
      const int j = r->mine[ks[g]], i = r->sampled[j];
      client_ctx(r, &cx[g], i, stat++, round, &res[ks[g]]);
      cx[g].opt = r->slot_opts[g];
      cxp[g] = &cx[g];
      err = fm_model_set_slot(r->model, g);
      if (!err) err = fm_host_load(&r->host, &r->clients[i], r->slot_opts[g], 1);
      for (int q = 0; !err && q < r->st->nclass; q++)
        if (r->st->shared[q]) { /* the host's one shared state would be every slot's */
          fm_adamw_reset(&r->slot_shared[g][q]);
          r->slot_opts[g][q] = r->slot_shared[g][q];
        }
      if (!err && r->st->client_begin) err = r->st->client_begin(&cx[g]);
      if (!err) fm_fault_point(c, r->rank, "local_update", round);
    }
    /* fedavg's and local's local update (fm_client_train_round(cx, 1u)), for the group */
    if (!err && n) err = fm_client_train_group(cxp, n, 1u, r->tokens, r->targets);
    if (!err && n) err = fm_model_sync(r->model);
    for (int g = 0; g < n && !err; g++) {
      const int j = r->mine[ks[g]], i = r->sampled[j];
      err = fm_model_set_slot(r->model, g);
      if (err) break;
      res[ks[g]].bytes_down = r->shared_bytes;
      double tw = (double)r->data.clients[i].split[FM_SPLIT_TRAIN].tokens / wsum;
      if (r->status[j] == FM_CLIENT_KEPT)
        err = fm_toolkit_contribute(&r->tk, &r->agg, r->st, &cx[g], r->seg_global, tw, &res[ks[g]].bytes_up,
                                    &res[ks[g]].bytes_down);
      if (!err) fm_host_save(&r->host, &r->clients[i], r->slot_opts[g]);
    }
    fm_err e0 = fm_model_set_slot(r->model, 0);
    if (!err) err = e0;
  }
  for (int k = 0; k < r->nmine && !err; k++) client_row(r, r->mine[k], &res[k], rows + (size_t)(*nrows)++ * ROW_LEN);
  free(res);
  free(cx);
  free(cxp);
  free(ks);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

/* evaluate with run.client_batch > 1: the rows' clients in groups of up to cb, each
 * group's val and test batches in one forward (client_batch.c) */
static fm_err evaluate_batched(run_t *r, int round, double *rows, int nrows) {
  fm_client_result res = {0};
  fm_client_ctx *cx = NULL, **cxp = NULL;
  double *val = NULL, *test = NULL;
  fm_err err = fm_calloc(&cx, (size_t)r->cb, sizeof *cx, "client group");
  if (!err) err = fm_calloc(&cxp, (size_t)r->cb, sizeof *cxp, "client group");
  if (!err) err = fm_calloc(&val, (size_t)r->cb, sizeof *val, "client group");
  if (!err) err = fm_calloc(&test, (size_t)r->cb, sizeof *test, "client group");
  for (int j0 = 0; j0 < nrows && !err; j0 += r->cb) {
    const int n = nrows - j0 < r->cb ? nrows - j0 : r->cb;
    for (int g = 0; g < n && !err; g++) {
      client_ctx(r, &cx[g], (int)rows[(size_t)(j0 + g) * ROW_LEN + ROW_CLIENT], -1, round, &res);
      cx[g].opt = r->slot_opts[g];
      cxp[g] = &cx[g];
      err = fm_model_set_slot(r->model, g);
      if (!err) err = fm_host_load(&r->host, &r->clients[cx[g].client], r->slot_opts[g], 0);
      if (!err && r->st->client_begin) err = r->st->client_begin(&cx[g]);
    }
    if (!err) err = fm_client_eval_group(cxp, n, FM_SPLIT_VAL, r->tokens, r->targets, val);
    if (!err) err = fm_client_eval_group(cxp, n, FM_SPLIT_TEST, r->tokens, r->targets, test);
    for (int g = 0; g < n && !err; g++) {
      double *row = rows + (size_t)(j0 + g) * ROW_LEN;
      row[ROW_TEST_GLOBAL] = NAN;
      row[ROW_VAL] = val[g];
      row[ROW_TEST] = test[g];
    }
    fm_err e0 = fm_model_set_slot(r->model, 0);
    if (!err) err = e0;
  }
  free(cx);
  free(cxp);
  free(val);
  free(test);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

/* Evaluate the clients of rows on val and test, with their state after this round.
 * With Ditto: the global model's test loss, then val and test of the client's
 * personal model (the global one until the client first trains). */
static fm_err evaluate(run_t *r, int round, double *rows, int nrows) {
  if (r->cb > 1) return evaluate_batched(r, round, rows, nrows); /* (fl.ditto is refused with it) */
  for (int j = 0; j < nrows; j++) {
    double *row = rows + (size_t)j * ROW_LEN;
    fm_client_result res = {0};
    fm_client_ctx cx;
    client_ctx(r, &cx, (int)row[ROW_CLIENT], -1, round, &res);
    FM_CHECK(load_client(r, &cx, 0));
    row[ROW_TEST_GLOBAL] = NAN;
    if (r->tk.ditto) {
      FM_CHECK(fm_client_eval(&cx, FM_SPLIT_TEST, &row[ROW_TEST_GLOBAL]));
      fm_ditto_load(&r->tk, cx.client);
    }
    FM_CHECK(fm_client_eval(&cx, FM_SPLIT_VAL, &row[ROW_VAL]));
    FM_CHECK(fm_client_eval(&cx, FM_SPLIT_TEST, &row[ROW_TEST]));
  }
  return FM_OK;
}

/* The last round reports every client: the rows of the sampled clients that ran
 * here, then one evaluated-only row for each client at home here that was not
 * sampled (a sampled one is the row of the host that ran it). */
static int rows_all(run_t *r, int m, const double *rows, int nrows, double *out) {
  memcpy(out, rows, (size_t)nrows * ROW_LEN * sizeof *out);
  int n = nrows, j = 0;
  for (int i = r->rank - 1; r->rank > 0 && i < r->cfg->fl.clients; i += r->P - 1) {
    while (j < m && r->sampled[j] < i) j++; /* both ascending */
    if (j < m && r->sampled[j] == i) continue;
    double *o = out + (size_t)n++ * ROW_LEN;
    memset(o, 0, ROW_LEN * sizeof *o);
    o[ROW_CLIENT] = i;
    o[ROW_STATUS] = -1; /* evaluated only */
  }
  return n;
}

static int by_client(const void *a, const void *b) {
  double x = ((const double *)a)[ROW_CLIENT], y = ((const double *)b)[ROW_CLIENT];
  return (x > y) - (x < y);
}

/* Rows of every host onto rank 0, ordered by client id there. */
static fm_err gather_rows(run_t *r, const double *rows, int nrows, double *all, int *nall) {
  int *counts = NULL, *displs = NULL, mine = nrows * ROW_LEN;
  if (r->rank == 0) {
    FM_CALLOC(counts, (size_t)r->P, "gather counts");
    FM_CALLOC(displs, (size_t)r->P, "gather displacements");
  }
  FM_MPI(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, r->comm));
  if (r->rank == 0)
    for (int p = 1; p < r->P; p++) displs[p] = displs[p - 1] + counts[p - 1];
  fm_err err = FM_OK;
  int rc = MPI_Gatherv(rows, mine, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, 0, r->comm);
  if (rc != MPI_SUCCESS) err = fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Gatherv(rows)");
  if (r->rank == 0) { /* rows arrive host by host; each client once */
    *nall = (displs[r->P - 1] + counts[r->P - 1]) / ROW_LEN;
    qsort(all, (size_t)*nall, ROW_LEN * sizeof *all, by_client);
  }
  free(counts);
  free(displs);
  return err;
}

/* The global shared values from the server to every rank; an error is everyone's. */
static fm_err bcast_global(run_t *r) {
  fm_err err = FM_OK;
  fm_watch_enter("broadcast");
  for (int c = 0; c < r->host.nclass && !err; c++) {
    if (!r->st->shared[c]) continue;
    size_t n = fm_model_class_numel(r->model, c);
    int rc = MPI_Bcast(r->host.global[c], (int)n, MPI_FLOAT, 0, r->comm);
    if (rc != MPI_SUCCESS) err = fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Bcast(global model)");
  }
  fm_watch_leave();
  return fm_error_agree(err, &r->comm);
}

/* The strategy's server step and evaluation on rank 0: the model's shared classes
 * are set to the new global values, the strategy works on them, and they are read
 * back (fedbiot re-aligns its emulator here). The evaluation covers the round's
 * clients, or every client in the last round. */
static fm_err server_work(run_t *r, int round, int m, double *full_loss) {
  for (int c = 0; c < r->host.nclass; c++)
    if (r->st->shared[c])
      memcpy(fm_model_class_params(r->model, c), r->host.global[c], fm_model_class_numel(r->model, c) * sizeof(float));
  FM_CHECK(r->st->server_step(r->server_state, r->model, r->cfg, round));
  for (int c = 0; c < r->host.nclass; c++)
    if (r->st->shared[c])
      memcpy(r->host.global[c], fm_model_class_params(r->model, c), fm_model_class_numel(r->model, c) * sizeof(float));
  if (!r->st->server_eval) return FM_OK;
  int n = m, *list = r->sampled;
  int *all = NULL;
  if (round == r->cfg->fl.rounds && r->cfg->fl.final_eval == FM_FINAL_EVAL_ALL) {
    FM_CHECK(all_clients(r->cfg->fl.clients, &all));
    list = all;
    n = r->cfg->fl.clients;
  }
  fm_err err = r->st->server_eval(r->server_state, r->model, r->cfg, &r->data, list, n, full_loss);
  free(all);
  return err;
}

/* The clients at home here that hold private state: have [N] (agreed by every rank)
 * and this rank's ids, ascending. */
static fm_err clients_with_state(run_t *r, uint8_t **have, int32_t **ids, int *k) {
  int N = r->cfg->fl.clients;
  FM_CALLOC(*have, (size_t)N, "client flags");
  FM_CALLOC(*ids, (size_t)r->nhome, "client ids");
  *k = 0;
  for (int i = r->rank - 1; r->rank > 0 && i < N; i += r->P - 1)
    if (r->clients[i].allocated) { (*have)[i] = 1; (*ids)[(*k)++] = i; }
  FM_MPI(MPI_Allreduce(MPI_IN_PLACE, *have, N, MPI_UINT8_T, MPI_MAX, r->comm));
  return FM_OK;
}

/* Write a checkpoint: the global shared tensors (from rank 0) and the private
 * classes of every client that has trained (each host its rows). Collective. */
static fm_err checkpoint(run_t *r, int round, const uint8_t *have, const int32_t *ids, int k) {
  fm_err err = FM_OK;
  fm_watch_phase("checkpoint_write", round);
  WATCHED("checkpoint: begin", err = fm_runfile_checkpoint_begin(r->rf, round));
  FM_CHECK(err);
  fm_fault_point(r->cfg, r->rank, "checkpoint_write", round); /* in the middle of writing it */
  for (int s = 0; s < r->nseg && !err; s++) {
    const fm_tensor *t = r->seg_tensor[s];
    WATCHED("checkpoint: shared tensors",
            err = fm_runfile_write_shared(r->rf, t->name, r->seg_global[s], fm_tensor_ndim(t) == 1 ? 0 : (size_t)t->rows,
                                          (size_t)t->cols));
  }
  FM_CHECK(err);
  if (r->st->server_model)
    WATCHED("checkpoint: server model",
            err = fm_save_server_model(r->rf, r->st, r->server_state, r->model, &r->host, r->rank, r->comm));
  FM_CHECK(err);
  WATCHED("checkpoint: tensor index", err = fm_runfile_write_tensor_index(r->rf, r->model, r->st->shared));
  FM_CHECK(err);
  WATCHED("checkpoint: toolkit state", err = fm_toolkit_checkpoint(&r->tk, r->rf));
  FM_CHECK(err);
  if (r->st->server_checkpoint)
    WATCHED("checkpoint: server state", err = r->st->server_checkpoint(r->server_state, r->model, r->rf));
  FM_CHECK(err);
  for (int c = 0; !err && c < r->host.nclass; c++) {
    if (r->st->shared[c]) continue;
    size_t n = fm_model_class_numel(r->model, c), kk = (size_t)k;
    float *p = NULL, *m = NULL, *v = NULL;
    int64_t *step = NULL;
    fm_err e = fm_calloc(&p, kk * n, sizeof *p, "checkpoint staging");
    if (!e) e = fm_calloc(&m, kk * n, sizeof *m, "checkpoint staging");
    if (!e) e = fm_calloc(&v, kk * n, sizeof *v, "checkpoint staging");
    if (!e) e = fm_calloc(&step, kk, sizeof *step, "checkpoint staging");
    for (size_t j = 0; !e && j < kk; j++)
      e = fm_host_state_get(&r->host, &r->clients[ids[j]], c, p + j * n, m + j * n, v + j * n, &step[j]);
    /* every rank takes part in the collective write, even after a local failure */
    fm_err w;
    WATCHED("checkpoint: private state", w = fm_runfile_write_class(r->rf, c, n, have, e ? 0 : k, ids, p, m, v, step));
    free(p); free(m); free(v); free(step);
    err = fm_error_agree(e ? e : w, &r->comm); /* the next class's writes are collective too */
  }
  FM_CHECK(err);
  WATCHED("checkpoint: commit", err = fm_runfile_checkpoint_end(r->rf));
  FM_CHECK(err);
  return FM_OK;
}

/* Room for what this round writes, checked before any of it is written: a parallel
 * HDF5 write that fails on a full disk can fail on some ranks only and leave the
 * others inside a collective call. So rank 0 compares the file system's free space
 * with the round's bytes (metrics of up to every client, statistics of the clients
 * that trained, and the checkpoint: shared tensors and the private state of every
 * client that has some, with 10% and 1 MiB to spare) and every rank learns the answer;
 * the previous checkpoint stays as it is. */
static fm_err check_space(run_t *r, int round, const uint8_t *have) {
  fm_err err = FM_OK;
  double per_row = 8 + (double)r->LE * (16 + 8.0 * r->st->nstats); /* index, counts, mass, stats */
  double need = 1048576.0 + (double)r->cfg->fl.clients * sizeof(fm_client_row) + r->trained.n * per_row;
  if (have) { /* a checkpoint this round; have[N] marks the clients with private state */
    double priv = 0, with_state = 0;
    for (int c = 0; c < r->host.nclass; c++)
      if (!r->st->shared[c]) priv += 12.0 * (double)fm_model_class_numel(r->model, c);
    for (int i = 0; i < r->cfg->fl.clients; i++) with_state += have[i];
    need += 1.1 * ((double)r->shared_bytes + with_state * priv + fm_toolkit_ckpt_bytes(&r->tk, with_state));
    if (r->rank == 0) need += 1.1 * fm_server_model_bytes(r->st, r->server_state, r->model);
    if (r->st->server_ckpt_bytes) need += 1.1 * r->st->server_ckpt_bytes(r->model);
  }
  if (r->rank == 0) {
    char dir[FM_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", r->run_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    struct statvfs fs;
    if (statvfs(dir[0] ? dir : "/", &fs) == 0) {
      double avail = (double)fs.f_bavail * (double)fs.f_frsize;
      if (avail < need)
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO,
                           "%s: round %d needs %.1f MiB on the file system of '%s', which has %.1f MiB free: "
                           "stopping before writing (the last complete checkpoint is intact; free space "
                           "and --resume)", r->run_path, round, need / 1048576.0, dir, avail / 1048576.0);
    }
  }
  FM_CHECK(fm_error_agree(err, &r->comm));
  return FM_OK;
}

/* Load the latest checkpoint of the run file: global shared tensors on every rank,
 * each host its clients' private classes. */
static fm_err restore(run_t *r) {
  for (int s = 0; s < r->nseg; s++)
    FM_CHECK(fm_runfile_read_shared(r->rf, r->seg_tensor[s]->name, r->seg_global[s], r->seg_tensor[s]->numel));
  FM_CHECK(fm_toolkit_restore(&r->tk, r->rf));
  if (r->st->server_restore) FM_CHECK(r->st->server_restore(r->server_state, r->model, r->rf));
  for (int c = 0; c < r->host.nclass; c++) {
    if (r->st->shared[c]) continue;
    size_t n = fm_model_class_numel(r->model, c);
    int32_t *all = NULL, *mine = NULL;
    int K = 0, k = 0;
    FM_CHECK(fm_runfile_class_clients(r->rf, c, &all, &K));
    fm_err err = fm_calloc(&mine, (size_t)K + 1, sizeof *mine, "client ids");
    for (int j = 0; !err && j < K; j++)
      if (fm_client_host(all[j], r->P) == r->rank) mine[k++] = all[j];
    float *p = NULL, *m = NULL, *v = NULL;
    int64_t *step = NULL;
    if (!err) err = fm_calloc(&p, (size_t)k * n, sizeof *p, "checkpoint staging");
    if (!err) err = fm_calloc(&m, (size_t)k * n, sizeof *m, "checkpoint staging");
    if (!err) err = fm_calloc(&v, (size_t)k * n, sizeof *v, "checkpoint staging");
    if (!err) err = fm_calloc(&step, (size_t)k + 1, sizeof *step, "checkpoint staging");
    fm_err rd = fm_runfile_read_class(r->rf, c, n, err ? 0 : k, mine, all, K, p, m, v, step);
    if (!err) err = rd;
    for (int j = 0; !err && j < k; j++)
      err = fm_host_restore(&r->host, &r->clients[mine[j]], c, p + (size_t)j * n, m + (size_t)j * n,
                            v + (size_t)j * n, step[j]);
    free(all); free(mine); free(p); free(m); free(v); free(step);
    FM_CHECK(fm_error_agree(err, &r->comm)); /* the next class's reads are collective too */
  }
  return FM_OK;
}

/* The strategy's per-expert figures of the round: /fl/<name>, one dataset each.
 * Hosts hold [k][nstats][L][E]; the run file wants [k][L][E] per name. */
static fm_err write_stats(run_t *r, fm_err err) {
  if (err || r->st->nstats == 0) return err;
  size_t LE = (size_t)r->LE, nl = (size_t)r->trained.k;
  double *one;
  FM_CALLOC(one, nl * LE, "statistics staging");
  for (int k = 0; k < r->st->nstats && !err; k++) {
    for (size_t li = 0; li < nl; li++)
      memcpy(one + li * LE, r->stats + (li * (size_t)r->st->nstats + (size_t)k) * LE, LE * sizeof *one);
    err = fm_runfile_write_client_stat(r->rf, r->st->stat_names[k], &r->trained, one);
  }
  free(one);
  return err;
}

/* Seconds spent in phase id since the last call for it (per round figures). */
static double phase_delta(int id, double *last) {
  double now = fm_phase_seconds(id), d = now - last[id];
  last[id] = now;
  return d;
}

/* 1 if this rank did phase id since the last call for it (fm_phase_end_as counted it). */
static double phase_ran(int id, long *last) {
  long now = fm_phase_count(id), d = now - last[id];
  last[id] = now;
  return d > 0;
}

/* Room for the round rows kept for the NetCDF export (rank 0, with --metrics-netcdf):
 * grown as rounds complete, never sized by fl.rounds, which may be far more rounds
 * than this invocation runs (run.stop_after) or than memory holds. */
static fm_err grow_hist(fm_round_row **hist, int *cap, int n) {
  if (n <= *cap) return FM_OK;
  int want = *cap ? 2 * *cap : 64;
  if (want < n) want = n;
  fm_round_row *h = realloc(*hist, (size_t)want * sizeof *h);
  if (!h) FM_ERROR(FM_ERR_MEM, "cannot allocate %zu bytes for the rounds' metrics rows (--metrics-netcdf)",
                   (size_t)want * sizeof *h);
  *hist = h;
  *cap = want;
  return FM_OK;
}

static fm_err rounds(run_t *r, const fm_run_opts *opts, int first, fm_run_summary *sum) {
  const fm_config *c = r->cfg;
  int N = c->fl.clients, R = c->fl.rounds;
  double *rows = NULL, *rows2 = NULL, *all = NULL;
  fm_client_row *crow = NULL; /* rank 0: the round's rows for the run file */
  fm_round_row *hist = NULL;  /* rank 0 with --metrics-netcdf: this invocation's round rows */
  int hist_cap = 0;
  /* sized by the configuration: agreed, so that no rank that could not allocate
   * leaves the others in the first broadcast */
  fm_err aerr = fm_calloc(&rows, (size_t)N * ROW_LEN, sizeof *rows, "client rows");
  if (!aerr) aerr = fm_calloc(&rows2, (size_t)N * ROW_LEN, sizeof *rows2, "client rows");
  if (!aerr && r->rank == 0) aerr = fm_calloc(&all, (size_t)N * ROW_LEN, sizeof *all, "gathered rows");
  if (!aerr && r->rank == 0) aerr = fm_calloc(&crow, (size_t)N, sizeof *crow, "client metrics rows");
  if ((aerr = fm_error_agree(aerr, &r->comm))) {
    free(rows); free(rows2); free(all); free(crow);
    return aerr;
  }
  fm_err err = FM_OK;
  double t_start = fm_wtime(), last[FM_PHASE_MAX] = {0};
  long lastc[FM_PHASE_MAX] = {0};
  for (int i = 0; i < fm_phase_n(); i++) last[i] = fm_phase_seconds(i), lastc[i] = fm_phase_count(i);
  fm_phase_begin(r->ph_bcast);
  err = bcast_global(r);
  if (!err) err = fm_toolkit_bcast(&r->tk);
  fm_phase_end_as(r->ph_bcast, r->nseg > 0); /* nothing shared (local): nothing sent */
  /* this invocation runs rounds first..last: all of them, or up to run.stop_after */
  int last_round = R;
  if (c->run.stop_after > 0 && first + c->run.stop_after - 1 < R) last_round = first + c->run.stop_after - 1;
  for (int round = first; round <= last_round && !err; round++) {
    double t0 = fm_wtime();
    fm_watch_phase("local_update", round);
    int m = fm_sample_clients(c, round, r->sampled);
    /* the simulated clock decides, the same way on every rank, who makes the round */
    double steps = (r->st->steps_per_round ? r->st->steps_per_round(c) : c->fl.local_steps) +
                   fm_toolkit_extra_steps(&r->tk);
    double work = r->step_fpt * c->train.batch * c->train.seq_len * steps;
    for (int j = 0; j < m; j++) r->pflops[j] = work;
    double bdown, bup;
    fm_toolkit_plan(&r->tk, &r->agg, (double)r->shared_bytes, m, &bdown, &bup, &r->sys.extra_round_trips);
    double sim_round = fm_system_plan(&r->sys, c, round, r->sampled, m, r->pflops, bdown, bup, r->status, r->simtime);
    fm_toolkit_round(&r->tk, round, r->sampled, r->status, m);
    int fate[5] = {0};
    double wsum = 0;
    for (int j = 0; j < m; j++) {
      fate[r->status[j]]++;
      if (r->status[j] == FM_CLIENT_KEPT) wsum += (double)r->data.clients[r->sampled[j]].split[FM_SPLIT_TRAIN].tokens;
    }
    if (wsum <= 0) wsum = 1; /* nobody kept: no contribution, the global model stays */
    int nrows = 0, nall = 0;
    double full_loss = NAN;
    fm_phase_begin(r->ph_local);
    err = place_clients(r, round, m);
    if (!err) err = local_work(r, round, wsum, rows, &nrows);
    if (!err && opts->netcdf && r->rank == 0) err = grow_hist(&hist, &hist_cap, round - first + 1);
    fm_phase_end_as(r->ph_local, r->nmine > 0); /* the server and a host without clients only wait */
    /* a failed client must not leave the others waiting in the reduction */
    if ((err = fm_error_agree(err, &r->comm))) break;
    if (r->nseg) {
      fm_phase_begin(r->ph_reduce);
      fm_watch_phase("aggregate", round);
      fm_fault_point(c, r->rank, "aggregate", round);
      fm_watch_enter("aggregate");
      err = fm_agg_reduce(&r->agg, 0, r->comm);
      if (!err) err = fm_toolkit_reduce(&r->tk);
      fm_watch_leave();
      fm_phase_end(r->ph_reduce);
      if ((err = fm_error_agree(err, &r->comm))) break;
      fm_phase_begin(r->ph_server);
      fm_watch_phase("server_step", round);
      fm_fault_point(c, r->rank, "server_step", round);
      if (r->rank == 0) {
        err = fm_toolkit_server(&r->tk, &r->agg, r->seg_global);
        if (!err && r->st->server_step) err = server_work(r, round, m, &full_loss);
      }
      fm_phase_end_as(r->ph_server, r->rank == 0);
      /* the server's failure must not leave the hosts waiting in the broadcast */
      if ((err = fm_error_agree(err, &r->comm))) break;
      fm_phase_begin(r->ph_bcast);
      fm_watch_phase("broadcast", round);
      err = bcast_global(r);
      if (!err) err = fm_toolkit_bcast(&r->tk);
      fm_phase_end(r->ph_bcast);
      if (err) break;
    }
    double *erows = rows;
    if (round == R && c->fl.final_eval == FM_FINAL_EVAL_ALL) { /* the last round reports every client */
      nrows = rows_all(r, m, rows, nrows, rows2);
      erows = rows2;
    }
    fm_phase_begin(r->ph_eval);
    fm_watch_phase("evaluate", round);
    fm_fault_point(c, r->rank, "evaluate", round);
    err = evaluate(r, round, erows, nrows);
    fm_phase_end_as(r->ph_eval, nrows > 0);
    if ((err = fm_error_agree(err, &r->comm))) break;
    fm_phase_begin(r->ph_gather);
    fm_watch_phase("gather_metrics", round);
    fm_watch_enter("gather_metrics");
    err = gather_rows(r, erows, nrows, all, &nall);
    fm_watch_leave();
    fm_phase_end(r->ph_gather);
    if ((err = fm_error_agree(err, &r->comm))) break;
    fm_round_row rr = {0};
    int ncrow = 0;
    if (r->rank == 0) {
      double tr = 0, va = 0, te = 0, tg = 0, up = 0, down = 0, mn = INFINITY, mx = -INFINITY;
      int ntr = 0;
      for (int j = 0; j < nall; j++) {
        double *row = all + (size_t)j * ROW_LEN;
        va += row[ROW_VAL];
        te += row[ROW_TEST];
        tg += row[ROW_TEST_GLOBAL]; /* NaN without Ditto */
        if (row[ROW_TEST] < mn) mn = row[ROW_TEST];
        if (row[ROW_TEST] > mx) mx = row[ROW_TEST];
        if (row[ROW_TOKENS] > 0) { tr += row[ROW_TRAIN]; ntr++; }
        up += row[ROW_UP];
        down += row[ROW_DOWN];
        fm_client_row cr = {round, (int32_t)row[ROW_CLIENT], row[ROW_TOKENS] > 0 ? row[ROW_TRAIN] : NAN,
                            row[ROW_VAL], row[ROW_TEST], (uint64_t)row[ROW_TOKENS], row[ROW_FLOPS], row[ROW_SIM],
                            (uint64_t)row[ROW_UP], (uint64_t)row[ROW_DOWN], (int32_t)row[ROW_STATUS]};
        crow[ncrow++] = cr;
      }
      tr = ntr ? tr / ntr : NAN;
      va /= nall;
      te /= nall;
      sum->bytes_up += (uint64_t)up;
      sum->bytes_down += (uint64_t)down;
      sum->final_train = tr; sum->final_val = va; sum->final_test = te;
      rr = (fm_round_row){.round = round, .clients = m, .mean_train = tr, .mean_val = va, .mean_test = te,
                          .min_test = mn, .max_test = mx, .bytes_up = (uint64_t)up,
                          .bytes_down = (uint64_t)down, .test_loss_full = full_loss,
                          .test_loss_emulator = r->st->server_eval ? te : NAN, .sim_time_s = sim_round,
                          .kept = fate[FM_CLIENT_KEPT], .late = fate[FM_CLIENT_LATE],
                          .dropped = fate[FM_CLIENT_DROPPED], .offline = fate[FM_CLIENT_OFFLINE],
                          .surplus = fate[FM_CLIENT_SURPLUS], .host_clients_max = r->most,
                          .dp_epsilon = fm_toolkit_epsilon(&r->tk, round), .test_loss_global = tg / nall};
      sum->final_test_full = full_loss;
    }
    /* the run file: every rank takes part in each collective write; an error from
     * here to the round's row ends the job (below) */
    fm_watch_phase("runfile_write", round);
    fm_watch_enter("runfile_write");
    uint64_t red = r->agg.bytes_reduced, red_all = 0;
    int rc = MPI_Reduce(&red, &red_all, 1, MPI_UINT64_T, MPI_SUM, 0, r->comm);
    r->agg.bytes_reduced = 0;
    rr.bytes_reduced = red_all;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    /* the round's phase times are the slowest rank's: rank 0 hosts no client, so its
     * own local and evaluate times are ~0 (it waits for the hosts outside any phase);
     * with the largest resident set of any rank (ru_maxrss is in KiB on Linux: /1024 gives MiB) */
    double mine[11] = {phase_delta(r->ph_local, last), phase_delta(r->ph_reduce, last),
                       phase_delta(r->ph_server, last), phase_delta(r->ph_bcast, last),
                       phase_delta(r->ph_eval, last), (double)ru.ru_maxrss / 1024.0,
                       phase_ran(r->ph_local, lastc), phase_ran(r->ph_reduce, lastc), phase_ran(r->ph_server, lastc),
                       phase_ran(r->ph_bcast, lastc), phase_ran(r->ph_eval, lastc)}, most[11] = {0};
    if (rc == MPI_SUCCESS) rc = MPI_Reduce(mine, most, 11, MPI_DOUBLE, MPI_MAX, 0, r->comm);
    /* a phase no rank did this round (local: no aggregation) is NaN, as the table leaves it out */
    double *t[5] = {&rr.t_local, &rr.t_aggregate, &rr.t_server, &rr.t_broadcast, &rr.t_evaluate};
    for (int i = 0; i < 5; i++) *t[i] = most[6 + i] > 0 ? most[i] : NAN;
    rr.peak_rss_mb = most[5];
    /* and the mean over the hosts that ran clients: t_local / t_local_mean is the
     * round's load imbalance (a host without clients this round waited, it did no work) */
    double local[2] = {r->nmine > 0 ? mine[0] : 0, r->nmine > 0}, local_sum[2] = {0, 0};
    if (rc == MPI_SUCCESS) rc = MPI_Reduce(local, local_sum, 2, MPI_DOUBLE, MPI_SUM, 0, r->comm);
    if (rc != MPI_SUCCESS) err = fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Reduce(round figures)");
    rr.t_local_mean = local_sum[1] > 0 ? local_sum[0] / local_sum[1] : 0;
    fm_phase_begin(r->ph_io);
    int ckpt_now = (c->run.checkpoint_every && round % c->run.checkpoint_every == 0) || round == last_round;
    uint8_t *have = NULL; /* with a checkpoint: the clients with private state, agreed */
    int32_t *ids = NULL;
    int nids = 0;
    if (!err && ckpt_now) err = clients_with_state(r, &have, &ids, &nids);
    if (!err) err = check_space(r, round, have);
    if (!err) WATCHED("run file: client metrics", err = fm_runfile_append_clients(r->rf, crow, ncrow));
    if (!err) WATCHED("run file: routing", err = fm_runfile_write_routing(r->rf, &r->trained, r->route_counts, r->gate_mass));
    WATCHED("run file: strategy statistics", err = write_stats(r, err));
    fm_phase_end(r->ph_io);
    /* the round's own row before its checkpoint: resuming continues after the newest
     * checkpoint, so a crash between the two would lose the row for good. With a
     * checkpoint the row is written again after it, with the round's whole run-file
     * time (a crash in between leaves it with the time before the checkpoint) */
    rr.t_io = phase_delta(r->ph_io, last);
    rr.wall_s = fm_wtime() - t0;
    if (!err) WATCHED("run file: round metrics", err = fm_runfile_append_round(r->rf, &rr));
    if (!err && ckpt_now) {
      fm_phase_begin(r->ph_io);
      err = checkpoint(r, round, have, ids, nids);
      fm_phase_end(r->ph_io);
      fm_fault_point(c, r->rank, "checkpoint_done", round);
      rr.t_io += phase_delta(r->ph_io, last);
      rr.wall_s = fm_wtime() - t0;
      if (!err) WATCHED("run file: round metrics", err = fm_runfile_update_round(r->rf, &rr));
    }
    free(have);
    free(ids);
    if (hist) hist[round - first] = rr;
    /* progress, with or without -q (which hides the configuration only); the round's
     * wall time as stored, its run-file writes included */
    if (r->rank == 0 && !err)
      fm_report_round(&rr, R, rr.wall_s, (fm_wtime() - t_start) / (round - first + 1) * (last_round - round),
                      r->st->server_eval != NULL);
    fm_watch_leave();
    /* a run-file write that failed on some ranks (a full disk) may leave the ranks in
     * different HDF5 collectives: nothing collective may follow, not even closing the
     * file. This rank says why and ends every rank (MPI_Abort). */
    if (err && !fm_error_agreed()) fm_fatal(err);
    if (err) break;
    sum->rounds_done = round;
  }
  if (!err && opts->netcdf) {
    fm_phase_begin(r->ph_io);
    fm_watch_phase("runfile_write", 0);
    fm_watch_enter("NetCDF export");
    fm_err nerr = fm_netcdf_write_rounds(opts->netcdf, hist, sum->rounds_done - first + 1, r->st->name, c->run.seed,
                                         opts->config_text, r->comm);
    fm_watch_leave();
    err = fm_error_agree(nerr, &r->comm);
    fm_phase_end(r->ph_io);
  }
  free(rows);
  free(rows2);
  free(all);
  free(crow);
  free(hist);
  if (err) return err;
  /* everyone learns the final figures */
  double fin[4] = {sum->final_train, sum->final_val, sum->final_test, sum->final_test_full};
  fm_watch_enter("final figures");
  int rc = MPI_Bcast(fin, 4, MPI_DOUBLE, 0, r->comm);
  fm_watch_leave();
  if (rc != MPI_SUCCESS) err = fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Bcast(final figures)");
  FM_CHECK(fm_error_agree(err, &r->comm));
  sum->final_train = fin[0]; sum->final_val = fin[1]; sum->final_test = fin[2]; sum->final_test_full = fin[3];
  sum->seconds = fm_wtime() - t_start;
  return FM_OK;
}

/* mkdir -p of the run file's folder, on rank 0; an error is everyone's. */
/* What the partition did with the data, beside the configuration that asked for it:
 * whether regions may overlap, the tokens the clients asked for and hold (less when
 * shrunk to be disjoint), the corpus's tokens and its tokenizer's ids. Collective. */
static fm_err record_data(run_t *r) {
  const fm_dataset *d = &r->data;
  double asked = 0, held = 0;
  for (int k = 0; k < d->corpus.ndomains; k++) {
    asked += (double)d->domain_asked[k];
    held += (double)d->domain_given[k];
  }
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(r->rf, "data_allow_overlap", r->cfg->data.allow_overlap), &r->comm));
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(r->rf, "data_tokens_asked", asked), &r->comm));
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(r->rf, "data_tokens_held", held), &r->comm));
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(r->rf, "data_corpus_tokens", (double)d->corpus.size), &r->comm));
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(r->rf, "data_vocab", d->corpus.vocab), &r->comm));
  return FM_OK;
}

static fm_err make_parent_dir(const char *path, int rank, MPI_Comm comm) {
  fm_err err = FM_OK;
  char dir[FM_PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (rank == 0 && slash && slash != dir) {
    *slash = 0;
    /* each prefix ending at a '/' or at the end of the folder name */
    for (char *p = dir + 1; !err; p++) {
      if (*p && *p != '/') continue;
      char end = *p;
      *p = 0;
      if (mkdir(dir, 0777) && errno != EEXIST)
        err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "run.output: cannot create folder '%s': %s",
                           dir, strerror(errno));
      *p = end;
      if (!end) break;
    }
  }
  return fm_error_agree(err, &comm);
}

static fm_err run_watched(run_t *rp, const fm_config *cfg, const fm_run_opts *opts, MPI_Comm comm,
                          fm_run_summary *sum);

fm_err fm_run(const fm_config *cfg, const fm_run_opts *opts, MPI_Comm comm, fm_run_summary *sum) {
  run_t r;
  memset(&r, 0, sizeof r);
  memset(sum, 0, sizeof *sum);
  sum->final_test_full = NAN;
  r.cfg = cfg;
  r.comm = comm;
  MPI_Comm_rank(comm, &r.rank);
  MPI_Comm_size(comm, &r.P);
  fm_err err = FM_OK;
  r.st = fm_strategy_get(cfg->fl.strategy);
  if (r.P < 2)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_ARG,
                       "fedmoe run needs at least 2 MPI ranks (rank 0 is the server, the others host "
                       "clients); start it with mpirun -np P, P >= 2");
  else if (!r.st)
    err = fm_config_error(cfg, "fl.strategy", "strategy '%s' is not available in this build",
                          fm_config_enum_name(cfg, "fl.strategy"));
  FM_CHECK(fm_error_agree(err, &comm));
  /* from here no collective may wait for ever: a rank that waits longer than
   * run.collective_timeout ends the job naming the ranks it waits for */
  FM_CHECK(fm_error_agree(fm_watchdog_start(cfg->run.collective_timeout, &comm), &comm));
  err = run_watched(&r, cfg, opts, comm, sum);
  fm_watchdog_stop();
  return err;
}

static fm_err run_watched(run_t *rp, const fm_config *cfg, const fm_run_opts *opts, MPI_Comm comm,
                          fm_run_summary *sum) {
  run_t r = *rp;
  fm_err err = FM_OK;
  fm_nn_set_threads(cfg->run.threads);
  r.ph_local = fm_phase("local_update");
  r.ph_reduce = fm_phase("aggregate");
  r.ph_server = fm_phase("server_step");
  r.ph_bcast = fm_phase("broadcast");
  r.ph_eval = fm_phase("evaluate");
  r.ph_gather = fm_phase("gather_metrics");
  r.ph_io = fm_phase("runfile_write");
  int ph_setup = fm_phase("setup");
  fm_phase_begin(ph_setup);
  fm_watch_phase("setup", 0);
  fm_fault_point(cfg, r.rank, "setup", 0);
  err = fm_error_agree(setup_model(&r), &comm);
  if (!err) err = load_init(&r);
  if (!err) err = setup(&r);
  fm_phase_end(ph_setup);
  /* every rank loads the same data and model: errors are everyone's */
  err = fm_error_agree(err, &comm);
  int done = 0; /* rounds already in the run file */
  r.run_path = opts->resume ? opts->resume : cfg->run.output;
  /* the run file (and its .ckpt folder) is ours alone for the run's life, and every
   * output is checked before any is opened: a run refused here changes no file */
  fm_output_lock *lock = NULL;
  if (!err && !opts->resume) err = make_parent_dir(cfg->run.output, r.rank, comm);
  if (!err) err = fm_output_lock_take(&lock, r.run_path, comm);
  if (!err) err = fm_output_check(r.run_path, !opts->resume, opts->netcdf, opts->overwrite, comm);
  if (!err && opts->resume && r.st->server_init && !r.st->server_restore)
    err = fm_error_agree(fm_config_error(cfg, "fl.strategy", "--resume is not supported for %s yet: its "
                                         "server state is not in the checkpoints", r.st->name), &comm);
  if (!err && opts->resume) {
    /* continue a run file: check it, load its latest checkpoint, then drop what a
     * crash may have left after it; nothing is changed until all of that worked */
    const fm_model_shape *sh = fm_model_get_shape(r.model);
    fm_watch_phase("resume", 0);
    fm_watch_enter("resume");
    err = fm_error_agree(fm_runfile_open_resume(&r.rf, opts->resume, cfg, sh->layers, sh->experts, comm, &done), &comm);
    if (!err) err = fm_error_agree(restore(&r), &comm);
    if (!err && done >= cfg->fl.rounds)
      err = fm_error_agree(fm_config_error(cfg, "fl.rounds", "the run file '%s' already holds %d rounds: nothing to "
                                           "resume (raise fl.rounds to train further)", opts->resume, done), &comm);
    if (!err) fm_fault_point(cfg, r.rank, "resume", done); /* between the checks and the first change */
    if (!err) err = fm_error_agree(fm_runfile_truncate(r.rf, done), &comm);
    fm_watch_leave();
    if (!err) fm_say("fedmoe: resuming %s after round %d\n", opts->resume, done);
  } else if (!err) {
    const fm_model_shape *sh = fm_model_get_shape(r.model);
    fm_watch_phase("create", 0);
    fm_watch_enter("create run file");
    err = fm_runfile_create(&r.rf, cfg->run.output, cfg, opts->config_text ? opts->config_text : "",
                            sh->layers, sh->experts, comm);
    err = fm_error_agree(err, &comm);
    if (!err) err = record_data(&r);
    if (!err && r.st->server_eval) {
      err = fm_error_agree(fm_runfile_set_attr(r.rf, "baseline_test_loss_full", r.baseline_full), &comm);
      if (!err)
        fm_say("fedmoe: %s: full model before federated training: mean test loss %.4f over %d clients\n",
               r.st->name, r.baseline_full, cfg->fl.clients);
    }
    if (!err) { /* per client: resource class, and the budget where the strategy has one */
      int32_t *v = NULL;
      err = fm_calloc(&v, (size_t)cfg->fl.clients, sizeof *v, "per-client values");
      for (int i = 0; !err && i < cfg->fl.clients; i++) v[i] = r.sys.dev[i].cls;
      err = fm_error_agree(err, &comm);
      if (!err) err = fm_error_agree(fm_runfile_write_client_ints(r.rf, "resource_class", v), &comm);
      for (int i = 0; !err && i < cfg->fl.clients; i++) v[i] = r.budget[i];
      if (!err && r.st->budget_kind != FM_BUDGET_NONE)
        err = fm_error_agree(fm_runfile_write_client_ints(r.rf, "budget", v), &comm);
      free(v);
    }
    fm_watch_leave();
  }
  if (!err) {
    if (r.rank == 0 && !opts->quiet)
      fm_say("fedmoe: strategy %s, %d clients on %d host rank%s (%s), %d rounds, shared %zu floats in %d "
             "tensors, private state %.1f KiB per client\n",
             r.st->name, cfg->fl.clients, r.P - 1, r.P > 2 ? "s" : "",
             r.deal ? "sampled clients dealt by work each round" : "each client at home: private state", cfg->fl.rounds,
             r.shared_bytes / sizeof(float), r.nseg,
             (fm_host_private_bytes(&r.host) + fm_toolkit_client_bytes(&r.tk)) / 1024.0);
    if (r.rank == 0 && !opts->quiet && r.tk.ditto)
      fm_say("fedmoe: ditto: each client that has trained holds its personal model of the shared tensors, "
             "%.1f KiB (no optimizer state: AdamW starts afresh each round); val/test figures are the personal "
             "models', test_loss_global the global model's\n", (double)r.shared_bytes / 1024.0);
    err = rounds(&r, opts, done + 1, sum);
    if (!err) err = fm_host_report(&r.host, comm); /* where the clients' private state lived */
    if (!err && cfg->fltk.finetune_steps > 0 && sum->rounds_done == cfg->fl.rounds)
      err = fm_toolkit_finetune(cfg, r.st, &r.data, &r.host, r.clients, r.budget, r.tokens, r.targets, r.rf, comm,
                                opts->quiet);
  }
  fm_watch_phase("close", 0);
  fm_watch_enter("close run file");
  fm_err cerr = fm_runfile_close(r.rf);
  fm_watch_leave();
  if (!err) err = cerr;
  fm_output_lock_release(lock);
  teardown(&r);
  return err;
}
