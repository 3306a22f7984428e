/* hfedmoe.c - HFedMoE: each client fine-tunes a budget of experts per MoE layer,
 * chosen by importance and an information-bottleneck score from its router's
 * probabilities; experts are averaged over the clients that trained them, the
 * router with importance-based weights (docs/strategies.md, hfedmoe). The selection samples
 * around the best scores rather than taking them (hfedmoe.explore, ours; see sample_b).
 *
 * Classes: the rest of the model (trained and averaged by tokens, as fedavg), the
 * experts (averaged over their trainers only), the router (alpha-weighted). All are
 * shared; the selection lives for one round. Clients run one after another on a
 * host, so the current client's figures are kept in this file's scratch. */
#include "fedmoe/fl.h"

#include <math.h>
#include <string.h>

enum { BASE = 0, EXPERTS = 1, ROUTER = 2 };
enum { ST_SELECTED, ST_IMPORTANCE, ST_KL, ST_USAGE, NSTATS };

static int classify_hfedmoe(const fm_tensor *t, void *ctx) {
  return t->group == FM_GROUP_EXPERT ? EXPERTS : t->group == FM_GROUP_ROUTER ? ROUTER : BASE;
}

/* The current client's selection, kept for contribution(). */
static uint8_t selected[FM_MAX_LAYERS * FM_MAX_EXPERTS];

/* Importance, KL and usage per expert over score_batches training batches, all
 * experts routable (the unmasked router, so an expert this client did not train last
 * round scores as any other); 'routed' marks experts some scored token picked.
 * s_cum and s_spec are per batch, averaged over the batches; p(z_e) in KL_e is the mean
 * over all the scored tokens, the client's usage u(e), so KL_e = mean_x G log G - u log u. */
static fm_err score(fm_client_ctx *cx, fm_rng *rng, double *imp, double *kl, double *use, uint8_t *routed) {
  const fm_config *c = cx->cfg;
  const fm_model_shape *s = fm_model_get_shape(cx->model);
  int B = c->train.batch, T = c->train.seq_len, E = s->experts, k = s->top_k, nb = c->hfedmoe.score_batches;
  const fm_client_data *cd = &cx->data->clients[cx->client];
  double lam = c->hfedmoe.lambda;
  for (int b = 0; b < nb; b++) {
    float ce;
    FM_CHECK(fm_batch_sample(&cx->data->corpus, &cd->split[FM_SPLIT_TRAIN], rng, B, T, cx->tokens, cx->targets, NULL));
    FM_CHECK(fm_model_forward(cx->model, cx->tokens, cx->targets, B, T, &ce, NULL));
    int ntok = B * T;
    for (int l = 0; l < s->layers; l++) {
      if (!(s->moe_mask >> l & 1)) continue;
      const float *p = fm_model_router_probs(cx->model, l);
      const int32_t *pk = fm_model_router_picks(cx->model, l);
      for (int e = 0; e < E; e++) {
        double sum = 0, mx = 0, glogg = 0;
        for (int x = 0; x < ntok; x++) {
          double g = p[(size_t)x * E + e];
          sum += g;
          if (g > mx) mx = g;
          if (g > 0) glogg += g * log(g);
        }
        size_t i = (size_t)l * E + e;
        imp[i] += (lam * sum / ntok + (1 - lam) * mx) / nb;
        kl[i] += glogg / ntok / nb; /* mean G log G for now */
        use[i] += sum / ntok / nb;
      }
      for (int x = 0; x < ntok * k; x++)
        if (pk[x] >= 0) routed[(size_t)l * E + pk[x]] = 1;
    }
  }
  for (int l = 0; l < s->layers; l++)
    for (int e = 0; e < E && s->moe_mask >> l & 1; e++) {
      size_t i = (size_t)l * E + e;
      if (use[i] > 0) kl[i] -= use[i] * log(use[i]);
      if (kl[i] < 0) kl[i] = 0; /* rounding: a KL is never negative */
    }
  return FM_OK;
}

/* The b best experts of a layer by key (higher first, ties to the lower index),
 * among the candidates. */
static void top_b(const double *key, const uint8_t *cand, int E, int b, uint8_t *sel) {
  for (int n = 0; n < b; n++) {
    int best = -1;
    for (int e = 0; e < E; e++)
      if (cand[e] && !sel[e] && (best < 0 || key[e] > key[best])) best = e;
    if (best < 0) return;
    sel[best] = 1;
  }
}

/* (ours) hfedmoe.explore = t > 0 (default 2): the b experts are drawn without
 * replacement with probabilities proportional to exp(z(e) / t), z the key standardised
 * over the candidates (Gumbel top-b), instead of taken as the b best. Why: every client
 * scores with the same global router, whose preferences differ far more between
 * experts than between clients' data, so the top b is the same for nearly all clients
 * and, as the chosen experts' router probabilities grow, in every round; the others
 * are never trained while the unmasked router still sends test tokens to them
 * (README, hfedmoe). Standardising makes t independent of the scores' scale; t -> 0
 * is the paper's top b, t -> inf a uniform subset. Deterministic: the draws come from
 * the (seed, client, round) strategy stream, after the scoring batches. */
static void sample_b(const double *key, const uint8_t *cand, int E, int b, double t, fm_rng *rng, uint8_t *sel) {
  double m = 0, v = 0, pert[FM_MAX_EXPERTS];
  int n = 0;
  for (int e = 0; e < E; e++)
    if (cand[e]) m += key[e], n++;
  if (!n) return;
  m /= n;
  for (int e = 0; e < E; e++)
    if (cand[e]) v += (key[e] - m) * (key[e] - m);
  double sd = sqrt(v / n);
  for (int e = 0; e < E; e++) { /* every expert draws, so the stream does not depend on cand */
    double u = fm_rng_uniform(rng), g = -log(-log(u > 0 ? u : 0x1p-53));
    pert[e] = (sd > 0 ? (key[e] - m) / sd / t : 0) + g;
  }
  top_b(pert, cand, E, b, sel);
}

static fm_err hfedmoe_update(fm_client_ctx *cx) {
  const fm_config *c = cx->cfg;
  const fm_model_shape *s = fm_model_get_shape(cx->model);
  int L = s->layers, E = s->experts, b = cx->budget;
  double *imp = cx->stats + (size_t)ST_IMPORTANCE * L * E, *kl = cx->stats + (size_t)ST_KL * L * E;
  double *use = cx->stats + (size_t)ST_USAGE * L * E, *sel_out = cx->stats + (size_t)ST_SELECTED * L * E;
  uint8_t routed[FM_MAX_LAYERS * FM_MAX_EXPERTS] = {0}, all[FM_MAX_EXPERTS];
  memset(selected, 0, sizeof selected);
  memset(all, 1, sizeof all);
  fm_rng rng;
  fm_rng_init(&rng, (uint64_t)c->run.seed, (uint32_t)cx->client, (uint32_t)cx->round, FM_RNG_STRATEGY);
  for (int l = 0; l < L; l++)
    if (s->moe_mask >> l & 1) FM_CHECK(fm_model_set_route_mask(cx->model, l, NULL));
  FM_CHECK(score(cx, &rng, imp, kl, use, routed));
  for (int l = 0; l < L; l++) {
    if (!(s->moe_mask >> l & 1)) continue;
    size_t o = (size_t)l * E;
    double key[FM_MAX_EXPERTS];
    switch (c->hfedmoe.select) {
    case FM_SELECT_IB:
      for (int e = 0; e < E; e++) key[e] = imp[o + e] - c->hfedmoe.beta * kl[o + e];
      if (c->hfedmoe.explore > 0)
        sample_b(key, routed + o, E, b, c->hfedmoe.explore, &rng, selected + o);
      else
        top_b(key, routed + o, E, b, selected + o);
      break;
    case FM_SELECT_USAGE:
      if (c->hfedmoe.explore > 0)
        sample_b(use + o, routed + o, E, b, c->hfedmoe.explore, &rng, selected + o);
      else
        top_b(use + o, routed + o, E, b, selected + o);
      break;
    default: { /* the ablation: a uniformly drawn subset of the same size */
      uint32_t pick[FM_MAX_EXPERTS];
      fm_rng_choose(&rng, (uint32_t)E, (uint32_t)b, pick);
      for (int j = 0; j < b; j++) selected[o + pick[j]] = 1;
    }
    }
    for (int e = 0; e < E; e++) sel_out[o + e] = selected[o + e];
    if (c->hfedmoe.mask_forward) FM_CHECK(fm_model_set_route_mask(cx->model, l, selected + o));
  }
  cx->expert_trainable = selected;
  double loss = 0;
  int K = c->fl.local_steps;
  const unsigned everything = 1u << BASE | 1u << EXPERTS | 1u << ROUTER;
  fm_err err = FM_OK;
  for (int k = 0; k < K && !err; k++)
    err = fm_client_train_step(cx, FM_SPLIT_TRAIN, everything, fm_client_lr(cx, k, c->train.lr), &loss);
  /* the host's model serves other clients next: route to every expert again */
  for (int l = 0; l < L; l++)
    if (s->moe_mask >> l & 1) fm_model_set_route_mask(cx->model, l, NULL);
  cx->expert_trainable = NULL;
  FM_CHECK(err);
  cx->res->train_loss = K ? loss / K : 0;
  return FM_OK;
}

static double hfedmoe_contribution(const fm_client_ctx *cx, const fm_tensor *t, double token_weight) {
  const fm_model_shape *s = fm_model_get_shape(cx->model);
  int E = s->experts;
  double tau = cx->cfg->hfedmoe.tau;
  const double *imp = cx->stats + (size_t)ST_IMPORTANCE * s->layers * E;
  const double *use = cx->stats + (size_t)ST_USAGE * s->layers * E;
  if (t->group == FM_GROUP_EXPERT) {
    size_t i = (size_t)t->layer * E + t->expert;
    return selected[i] && use[i] >= tau ? token_weight : 0;
  }
  if (t->group == FM_GROUP_ROUTER) { /* alpha_i: sum over its used experts of usage x importance */
    double alpha = 0;
    for (int e = 0; e < E; e++) {
      size_t i = (size_t)t->layer * E + e;
      if (use[i] >= tau) alpha += use[i] * imp[i];
    }
    return alpha;
  }
  return token_weight;
}

const fm_strategy fm_strategy_hfedmoe = {
  .name = "hfedmoe",
  .nclass = 3,
  .shared = {1, 1, 1},
  .classify = classify_hfedmoe,
  .local_update = hfedmoe_update,
  .contribution = hfedmoe_contribution,
  .nstats = NSTATS,
  .stat_names = {"selected", "importance", "kl", "usage"},
  .budget_kind = FM_BUDGET_EXPERTS,
};
