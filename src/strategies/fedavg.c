/* fedavg.c - every trainable tensor averaged over the sampled clients, weighted by
 * their training tokens. On an MoE model this is the FedAvg-MoE baseline. */
#include "fedmoe/fl.h"

static int classify_fedavg(const fm_tensor *t, void *ctx) { return 0; }

static fm_err fedavg_update(fm_client_ctx *cx) {
  double loss = 0;
  int K = cx->cfg->fl.local_steps;
  for (int k = 0; k < K; k++)
    FM_CHECK(fm_client_train_step(cx, FM_SPLIT_TRAIN, 1u, fm_client_lr(cx, k, cx->cfg->train.lr), &loss));
  cx->res->train_loss = K ? loss / K : 0;
  return FM_OK;
}

const fm_strategy fm_strategy_fedavg = {
  .name = "fedavg",
  .nclass = 1,
  .shared = {1},
  .classify = classify_fedavg,
  .local_update = fedavg_update,
};
