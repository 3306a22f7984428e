/* toolkit.c - the federated-learning toolkit's round options inside the round loop:
 * clipping and masking of a client's contribution, unmasking, DP noise and the server
 * optimizer on the server, the accountant's epsilon, the server state in checkpoints.
 * With none of them on, the contribution and the aggregate are computed exactly as
 * without the toolkit. */
#include "toolkit_run.h"

#include "fedmoe/log.h"
#include "fedmoe/system.h"
#include "fedmoe/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fm_err fm_toolkit_create(fm_toolkit *tk, const fm_config *c, fm_tensor *const *seg_tensor, int nseg,
                         const fm_agg *agg, MPI_Comm comm) {
  memset(tk, 0, sizeof *tk);
  int rank;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &tk->P);
  tk->rank = rank;
  tk->comm = comm;
  tk->cfg = c;
  tk->nseg = nseg;
  tk->seg_tensor = seg_tensor;
  tk->seg_off = agg->seg_off;
  tk->dp = c->privacy.clip > 0;
  tk->secagg = c->fltk.secure_agg;
  tk->server = tk->dp || c->fltk.server_opt != FM_SERVER_AVG || c->fltk.server_lr != 1;
  int N = c->fl.clients;
  FM_CALLOC(tk->members, (size_t)N, "secure aggregation members");
  FM_CALLOC(tk->survived, (size_t)N, "secure aggregation survivors");
  size_t longest = 1;
  for (int s = 0; s < nseg; s++)
    if (agg->seg_off[s + 1] - agg->seg_off[s] > longest) longest = agg->seg_off[s + 1] - agg->seg_off[s];
  FM_CALLOC(tk->scratch, longest, "clipped update");
  tk->scaffold = c->fltk.scaffold;
  tk->compress = c->fltk.compress;
  tk->ditto = c->fltk.ditto;
  tk->ditto_steps = c->fltk.ditto_steps > 0 ? c->fltk.ditto_steps : c->fl.local_steps;
  tk->client_state = tk->scaffold || tk->compress != FM_COMPRESS_NONE || tk->ditto;
  if (tk->ditto) FM_CALLOC(tk->pv, (size_t)N, "Ditto personal models");
  if (tk->compress) {
    FM_CALLOC(tk->ef, (size_t)N, "error feedback");
    FM_CALLOC(tk->cu, agg->n + 1, "update");
    FM_CALLOC(tk->cw, agg->n + 1, "compressed update");
  }
  if (tk->scaffold) {
    size_t *len;
    FM_CALLOC(len, (size_t)nseg + 1, "segment lengths");
    for (int s = 0; s < nseg; s++) len[s] = agg->seg_off[s + 1] - agg->seg_off[s];
    fm_err err = fm_agg_create(&tk->cagg, len, nseg, 1);
    free(len);
    FM_CHECK(err);
    FM_CALLOC(tk->c, agg->n + 1, "control variate");
    FM_CALLOC(tk->ci, (size_t)N, "client control variates");
    FM_CALLOC(tk->corr, agg->n + 1, "control-variate correction");
    FM_CALLOC(tk->next, agg->n + 1, "next control variate");
  }
  if (rank == 0 && tk->server) {
    FM_CALLOC(tk->delta, longest, "pseudo-gradient");
    FM_CHECK(fm_server_opt_create(&tk->opt, c, agg->n));
  }
  if (!tk->dp) return FM_OK;
  int poisson = c->fltk.sampling == FM_SAMPLING_POISSON;
  int m = fm_sample_clients(c, 1, tk->members); /* the fixed sample size of every round */
  tk->q = poisson ? c->fl.sample_fraction : (double)m / N;
  tk->denom = poisson ? c->fl.sample_fraction * N : m;
  tk->sigma = c->privacy.noise_multiplier;
  if (tk->sigma == 0 && c->privacy.target_epsilon > 0) {
    tk->sigma = fm_accountant_calibrate(tk->q, poisson, c->privacy.delta, c->fl.rounds, c->privacy.target_epsilon);
    if (tk->sigma == 0)
      FM_CONFIG_ERROR(c, "privacy.target_epsilon", "epsilon %g at delta %g over %d rounds is out of reach even "
                      "with a noise multiplier of 10^4", c->privacy.target_epsilon, c->privacy.delta, c->fl.rounds);
    if (rank == 0)
      fm_say("fedmoe: privacy: noise multiplier %.4g reaches epsilon %g at delta %g after %d rounds\n", tk->sigma,
             c->privacy.target_epsilon, c->privacy.delta, c->fl.rounds);
  }
  fm_accountant_init(&tk->acc, tk->q, tk->sigma, poisson, c->privacy.delta);
  double eps = fm_accountant_epsilon(&tk->acc, c->fl.rounds);
  if (rank == 0 && tk->sigma == 0)
    FM_WARN("privacy.noise_multiplier = 0: updates are clipped to privacy.clip but get no noise (epsilon is "
            "infinite); set it, or privacy.target_epsilon");
  else if (rank == 0 && c->privacy.target_epsilon > 0 && eps > c->privacy.target_epsilon * (1 + 1e-9))
    FM_WARN("privacy.target_epsilon = %g is not met: noise multiplier %g over %d rounds reaches epsilon %.4g at "
            "delta %g", c->privacy.target_epsilon, tk->sigma, c->fl.rounds, eps, c->privacy.delta);
  return FM_OK;
}

void fm_toolkit_free(fm_toolkit *tk) {
  if (tk->ci)
    for (int i = 0; i < tk->cfg->fl.clients; i++) free(tk->ci[i]);
  free(tk->ci);
  if (tk->ef)
    for (int i = 0; i < tk->cfg->fl.clients; i++) free(tk->ef[i]);
  free(tk->ef);
  if (tk->pv)
    for (int i = 0; i < tk->cfg->fl.clients; i++) free(tk->pv[i]);
  free(tk->pv);
  free(tk->ditto_counts);
  free(tk->ditto_mass);
  free(tk->cu);
  free(tk->cw);
  free(tk->c);
  free(tk->corr);
  free(tk->next);
  if (tk->scaffold) fm_agg_free(&tk->cagg);
  free(tk->members);
  free(tk->survived);
  free(tk->scratch);
  free(tk->delta);
  fm_server_opt_free(&tk->opt);
  memset(tk, 0, sizeof *tk);
}

void fm_toolkit_round(fm_toolkit *tk, int round, const int *sampled, const int *status, int m) {
  tk->round = round;
  tk->k = tk->nsurvived = 0;
  if (tk->scaffold) fm_agg_zero(&tk->cagg);
  for (int j = 0; j < m; j++) {
    if (status[j] == FM_CLIENT_OFFLINE) continue; /* never got the round: not in the key agreement */
    tk->survived[tk->k] = status[j] == FM_CLIENT_KEPT;
    tk->nsurvived += tk->survived[tk->k];
    tk->members[tk->k++] = sampled[j];
  }
}

void fm_toolkit_plan(const fm_toolkit *tk, const fm_agg *agg, double shared_bytes, int m, double *down, double *up,
                     double *extra_trips) {
  *down = *up = shared_bytes;
  *extra_trips = 0;
  if (tk->scaffold) *down = *up = 2 * shared_bytes; /* the control variate down, its change up */
  double n = (double)agg->n;
  if (tk->compress == FM_COMPRESS_TOPK) /* value and 32-bit index of each kept entry */
    *up = 8 * ceil(tk->cfg->fltk.compress_ratio * n);
  else if (tk->compress == FM_COMPRESS_INT8) /* a byte a value, a float scale a tensor */
    *up = n + 4.0 * agg->nseg;
  if (!tk->secagg) return;
  double ou, od;
  fm_secagg_overhead(m, &ou, &od);
  *up = 8.0 * (double)(agg->n + (size_t)agg->nseg) + ou; /* the whole masked vector, 64-bit */
  *down = shared_bytes + od;
  *extra_trips = 3; /* four protocol rounds instead of one upload */
}

/* SCAFFOLD's correction c - c_i added to the gradients of the shared tensors a step
 * trains (Karimireddy et al. 2020, Algorithm 1, line 10). */
static void scaffold_hook(void *arg, fm_model *m, unsigned class_mask) {
  const fm_toolkit *tk = arg;
  (void)m;
  for (int s = 0; s < tk->nseg; s++) {
    fm_tensor *t = tk->seg_tensor[s];
    if (!(class_mask >> t->cls & 1) || t->frozen || !t->g) continue;
    const float *corr = tk->corr + tk->seg_off[s];
    for (size_t i = 0; i < t->numel; i++) t->g[i] += corr[i];
  }
}

/* SCAFFOLD's option I: c_i+ = the gradient of the client's loss at the global model
 * x, on one batch of its training split from a stream of its own (so the training
 * batches are those of a run without SCAFFOLD). Option II's (x - y_i) / (K lr) would
 * be in units of AdamW's normalised steps, not of gradients, with fedmoe's local
 * optimizer. The client's own c_i corrects this round's steps; c_i+ replaces it when
 * the client's update counts (fm_toolkit_contribute). */
fm_err fm_toolkit_client_begin(fm_toolkit *tk, fm_client_ctx *cx) {
  if (!tk->scaffold) return FM_OK;
  const fm_config *c = tk->cfg;
  const float *ci = tk->ci[cx->client]; /* NULL: the client's control variate is still 0 */
  size_t n = tk->seg_off[tk->nseg];
  for (size_t i = 0; i < n; i++) tk->corr[i] = (float)(tk->c[i] - (ci ? ci[i] : 0.0));
  /* the gradient at x: the model holds the global values now */
  int B = c->train.batch, T = c->train.seq_len;
  fm_rng r;
  fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)cx->client, (uint32_t)cx->round, FM_RNG_SCAFFOLD);
  FM_CHECK(fm_batch_sample(&cx->data->corpus, &cx->data->clients[cx->client].split[FM_SPLIT_TRAIN], &r, B, T,
                           cx->tokens, cx->targets, NULL));
  for (int k = 0; k < fm_model_nclass(cx->model); k++) fm_model_freeze_class(cx->model, k, 1);
  for (int s = 0; s < tk->nseg; s++) tk->seg_tensor[s]->frozen = 0;
  float ce = 0, lb = 0;
  fm_model_zero_grads(cx->model);
  FM_CHECK(fm_model_forward(cx->model, cx->tokens, cx->targets, B, T, &ce, &lb));
  FM_CHECK(fm_model_backward(cx->model));
  for (int s = 0; s < tk->nseg; s++) {
    const fm_tensor *t = tk->seg_tensor[s];
    memcpy(tk->next + tk->seg_off[s], t->g, t->numel * sizeof(float));
  }
  cx->res->flops += fm_model_step_flops_per_token(cx->model, T) * B * T; /* the segments' gradients only */
  cx->grad_hook = scaffold_hook;
  cx->grad_hook_arg = tk;
  return FM_OK;
}

double fm_toolkit_extra_steps(const fm_toolkit *tk) {
  return (tk->scaffold ? 1 : 0) + (tk->ditto ? tk->ditto_steps : 0);
}

double fm_toolkit_client_bytes(const fm_toolkit *tk) {
  return 4.0 * (double)tk->seg_off[tk->nseg] * ((tk->scaffold ? 1 : 0) + (tk->compress ? 1 : 0) + (tk->ditto ? 1 : 0));
}

fm_err fm_toolkit_reduce(fm_toolkit *tk) {
  if (tk->scaffold) FM_CHECK(fm_agg_reduce(&tk->cagg, 0, tk->comm));
  return FM_OK;
}

fm_err fm_toolkit_bcast(fm_toolkit *tk) {
  if (tk->scaffold) FM_MPI(MPI_Bcast(tk->c, (int)tk->seg_off[tk->nseg], MPI_DOUBLE, 0, tk->comm));
  return FM_OK;
}

/* After a kept client's local steps: c_i = c_i+, and the change goes into the sum the
 * server adds to c (over N), and up the link. Tensors the client did not contribute
 * (not trained: a budget) keep their c_i. */
static fm_err scaffold_update(fm_toolkit *tk, const fm_strategy *st, const fm_client_ctx *cx, double tw,
                              uint64_t *bytes_up) {
  float **ci = &tk->ci[cx->client];
  if (!*ci) FM_CALLOC(*ci, tk->seg_off[tk->nseg] + 1, "client control variate");
  for (int s = 0; s < tk->nseg; s++) {
    fm_tensor *t = tk->seg_tensor[s];
    double w = st->contribution ? st->contribution(cx, t, tw) : tw;
    if (w <= 0) continue;
    float *cs = *ci + tk->seg_off[s];
    const float *next = tk->next + tk->seg_off[s];
    for (size_t i = 0; i < t->numel; i++) {
      tk->scratch[i] = next[i] - cs[i];
      cs[i] = next[i];
    }
    FM_CHECK(fm_agg_add(&tk->cagg, s, tk->scratch, 1.0));
    *bytes_up += t->numel * sizeof(float);
  }
  return FM_OK;
}

/* A compressed contribution: u = (y - x) + e over the tensors the client contributes
 * to, C(u) by top-k or int8, e = u - C(u) kept for the next round, and x + C(u) into
 * the aggregate with the strategy's weights. *bytes_up: the compressed size. */
static fm_err compressed_contribution(fm_toolkit *tk, fm_agg *agg, const fm_strategy *st, const fm_client_ctx *cx,
                                      float *const *seg_global, double tw, uint64_t *bytes_up) {
  size_t n = tk->seg_off[tk->nseg], cand = 0;
  float **e = &tk->ef[cx->client];
  if (!*e) FM_CALLOC(*e, n + 1, "error feedback");
  double *w;
  FM_CALLOC(w, (size_t)tk->nseg + 1, "contribution weights");
  for (int s = 0; s < tk->nseg; s++) {
    fm_tensor *t = tk->seg_tensor[s];
    size_t off = tk->seg_off[s];
    w[s] = st->contribution ? st->contribution(cx, t, tw) : tw;
    for (size_t i = 0; i < t->numel; i++)
      tk->cu[off + i] = w[s] > 0 ? (float)((double)t->w[i] - (double)seg_global[s][i] + (*e)[off + i]) : 0;
    if (w[s] > 0) cand += t->numel;
  }
  memcpy(tk->cw, tk->cu, n * sizeof *tk->cw);
  uint64_t bytes = 0;
  if (tk->compress == FM_COMPRESS_TOPK) {
    float *scratch = NULL;
    fm_err err = fm_calloc(&scratch, n + 1, sizeof *scratch, "top-k scratch");
    if (!err) bytes = 8 * (uint64_t)fm_compress_topk(tk->cw, n, cand, tk->cfg->fltk.compress_ratio, scratch);
    free(scratch);
    if (err) { free(w); return err; }
  } else {
    for (int s = 0; s < tk->nseg; s++)
      if (w[s] > 0) {
        fm_compress_int8(tk->cw + tk->seg_off[s], tk->seg_tensor[s]->numel);
        bytes += tk->seg_tensor[s]->numel + sizeof(float);
      }
  }
  fm_err err = FM_OK;
  for (int s = 0; s < tk->nseg && !err; s++) {
    if (w[s] <= 0) continue;
    fm_tensor *t = tk->seg_tensor[s];
    size_t off = tk->seg_off[s];
    for (size_t i = 0; i < t->numel; i++) {
      (*e)[off + i] = tk->cu[off + i] - tk->cw[off + i];
      tk->scratch[i] = (float)((double)seg_global[s][i] + (double)tk->cw[off + i]);
    }
    err = fm_agg_add(agg, s, tk->scratch, w[s]);
  }
  free(w);
  *bytes_up += bytes;
  return err;
}

fm_err fm_toolkit_contribute(fm_toolkit *tk, fm_agg *agg, const fm_strategy *st, const fm_client_ctx *cx,
                             float *const *seg_global, double tw, uint64_t *bytes_up, uint64_t *bytes_down) {
  double clip = 1; /* DP: the factor that brings the update's L2 norm within privacy.clip */
  if (tk->dp) {
    double ss = 0;
    for (int s = 0; s < tk->nseg; s++) {
      fm_tensor *t = tk->seg_tensor[s];
      double w = st->contribution ? st->contribution(cx, t, tw) : tw;
      if (w <= 0) continue;
      for (size_t i = 0; i < t->numel; i++) {
        double d = (double)t->w[i] - (double)seg_global[s][i];
        ss += d * d;
      }
    }
    double norm = sqrt(ss);
    if (norm > tk->cfg->privacy.clip) clip = tk->cfg->privacy.clip / norm;
  }
  if (tk->compress) FM_CHECK(compressed_contribution(tk, agg, st, cx, seg_global, tw, bytes_up));
  for (int s = 0; s < tk->nseg && !tk->compress; s++) {
    fm_tensor *t = tk->seg_tensor[s];
    double w = st->contribution ? st->contribution(cx, t, tw) : tw;
    if (w <= 0) continue;
    if (tk->dp) { /* the clipped update, each client with weight 1 (bounded sensitivity) */
      for (size_t i = 0; i < t->numel; i++)
        tk->scratch[i] = (float)(clip * ((double)t->w[i] - (double)seg_global[s][i]));
      FM_CHECK(fm_agg_add(agg, s, tk->scratch, 1.0));
    } else {
      FM_CHECK(fm_agg_add(agg, s, t->w, w));
    }
    *bytes_up += t->numel * sizeof(float);
  }
  if (tk->scaffold) {
    FM_CHECK(scaffold_update(tk, st, cx, tw, bytes_up));
    *bytes_down += tk->seg_off[tk->nseg] * sizeof(float); /* c came down with the model */
  }
  if (tk->secagg) { /* the masked vector replaces the plain upload */
    size_t n = agg->n + (size_t)agg->nseg;
    fm_secagg_mask((uint64_t)tk->cfg->run.seed, tk->round, cx->client, tk->members, tk->k, (uint64_t *)agg->q, n);
    double ou, od;
    fm_secagg_overhead(tk->k, &ou, &od);
    *bytes_up = (uint64_t)(8.0 * (double)n + ou);
    *bytes_down += (uint64_t)od;
  }
  return FM_OK;
}

fm_err fm_toolkit_server(fm_toolkit *tk, fm_agg *agg, float *const *seg_global) {
  const fm_config *c = tk->cfg;
  if (tk->secagg) {
    if (tk->nsurvived == 1) { /* unmasking one client's vector would reveal it: the round is void */
      FM_WARN("round %d: fl.secure_agg: 1 client left after dropouts, fewer than 2: the server does not unmask "
              "and the global model stays", tk->round);
      return FM_OK;
    }
    fm_secagg_unmask((uint64_t)c->run.seed, tk->round, tk->members, tk->k, tk->survived, (uint64_t *)agg->q,
                     agg->n + (size_t)agg->nseg);
  }
  if (tk->scaffold) /* c += (1/N) sum of the changes (Algorithm 1, line 17) */
    for (size_t i = 0; i < tk->cagg.n; i++)
      tk->c[i] += (double)tk->cagg.q[i] / FM_AGG_SCALE / c->fl.clients;
  if (!tk->server) {
    fm_agg_result(agg, seg_global);
    return FM_OK;
  }
  /* one noise stream for the round, drawn in segment order */
  fm_rng noise;
  fm_rng_init(&noise, (uint64_t)c->run.seed, FM_RNG_SERVER, (uint32_t)tk->round, FM_RNG_DP_NOISE);
  double sd = tk->sigma * c->privacy.clip;
  for (int s = 0; s < agg->nseg; s++) {
    size_t off = agg->seg_off[s], len = agg->seg_off[s + 1] - off;
    const float *g = seg_global[s];
    if (tk->dp) { /* noise on every coordinate, whoever contributed: the set of updated tensors is public */
      for (size_t i = 0; i < len; i++) {
        double sum = agg->fixed ? (double)agg->q[off + i] / FM_AGG_SCALE : agg->d[off + i];
        tk->delta[i] = (sum + (sd > 0 ? sd * fm_rng_normal(&noise) : 0)) / tk->denom;
      }
    } else {
      double w = agg->fixed ? (double)agg->q[agg->n + (size_t)s] : agg->d[agg->n + (size_t)s];
      if (w <= 0) continue; /* nobody contributed: the tensor and its moments stay */
      const int64_t *q = agg->q + off;
      const double *d = agg->d + off;
      for (size_t i = 0; i < len; i++)
        tk->delta[i] = (agg->fixed ? (double)q[i] / w : d[i] / w) - (double)g[i];
    }
    fm_server_opt_step(&tk->opt, off, len, tk->delta, seg_global[s]);
  }
  return FM_OK;
}

double fm_toolkit_epsilon(const fm_toolkit *tk, int round) {
  if (!tk->dp) return NAN;
  if (tk->sigma <= 0) return INFINITY;
  return fm_accountant_epsilon(&tk->acc, round);
}

static int at_home(int client, void *arg) {
  const fm_toolkit *tk = arg;
  return tk->rank > 0 && fm_client_host(client, tk->P) == tk->rank;
}

/* Per-client vectors v[N] (NULL: none yet) at each client's home, one row each under
 * group of the checkpoint. Collective. */
static fm_err client_vectors_write(fm_toolkit *tk, fm_runfile *rf, float *const *v, const char *group) {
  int N = tk->cfg->fl.clients, k = 0;
  size_t n = tk->seg_off[tk->nseg];
  uint8_t *have = NULL;
  int32_t *ids = NULL;
  float *rows = NULL;
  /* an allocation failure must not leave the others in the collective calls */
  fm_err err = fm_error_agree(fm_calloc(&have, (size_t)N, sizeof *have, "client flags"), &tk->comm);
  if (err) { free(have); return err; }
  for (int i = 0; i < N; i++) have[i] = v[i] != NULL;
  int rc = MPI_Allreduce(MPI_IN_PLACE, have, N, MPI_UINT8_T, MPI_MAX, tk->comm);
  if (rc != MPI_SUCCESS) err = fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Allreduce(have)");
  for (int i = 0; !err && i < N; i++) k += v[i] != NULL;
  if (!err) err = fm_calloc(&ids, (size_t)k + 1, sizeof *ids, "client ids");
  if (!err) err = fm_calloc(&rows, (size_t)k * n + 1, sizeof *rows, "checkpoint staging");
  for (int i = 0, j = 0; !err && i < N; i++)
    if (v[i]) { ids[j] = i; memcpy(rows + (size_t)j++ * n, v[i], n * sizeof *rows); }
  err = fm_error_agree(err, &tk->comm);
  if (!err) err = fm_runfile_write_client_rows(rf, group, n, have, k, ids, rows);
  free(have); free(ids); free(rows);
  return err;
}

static fm_err client_vectors_read(fm_toolkit *tk, fm_runfile *rf, float **v, const char *group, const char *key) {
  size_t n = tk->seg_off[tk->nseg];
  int32_t *ids;
  int k;
  float *rows;
  FM_CHECK(fm_runfile_read_client_rows(rf, group, key, n, at_home, tk, &ids, &k, &rows));
  fm_err err = FM_OK;
  for (int j = 0; !err && j < k; j++) {
    err = fm_calloc(&v[ids[j]], n + 1, sizeof(float), "client state");
    if (!err) memcpy(v[ids[j]], rows + (size_t)j * n, n * sizeof(float));
  }
  free(ids);
  free(rows);
  return err;
}

/* SCAFFOLD's state: c (rank 0's, scaffold/c/<tensor>) and the c_i of the clients that
 * have one, each host its own rows (scaffold/clients). */
static fm_err scaffold_checkpoint(fm_toolkit *tk, fm_runfile *rf) {
  char path[160];
  for (int s = 0; s < tk->nseg; s++) {
    snprintf(path, sizeof path, "scaffold/c/%s", tk->seg_tensor[s]->name);
    FM_CHECK(fm_runfile_write_state(rf, path, tk->c + tk->seg_off[s], tk->seg_tensor[s]->numel));
  }
  return client_vectors_write(tk, rf, tk->ci, "scaffold/clients");
}

static fm_err scaffold_restore(fm_toolkit *tk, fm_runfile *rf) {
  char path[160];
  for (int s = 0; s < tk->nseg; s++) {
    snprintf(path, sizeof path, "scaffold/c/%s", tk->seg_tensor[s]->name);
    FM_CHECK(fm_runfile_read_state(rf, path, "fl.scaffold", tk->c + tk->seg_off[s], tk->seg_tensor[s]->numel));
  }
  return client_vectors_read(tk, rf, tk->ci, "scaffold/clients", "fl.scaffold");
}

/* The moments of every shared tensor, server_opt/{m,v}/<tensor>: rank 0 holds them,
 * the other ranks take part in the collective writes with no values. */
fm_err fm_toolkit_checkpoint(fm_toolkit *tk, fm_runfile *rf) {
  if (tk->scaffold) FM_CHECK(scaffold_checkpoint(tk, rf));
  if (tk->compress) FM_CHECK(client_vectors_write(tk, rf, tk->ef, "compress/error"));
  if (tk->ditto) FM_CHECK(client_vectors_write(tk, rf, tk->pv, "ditto/personal"));
  if (tk->cfg->fltk.server_opt == FM_SERVER_AVG) return FM_OK;
  static const double none = 0;
  char path[160];
  for (int s = 0; s < tk->nseg; s++)
    for (int which = 0; which < (tk->cfg->fltk.server_opt == FM_SERVER_AVGM ? 1 : 2); which++) {
      const double *state = which ? tk->opt.v : tk->opt.m;
      snprintf(path, sizeof path, "server_opt/%s/%s", which ? "v" : "m", tk->seg_tensor[s]->name);
      FM_CHECK(fm_runfile_write_state(rf, path, state ? state + tk->seg_off[s] : &none, tk->seg_tensor[s]->numel));
    }
  return FM_OK;
}

double fm_toolkit_ckpt_bytes(const fm_toolkit *tk, double clients) {
  double n = (double)tk->seg_off[tk->nseg], b = 0;
  if (tk->compress) b += 4 * n * clients;
  if (tk->ditto) b += 4 * n * clients;
  int kind = tk->cfg->fltk.server_opt;
  if (kind != FM_SERVER_AVG) b += 8 * n * (kind == FM_SERVER_AVGM ? 1 : 2);
  if (tk->scaffold) b += 8 * n + 4 * n * clients;
  return b;
}

fm_err fm_toolkit_restore(fm_toolkit *tk, fm_runfile *rf) {
  if (tk->scaffold) FM_CHECK(scaffold_restore(tk, rf));
  if (tk->compress) FM_CHECK(client_vectors_read(tk, rf, tk->ef, "compress/error", "fl.compress"));
  if (tk->ditto) FM_CHECK(client_vectors_read(tk, rf, tk->pv, "ditto/personal", "fl.ditto"));
  if (tk->cfg->fltk.server_opt == FM_SERVER_AVG) return FM_OK;
  double none = 0;
  char path[160];
  for (int s = 0; s < tk->nseg; s++)
    for (int which = 0; which < (tk->cfg->fltk.server_opt == FM_SERVER_AVGM ? 1 : 2); which++) {
      double *state = which ? tk->opt.v : tk->opt.m;
      snprintf(path, sizeof path, "server_opt/%s/%s", which ? "v" : "m", tk->seg_tensor[s]->name);
      FM_CHECK(fm_runfile_read_state(rf, path, "fl.server_opt", state ? state + tk->seg_off[s] : &none,
                                     tk->seg_tensor[s]->numel));
    }
  return FM_OK;
}
