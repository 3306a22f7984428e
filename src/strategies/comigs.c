/* comigs.c - CoMiGS: generalist experts shared, specialist experts and the router
 * private; alternating expert steps on training data and router steps on
 * validation data (comigs.router_data = train: on training data, the paper's
 * ablation), with separate optimizer states (docs/strategies.md, comigs).
 *
 * Client i has G generalists (experts 0..G-1) and s_i specialists (G..G+s_i-1),
 * s_i from its resource class. The model holds model.experts experts; experts past
 * G + s_i are switched off by the route mask, which is the same function as a
 * smaller router (their logits never count) and keeps one model per host. */
#include "fedmoe/fl.h"

enum { SHARED = 0, SPECIALIST = 1, ROUTER = 2 };

static int classify_comigs(const fm_tensor *t, void *ctx) {
  const fm_config *c = ctx;
  switch (t->group) {
  case FM_GROUP_ROUTER: return ROUTER;
  case FM_GROUP_EXPERT: return t->expert < c->comigs.generalists ? SHARED : SPECIALIST;
  case FM_GROUP_ATTN_LORA: return SHARED; /* adapters on the frozen attention: trained, shared */
  default:
    /* LoRA experts sit on a frozen base, as in CoMiGS; full experts train it, shared */
    return c->model.expert_type == FM_EXPERT_LORA ? FM_CLASS_FROZEN : SHARED;
  }
}

static fm_err comigs_begin(fm_client_ctx *cx) {
  const fm_config *c = cx->cfg;
  int active = c->comigs.generalists + cx->budget; /* budget: this client's specialists */
  const fm_model_shape *sh = fm_model_get_shape(cx->model);
  uint8_t allowed[FM_MAX_EXPERTS];
  for (int e = 0; e < sh->experts; e++) allowed[e] = e < active;
  for (int l = 0; l < sh->layers; l++)
    if (sh->moe_mask >> l & 1) FM_CHECK(fm_model_set_route_mask(cx->model, l, allowed));
  return FM_OK;
}

static fm_err comigs_update(fm_client_ctx *cx) {
  const fm_config *c = cx->cfg;
  double loss = 0, rloss = 0;
  int K = c->fl.local_steps;
  const unsigned experts = 1u << SHARED | 1u << SPECIALIST, router = 1u << ROUTER;
  const int router_split = c->comigs.router_data == FM_ROUTER_DATA_TRAIN ? FM_SPLIT_TRAIN : FM_SPLIT_VAL;
  for (int k = 0; k < K; k++) {
    /* lower level: experts (and base) on D_i, router frozen */
    FM_CHECK(fm_client_train_step(cx, FM_SPLIT_TRAIN, experts, fm_client_lr(cx, k, c->train.lr), &loss));
    /* upper level: router on V_i (or D_i), experts frozen */
    if ((k + 1) % c->comigs.router_every == 0)
      for (int j = 0; j < c->comigs.router_steps; j++)
        FM_CHECK(fm_client_train_step(cx, router_split, router, fm_client_lr(cx, k, c->comigs.router_lr), &rloss));
  }
  cx->res->train_loss = K ? loss / K : 0;
  return FM_OK;
}

/* expert steps plus router steps */
static double comigs_steps(const fm_config *c) {
  return c->fl.local_steps + (double)(c->fl.local_steps / c->comigs.router_every) * c->comigs.router_steps;
}

const fm_strategy fm_strategy_comigs = {
  .name = "comigs",
  .nclass = 3,
  .shared = {1, 0, 0},
  .classify = classify_comigs,
  .client_begin = comigs_begin,
  .local_update = comigs_update,
  .budget_kind = FM_BUDGET_SPECIALISTS,
  .steps_per_round = comigs_steps,
};
