/* registry.c - strategies by configuration id. */
#include "fedmoe/fl.h"

#include <stddef.h>

const fm_strategy *fm_strategy_get(int id) {
  switch (id) {
  case FM_STRAT_LOCAL: return &fm_strategy_local;
  case FM_STRAT_FEDAVG: return &fm_strategy_fedavg;
  case FM_STRAT_COMIGS: return &fm_strategy_comigs;
  case FM_STRAT_HFEDMOE: return &fm_strategy_hfedmoe;
  case FM_STRAT_FEDBIOT: return &fm_strategy_fedbiot;
  default: return NULL;
  }
}
