/* local.c - every client trains its own model; nothing is shared after the start. */
#include "fedmoe/fl.h"

static int classify_local(const fm_tensor *t, void *ctx) { return 0; }

static fm_err local_update(fm_client_ctx *cx) { return fm_client_train_round(cx, 1u); }

const fm_strategy fm_strategy_local = {
  .name = "local",
  .nclass = 1,
  .shared = {0},
  .classify = classify_local,
  .local_update = local_update,
};
