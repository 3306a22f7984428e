/* model.c - the model object: tensor table, sharing-class buffers, activations,
 * deterministic initialisation, freezing and route masks. The passes are in
 * model_pass.c. */
#include "model_impl.h"

#include "fedmoe/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a, 32 bits: a tensor's initialisation stream is named by its name */
static uint32_t hash32(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) {
    h ^= (uint8_t)*s;
    h *= 16777619u;
  }
  return h;
}

/* Tensor indices of each block, walking the table in the order of fm_shape_tensors. */
static fm_err index_blocks(fm_model *m) {
  const fm_model_shape *s = &m->s;
  if (s->family != FM_FAMILY_GPT2) return fm_llama_index(m);
  m->head = -1;
  int i = 0;
  m->wte = i++;
  m->wpe = i++;
  for (int l = 0; l < s->layers; l++) {
    fm_block *b = &m->blk[l];
    b->moe = (int)((s->moe_mask >> l) & 1);
    b->ln1w = i++;
    b->ln1b = i++;
    b->attw = i++;
    b->attb = i++;
    b->aprw = i++;
    b->aprb = i++;
    b->la1 = b->lb1 = b->la2 = b->lb2 = -1;
    if (s->attn_lora_rank > 0) {
      b->la1 = i++;
      b->lb1 = i++;
      b->la2 = i++;
      b->lb2 = i++;
    }
    b->ln2w = i++;
    b->ln2b = i++;
    b->fcw = b->fcb = b->fpw = b->fpb = b->router = b->ex0 = -1;
    if (!b->moe || s->expert_type == FM_EXPERT_LORA) {
      b->fcw = i++;
      b->fcb = i++;
      b->fpw = i++;
      b->fpb = i++;
    }
    if (b->moe) {
      b->router = i++;
      b->ex0 = i;
      i += 4 * s->experts;
    }
  }
  m->lnfw = i++;
  m->lnfb = i++;
  return FM_OK;
}

static fm_err classify_all(fm_model *m, int nclass, fm_classify_fn classify, void *ctx) {
  for (int i = 0; i < m->nt; i++) {
    fm_tensor *t = &m->t[i];
    t->cls = classify ? classify(t, ctx) : 0;
    if (t->cls != FM_CLASS_FROZEN && (t->cls < 0 || t->cls >= nclass))
      FM_ERROR(FM_ERR_ARG, "the classifier put tensor %s in class %d (classes: 0..%d or frozen)",
               t->name, t->cls, nclass - 1);
  }
  return FM_OK;
}

static fm_err alloc_params(fm_model *m) {
  FM_CALLOC(m->cw, m->nclass ? m->nclass : 1, "class parameter pointers");
  FM_CALLOC(m->cg, m->nclass ? m->nclass : 1, "class gradient pointers");
  FM_CALLOC(m->cn, m->nclass ? m->nclass : 1, "class sizes");
  for (int i = 0; i < m->nt; i++) {
    fm_tensor *t = &m->t[i];
    size_t *n = t->cls == FM_CLASS_FROZEN ? &m->fn : &m->cn[t->cls];
    t->offset = *n;
    *n += t->numel;
  }
  for (int c = 0; c < m->nclass; c++) { /* a copy per client slot (model_slots.c) */
    FM_CALLOC(m->cw[c], m->cn[c] ? m->cn[c] * m->nslot : 1, "class parameters");
    FM_CALLOC(m->cg[c], m->cn[c] ? m->cn[c] * m->nslot : 1, "class gradients");
  }
  FM_CALLOC(m->fw, m->fn ? m->fn : 1, "frozen parameters");
  for (int i = 0; i < m->nt; i++) {
    fm_tensor *t = &m->t[i];
    if (t->cls == FM_CLASS_FROZEN) {
      t->w = m->fw + t->offset;
      t->g = NULL;
    } else {
      t->w = m->cw[t->cls] + t->offset;
      t->g = m->cg[t->cls] + t->offset;
    }
  }
  FM_CALLOC(m->tw, m->nt ? m->nt : 1, "tensor values");
  FM_CALLOC(m->tg, m->nt ? m->nt : 1, "tensor gradients");
  if (m->be->device) return fm_model_device_alloc(m); /* the passes' pointers on the device */
  for (int i = 0; i < m->nt; i++) {
    m->tw[i] = m->t[i].w;
    m->tg[i] = m->t[i].g;
  }
  return FM_OK;
}

/* Activations for B sequences of T tokens, in one arena. */
static fm_err alloc_activations(fm_model *m) {
  const fm_model_shape *s = &m->s;
  const int al = m->be->logits_align;
  m->ldv = al > 1 ? (s->vocab + al - 1) / al * al : s->vocab;
  if (s->family != FM_FAMILY_GPT2) return fm_llama_alloc(m);
  const size_t N = (size_t)m->B * m->T, D = (size_t)s->d, V = (size_t)s->vocab, F = (size_t)s->ffn;
  const size_t att = m->be->attention_saved(m->be, m->B, m->T, s->heads, s->d / s->heads);
  const size_t RA = (size_t)s->attn_lora_rank;
  size_t per_block = 2 * N + N * D + N * 3 * D + att + 2 * N * D + 2 * N + N * D + 2 * N * RA;
  size_t total = (s->layers + 1) * N * D + N * D + 2 * N + N * V + N  /* res, ln_f, logits */
                 + 3 * N * D + 3 * N * D + N * F + N * (size_t)m->ldv + fm_attention_scratch(m->T) + N * RA;
  for (int l = 0; l < s->layers; l++) total += per_block + (m->blk[l].moe ? 0 : 2 * N * F);
  FM_CHECK(m->be->alloc(m->be, &m->arena, total * sizeof(float), "model activations"));
  m->arena_n = total;
  float *q = m->arena;
#define TAKE(ptr, n) (ptr = q, q += (n))
  TAKE(m->res, (s->layers + 1) * N * D);
  TAKE(m->lnf, N * D);
  TAKE(m->lnf_mean, N);
  TAKE(m->lnf_rstd, N);
  TAKE(m->logits, N * V);
  TAKE(m->lse, N);
  TAKE(m->dres, N * D);
  TAKE(m->dln, N * D);
  TAKE(m->datty, N * D);
  TAKE(m->dqkv, 3 * N * D);
  TAKE(m->dfc, N * F);
  TAKE(m->dlogits, N * (size_t)m->ldv);
  TAKE(m->attscr, fm_attention_scratch(m->T));
  TAKE(m->dlz, N * RA);
  for (int l = 0; l < s->layers; l++) {
    fm_block *b = &m->blk[l];
    TAKE(b->lz1, N * RA);
    TAKE(b->lz2, N * RA);
    TAKE(b->ln1, N * D);
    TAKE(b->ln1_mean, N);
    TAKE(b->ln1_rstd, N);
    TAKE(b->qkv, 3 * N * D);
    TAKE(b->att, att);
    TAKE(b->atty, N * D);
    TAKE(b->resa, N * D);
    TAKE(b->ln2, N * D);
    TAKE(b->ln2_mean, N);
    TAKE(b->ln2_rstd, N);
    if (!b->moe) {
      TAKE(b->fch, N * F);
      TAKE(b->fcg, N * F);
    } else {
      const fm_moe_dims dm = fm_shape_moe_dims(s);
      FM_CHECK(fm_model_moe_alloc(m, b, (int)N, &dm));
    }
  }
#undef TAKE
  if ((size_t)(q - m->arena) != total) FM_ERROR(FM_ERR_INTERNAL, "activation arena miscounted");
  FM_CHECK(m->be->alloc(m->be, &m->tokens, N * sizeof(int32_t), "token copy"));
  FM_CHECK(m->be->alloc(m->be, &m->targets, N * sizeof(int32_t), "target copy"));
  return FM_OK;
}

/* A device backend: refuse, before allocating any of it, a model its memory cannot
 * hold - parameters, gradients and AdamW moments of the trained classes, and the
 * activations (counted as the arena will count them). */
static fm_err check_device_memory(fm_model *m) {
  if (!m->be->device) return FM_OK;
  size_t params = 0, trained = 0;
  for (int i = 0; i < m->nt; i++) {
    params += m->t[i].numel;
    if (m->t[i].cls != FM_CLASS_FROZEN) trained += m->t[i].numel * (size_t)m->nslot;
  }
  const size_t N = (size_t)m->B * m->T, D = (size_t)m->s.d, V = (size_t)m->s.vocab;
  const size_t F = (size_t)(m->s.ffn > m->s.shared_ffn ? m->s.ffn : m->s.shared_ffn);
  const size_t att = m->be->attention_saved(m->be, m->B, m->T, m->s.heads, m->s.head_dim > 0 ? m->s.head_dim : m->s.d / m->s.heads), W = 3 * D + 2 * (size_t)m->s.heads * m->s.head_dim;
  /* an upper bound of either family's arena (model.c, model_llama.c) */
  const size_t act = (m->s.layers + 1) * N * D + 2 * N * V + 8 * N * D + 4 * N * F + 2 * N * W +
                     (size_t)m->s.layers * (att + 2 * N * W + 6 * N * D + 3 * N * F + 8 * N);
  /* each MoE block's device layer: slot 0's for every row, the other slots' for theirs */
  const fm_moe_dims dm = fm_shape_moe_dims(&m->s);
  double moe = 0;
  for (int l = 0; l < m->s.layers; l++)
    if (m->s.moe_mask >> l & 1)
      moe += (double)fm_moe_bytes((int)N, &dm) + (m->nslot - 1) * (double)fm_moe_bytes((int)(N / m->nslot), &dm);
  const double need = 4.0 * ((double)params + 3.0 * (double)trained + (double)act) + moe;
  const size_t have = m->be->mem_free(m->be);
  if (need > (double)have)
    FM_ERROR(FM_ERR_MEM,
             "run.device = %s: the model needs about %.1f MiB of GPU memory (%zu parameters, %zu trained "
             "with gradients and AdamW moments, activations for batch %d x %d%s), the GPU has %.1f MiB free; "
             "lower train.batch or train.seq_len%s, or use a smaller model",
             m->be->name, need / 1048576.0, params, trained, m->B, m->T,
             m->nslot > 1 ? ", all client slots" : "", (double)have / 1048576.0,
             m->nslot > 1 ? " or run.client_batch" : "");
  return FM_OK;
}

/* Client slots train what each slot's part computes on its own over a frozen base:
 * attention LoRA pairs (the grouped LoRA operations) and what an MoE block holds (it
 * runs per part: routers, experts); nothing else may train. */
static fm_err check_slots(const fm_model *m) {
  if (m->nslot == 1) return FM_OK;
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    if (t->cls != FM_CLASS_FROZEN && t->group != FM_GROUP_ATTN_LORA && t->group != FM_GROUP_ROUTER &&
        t->group != FM_GROUP_EXPERT)
      FM_ERROR(FM_ERR_CONFIG, "%d client slots train attention LoRA pairs, routers and experts only, but tensor "
               "%s trains (model.train = lora); set run.client_batch = 1", m->nslot, t->name);
  }
  return FM_OK;
}

static fm_err build(fm_model *m, const fm_model_shape *s, int B, int T, int nslot, int nclass,
                    fm_classify_fn classify, void *ctx) {
  FM_CHECK(fm_shape_check(s));
  if (B < 1) FM_ERROR(FM_ERR_CONFIG, "key 'train.batch': batch = %d", B);
  if (nslot < 1 || (long)nslot * B > 1L << 24)
    FM_ERROR(FM_ERR_CONFIG, "key 'run.client_batch': %d client slots of batch %d", nslot, B);
  if (T < 1 || T > s->context)
    FM_ERROR(FM_ERR_CONFIG, "key 'train.seq_len': seq_len = %d must be 1..model.context = %d", T,
             s->context);
  if (nclass < 0 || nclass > 32 || (!classify && nclass < 1))
    FM_ERROR(FM_ERR_ARG, "%d sharing classes: need 1..32 (0 only with a classifier)", nclass);
  m->s = *s;
  fm_shape_resolve(&m->s);
  s = &m->s;
  m->be = fm_backend_default();
  FM_CHECK(m->be->refuse(m->be, s));
  m->nslot = nslot;
  m->nact = m->live = 1;
  m->B = B * nslot; /* room for every slot's sequences */
  m->T = T;
  m->nclass = nclass;
  FM_CALLOC(m->slot_ce, nslot, "slot losses");
  FM_CALLOC(m->slot_nvalid, nslot, "slot losses");
  m->nt = fm_shape_tensors(s, NULL);
  FM_CALLOC(m->t, m->nt, "tensor table");
  fm_shape_tensors(s, m->t);
  FM_CALLOC(m->blk, s->layers, "blocks");
  FM_CHECK(index_blocks(m));
  FM_CHECK(classify_all(m, nclass, classify, ctx));
  FM_CHECK(check_slots(m));
  FM_CHECK(check_device_memory(m));
  FM_CHECK(alloc_params(m));
  FM_CHECK(alloc_activations(m));
  return FM_OK;
}

fm_err fm_model_create(fm_model **mp, const fm_model_shape *s, int B, int T, int nclass,
                       fm_classify_fn classify, void *ctx) {
  return fm_model_create_slots(mp, s, B, T, 1, nclass, classify, ctx);
}

fm_err fm_model_create_slots(fm_model **mp, const fm_model_shape *s, int B, int T, int nslot, int nclass,
                             fm_classify_fn classify, void *ctx) {
  *mp = NULL;
  fm_model *m;
  FM_CALLOC(m, 1, "model");
  fm_err e = build(m, s, B, T, nslot, nclass, classify, ctx);
  if (e) {
    fm_model_free(m);
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  *mp = m;
  return FM_OK;
}

void fm_model_free(fm_model *m) {
  if (!m) return;
  if (m->blk)
    for (int l = 0; l < m->s.layers; l++)
      if (m->blk[l].moe) {
        fm_block *b = &m->blk[l];
        for (int g = 0; g < m->nslot && (!g || b->moe_more); g++) { /* slot 0's, the others' if made */
          fm_moe_free(fm_block_moe(b, g));
          if (fm_block_moe_dev(b, g)) m->be->moe_destroy(m->be, fm_block_moe_dev(b, g));
        }
        free(b->moe_more);
        free(b->moe_more_dev);
      }
  for (int c = 0; c < m->nclass; c++) {
    if (m->cw) free(m->cw[c]);
    if (m->cg) free(m->cg[c]);
  }
  if (m->be) {
    m->be->free(m->be, m->arena);
    m->be->free(m->be, m->tokens);
    m->be->free(m->be, m->targets);
    if (m->be->device) fm_model_device_free(m);
  }
  free(m->cw);
  free(m->cg);
  free(m->cn);
  free(m->fw);
  free(m->tw);
  free(m->tg);
  free(m->blk);
  free(m->t);
  free(m->slot_ce);
  free(m->slot_nvalid);
  free(m);
}

const fm_model_shape *fm_model_get_shape(const fm_model *m) { return &m->s; }

fm_err fm_model_init(fm_model *m, uint64_t seed) {
  const float std = m->s.init_std;
  const float proj_std = std / sqrtf(2.0f * (float)m->s.layers);
  for (int i = 0; i < m->nt; i++) {
    fm_tensor *t = &m->t[i];
    float *restrict w = t->w;
    const size_t n = t->numel;
    if (fm_ends_with(t->name, ".bias") || fm_ends_with(t->name, ".lora_B")) {
      memset(w, 0, n * sizeof *w);
    } else if (t->group == FM_GROUP_NORM) { /* LayerNorm weights */
      for (size_t j = 0; j < n; j++) w[j] = 1.0f;
    } else {
      fm_rng r;
      fm_rng_init(&r, seed, hash32(t->name), 0, FM_RNG_INIT);
      /* the matrices that write into the residual stream, scaled as GPT-2 does */
      const int proj = fm_ends_with(t->name, "c_proj.weight") || fm_ends_with(t->name, "o_proj.weight") ||
                       fm_ends_with(t->name, "down_proj.weight") || fm_ends_with(t->name, ".w2.weight");
      const float sd = proj ? proj_std : std;
      for (size_t j = 0; j < n; j++) w[j] = sd * (float)fm_rng_normal(&r);
    }
  }
  if (m->be->device) /* written on the host: it owns every buffer now */
    for (int c = 0; c <= m->nclass; c++) m->wsync[c] = FM_SYNC_HOST;
  return FM_OK;
}

int fm_model_ntensors(const fm_model *m) { return m->nt; }

/* On a device, the caller may read or write the tensor's values and gradient through
 * t->w and t->g: its class comes to the host, which owns it until the next pass. */
static fm_tensor *to_host(fm_model *m, int i) {
  if (m->be->device) {
    fm_err e = fm_model_host_params(m, m->t[i].cls);
    if (!e && m->t[i].cls != FM_CLASS_FROZEN) e = fm_model_host_grads(m, m->t[i].cls);
    if (e) fm_fatal(e);
  }
  return &m->t[i];
}

fm_tensor *fm_model_tensor(fm_model *m, int i) {
  return i >= 0 && i < m->nt ? to_host(m, i) : NULL;
}

fm_tensor *fm_model_find(fm_model *m, const char *name) {
  for (int i = 0; i < m->nt; i++)
    if (!strcmp(m->t[i].name, name)) return to_host(m, i);
  return NULL;
}

int fm_model_nclass(const fm_model *m) { return m->nclass; }

/* cls may be FM_CLASS_FROZEN: the frozen buffer (no gradients) */
size_t fm_model_class_numel(const fm_model *m, int cls) {
  if (cls == FM_CLASS_FROZEN) return m->fn;
  return cls >= 0 && cls < m->nclass ? m->cn[cls] : 0;
}

float *fm_model_class_params(fm_model *m, int cls) {
  if (cls != FM_CLASS_FROZEN && (cls < 0 || cls >= m->nclass)) return NULL;
  if (m->be->device) {
    fm_err e = fm_model_host_params(m, cls);
    if (e) fm_fatal(e);
  }
  return cls == FM_CLASS_FROZEN ? m->fw : m->cw[cls] + (size_t)m->slot * m->cn[cls];
}

float *fm_model_class_grads(fm_model *m, int cls) {
  if (cls < 0 || cls >= m->nclass) return NULL;
  if (m->be->device) {
    fm_err e = fm_model_host_grads(m, cls);
    if (e) fm_fatal(e);
  }
  return m->cg[cls] + (size_t)m->slot * m->cn[cls];
}

void fm_model_freeze_class(fm_model *m, int cls, int frozen) {
  for (int i = 0; i < m->nt; i++)
    if (m->t[i].cls == cls) m->t[i].frozen = frozen ? 1 : 0;
}

void fm_model_freeze_group(fm_model *m, fm_group g, int layer, int frozen) {
  for (int i = 0; i < m->nt; i++)
    if (m->t[i].group == g && (layer < 0 || m->t[i].layer == layer)) m->t[i].frozen = frozen ? 1 : 0;
}

void fm_model_zero_grads(fm_model *m) {
  FM_PROF_BEGIN(t0);
  if (m->be->device) { /* on the device; the host mirrors are stale from here */
    for (int c = 0; c < m->nclass; c++) {
      m->be->zero(m->be, m->dg[c], m->cn[c] * m->nslot * sizeof(float));
      m->gsync[c] = FM_SYNC_DEVICE;
    }
  } else {
    for (int c = 0; c < m->nclass; c++) memset(m->cg[c], 0, m->cn[c] * m->nslot * sizeof(float));
  }
  FM_PROF_END(t0, FM_PROF_OPTIMIZER, FM_PROF_BWD);
}

size_t fm_nn_model_bytes(const fm_model *m) {
  size_t n = m->fn;
  for (int c = 0; c < m->nclass; c++) n += 2 * m->cn[c] * m->nslot;
  n += m->arena_n;
  for (int l = 0; l < m->s.layers; l++)
    for (int g = 0; m->blk[l].moe && g < m->nslot && (!g || m->blk[l].moe_more); g++)
      n += fm_block_moe(&m->blk[l], g)->nbytes / sizeof(float);
  return n * sizeof(float) + 2 * (size_t)m->B * m->T * sizeof(int32_t);
}

const float *fm_model_logits(const fm_model *m) {
  if (!m->have_fwd) return NULL;
  if (m->logits_stale == 2) return NULL; /* a fused head's, and the weights changed since */
  if (m->logits_stale) fm_model_logits_ready((fm_model *)m); /* the logits are a cache of the forward */
  return m->be->device ? fm_model_stage(m, m->logits, (size_t)m->Bc * m->Tc * m->s.vocab) : m->logits;
}

const float *fm_model_router_probs(const fm_model *m, int layer) {
  if (layer < 0 || layer >= m->s.layers || !m->blk[layer].moe || !m->have_fwd) return NULL;
  fm_model_routing_to_host(m);
  return fm_block_moe(&m->blk[layer], m->nact > 1 ? m->slot : 0)->probs;
}

const int32_t *fm_model_router_picks(const fm_model *m, int layer) {
  if (layer < 0 || layer >= m->s.layers || !m->blk[layer].moe || !m->have_fwd) return NULL;
  fm_model_routing_to_host(m);
  return fm_block_moe(&m->blk[layer], m->nact > 1 ? m->slot : 0)->picks;
}

fm_err fm_model_set_route_mask(fm_model *m, int layer, const uint8_t *allowed) {
  if (layer < 0 || layer >= m->s.layers)
    FM_ERROR(FM_ERR_ARG, "route mask for block %d: the model has blocks 0..%d", layer, m->s.layers - 1);
  if (!m->blk[layer].moe) FM_ERROR(FM_ERR_ARG, "route mask for block %d, which is not an MoE block", layer);
  for (int g = 0; g < m->nslot; g++) { /* every client slot's layer */
    FM_CHECK(fm_moe_set_mask(fm_block_moe(&m->blk[layer], g), allowed));
    void *dev = fm_block_moe_dev(&m->blk[layer], g);
    if (dev) FM_CHECK(m->be->moe_set_mask(m->be, dev, allowed));
  }
  return FM_OK;
}
