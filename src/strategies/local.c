/* local.c - every client trains its own model; nothing is shared after the start. */
#include "fedmoe/fl.h"

static int classify_local(const fm_tensor *t, void *ctx) { return 0; }

static fm_err local_update(fm_client_ctx *cx) {
  double loss = 0;
  int K = cx->cfg->fl.local_steps;
  for (int k = 0; k < K; k++)
    FM_CHECK(fm_client_train_step(cx, FM_SPLIT_TRAIN, 1u, fm_client_lr(cx, k, cx->cfg->train.lr), &loss));
  cx->res->train_loss = K ? loss / K : 0;
  return FM_OK;
}

const fm_strategy fm_strategy_local = {
  .name = "local",
  .nclass = 1,
  .shared = {0},
  .classify = classify_local,
  .local_update = local_update,
};
