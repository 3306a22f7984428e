/* fedavg.c - every trainable tensor averaged over the sampled clients, weighted by
 * their training tokens. On an MoE model this is the FedAvg-MoE baseline. */
#include "fedmoe/fl.h"

static int classify_fedavg(const fm_tensor *t, void *ctx) { return 0; }

static fm_err fedavg_update(fm_client_ctx *cx) { return fm_client_train_round(cx, 1u); }

const fm_strategy fm_strategy_fedavg = {
  .name = "fedavg",
  .nclass = 1,
  .shared = {1},
  .classify = classify_fedavg,
  .local_update = fedavg_update,
};
