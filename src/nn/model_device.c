/* model_device.c - a model on a device backend: its buffers on the device, host
 * mirrors for fl/ and io/, and who owns which.
 *
 * Every class buffer (parameters, gradients) and the frozen one exist twice: on the
 * device, where the passes use them, and on the host, where fm_model_class_params/
 * grads and the tensors' w/g pointers point. A flag per buffer says which copy is
 * newer (FM_SYNC_*):
 *   - a pass (forward, backward, zero_grads, AdamW, the gradient norm) first uploads
 *     every buffer the host owns, and afterwards the device owns what it changed;
 *   - fm_model_class_params/grads, fm_model_tensor/find and fm_model_sync download
 *     what the device owns and hand it to the host, whose callers may then read and
 *     write through the pointer until the next pass.
 * So a training step moves no parameters at all; a client switch moves its classes
 * once each way. AdamW's moments live on the device too, for the fm_adamw (host
 * state) last stepped on each class; they go back into that state's host arrays when
 * the class comes to the host (fl/ saves a client's state right after fetching its
 * parameters), and the next step on another state uploads that one. */
#include "model_impl.h"

#include "fedmoe/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* a class buffer holds a copy per client slot (model_slots.c) */
static size_t buf_numel(const fm_model *m, int k) { return k == m->nclass ? m->fn : m->cn[k] * m->nslot; }
static float *host_w(const fm_model *m, int k) { return k == m->nclass ? m->fw : m->cw[k]; }
static int buf_index(const fm_model *m, int cls) { return cls == FM_CLASS_FROZEN ? m->nclass : cls; }

fm_err fm_model_device_alloc(fm_model *m) {
  fm_backend *be = m->be;
  const int nc = m->nclass;
  FM_CALLOC(m->dw, nc + 1, "device class table");
  FM_CALLOC(m->dg, nc + 1, "device class table");
  FM_CALLOC(m->am, nc + 1, "device class table");
  FM_CALLOC(m->av, nc + 1, "device class table");
  /* the AdamW moments: one state per class and client slot (model_slots.c) */
  FM_CALLOC(m->atag_m, (size_t)(nc + 1) * m->nslot, "device class table");
  FM_CALLOC(m->atag_v, (size_t)(nc + 1) * m->nslot, "device class table");
  FM_CALLOC(m->adev, (size_t)(nc + 1) * m->nslot, "device class table");
  FM_CALLOC(m->wsync, nc + 1, "device class table");
  FM_CALLOC(m->gsync, nc + 1, "device class table");
  for (int c = 0; c < nc; c++) {
    FM_CHECK(be->alloc(be, &m->dw[c], buf_numel(m, c) * sizeof(float), "a class of parameters"));
    FM_CHECK(be->alloc(be, &m->dg[c], buf_numel(m, c) * sizeof(float), "a class of gradients"));
  }
  FM_CHECK(be->alloc(be, &m->dw[nc], m->fn * sizeof(float), "the frozen parameters"));
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    m->tw[i] = m->dw[buf_index(m, t->cls)] + t->offset;
    m->tg[i] = t->g ? m->dg[t->cls] + t->offset : NULL;
  }
  FM_CALLOC(m->astash, nc + 1, "device class table"); /* resident clients (model_stash.c) */
  FM_CALLOC(m->keep, nc + 1, "device class table");
  return FM_OK; /* both copies are zero: FM_SYNC_SAME */
}

void fm_model_device_free(fm_model *m) {
  fm_backend *be = m->be;
  for (int k = 0; k <= m->nclass; k++) {
    if (m->dw) be->free(be, m->dw[k]);
    if (m->dg) be->free(be, m->dg[k]);
    if (m->am) be->free(be, m->am[k]);
    if (m->av) be->free(be, m->av[k]);
  }
  be->free(be, m->dinj);
  free(m->dw), free(m->dg), free(m->am), free(m->av), free(m->atag_m), free(m->atag_v);
  free(m->adev), free(m->astash), free(m->keep), free(m->wsync), free(m->gsync), free(m->stage);
}

fm_err fm_model_moe_alloc(fm_model *m, fm_block *b, int N, const fm_moe_dims *dm) {
  FM_CHECK(fm_moe_alloc(&b->moe_layer, N, dm));
  if (m->be->moe_create) FM_CHECK(m->be->moe_create(m->be, &b->moe_layer, &b->moe_dev));
  if (m->nslot < 2) return FM_OK;
  /* slots 1..: their part of the rows each (slot 0's layer also serves a plain forward) */
  FM_CALLOC(b->moe_more, (size_t)m->nslot - 1, "client slots' MoE layers");
  if (m->be->moe_create) FM_CALLOC(b->moe_more_dev, (size_t)m->nslot - 1, "client slots' MoE layers");
  for (int g = 1; g < m->nslot; g++) {
    FM_CHECK(fm_moe_alloc(fm_block_moe(b, g), N / m->nslot, dm));
    if (m->be->moe_create) FM_CHECK(m->be->moe_create(m->be, fm_block_moe(b, g), &b->moe_more_dev[g - 1]));
  }
  return FM_OK;
}

void fm_model_routing_to_host(const fm_model *m) {
  fm_model *w = (fm_model *)m; /* the host layers' routing is a cache of the device's */
  if (w->routed) return;
  for (int l = 0; l < w->s.layers; l++)
    for (int g = 0; w->blk[l].moe && g < w->nslot; g++) {
      void *dev = fm_block_moe_dev(&w->blk[l], g);
      fm_err e = dev ? w->be->moe_routing(w->be, dev, fm_block_moe(&w->blk[l], g)) : FM_OK;
      if (e) fm_fatal(e);
    }
  w->routed = 1;
}

fm_err fm_model_to_device(fm_model *m) {
  fm_backend *be = m->be;
  if (!be->device) return FM_OK;
  for (int k = 0; k <= m->nclass; k++)
    if (m->wsync[k] == FM_SYNC_HOST) {
      be->upload(be, m->dw[k], host_w(m, k), buf_numel(m, k) * sizeof(float));
      m->wsync[k] = FM_SYNC_SAME;
    }
  for (int c = 0; c < m->nclass; c++)
    if (m->gsync[c] == FM_SYNC_HOST) {
      be->upload(be, m->dg[c], m->cg[c], buf_numel(m, c) * sizeof(float));
      m->gsync[c] = FM_SYNC_SAME;
    }
  return FM_OK; /* a failed upload is the backend's error, reported at the pass's sync */
}

/* the device's AdamW moments of class c in slot g back into the host state they belong to */
static void flush_adamw_slot(fm_model *m, int c, int g) {
  fm_backend *be = m->be;
  const size_t k = (size_t)c * m->nslot + g, off = (size_t)g * m->cn[c];
  if (m->atag_m[k] && m->adev[k]) {
    be->download(be, m->atag_m[k], m->am[c] + off, m->cn[c] * sizeof(float));
    be->download(be, m->atag_v[k], m->av[c] + off, m->cn[c] * sizeof(float));
  }
  m->atag_m[k] = m->atag_v[k] = NULL;
  m->adev[k] = 0;
}
static void flush_adamw(fm_model *m, int c) {
  for (int g = 0; g < m->nslot; g++) flush_adamw_slot(m, c, g);
}

fm_err fm_model_host_params(fm_model *m, int cls) {
  fm_backend *be = m->be;
  if (!be->device) return FM_OK;
  const int k = buf_index(m, cls);
  if (m->wsync[k] == FM_SYNC_DEVICE) be->download(be, host_w(m, k), m->dw[k], buf_numel(m, k) * sizeof(float));
  /* (a resident client's moments stay on the device, then go back to its stash) */
  if (k < m->nclass && !m->astash[k]) flush_adamw(m, k);
  FM_CHECK(be->sync(be, "bring a class of parameters to the host"));
  m->wsync[k] = FM_SYNC_HOST;
  m->keep[k] = 0; /* the host has it now: back to the ordinary protocol */
  if (m->logits_stale) m->logits_stale = 2; /* the host may change them: a fused head's logits are gone */
  return FM_OK;
}

fm_err fm_model_host_grads(fm_model *m, int cls) {
  fm_backend *be = m->be;
  if (!be->device || cls < 0 || cls >= m->nclass) return FM_OK;
  if (m->gsync[cls] == FM_SYNC_DEVICE) be->download(be, m->cg[cls], m->dg[cls], buf_numel(m, cls) * sizeof(float));
  FM_CHECK(be->sync(be, "bring a class of gradients to the host"));
  m->gsync[cls] = FM_SYNC_HOST;
  return FM_OK;
}

/* Everything current on the host. The classes' parameters are the host's from here
 * (their pointers are kept and may be written); the gradients and the frozen
 * parameters are read, so both copies stay valid and the next pass need not upload
 * them. A class loaded from a stash (a resident client's private state,
 * model_stash.c) stays on the device: it goes back to its stash device to device, and
 * an accessor still brings it down when asked. */
fm_err fm_model_sync(fm_model *m) {
  for (int c = -1; c < m->nclass; c++) {
    if (c >= 0 && m->be->device && m->keep[c]) continue;
    const int host_newer = c < 0 && m->be->device && m->wsync[m->nclass] == FM_SYNC_HOST;
    FM_CHECK(fm_model_host_params(m, c));
    /* the frozen buffer, which no pass changes, stays valid on both sides (unless the
     * host wrote it since the last pass): the next pass need not upload it again (a
     * whole frozen base, with model.train = lora, at every client switch); a write to
     * it goes through an accessor, which gives it to the host */
    if (c < 0 && m->be->device && !host_newer) m->wsync[m->nclass] = FM_SYNC_SAME;
    if (c < 0 || !m->be->device) continue;
    FM_CHECK(fm_model_host_grads(m, c));
    m->gsync[c] = FM_SYNC_SAME;
  }
  return FM_OK;
}

void fm_model_flush_adamw(fm_model *m, int c) { flush_adamw(m, c); }

const char *fm_model_device(const fm_model *m) { return m->be->name; }

const float *fm_model_stage(const fm_model *m, const float *dev, size_t n) {
  fm_model *w = (fm_model *)m; /* the staging buffer is scratch, not the model's state */
  if (n > w->stage_n) {
    free(w->stage);
    w->stage = NULL;
    w->stage_n = 0;
    fm_err e = fm_calloc(&w->stage, n, sizeof(float), "host copy of activations");
    if (e) fm_fatal(e);
    w->stage_n = n;
  }
  w->be->download(w->be, w->stage, dev, n * sizeof(float));
  fm_err e = w->be->sync(w->be, "bring activations to the host");
  if (e) fm_fatal(e);
  return w->stage;
}

void fm_adamw_step_device(fm_adamw *o, fm_model *m, int cls, const fm_adamw_hparams *h) {
  fm_backend *be = m->be;
  if (cls < 0 || cls >= m->nclass || m->cn[cls] != o->n)
    fm_fatal(fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_INTERNAL,
                          "AdamW state of %zu values used on class %d", o->n, cls));
  if (!(h->grad_scale >= 0.0f))
    fm_fatal(fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_INTERNAL, "AdamW with grad_scale %g",
                          (double)h->grad_scale));
  /* a resident client's state (m = v = NULL) steps on the moments its stash put on the
   * device (no tag there: nothing is uploaded below); another state's moments take the
   * stash's back to it first (model_stash.c) */
  if (!o->m && !m->astash[cls])
    fm_fatal(fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_INTERNAL,
                          "AdamW state without host arrays on class %d, which holds no resident client", cls));
  if (o->m) fm_model_stash_release(m, cls);
  FM_PROF_BEGIN(t0);
  fm_err e = fm_model_to_device(m);
  if (!e && !m->am[cls]) {
    e = be->alloc(be, &m->am[cls], buf_numel(m, cls) * sizeof(float), "AdamW first moments");
    if (!e) e = be->alloc(be, &m->av[cls], buf_numel(m, cls) * sizeof(float), "AdamW second moments");
  }
  if (e) fm_fatal(e);
  const size_t k = (size_t)cls * m->nslot + m->slot, off = (size_t)m->slot * m->cn[cls];
  float *am = m->am[cls] + off, *av = m->av[cls] + off; /* the current slot's moments */
  if (m->atag_m[k] != o->m) { /* another state than the one on the device */
    flush_adamw_slot(m, cls, m->slot);
    be->upload(be, am, o->m, o->n * sizeof(float));
    be->upload(be, av, o->v, o->n * sizeof(float));
    m->atag_m[k] = o->m;
    m->atag_v[k] = o->v;
  }
  o->step++;
  /* the bias corrections as adamw.c computes them: in double, then rounded */
  const float c1 = 1.0f / (float)(1.0 - pow(h->beta1, (double)o->step));
  const float c2 = 1.0f / (float)(1.0 - pow(h->beta2, (double)o->step));
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    if (t->cls != cls || t->frozen) continue;
    be->adamw(be, m->tw[i], am + t->offset, av + t->offset, m->tg[i], t->numel, h->lr,
              h->beta1, h->beta2, h->eps, t->decay ? h->weight_decay : 0.0f, c1, c2, h->grad_scale);
  }
  m->adev[k] = 1;
  m->wsync[cls] = FM_SYNC_DEVICE;
  if (m->logits_stale) m->logits_stale = 2;
  FM_PROF_END(t0, FM_PROF_OPTIMIZER, FM_PROF_BWD);
}

double fm_model_grad_norm_device(fm_model *m, unsigned mask) {
  fm_err e = fm_model_to_device(m);
  const float **x = NULL;
  size_t *n = NULL;
  if (!e) e = fm_calloc(&x, (size_t)m->nt + 1, sizeof *x, "gradient list");
  if (!e) e = fm_calloc(&n, (size_t)m->nt + 1, sizeof *n, "gradient list");
  if (e) fm_fatal(e);
  int k = 0;
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    if (t->cls < 0 || t->cls >= 32 || !((mask >> t->cls) & 1u) || !t->g || t->frozen) continue;
    x[k] = m->tg[i];
    n[k++] = t->numel;
  }
  const double ss = k ? m->be->sumsq(m->be, x, n, k) : 0.0;
  free(x);
  free(n);
  e = m->be->sync(m->be, "the gradient norm");
  if (e) fm_fatal(e);
  return sqrt(ss);
}
