/* model_pass.c - forward and backward passes of the whole model.
 *
 *   h0 = wte[tok] + wpe[pos]
 *   block l:  a = h + c_proj(attn(c_attn(ln_1(h))));  h' = a + ffn_l(ln_2(a))
 *   logits = ln_f(h_L) wte^T;   loss = CE(logits, targets) + sum of MoE load-balancing terms
 *
 * Every activation lives in the arena made by fm_model_create for (B, T); a pass over
 * B' <= B sequences of T' <= T tokens uses its first B'T' rows. Backward computes only
 * what some trainable, unfrozen tensor needs: weight gradients of frozen tensors are
 * skipped, and the pass stops at the lowest block that holds a tensor to train. */
#include "model_impl.h"

#include <string.h>

/* The head of both families: logits = lnf W^T (W the head tensor, tied or not) and
 * the cross-entropy; its backward to dln, and W's gradient when wanted. */
void fm_model_head_forward(fm_model *m, int head, int N) {
  fm_backend *be = m->be;
  const int D = m->s.d, V = m->s.vocab;
  if (m->nact > 1) { /* client slots: a loss per part (model_slots.c) */
    fm_slots_head_forward(m, head, N);
    return;
  }
  if (be->head_crossentropy) { /* fused: the loss alone now, the logits only if asked for */
    m->ce = (float)be->head_crossentropy(be, &m->nvalid, m->lse, NULL, NULL, 0, m->lnf, fm_model_w(m, head),
                                         m->targets, N, D, V, 1.0f);
    m->logits_stale = 1;
    return;
  }
  /* padded rows (backend.h logits_align): the logits go into dlogits' rows, where the
   * backward turns them into their gradient in place; m->logits is made only if asked for */
  const int ld = m->ldv, padded = ld != V;
  float *z = padded ? m->dlogits : m->logits;
  be->gemm(be, 0, 1, N, V, D, 1.0f, m->lnf, D, fm_model_w(m, head), D, 0.0f, z, ld);
  m->ce = (float)be->crossentropy_forward(be, m->lse, z, ld, m->targets, N, V, &m->nvalid);
  if (padded) m->dlogits_grad = 0, m->logits_stale = 1;
}

void fm_model_logits_ready(fm_model *m) {
  if (!m->logits_stale) return;
  fm_backend *be = m->be;
  const int D = m->s.d, V = m->s.vocab, N = m->Bc * m->Tc, head = m->head >= 0 ? m->head : m->wte;
  be->gemm(be, 0, 1, N, V, D, 1.0f, m->lnf, D, fm_model_w(m, head), D, 0.0f, m->logits, V);
  m->logits_stale = 0;
}

void fm_model_head_backward(fm_model *m, int head, int N) {
  fm_backend *be = m->be;
  const int D = m->s.d, V = m->s.vocab;
  fm_param w = fm_model_param(m, head);
  if (m->nact > 1) {
    fm_slots_head_backward(m, head, N);
    return;
  }
  if (be->head_crossentropy) { /* fused: dln written, the head's gradient added */
    be->head_crossentropy(be, &m->nvalid, NULL, m->dln, w.g, 1, m->lnf, w.w, m->targets, N, D, V, 1.0f);
    return;
  }
  const int ld = m->ldv, padded = ld != V;
  /* padded rows: the forward's logits are in dlogits, unless a backward used them already */
  if (padded && m->dlogits_grad) be->gemm(be, 0, 1, N, V, D, 1.0f, m->lnf, D, w.w, D, 0.0f, m->dlogits, ld);
  be->crossentropy_backward(be, m->dlogits, padded ? m->dlogits : m->logits, ld, m->lse, m->targets, N, V,
                            m->nvalid, 1.0f);
  if (padded) m->dlogits_grad = 1;
  if (w.g) be->gemm(be, 1, 0, V, D, N, 1.0f, m->dlogits, ld, m->lnf, D, 1.0f, w.g, D);
  be->gemm(be, 0, 0, N, D, V, 1.0f, m->dlogits, ld, w.w, D, 0.0f, m->dln, D);
}

static void moe_params(const fm_model *m, const fm_block *b, fm_moe_params *p) {
  p->router = fm_model_param(m, b->router);
  p->fc_w = fm_model_param(m, b->fcw);
  p->fc_b = fm_model_param(m, b->fcb);
  p->pj_w = fm_model_param(m, b->fpw);
  p->pj_b = fm_model_param(m, b->fpb);
  const int lora = m->s.expert_type == FM_EXPERT_LORA;
  for (int e = 0; e < m->s.experts; e++) {
    int i = b->ex0 + 4 * e;
    fm_param *dst[4] = {&p->efc_w[e], &p->efc_b[e], &p->epj_w[e], &p->epj_b[e]};
    fm_param *dstl[4] = {&p->a1[e], &p->b1[e], &p->a2[e], &p->b2[e]};
    for (int j = 0; j < 4; j++) *(lora ? dstl[j] : dst[j]) = fm_model_param(m, i + j);
  }
}

/* The end of a forward: a device's queued work is waited for (the loss came down
 * with the cross-entropy), its failure reported. */
static fm_err forward_done(fm_model *m, double lbsum, float *ce, float *lb) {
  FM_CHECK(m->be->sync(m->be, "the forward pass"));
  m->lb = (float)lbsum;
  m->have_fwd = 1;
  if (ce) *ce = m->ce;
  if (lb) *lb = m->lb;
  return FM_OK;
}

/* the forward over B x T rows, split into m->nact parts (set by the caller) */
static fm_err forward_rows(fm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                           float *ce, float *lb) {
  const fm_model_shape *s = &m->s;
  const int D = s->d, V = s->vocab, L = s->layers;
  if (B < 1 || B > m->B || T < 1 || T > m->T)
    FM_ERROR(FM_ERR_ARG, "forward over [%d,%d] tokens: the model was made for at most [%d,%d]", B, T,
             m->B, m->T);
  const int N = B * T;
  for (int n = 0; n < N; n++) {
    if (tokens[n] < 0 || tokens[n] >= V)
      FM_ERROR(FM_ERR_DATA, "token %d at position %d is outside the vocabulary 0..%d", tokens[n], n,
               V - 1);
    if (targets[n] >= V)
      FM_ERROR(FM_ERR_DATA, "target %d at position %d is outside the vocabulary 0..%d", targets[n], n,
               V - 1);
  }
  fm_backend *be = m->be;
  FM_CHECK(fm_model_to_device(m));
  be->upload(be, m->tokens, tokens, (size_t)N * sizeof *tokens);
  be->upload(be, m->targets, targets, (size_t)N * sizeof *targets);
  m->Bc = B;
  m->Tc = T;
  m->have_fwd = 0;
  m->logits_stale = 0;
  m->routed = !be->device; /* a device's routing comes to the host when asked for */
  double lbsum = 0.0;
  if (s->family != FM_FAMILY_GPT2) {
    fm_llama_forward(m, B, T, &lbsum);
    return forward_done(m, lbsum, ce, lb);
  }
  const size_t stride = (size_t)m->B * m->T * D; /* one residual slice */
  const int ra = s->attn_lora_rank;
  const float lsc = ra > 0 ? s->lora_alpha / (float)ra : 0.0f;
  {
    FM_PROF_BEGIN(tp);
    PROF(EMBED, FWD, be->embed_forward(be, m->res, m->tokens, fm_model_w(m, m->wte), fm_model_w(m, m->wpe), B, T, D));
    FM_PROF_END(tp, FM_PROF_EMBED, FM_PROF_FWD);
  }
  for (int l = 0; l < L; l++) {
    fm_block *b = &m->blk[l];
    const float *in = m->res + l * stride;
    float *out = m->res + (l + 1) * stride;
    PROF(LAYERNORM, FWD, be->layernorm_forward(be, b->ln1, b->ln1_mean, b->ln1_rstd, in, fm_model_w(m, b->ln1w),
                                              fm_model_w(m, b->ln1b), N, D, s->norm_eps));
    PROF(ATTN_PROJ, FWD, be->linear_forward(be, b->qkv, b->ln1, fm_model_w(m, b->attw), fm_model_w(m, b->attb), N, D, 3 * D, 0));
    if (b->la1 >= 0)
      PROF(ATTN_PROJ, FWD, fm_slots_lora_forward(m, FM_LORA_CONV1D, N, D, 3 * D, ra, lsc, b->ln1, D, b->la1, b->lb1,
                                                b->lz1, b->qkv, 3 * D));
    PROF(ATTN_CORE, FWD, be->attention_forward(be, b->atty, b->att, b->qkv, B, T, s->heads, s->heads,
                                              D / s->heads));
    PROF(RESIDUAL, FWD, be->copy(be, b->resa, in, (size_t)N * D * sizeof(float)));
    PROF(ATTN_PROJ, FWD, be->linear_forward(be, b->resa, b->atty, fm_model_w(m, b->aprw), fm_model_w(m, b->aprb), N, D, D, 1));
    if (b->la2 >= 0)
      PROF(ATTN_PROJ, FWD, fm_slots_lora_forward(m, FM_LORA_CONV1D, N, D, D, ra, lsc, b->atty, D, b->la2, b->lb2, b->lz2,
                                                b->resa, D));
    PROF(LAYERNORM, FWD, be->layernorm_forward(be, b->ln2, b->ln2_mean, b->ln2_rstd, b->resa, fm_model_w(m, b->ln2w),
                                              fm_model_w(m, b->ln2b), N, D, s->norm_eps));
    PROF(RESIDUAL, FWD, be->copy(be, out, b->resa, (size_t)N * D * sizeof(float)));
    if (b->moe) {
      lbsum += fm_slots_moe_forward(m, b, moe_params, out, b->ln2, N);
    } else {
      PROF(FFN, FWD, be->ffn_forward(be, out, b->fch, b->fcg, b->ln2, fm_model_w(m, b->fcw), fm_model_w(m, b->fcb),
                                    fm_model_w(m, b->fpw), fm_model_w(m, b->fpb), N, D, s->ffn));
    }
  }
  PROF(LAYERNORM, FWD, be->layernorm_forward(be, m->lnf, m->lnf_mean, m->lnf_rstd, m->res + L * stride,
                                            fm_model_w(m, m->lnfw), fm_model_w(m, m->lnfb), N, D, s->norm_eps));
  PROF(HEAD, FWD, fm_model_head_forward(m, m->wte, N)); /* tied head */
  return forward_done(m, lbsum, ce, lb);
}

fm_err fm_model_forward(fm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                        float *ce, float *lb) {
  m->nact = m->live = 1;
  return forward_rows(m, tokens, targets, B, T, ce, lb);
}

fm_err fm_model_forward_slots(fm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                              int live, float *ce) {
  if (m->nslot < 2 || live < 1 || live > m->nslot)
    FM_ERROR(FM_ERR_ARG, "a forward of %d client slots on a model of %d", live, m->nslot);
  if (B < 1 || (long)B * m->nslot > m->B)
    FM_ERROR(FM_ERR_ARG, "a forward of %d sequences per slot: the model has room for %d", B, m->B / m->nslot);
  m->nact = m->nslot;
  m->live = live;
  fm_err e = forward_rows(m, tokens, targets, B * m->nslot, T, NULL, NULL);
  if (e) {
    m->nact = m->live = 1;
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  for (int g = 0; g < live; g++) ce[g] = m->slot_ce[g];
  return FM_OK;
}

/* The lowest level whose tensors want a gradient: 0 embeddings (wte also feeds the
 * head, but its embedding use needs the whole pass), l+1 block l, L+1 ln_f and an
 * untied head; L+2 when nothing is to be trained. */
static int lowest_level(const fm_model *m) {
  int lo = m->s.layers + 2;
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    if (!t->g || t->frozen) continue;
    const int untied_head = i == m->head && m->head != m->wte;
    int lev = t->group == FM_GROUP_EMBED && !untied_head ? 0
              : t->layer >= 0                           ? t->layer + 1
                                                        : m->s.layers + 1;
    if (lev < lo) lo = lev;
  }
  return lo;
}

/* The gradients changed where the kernels run: on a device, the host's are stale. */
static fm_err backward_done(fm_model *m) {
  FM_CHECK(m->be->sync(m->be, "the backward pass"));
  if (m->be->device)
    for (int c = 0; c < m->nclass; c++) m->gsync[c] = FM_SYNC_DEVICE;
  return FM_OK;
}

fm_err fm_model_backward(fm_model *m) { return fm_model_backward_inject(m, -1, NULL); }

const float *fm_model_hidden(const fm_model *m, int k) {
  if (k < 0 || k > m->s.layers || !m->have_fwd) return NULL;
  const float *h = m->res + (size_t)k * m->B * m->T * m->s.d;
  return m->be->device ? fm_model_stage(m, h, (size_t)m->Bc * m->Tc * m->s.d) : h;
}

fm_err fm_model_backward_inject(fm_model *m, int k, const float *dh) {
  if (!m->have_fwd) FM_ERROR(FM_ERR_INTERNAL, "backward without a forward");
  if (dh && (k < 1 || k > m->s.layers))
    FM_ERROR(FM_ERR_ARG, "gradient injected at block boundary %d of a %d-block model", k, m->s.layers);
  const fm_model_shape *s = &m->s;
  const int D = s->d, L = s->layers, B = m->Bc, T = m->Tc, N = B * T;
  const size_t stride = (size_t)m->B * m->T * D;
  const int lo = lowest_level(m);
  if (lo > L + 1) return FM_OK;
  fm_backend *be = m->be;
  FM_CHECK(fm_model_to_device(m));
  if (dh && be->device) { /* the extra gradient comes from the host */
    if (!m->dinj) FM_CHECK(be->alloc(be, &m->dinj, stride * sizeof(float), "injected gradient"));
    be->upload(be, m->dinj, dh, (size_t)N * D * sizeof(float));
    dh = m->dinj;
  }
  if (s->family != FM_FAMILY_GPT2) {
    fm_llama_backward(m, lo, k, dh);
    return backward_done(m);
  }
  const int ra = s->attn_lora_rank;
  const float lsc = ra > 0 ? s->lora_alpha / (float)ra : 0.0f;
  /* head: logits = lnf wte^T */
  fm_param wte = fm_model_param(m, m->wte);
  PROF(HEAD, BWD, fm_model_head_backward(m, m->wte, N));
  PROF(RESIDUAL, BWD, be->zero(be, m->dres, (size_t)N * D * sizeof(float)));
  PROF(LAYERNORM, BWD, be->layernorm_backward(be, lo <= L ? m->dres : NULL, fm_model_param(m, m->lnfw).g,
                                             fm_model_param(m, m->lnfb).g, m->dln,
                                             m->res + L * stride, fm_model_w(m, m->lnfw), m->lnf_mean,
                                             m->lnf_rstd, N, D));
  /* blocks, top down, as far as needed; dres is the gradient of the block's output */
  for (int l = L - 1; l >= 0 && l + 1 >= lo; l--) {
    fm_block *b = &m->blk[l];
    const float *in = m->res + l * stride;
    if (dh && k == l + 1) /* an extra loss on this block's output (distillation) */
      be->add(be, m->dres, dh, (size_t)N * D);
    const int want_dx = l + 1 > lo; /* something below still needs the gradient */
    PROF(RESIDUAL, BWD, be->zero(be, m->dln, (size_t)N * D * sizeof(float)));
    if (b->moe) {
      fm_slots_moe_backward(m, b, moe_params, m->dln, m->dres, b->ln2);
    } else {
      PROF(FFN, BWD, be->ffn_backward(be, m->dln, fm_model_param(m, b->fcw).g, fm_model_param(m, b->fcb).g,
                                     fm_model_param(m, b->fpw).g, fm_model_param(m, b->fpb).g,
                                     m->dfc, m->dres, b->ln2, b->fch, b->fcg, fm_model_w(m, b->fcw),
                                     fm_model_w(m, b->fpw), N, D, s->ffn));
    }
    PROF(LAYERNORM, BWD, be->layernorm_backward(be, m->dres, fm_model_param(m, b->ln2w).g,
                                               fm_model_param(m, b->ln2b).g, m->dln, b->resa,
                                               fm_model_w(m, b->ln2w), b->ln2_mean, b->ln2_rstd, N, D));
    /* dres is now the gradient of a = h + attention */
    PROF(ATTN_PROJ, BWD, be->linear_backward(be, m->datty, fm_model_param(m, b->aprw).g,
                                            fm_model_param(m, b->aprb).g, m->dres, b->atty,
                                            fm_model_w(m, b->aprw), N, D, D, 0));
    if (b->la2 >= 0)
      PROF(ATTN_PROJ, BWD, fm_slots_lora_backward(m, FM_LORA_CONV1D, N, D, D, ra, lsc, b->atty, D, b->lz2, m->dres, D,
                                                 b->la2, b->lb2, m->dlz, m->datty, 1.0f));
    PROF(ATTN_CORE, BWD, be->attention_backward(be, m->dqkv, m->attscr, m->datty, b->qkv, b->att, B, T,
                                               s->heads, s->heads, D / s->heads));
    PROF(ATTN_PROJ, BWD, be->linear_backward(be, m->dln, fm_model_param(m, b->attw).g,
                                            fm_model_param(m, b->attb).g, m->dqkv, b->ln1,
                                            fm_model_w(m, b->attw), N, D, 3 * D, 0));
    if (b->la1 >= 0)
      PROF(ATTN_PROJ, BWD, fm_slots_lora_backward(m, FM_LORA_CONV1D, N, D, 3 * D, ra, lsc, b->ln1, D, b->lz1, m->dqkv,
                                                 3 * D, b->la1, b->lb1, m->dlz, m->dln, 1.0f));
    PROF(LAYERNORM, BWD, be->layernorm_backward(be, want_dx ? m->dres : NULL, fm_model_param(m, b->ln1w).g,
                                               fm_model_param(m, b->ln1b).g, m->dln, in,
                                               fm_model_w(m, b->ln1w), b->ln1_mean, b->ln1_rstd, N, D));
  }
  if (lo == 0)
    PROF(EMBED, BWD, be->embed_backward(be, wte.g, fm_model_param(m, m->wpe).g, m->dres, m->tokens, B, T, D));
  return backward_done(m);
}
