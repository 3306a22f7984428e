/* model_stash.c - stashes: a hosted client's private class kept in a device model's
 * memory (include/fedmoe/model.h), so a client switch copies it device to device
 * instead of through the host.
 *
 * Loading a stash writes the class's device buffer (the device then owns it, and
 * keep[c] tells fm_model_sync to leave it there) and the device's AdamW moment
 * buffers of the class, which from then on belong to the stash (astash[c]) rather
 * than to a host state (atag). The client's steps run on those buffers; saving copies
 * values and moments back. Another state's moments displacing the stash's first copy
 * them back when they are newer (fm_model_stash_release), so no order of loads,
 * steps and saves loses a step. */
#include "model_impl.h"

#include <stdint.h>
#include <stdlib.h>

struct fm_stash {
  int cls;
  size_t n;
  float *w, *m, *v; /* device memory, n floats each */
};

/* for the libraries' workspaces and scratch the passes allocate later (cuBLAS, the
 * fused head's chunks): left free whatever the stashes would take */
#define STASH_MARGIN ((size_t)512 << 20)

size_t fm_model_stash_room(const fm_model *m) {
  if (!m->be->device) return 0;
  size_t have = m->be->mem_free(m->be);
  if (have == SIZE_MAX) return SIZE_MAX;
  if (m->be->sharers > 1) have /= (size_t)m->be->sharers; /* this rank's share of its GPU */
  size_t later = STASH_MARGIN; /* the AdamW moments not yet allocated (at a class's first step) */
  for (int c = 0; c < m->nclass; c++)
    if (!m->am[c]) later += 2 * m->cn[c] * sizeof(float);
  return have > later ? have - later : 0;
}

size_t fm_model_stash_bytes(const fm_model *m, int cls) { return 3 * m->cn[cls] * sizeof(float); }

fm_err fm_model_stash_alloc(fm_model *m, int cls, fm_stash **out) {
  *out = NULL;
  if (!m->be->device || cls < 0 || cls >= m->nclass)
    FM_ERROR(FM_ERR_INTERNAL, "a stash of class %d on a %s model of %d classes", cls, m->be->name, m->nclass);
  fm_stash *s;
  FM_CALLOC(s, 1, "a resident client's class");
  s->cls = cls;
  s->n = m->cn[cls];
  fm_err err = m->be->alloc(m->be, &s->w, s->n * sizeof(float), "a resident client's private parameters");
  if (!err) err = m->be->alloc(m->be, &s->m, s->n * sizeof(float), "a resident client's AdamW moments");
  if (!err) err = m->be->alloc(m->be, &s->v, s->n * sizeof(float), "a resident client's AdamW moments");
  if (err) {
    fm_model_stash_free(m, s);
    return err;
  }
  *out = s;
  return FM_OK;
}

void fm_model_stash_free(fm_model *m, fm_stash *s) {
  if (!s) return;
  if (m->astash && m->astash[s->cls] == s) m->astash[s->cls] = NULL, m->adev[s->cls] = 0;
  m->be->free(m->be, s->w);
  m->be->free(m->be, s->m);
  m->be->free(m->be, s->v);
  free(s);
}

void fm_model_stash_release(fm_model *m, int c) {
  fm_stash *s = m->astash[c];
  if (!s) return;
  if (m->adev[c]) {
    m->be->copy(m->be, s->m, m->am[c], s->n * sizeof(float));
    m->be->copy(m->be, s->v, m->av[c], s->n * sizeof(float));
  }
  m->astash[c] = NULL;
  m->adev[c] = 0;
}

fm_err fm_model_stash_load(fm_model *m, fm_stash *s) {
  fm_backend *be = m->be;
  const int c = s->cls;
  const size_t bytes = s->n * sizeof(float);
  if (!m->am[c]) { /* the class's moment buffers, as its first AdamW step would make them */
    FM_CHECK(be->alloc(be, &m->am[c], bytes, "AdamW first moments"));
    FM_CHECK(be->alloc(be, &m->av[c], bytes, "AdamW second moments"));
  }
  /* whoever's moments are there go home first: a stash's, a host state's (its arrays) */
  fm_model_stash_release(m, c);
  fm_model_flush_adamw(m, c);
  be->copy(be, m->dw[c], s->w, bytes);
  be->copy(be, m->am[c], s->m, bytes);
  be->copy(be, m->av[c], s->v, bytes);
  m->wsync[c] = FM_SYNC_DEVICE; /* the host mirror is stale: an accessor brings it down */
  m->keep[c] = 1;
  m->astash[c] = s;
  m->adev[c] = 0;
  if (m->logits_stale) m->logits_stale = 2; /* the weights changed */
  return FM_OK;
}

void fm_model_stash_save(fm_model *m, fm_stash *s) {
  fm_backend *be = m->be;
  const int c = s->cls;
  const size_t bytes = s->n * sizeof(float);
  if (m->wsync[c] == FM_SYNC_HOST) { /* written through the host mirror since: its values are the newer */
    be->upload(be, m->dw[c], m->cw[c], bytes);
    m->wsync[c] = FM_SYNC_SAME;
  }
  be->copy(be, s->w, m->dw[c], bytes);
  if (m->astash[c] == s && m->adev[c]) {
    be->copy(be, s->m, m->am[c], bytes);
    be->copy(be, s->v, m->av[c], bytes);
    m->adev[c] = 0;
  }
}

fm_err fm_model_stash_get(fm_model *m, const fm_stash *s, float *w, float *mo, float *v) {
  fm_backend *be = m->be;
  const int c = s->cls;
  const size_t bytes = s->n * sizeof(float);
  /* the moments on the device may be newer than the stash's (steps since the load) */
  const int live = m->astash[c] == s && m->adev[c];
  if (w) be->download(be, w, s->w, bytes);
  if (mo) be->download(be, mo, live ? m->am[c] : s->m, bytes);
  if (v) be->download(be, v, live ? m->av[c] : s->v, bytes);
  FM_CHECK(be->sync(be, "bring a resident client's private state to the host"));
  return FM_OK;
}

void fm_model_stash_set(fm_model *m, fm_stash *s, const float *w, const float *mo, const float *v) {
  fm_backend *be = m->be;
  const size_t bytes = s->n * sizeof(float);
  if (m->astash[s->cls] == s) m->astash[s->cls] = NULL, m->adev[s->cls] = 0; /* the device's moments are not its now */
  if (w) be->upload(be, s->w, w, bytes);
  if (mo) be->upload(be, s->m, mo, bytes);
  else be->zero(be, s->m, bytes);
  if (v) be->upload(be, s->v, v, bytes);
  else be->zero(be, s->v, bytes);
}
