/* client_state.c - loading clients into the host's model and keeping their state.
 *
 * A client's private state lives where it was placed when the client first got some
 * (place): on a device model, in device memory (a stash per class, copied device to
 * device at each switch) while the host's budget lasts, else in host memory (copied
 * through the model's host mirrors, uploaded by the next pass). The budget is this
 * rank's share of what its GPU has free once the models are made (the node's ranks on
 * that GPU share it), less a margin (fm_model_stash_room), capped by
 * run.device_state_mb. The copies are exact both ways, so where a client's state
 * lives never changes a result. */
#include "client_state.h"

#include "fedmoe/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

fm_err fm_host_create(fm_host *h, const fm_strategy *st, fm_model *model, int device_state_mb) {
  memset(h, 0, sizeof *h);
  h->st = st;
  h->model = model;
  h->nclass = st->nclass;
  for (int c = 0; c < h->nclass; c++) {
    size_t n = fm_model_class_numel(model, c);
    float *src = fm_model_class_params(model, c);
    if (st->shared[c]) {
      FM_CALLOC(h->global[c], n, "global shared parameters");
      memcpy(h->global[c], src, n * sizeof(float));
      FM_CHECK(fm_adamw_create(&h->shared_opt[c], n));
    } else {
      FM_CALLOC(h->init_private[c], n, "initial private parameters");
      memcpy(h->init_private[c], src, n * sizeof(float));
    }
  }
  h->cap_mb = device_state_mb;
  return FM_OK;
}

/* The budget, set when the first client gets state (in the first round: every rank's
 * model is made by then, so the free memory is what is left to share): this rank's
 * share of the device's room for stashes, capped by run.device_state_mb. */
static void set_budget(fm_host *h) {
  if (h->budget_set) return;
  h->budget_set = 1;
  h->room = fm_model_stash_room(h->model);
  if (h->cap_mb >= 0 && (double)h->room > (double)h->cap_mb * 1048576.0) h->room = (size_t)h->cap_mb << 20;
}

void fm_host_free(fm_host *h) {
  for (int c = 0; c < h->nclass; c++) {
    free(h->global[c]);
    free(h->init_private[c]);
    fm_adamw_free(&h->shared_opt[c]);
  }
  memset(h, 0, sizeof *h);
}

/* A home for a client's state that has none yet, starting from the initial private
 * values and fresh moments: its stashes when all of them fit the budget (and the
 * device gives the memory), host arrays otherwise. */
static fm_err place(fm_host *h, fm_client_state *cs) {
  set_budget(h);
  size_t need = fm_host_private_bytes(h);
  /* a stash holds one copy of a class: a model of client slots (run.client_batch) keeps
   * its clients' state in host memory */
  int resident = need > 0 && need <= h->room && fm_model_nslot(h->model) == 1;
  for (int c = 0; resident && c < h->nclass; c++) {
    if (h->st->shared[c]) continue;
    if (fm_model_stash_alloc(h->model, c, &cs->stash[c])) { /* the budget was an estimate: spill */
      FM_DEBUG("client state: the device refused a stash (%s); this client's state goes to host memory",
               fm_error_message());
      fm_error_clear();
      for (int k = 0; k < c; k++) fm_model_stash_free(h->model, cs->stash[k]), cs->stash[k] = NULL;
      resident = 0;
    }
  }
  for (int c = 0; c < h->nclass; c++) {
    if (h->st->shared[c]) continue;
    size_t n = fm_model_class_numel(h->model, c);
    if (resident) {
      fm_model_stash_set(h->model, cs->stash[c], h->init_private[c], NULL, NULL);
      cs->opt[c] = (fm_adamw){NULL, NULL, n, 0};
    } else {
      FM_CALLOC(cs->params[c], n, "client private parameters");
      memcpy(cs->params[c], h->init_private[c], n * sizeof(float));
      FM_CHECK(fm_adamw_create(&cs->opt[c], n));
    }
  }
  if (resident) {
    h->room -= need;
    h->resident++;
    cs->model = h->model;
  } else {
    h->spilled++;
  }
  cs->allocated = 1;
  return FM_OK;
}

fm_err fm_host_load(fm_host *h, fm_client_state *cs, fm_adamw *opts, int keep) {
  if (!cs->allocated && keep) FM_CHECK(place(h, cs));
  for (int c = 0; c < h->nclass; c++) {
    size_t n = fm_model_class_numel(h->model, c);
    if (h->st->shared[c]) {
      memcpy(fm_model_class_params(h->model, c), h->global[c], n * sizeof(float));
      fm_adamw_reset(&h->shared_opt[c]);
      opts[c] = h->shared_opt[c];
      continue;
    }
    if (!cs->allocated) { /* a view of the initial state, nothing kept */
      memcpy(fm_model_class_params(h->model, c), h->init_private[c], n * sizeof(float));
      memset(&opts[c], 0, sizeof opts[c]);
      continue;
    }
    if (cs->stash[c]) FM_CHECK(fm_model_stash_load(h->model, cs->stash[c]));
    else memcpy(fm_model_class_params(h->model, c), cs->params[c], n * sizeof(float));
    opts[c] = cs->opt[c];
  }
  return FM_OK;
}

void fm_host_save(fm_host *h, fm_client_state *cs, const fm_adamw *opts) {
  for (int c = 0; c < h->nclass; c++) {
    if (h->st->shared[c]) {
      h->shared_opt[c].step = opts[c].step;
      continue;
    }
    if (cs->stash[c]) {
      fm_model_stash_save(h->model, cs->stash[c]);
    } else {
      size_t n = fm_model_class_numel(h->model, c);
      memcpy(cs->params[c], fm_model_class_params(h->model, c), n * sizeof(float));
    }
    cs->opt[c].step = opts[c].step; /* m and v were updated in place (or on the device) */
  }
}

void fm_client_state_free(fm_client_state *cs, int nclass) {
  for (int c = 0; c < nclass; c++) {
    free(cs->params[c]);
    if (cs->stash[c]) fm_model_stash_free(cs->model, cs->stash[c]);
    else fm_adamw_free(&cs->opt[c]);
  }
  memset(cs, 0, sizeof *cs);
}

size_t fm_host_private_bytes(const fm_host *h) {
  size_t b = 0;
  for (int c = 0; c < h->nclass; c++)
    if (!h->st->shared[c]) b += 3 * fm_model_class_numel(h->model, c) * sizeof(float);
  return b;
}

fm_err fm_host_restore(fm_host *h, fm_client_state *cs, int cls, const float *params, const float *m,
                       const float *v, long step) {
  if (!cs->allocated) FM_CHECK(place(h, cs));
  size_t n = fm_model_class_numel(h->model, cls);
  if (cs->stash[cls]) {
    fm_model_stash_set(h->model, cs->stash[cls], params, m, v);
  } else {
    memcpy(cs->params[cls], params, n * sizeof(float));
    memcpy(cs->opt[cls].m, m, n * sizeof(float));
    memcpy(cs->opt[cls].v, v, n * sizeof(float));
  }
  cs->opt[cls].step = step;
  return FM_OK;
}

fm_err fm_host_state_get(fm_host *h, const fm_client_state *cs, int cls, float *params, float *m, float *v,
                         int64_t *step) {
  size_t n = fm_model_class_numel(h->model, cls);
  if (cs->stash[cls]) {
    FM_CHECK(fm_model_stash_get(h->model, cs->stash[cls], params, m, v));
  } else {
    memcpy(params, cs->params[cls], n * sizeof(float));
    memcpy(m, cs->opt[cls].m, n * sizeof(float));
    memcpy(v, cs->opt[cls].v, n * sizeof(float));
  }
  *step = cs->opt[cls].step;
  return FM_OK;
}

fm_err fm_host_report(const fm_host *h, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  double mine[2] = {h->resident, h->spilled}, all[2] = {0, 0};
  int rc = MPI_Reduce(mine, all, 2, MPI_DOUBLE, MPI_SUM, 0, comm);
  if (rc != MPI_SUCCESS) FM_CHECK(fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Reduce(client state placement)"));
  const double b = (double)fm_host_private_bytes(h) / 1048576.0;
  /* on the CPU the host is the device: nothing to say */
  if (rank == 0 && strcmp(fm_model_device(h->model), "cpu") && b > 0 && all[0] + all[1] > 0)
    fm_say("fedmoe: private state of %.0f clients: %.0f resident in device memory (%.1f MiB), %.0f in host "
           "memory (%.1f MiB)\n", all[0] + all[1], all[0], all[0] * b, all[1], all[1] * b);
  return FM_OK;
}
