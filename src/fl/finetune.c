/* finetune.c - the personalisation baseline "federated training, then local
 * fine-tuning" (fl.finetune_steps): after the last round every client fine-tunes the
 * final shared tensors on its own training split for that many steps (fresh AdamW
 * state, the base learning rate, batches from a stream of its own) and is evaluated
 * on its test split. Each host fine-tunes the clients at home there; the mean test
 * loss before and after goes to the run file's root attributes finetune_test_loss and
 * finetune_base_test_loss. The model returns to the global values afterwards. */
#include "toolkit_run.h"

#include "client_state.h"
#include "fedmoe/log.h"

#include <stdlib.h>
#include <string.h>

fm_err fm_toolkit_finetune(const fm_config *c, const fm_strategy *st, const fm_dataset *data, fm_host *host,
                           fm_client_state *clients, const int *budget, int32_t *tokens, int32_t *targets,
                           fm_runfile *rf, MPI_Comm comm, int quiet) {
  int rank, P;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &P);
  unsigned shared = 0;
  for (int k = 0; k < st->nclass; k++)
    if (st->shared[k]) shared |= 1u << k;
  fm_adamw opts[FM_MAX_CLASSES];
  int N = c->fl.clients;
  double *loss2 = NULL; /* [2][N] each client's test loss before and after, summed in client order on rank 0 */
  FM_CHECK(fm_error_agree(fm_calloc(&loss2, 2 * (size_t)N, sizeof *loss2, "fine-tuning losses"), &comm));
  /* the training steps count routing; nothing reports it here */
  const fm_model_shape *sh = fm_model_get_shape(host->model);
  size_t LE = (size_t)sh->layers * (size_t)sh->experts;
  uint64_t *counts = NULL;
  double *mass = NULL, *stats = NULL;
  fm_err err = fm_calloc(&counts, LE, sizeof *counts, "routing counts");
  if (!err) err = fm_calloc(&mass, LE, sizeof *mass, "gate mass");
  if (!err) err = fm_calloc(&stats, LE * (size_t)(st->nstats + 1), sizeof *stats, "strategy statistics");
  for (int i = rank - 1; rank > 0 && i < c->fl.clients && !err; i += P - 1) {
    fm_client_result res = {0};
    fm_client_ctx cx;
    memset(&cx, 0, sizeof cx);
    cx.cfg = c;
    cx.data = data;
    cx.model = host->model;
    cx.client = i;
    cx.round = c->fl.rounds + 1; /* after the last round */
    cx.opt = opts;
    cx.tokens = tokens;
    cx.targets = targets;
    cx.budget = budget[i];
    cx.res = &res;
    cx.global = host->global;
    cx.route_counts = counts;
    cx.gate_mass = mass;
    cx.stats = stats;
    fm_rng_init(&cx.batch_rng, (uint64_t)c->run.seed, (uint32_t)i, 0, FM_RNG_FINETUNE);
    double before = 0, after = 0, loss = 0;
    err = fm_host_load(host, &clients[i], opts, 0);
    if (!err && st->client_begin) err = st->client_begin(&cx);
    if (!err) err = fm_client_eval(&cx, FM_SPLIT_TEST, &before);
    for (int k = 0; !err && k < c->fltk.finetune_steps; k++)
      err = fm_client_train_step(&cx, FM_SPLIT_TRAIN, shared, (float)c->train.lr, &loss);
    if (!err) err = fm_client_eval(&cx, FM_SPLIT_TEST, &after);
    loss2[i] = before;
    loss2[N + i] = after;
  }
  /* the shared values back to the global ones */
  for (int k = 0; k < st->nclass; k++)
    if (st->shared[k])
      memcpy(fm_model_class_params(host->model, k), host->global[k], fm_model_class_numel(host->model, k) * sizeof(float));
  free(counts);
  free(mass);
  free(stats);
  err = fm_error_agree(err, &comm);
  /* one host holds each entry: the sum is exact, the mean the same for any P */
  int rc = err ? MPI_SUCCESS : MPI_Reduce(rank ? loss2 : MPI_IN_PLACE, loss2, 2 * N, MPI_DOUBLE, MPI_SUM, 0, comm);
  double base = 0, tuned = 0;
  for (int i = 0; i < N; i++) { base += loss2[i] / N; tuned += loss2[N + i] / N; }
  free(loss2);
  FM_CHECK(err);
  if (rc != MPI_SUCCESS) FM_CHECK(fm_error_mpi(__FILE__, __LINE__, __func__, rc, "MPI_Reduce(fine-tuning losses)"));
  if (rank == 0 && !quiet)
    fm_say("fedmoe: after %d local fine-tuning steps per client: mean test loss %.4f (the final model: %.4f) over "
           "%d clients\n", c->fltk.finetune_steps, tuned, base, N);
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(rf, "finetune_test_loss", tuned), &comm));
  FM_CHECK(fm_error_agree(fm_runfile_set_attr(rf, "finetune_base_test_loss", base), &comm));
  return FM_OK;
}
