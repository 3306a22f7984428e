/* toolkit_config.c - cross-key checks of the federated-learning toolkit's keys; the
 * ranges of single keys (mu, clip, noise >= 0, known optimizer names) are the key
 * table's. */
#include "fedmoe/toolkit.h"

#include "fedmoe/fl.h"

#include <math.h>

/* Ditto's personal model is a second copy of the shared tensors that the client
 * trains on its own; with fedavg every trained tensor is shared, so that copy is the
 * client's whole model. The other strategies split the model so that it is not. */
static fm_err ditto_validate(const fm_config *c) {
  switch (c->fl.strategy) {
  case FM_STRAT_FEDAVG: break;
  case FM_STRAT_LOCAL:
    FM_CONFIG_ERROR(c, "fl.ditto", "strategy local shares nothing: each client's model is already its own, and "
                    "there is no global model to pull a personal one towards (use fl.strategy = fedavg)");
  case FM_STRAT_COMIGS:
    FM_CONFIG_ERROR(c, "fl.ditto", "strategy comigs personalises already: its specialists and router are private "
                    "to each client, and a personal copy of the shared generalists would be trained apart from "
                    "them (use fl.strategy = fedavg)");
  case FM_STRAT_HFEDMOE:
    FM_CONFIG_ERROR(c, "fl.ditto", "strategy hfedmoe trains a budget of experts per client, chosen each round to "
                    "fit its memory; a personal model trains every shared tensor, beyond that budget (use "
                    "fl.strategy = fedavg)");
  case FM_STRAT_FEDBIOT:
    FM_CONFIG_ERROR(c, "fl.ditto", "strategy fedbiot's clients train an emulator (compressed blocks) while the "
                    "model is the server's full one; a personal model on the emulator is no model a client "
                    "would use (use fl.strategy = fedavg)");
  default:
    FM_CONFIG_ERROR(c, "fl.ditto", "Ditto works with fl.strategy = fedavg only");
  }
  if (c->fltk.finetune_steps > 0)
    FM_CONFIG_ERROR(c, "fl.ditto", "fl.finetune_steps = %d is the other personalisation baseline (fine-tuning the "
                    "final global model); its figures would be mixed with Ditto's personal ones: run them "
                    "separately", c->fltk.finetune_steps);
  return FM_OK;
}

fm_err fm_toolkit_validate(const fm_config *c) {
  const int local = c->fl.strategy == FM_STRAT_LOCAL, poisson = c->fltk.sampling == FM_SAMPLING_POISSON;
  if (!(c->privacy.delta > 0 && c->privacy.delta < 1))
    FM_CONFIG_ERROR(c, "privacy.delta", "must be in (0,1), got %g", c->privacy.delta);
  if (c->privacy.clip == 0 && c->privacy.noise_multiplier > 0)
    FM_CONFIG_ERROR(c, "privacy.clip", "noise of privacy.noise_multiplier = %g times the clip needs a clip > 0",
                    c->privacy.noise_multiplier);
  if (c->privacy.clip == 0 && c->privacy.target_epsilon > 0)
    FM_CONFIG_ERROR(c, "privacy.clip", "privacy.target_epsilon needs clipped updates: set privacy.clip > 0");
  if (local && c->privacy.clip > 0)
    FM_CONFIG_ERROR(c, "privacy.clip", "strategy local shares nothing: there is no update to make private");
  if (local && c->fltk.secure_agg)
    FM_CONFIG_ERROR(c, "fl.secure_agg", "strategy local shares nothing: there is nothing to aggregate");
  if (local && c->fltk.server_opt != FM_SERVER_AVG)
    FM_CONFIG_ERROR(c, "fl.server_opt", "strategy local shares nothing: there is no server update");
  if (c->fltk.scaffold && local)
    FM_CONFIG_ERROR(c, "fl.scaffold", "strategy local shares nothing: there is no drift to correct");
  if (c->fltk.scaffold && c->privacy.clip > 0)
    FM_CONFIG_ERROR(c, "fl.scaffold", "the control variates would leave the clients unclipped and without noise, "
                    "outside what privacy.* accounts for");
  if (c->fltk.scaffold && c->fltk.secure_agg)
    FM_CONFIG_ERROR(c, "fl.scaffold", "the control variates' changes are not masked: fl.secure_agg does not cover "
                    "them yet");
  if (c->fltk.compress != FM_COMPRESS_NONE) {
    if (local) FM_CONFIG_ERROR(c, "fl.compress", "strategy local shares nothing: there is no update to compress");
    if (c->privacy.clip > 0)
      FM_CONFIG_ERROR(c, "fl.compress", "compression after DP's clipping would change the update's norm, and "
                      "before it the error feedback would carry unclipped state: not with privacy.clip");
    if (c->fltk.secure_agg)
      FM_CONFIG_ERROR(c, "fl.compress", "secure aggregation masks every entry, so a compressed update is dense "
                      "again: not with fl.secure_agg");
  }
  if (c->fltk.finetune_steps > 0 && local)
    FM_CONFIG_ERROR(c, "fl.finetune_steps", "strategy local has no shared model to fine-tune: its clients train "
                    "their own all along");
  if (c->fltk.ditto) FM_CHECK(ditto_validate(c));
  if (poisson && c->fl.sample_count > 0)
    FM_CONFIG_ERROR(c, "fl.sampling", "poisson samples each client with probability fl.sample_fraction; "
                    "fl.sample_count = %d asks for a fixed count", c->fl.sample_count);
  if (poisson && c->fl.over_select > 0)
    FM_CONFIG_ERROR(c, "fl.sampling", "poisson sampling has no fixed count to over-select beyond "
                    "(fl.over_select = %d)", c->fl.over_select);
  if (c->fltk.secure_agg) {
    if (c->fl.aggregation != FM_AGG_FIXED)
      FM_CONFIG_ERROR(c, "fl.secure_agg", "masks cancel only in the exact integer sums: it needs "
                      "fl.aggregation = fixed");
    double m = poisson ? c->fl.sample_fraction * c->fl.clients : 0;
    if (!poisson) { /* the count fm_sample_clients draws */
      int n = c->fl.clients, k = c->fl.sample_count > 0 ? c->fl.sample_count
                                                        : (int)llround(c->fl.sample_fraction * (double)n);
      if (k < 1) k = 1;
      k += c->fl.over_select;
      m = k > n ? n : k;
    }
    if (m < 2)
      FM_CONFIG_ERROR(c, "fl.secure_agg", "a round has %s%g client%s (fl.clients = %d, fl.sample_fraction = %g, "
                      "fl.sample_count = %d): secure aggregation needs at least 2, or the sum is one client's "
                      "update", poisson ? "on average " : "", m, m == 1 ? "" : "s", c->fl.clients,
                      c->fl.sample_fraction, c->fl.sample_count);
  }
  return FM_OK;
}
