/* client_state.c - loading clients into the host's model and keeping their state. */
#include "client_state.h"

#include <stdlib.h>
#include <string.h>

fm_err fm_host_create(fm_host *h, const fm_strategy *st, fm_model *model) {
  memset(h, 0, sizeof *h);
  h->st = st;
  h->model = model;
  h->nclass = st->nclass;
  for (int c = 0; c < h->nclass; c++) {
    size_t n = fm_model_class_numel(model, c);
    float *src = fm_model_class_params(model, c);
    if (st->shared[c]) {
      FM_CALLOC(h->global[c], n, "global shared parameters");
      memcpy(h->global[c], src, n * sizeof(float));
      FM_CHECK(fm_adamw_create(&h->shared_opt[c], n));
    } else {
      FM_CALLOC(h->init_private[c], n, "initial private parameters");
      memcpy(h->init_private[c], src, n * sizeof(float));
    }
  }
  return FM_OK;
}

void fm_host_free(fm_host *h) {
  for (int c = 0; c < h->nclass; c++) {
    free(h->global[c]);
    free(h->init_private[c]);
    fm_adamw_free(&h->shared_opt[c]);
  }
  memset(h, 0, sizeof *h);
}

fm_err fm_host_load(fm_host *h, fm_client_state *cs, fm_adamw *opts, int keep) {
  for (int c = 0; c < h->nclass; c++) {
    size_t n = fm_model_class_numel(h->model, c);
    float *dst = fm_model_class_params(h->model, c);
    if (h->st->shared[c]) {
      memcpy(dst, h->global[c], n * sizeof(float));
      fm_adamw_reset(&h->shared_opt[c]);
      opts[c] = h->shared_opt[c];
      continue;
    }
    if (!cs->allocated && !keep) { /* a view of the initial state, nothing kept */
      memcpy(dst, h->init_private[c], n * sizeof(float));
      memset(&opts[c], 0, sizeof opts[c]);
      continue;
    }
    if (!cs->allocated) {
      FM_CALLOC(cs->params[c], n, "client private parameters");
      memcpy(cs->params[c], h->init_private[c], n * sizeof(float));
      FM_CHECK(fm_adamw_create(&cs->opt[c], n));
    }
    memcpy(dst, cs->params[c], n * sizeof(float));
    opts[c] = cs->opt[c];
  }
  if (keep) cs->allocated = 1;
  return FM_OK;
}

void fm_host_save(fm_host *h, fm_client_state *cs, const fm_adamw *opts) {
  for (int c = 0; c < h->nclass; c++) {
    if (h->st->shared[c]) {
      h->shared_opt[c].step = opts[c].step;
      continue;
    }
    size_t n = fm_model_class_numel(h->model, c);
    memcpy(cs->params[c], fm_model_class_params(h->model, c), n * sizeof(float));
    cs->opt[c].step = opts[c].step; /* m and v were updated in place */
  }
}

void fm_client_state_free(fm_client_state *cs, int nclass) {
  for (int c = 0; c < nclass; c++) {
    free(cs->params[c]);
    fm_adamw_free(&cs->opt[c]);
  }
  memset(cs, 0, sizeof *cs);
}

size_t fm_host_private_bytes(const fm_host *h) {
  size_t b = 0;
  for (int c = 0; c < h->nclass; c++)
    if (!h->st->shared[c]) b += 3 * fm_model_class_numel(h->model, c) * sizeof(float);
  return b;
}

fm_err fm_host_restore(fm_host *h, fm_client_state *cs, int cls, const float *params, const float *m,
                       const float *v, long step) {
  size_t n = fm_model_class_numel(h->model, cls);
  if (!cs->params[cls]) {
    FM_CALLOC(cs->params[cls], n, "client private parameters");
    FM_CHECK(fm_adamw_create(&cs->opt[cls], n));
  }
  memcpy(cs->params[cls], params, n * sizeof(float));
  memcpy(cs->opt[cls].m, m, n * sizeof(float));
  memcpy(cs->opt[cls].v, v, n * sizeof(float));
  cs->opt[cls].step = step;
  cs->allocated = 1;
  return FM_OK;
}
