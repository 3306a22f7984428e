/* train_scope.c - model.train: which tensors fine-tuning trains at all.
 *
 * The strategy says how the trained tensors are shared (its classes); model.train
 * narrows what is trained: with `lora` (PEFT's setting, what Flower and
 * FederatedScope-LLM users run) only the LoRA pairs (model.attn_lora_rank, LoRA
 * experts) and the MoE routers train, and every other tensor stays frozen at its
 * initial (pretrained) value - it costs no gradient, no optimizer state and no
 * traffic. */
#include "fedmoe/fl.h"

#include "fedmoe/error.h"

#include <stdlib.h>
#include <string.h>

static int is_adapter(const fm_tensor *t) {
  return t->group == FM_GROUP_ATTN_LORA || t->group == FM_GROUP_ROUTER ||
         (t->group == FM_GROUP_EXPERT && (strstr(t->name, ".lora_A") || strstr(t->name, ".lora_B")));
}

int fm_scope_classify(const fm_tensor *t, void *ctx) {
  const fm_scope *sc = ctx;
  if (sc->cfg->model.train == FM_TRAIN_LORA && !is_adapter(t)) return FM_CLASS_FROZEN;
  return sc->st->classify ? sc->st->classify(t, (void *)sc->cfg) : 0;
}

fm_err fm_scope_check(const fm_config *c, const fm_strategy *st, const fm_model_shape *s) {
  if (c->model.train != FM_TRAIN_LORA) return FM_OK;
  if (c->fl.strategy == FM_STRAT_FEDBIOT || c->fl.strategy == FM_STRAT_HFEDMOE)
    FM_CONFIG_ERROR(c, "model.train", "lora is for local, fedavg and comigs; %s trains %s in full", st->name,
                    c->fl.strategy == FM_STRAT_FEDBIOT ? "its adapter blocks" : "its experts");
  int n = fm_shape_tensors(s, NULL), adapters = 0;
  fm_tensor *t;
  FM_CALLOC(t, (size_t)n, "tensor list");
  fm_shape_tensors(s, t);
  fm_scope sc = {st, c};
  for (int i = 0; i < n; i++) adapters += is_adapter(&t[i]) && fm_scope_classify(&t[i], &sc) != FM_CLASS_FROZEN;
  free(t);
  if (!adapters)
    FM_CONFIG_ERROR(c, "model.train", "lora, but the model has no LoRA pair to train: set model.attn_lora_rank "
                    "or LoRA experts (model.expert_type = lora, or model.upcycle = lora)");
  return FM_OK;
}
