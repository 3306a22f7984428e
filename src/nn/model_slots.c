/* model_slots.c - client slots: one model trains the small tensors of several
 * clients at once over a shared frozen base (run.client_batch).
 *
 * A model made for n slots holds n copies of every trained class buffer (parameters,
 * gradients, a device's copies), slot g at offset g * class size, and the frozen
 * base once. fm_model_forward_slots takes n parts of B sequences, part g for slot g:
 * every frozen-weight operation runs once over all n*B sequences (one pass over the
 * base, GEMMs n times taller), and the LoRA updates run per part with the part's own
 * pair, as one grouped operation (lora_grouped.c; a strided-batched GEMM on a GPU).
 * An MoE block runs per part: each slot's router routes its own client's tokens, so
 * its layer (its own routing and activations) takes the part's rows with the slot's
 * router and LoRA experts over the shared frozen ones - the expert GEMMs of a client
 * alone, the block's other operations shared.
 * The loss is the sum over parts of each part's mean, so each slot's gradient is
 * exactly what its client alone would get; clipping and AdamW then work on one slot
 * at a time (fm_model_set_slot), as they do on a client trained alone.
 *
 * Parts from `live` on are idle (a group smaller than n): their rows still go through
 * the base, and through their slot's LoRA pair in the grouped operation (whatever
 * values it holds: the rows get no loss, so a zero gradient, and their slots are not
 * stepped), so that every GEMM, batched ones included, has the same shape whatever
 * the group's size. A GPU library may pick its algorithm by shape; with one shape a
 * row's arithmetic is the same whichever clients share its group, hence results
 * bit-identical for any rank count. (Without a grouped operation the idle parts are
 * skipped: the per-part operations have one shape anyway.) */
#include "model_impl.h"

int fm_model_nslot(const fm_model *m) { return m->nslot; }

fm_err fm_model_set_slot(fm_model *m, int g) {
  if (g < 0 || g >= m->nslot) FM_ERROR(FM_ERR_ARG, "client slot %d of a model of %d", g, m->nslot);
  if (g == m->slot) return FM_OK;
  for (int i = 0; i < m->nt; i++) {
    fm_tensor *t = &m->t[i];
    if (t->cls == FM_CLASS_FROZEN) continue;
    const size_t off = (size_t)g * m->cn[t->cls] + t->offset;
    t->w = m->cw[t->cls] + off;
    t->g = m->cg[t->cls] + off;
    m->tw[i] = (m->be->device ? m->dw[t->cls] : m->cw[t->cls]) + off;
    m->tg[i] = (m->be->device ? m->dg[t->cls] : m->cg[t->cls]) + off;
  }
  m->slot = g;
  return FM_OK;
}

/* tensor i's distance between two slots' copies (0: frozen, every slot's) */
static size_t slot_stride(const fm_model *m, int i) {
  return m->t[i].cls == FM_CLASS_FROZEN ? 0 : m->cn[m->t[i].cls];
}

void fm_slots_lora_forward(fm_model *m, int layout, int N, int in, int out, int R, float s, const float *x,
                           int ldx, int ia, int ib, float *z, float *y, int ldy) {
  fm_backend *be = m->be;
  if (m->nact <= 1) {
    be->lora_forward(be, layout, N, in, out, R, s, x, ldx, m->tw[ia], m->tw[ib], z, y, ldy);
    return;
  }
  const int n = N / m->nact;
  const float *A = fm_slot_w(m, ia, 0), *B = fm_slot_w(m, ib, 0);
  const size_t sA = slot_stride(m, ia), sB = slot_stride(m, ib);
  if (be->lora_grouped_forward) { /* every slot, idle ones too: one batch shape for any group */
    be->lora_grouped_forward(be, layout, m->nact, n, in, out, R, s, x, ldx, A, sA, B, sB, z, y, ldy);
    return;
  }
  for (int g = 0; g < m->live; g++) {
    const size_t r = (size_t)g * n;
    be->lora_forward(be, layout, n, in, out, R, s, x + r * ldx, ldx, A + g * sA, B + g * sB, z + r * R,
                     y + r * ldy, ldy);
  }
}

void fm_slots_lora_backward(fm_model *m, int layout, int N, int in, int out, int R, float s, const float *x,
                            int ldx, const float *z, const float *dy, int ldy, int ia, int ib, float *dz,
                            float *dx, float beta) {
  fm_backend *be = m->be;
  if (m->nact <= 1) {
    be->lora_backward(be, layout, N, in, out, R, s, x, ldx, z, dy, ldy, fm_model_param(m, ia),
                      fm_model_param(m, ib), dz, dx, beta);
    return;
  }
  const int n = N / m->nact;
  const fm_param A = fm_slot_param(m, ia, 0), B = fm_slot_param(m, ib, 0);
  const size_t sA = slot_stride(m, ia), sB = slot_stride(m, ib);
  if (be->lora_grouped_backward) {
    be->lora_grouped_backward(be, layout, m->nact, n, in, out, R, s, x, ldx, z, dy, ldy, A, B, sA, sB, dz,
                              dx, beta);
    return;
  }
  for (int g = 0; g < m->live; g++) {
    const size_t r = (size_t)g * n;
    fm_param Ag = {A.w + g * sA, A.g ? A.g + g * sA : NULL}, Bg = {B.w + g * sB, B.g ? B.g + g * sB : NULL};
    be->lora_backward(be, layout, n, in, out, R, s, x + r * ldx, ldx, z + r * R, dy + r * ldy, ldy, Ag, Bg,
                      dz + r * R, dx ? dx + r * ldx : NULL, beta);
  }
}

double fm_slots_moe_forward(fm_model *m, fm_block *b, fm_moe_params_fn params, float *out, const float *x,
                            int N) {
  fm_backend *be = m->be;
  const float lb = m->s.load_balance;
  fm_moe_params p;
  if (m->nact <= 1) {
    params(m, b, &p);
    return be->moe_forward(be, &b->moe_layer, b->moe_dev, &p, out, x, N, lb);
  }
  const int n = N / m->nact, keep = m->slot;
  const size_t D = (size_t)m->s.d;
  double sum = 0;
  for (int g = 0; g < m->live; g++) { /* idle parts: no loss, so nothing to route */
    (void)fm_model_set_slot(m, g);
    params(m, b, &p);
    sum += be->moe_forward(be, fm_block_moe(b, g), fm_block_moe_dev(b, g), &p, out + g * n * D, x + g * n * D, n,
                           lb);
  }
  (void)fm_model_set_slot(m, keep);
  return sum;
}

void fm_slots_moe_backward(fm_model *m, fm_block *b, fm_moe_params_fn params, float *dx, const float *dout,
                           const float *x) {
  fm_backend *be = m->be;
  const float lb = m->s.load_balance;
  fm_moe_params p;
  if (m->nact <= 1) {
    params(m, b, &p);
    be->moe_backward(be, &b->moe_layer, b->moe_dev, &p, dx, dout, x, lb, 1.0f);
    return;
  }
  const int n = (m->Bc * m->Tc) / m->nact, keep = m->slot;
  const size_t D = (size_t)m->s.d;
  for (int g = 0; g < m->live; g++) { /* the idle parts' dx rows stay the caller's zeros */
    (void)fm_model_set_slot(m, g);
    params(m, b, &p);
    be->moe_backward(be, fm_block_moe(b, g), fm_block_moe_dev(b, g), &p, dx + g * n * D, dout + g * n * D,
                     x + g * n * D, lb, 1.0f);
  }
  (void)fm_model_set_slot(m, keep);
}

/* the slots' losses into the model's: their mean (what a plain caller reads) */
static void slot_losses(fm_model *m) {
  double sum = 0;
  m->nvalid = 0;
  for (int g = 0; g < m->live; g++) {
    sum += m->slot_ce[g];
    m->nvalid += m->slot_nvalid[g];
  }
  m->ce = (float)(sum / m->live);
}

void fm_slots_head_forward(fm_model *m, int head, int N) {
  fm_backend *be = m->be;
  const int D = m->s.d, V = m->s.vocab, n = N / m->nact;
  const float *W = fm_model_w(m, head);
  if (be->head_crossentropy) { /* fused: each live part's loss over its rows */
    for (int g = 0; g < m->live; g++) {
      const size_t r = (size_t)g * n;
      m->slot_ce[g] = (float)be->head_crossentropy(be, &m->slot_nvalid[g], m->lse + r, NULL, NULL, 0,
                                                   m->lnf + r * D, W, m->targets + r, n, D, V, 1.0f);
    }
    m->logits_stale = 1;
  } else { /* the logits of every row (one GEMM of the same shape for any group), a loss per part */
    be->gemm(be, 0, 1, N, V, D, 1.0f, m->lnf, D, W, D, 0.0f, m->logits, V);
    for (int g = 0; g < m->live; g++) {
      const size_t r = (size_t)g * n;
      m->slot_ce[g] = (float)be->crossentropy_forward(be, m->lse + r, m->logits + r * V, V, m->targets + r, n, V,
                                                      &m->slot_nvalid[g]);
    }
  }
  slot_losses(m);
}

/* each live part's gradient of its own mean loss; the idle parts' rows get zero */
void fm_slots_head_backward(fm_model *m, int head, int N) {
  fm_backend *be = m->be;
  const int D = m->s.d, V = m->s.vocab, n = N / m->nact;
  const size_t idle = (size_t)(N - m->live * n);
  fm_param w = fm_model_param(m, head);
  if (be->head_crossentropy) {
    for (int g = 0; g < m->live; g++) {
      const size_t r = (size_t)g * n;
      be->head_crossentropy(be, &m->slot_nvalid[g], NULL, m->dln + r * D, w.g, 1, m->lnf + r * D, w.w,
                            m->targets + r, n, D, V, 1.0f);
    }
    if (idle) be->zero(be, m->dln + (size_t)m->live * n * D, idle * D * sizeof(float));
    return;
  }
  for (int g = 0; g < m->live; g++) {
    const size_t r = (size_t)g * n;
    be->crossentropy_backward(be, m->dlogits + r * V, m->logits + r * V, V, m->lse + r, m->targets + r, n, V,
                              m->slot_nvalid[g], 1.0f);
  }
  if (idle) be->zero(be, m->dlogits + (size_t)m->live * n * V, idle * V * sizeof(float));
  if (w.g) be->gemm(be, 1, 0, V, D, N, 1.0f, m->dlogits, V, m->lnf, D, 1.0f, w.g, D);
  be->gemm(be, 0, 0, N, D, V, 1.0f, m->dlogits, V, w.w, D, 0.0f, m->dln, D);
}
