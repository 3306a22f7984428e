/* model_llama.c - the llama family's decoder (llama, mixtral, olmoe, qwen2_moe), as
 * Hugging Face's modeling files define it:
 *   h0 = embed_tokens[tok]
 *   block l:  x = rmsnorm(h) input_layernorm
 *             q = x Wq^T (+ bq), k = x Wk^T (+ bk), v = x Wv^T (+ bv)   (GQA: KVH heads)
 *             OLMoE: q = rmsnorm(q) q_norm, k = rmsnorm(k) k_norm (over all heads)
 *             q, k rotated (rope.c);  a = h + o_proj(attn(q, k, v))
 *             y = rmsnorm(a) post_attention_layernorm
 *             h' = a + ffn(y): dense SwiGLU, or MoE of SwiGLU experts (router over the
 *             softmax of all experts, top-k, renormalised when norm_topk), plus for
 *             Qwen2-MoE sigmoid(y . shared_expert_gate) shared_expert(y)
 *   logits = rmsnorm(h_L) norm  lm_head^T  (or embed_tokens^T when tied)
 * The passes mirror model_pass.c's GPT-2 ones: the same arena, the same skipping of
 * what no trainable tensor needs, the same MoE layer (moe.c, with SwiGLU experts). */
#include "model_impl.h"

#include <stdlib.h>
#include <string.h>

/* the next tensor, which must be the one named ...suffix (else -1: internal error) */
static int next(const fm_model *m, int *i, const char *suffix, int *bad) {
  if (*i >= m->nt || !fm_ends_with(m->t[*i].name, suffix)) {
    *bad = 1;
    return -1;
  }
  return (*i)++;
}

fm_err fm_llama_index(fm_model *m) {
  const fm_model_shape *s = &m->s;
  int i = 0, bad = 0;
  m->wte = next(m, &i, "embed_tokens.weight", &bad);
  m->wpe = -1;
  for (int l = 0; l < s->layers && !bad; l++) {
    fm_block *b = &m->blk[l];
    b->moe = (int)((s->moe_mask >> l) & 1);
    b->ln1b = b->ln2b = b->attw = b->attb = b->aprw = b->aprb = b->fcw = b->fcb = b->fpw = b->fpb = -1;
    b->qb = b->kb = b->vb = b->qn = b->kn = b->gw = b->uw = b->dw = -1;
    b->sgw = b->suw = b->sdw = b->sgt = b->router = b->ex0 = -1;
    b->la1 = b->lb1 = b->la2 = b->lb2 = -1;
    b->ln1w = next(m, &i, "input_layernorm.weight", &bad);
    b->qw = next(m, &i, "q_proj.weight", &bad);
    if (s->attn_bias) b->qb = next(m, &i, "q_proj.bias", &bad);
    b->kw = next(m, &i, "k_proj.weight", &bad);
    if (s->attn_bias) b->kb = next(m, &i, "k_proj.bias", &bad);
    b->vw = next(m, &i, "v_proj.weight", &bad);
    if (s->attn_bias) b->vb = next(m, &i, "v_proj.bias", &bad);
    b->ow = next(m, &i, "o_proj.weight", &bad);
    if (s->attn_lora_rank > 0) {
      b->la1 = next(m, &i, "q_proj.lora_A", &bad);
      b->lb1 = next(m, &i, "q_proj.lora_B", &bad);
      b->la2 = next(m, &i, "v_proj.lora_A", &bad);
      b->lb2 = next(m, &i, "v_proj.lora_B", &bad);
    }
    if (s->qk_norm) {
      b->qn = next(m, &i, "q_norm.weight", &bad);
      b->kn = next(m, &i, "k_norm.weight", &bad);
    }
    b->ln2w = next(m, &i, "post_attention_layernorm.weight", &bad);
    const int lora = s->expert_type == FM_EXPERT_LORA;
    if (!b->moe || lora) { /* the dense FFN, or the base under LoRA experts */
      b->gw = next(m, &i, "mlp.gate_proj.weight", &bad);
      b->uw = next(m, &i, "mlp.up_proj.weight", &bad);
      b->dw = next(m, &i, "mlp.down_proj.weight", &bad);
    }
    if (!b->moe) continue;
    b->router = next(m, &i, "gate.weight", &bad);
    b->ex0 = i;
    i += (lora ? 6 : 3) * s->experts;
    if (i > m->nt || !fm_ends_with(m->t[i - 1].name, lora ? "lora_B" : ".weight")) bad = 1;
    if (s->shared_ffn > 0) {
      b->sgw = next(m, &i, "shared_expert.gate_proj.weight", &bad);
      b->suw = next(m, &i, "shared_expert.up_proj.weight", &bad);
      b->sdw = next(m, &i, "shared_expert.down_proj.weight", &bad);
      b->sgt = next(m, &i, "shared_expert_gate.weight", &bad);
    }
  }
  m->lnfw = next(m, &i, "norm.weight", &bad);
  m->lnfb = -1;
  m->head = s->tied ? m->wte : next(m, &i, "lm_head.weight", &bad);
  if (bad || i != m->nt)
    FM_ERROR(FM_ERR_INTERNAL, "llama-family tensor table out of order near tensor %d of %d", i, m->nt);
  return FM_OK;
}

/* The arena's layout: with base NULL only counted. Returns the floats it takes. */
static size_t carve(fm_model *m, float *base) {
  const fm_model_shape *s = &m->s;
  const size_t N = (size_t)m->B * m->T, D = (size_t)s->d, V = (size_t)s->vocab;
  const size_t QD = (size_t)s->heads * s->head_dim, KD = (size_t)s->kv_heads * s->head_dim;
  const size_t W = QD + 2 * KD, F = (size_t)s->ffn, FS = (size_t)s->shared_ffn;
  const size_t att = m->be->attention_saved(m->be, m->B, m->T, s->heads, s->head_dim), RA = (size_t)s->attn_lora_rank;
  size_t fmax = 1; /* the widest dense or shared FFN, for the backward scratch */
  for (int l = 0; l < s->layers; l++) {
    size_t f = m->blk[l].moe ? FS : F;
    if (f > fmax) fmax = f;
  }
  float *q = base;
  size_t n = 0;
#define TAKE(ptr, cnt)   \
  do {                   \
    size_t c_ = (cnt);   \
    if (base) {          \
      (ptr) = q;         \
      q += c_;           \
    }                    \
    n += c_;             \
  } while (0)
  TAKE(m->res, (s->layers + 1) * N * D);
  TAKE(m->lnf, N * D);
  TAKE(m->lnf_rstd, N);
  TAKE(m->logits, N * V);
  TAKE(m->lse, N);
  TAKE(m->dres, N * D);
  TAKE(m->dln, N * D);
  TAKE(m->datty, N * QD);
  TAKE(m->dqkv, N * W);
  TAKE(m->dfc, N * 2 * fmax);
  TAKE(m->da, N * fmax);
  TAKE(m->dsy, N * D);
  TAKE(m->dsz, N);
  TAKE(m->dlogits, N * (size_t)m->ldv);
  TAKE(m->attscr, fm_attention_scratch(m->T));
  TAKE(m->dlz, N * RA);
  TAKE(m->rope_cos, (size_t)s->context * (s->head_dim / 2));
  TAKE(m->rope_sin, (size_t)s->context * (s->head_dim / 2));
  for (int l = 0; l < s->layers; l++) {
    fm_block *b = &m->blk[l];
    TAKE(b->ln1, N * D);
    TAKE(b->ln1_rstd, N);
    TAKE(b->lz1, N * RA);
    TAKE(b->lz2, N * RA);
    TAKE(b->qkv, N * W);
    if (s->qk_norm) {
      TAKE(b->qkv_pre, N * W);
      TAKE(b->q_rstd, N);
      TAKE(b->k_rstd, N);
    }
    TAKE(b->att, att);
    TAKE(b->atty, N * QD);
    TAKE(b->resa, N * D);
    TAKE(b->ln2, N * D);
    TAKE(b->ln2_rstd, N);
    if (!b->moe) {
      TAKE(b->gu, N * 2 * F);
      TAKE(b->act, N * F);
    } else if (FS > 0) {
      TAKE(b->sy, N * D);
      TAKE(b->sg, N);
      TAKE(b->sgu, N * 2 * FS);
      TAKE(b->sact, N * FS);
    }
  }
#undef TAKE
  return n;
}

fm_err fm_llama_alloc(fm_model *m) {
  const fm_model_shape *s = &m->s;
  const size_t N = (size_t)m->B * m->T;
  fm_backend *be = m->be;
  size_t total = carve(m, NULL);
  FM_CHECK(be->alloc(be, &m->arena, total * sizeof(float), "model activations"));
  m->arena_n = total;
  if (carve(m, m->arena) != total) FM_ERROR(FM_ERR_INTERNAL, "activation arena miscounted");
  if (be->device) { /* the rotary tables are made on the host */
    const size_t n = (size_t)s->context * (s->head_dim / 2);
    float *tab;
    FM_CALLOC(tab, 2 * n + 1, "rotary tables");
    fm_rope_table(tab, tab + n, s->context, s->head_dim, s);
    be->upload(be, m->rope_cos, tab, n * sizeof(float));
    be->upload(be, m->rope_sin, tab + n, n * sizeof(float));
    fm_err e = be->sync(be, "upload the rotary tables");
    free(tab);
    FM_CHECK(e);
  } else {
    fm_rope_table(m->rope_cos, m->rope_sin, s->context, s->head_dim, s);
  }
  for (int l = 0; l < s->layers; l++)
    if (m->blk[l].moe) {
      const fm_moe_dims dm = fm_shape_moe_dims(s);
      FM_CHECK(fm_model_moe_alloc(m, &m->blk[l], (int)N, &dm));
    }
  FM_CHECK(be->alloc(be, &m->tokens, N * sizeof(int32_t), "token copy"));
  FM_CHECK(be->alloc(be, &m->targets, N * sizeof(int32_t), "target copy"));
  return FM_OK;
}

static void moe_params(const fm_model *m, const fm_block *b, fm_moe_params *p) {
  memset(p, 0, sizeof *p);
  p->router = fm_model_param(m, b->router);
  if (m->s.expert_type == FM_EXPERT_LORA) {
    p->fc_w = fm_model_param(m, b->gw);
    p->fup_w = fm_model_param(m, b->uw);
    p->pj_w = fm_model_param(m, b->dw);
    for (int e = 0; e < m->s.experts; e++) { /* A, B on gate, up, down */
      const int i = b->ex0 + 6 * e;
      p->a1[e] = fm_model_param(m, i);
      p->b1[e] = fm_model_param(m, i + 1);
      p->a3[e] = fm_model_param(m, i + 2);
      p->b3[e] = fm_model_param(m, i + 3);
      p->a2[e] = fm_model_param(m, i + 4);
      p->b2[e] = fm_model_param(m, i + 5);
    }
    return;
  }
  for (int e = 0; e < m->s.experts; e++) {
    const int i = b->ex0 + 3 * e; /* gate (w1), up (w3), down (w2) */
    p->efc_w[e] = fm_model_param(m, i);
    p->eup_w[e] = fm_model_param(m, i + 1);
    p->epj_w[e] = fm_model_param(m, i + 2);
  }
}

static const float *wt(const fm_model *m, int i) { return fm_model_w(m, i); }
static float *gr(const fm_model *m, int i) { return fm_model_g(m, i); }

void fm_llama_forward(fm_model *m, int B, int T, double *lbsum) {
  fm_backend *be = m->be;
  const fm_model_shape *s = &m->s;
  const int D = s->d, L = s->layers, N = B * T, H = s->heads, KVH = s->kv_heads;
  const int hs = s->head_dim, QD = H * hs, KD = KVH * hs, W = QD + 2 * KD;
  const float eps = s->norm_eps;
  const size_t stride = (size_t)m->B * m->T * D;
  const int ra = s->attn_lora_rank;
  const float lsc = ra > 0 ? s->lora_alpha / (float)ra : 0.0f;
  PROF(EMBED, FWD, be->embed_forward(be, m->res, m->tokens, wt(m, m->wte), NULL, B, T, D));
  for (int l = 0; l < L; l++) {
    fm_block *b = &m->blk[l];
    const float *in = m->res + l * stride;
    float *out = m->res + (l + 1) * stride;
    PROF(LAYERNORM, FWD, be->rmsnorm_forward(be, b->ln1, b->ln1_rstd, in, wt(m, b->ln1w), N, D, D, eps));
    float *proj = s->qk_norm ? b->qkv_pre : b->qkv;
    PROF(ATTN_PROJ, FWD, {
      be->dense_forward(be, proj, W, b->ln1, wt(m, b->qw), wt(m, b->qb), N, D, QD, 0);
      be->dense_forward(be, proj + QD, W, b->ln1, wt(m, b->kw), wt(m, b->kb), N, D, KD, 0);
      be->dense_forward(be, proj + QD + KD, W, b->ln1, wt(m, b->vw), wt(m, b->vb), N, D, KD, 0);
    });
    if (b->la1 >= 0)
      PROF(ATTN_PROJ, FWD, {
        fm_slots_lora_forward(m, FM_LORA_LINEAR, N, D, QD, ra, lsc, b->ln1, D, b->la1, b->lb1, b->lz1, proj, W);
        fm_slots_lora_forward(m, FM_LORA_LINEAR, N, D, KD, ra, lsc, b->ln1, D, b->la2, b->lb2, b->lz2,
                              proj + QD + KD, W);
      });
    if (s->qk_norm)
      PROF(LAYERNORM, FWD, {
        be->rmsnorm_forward(be, b->qkv, b->q_rstd, b->qkv_pre, wt(m, b->qn), N, QD, W, eps);
        be->rmsnorm_forward(be, b->qkv + QD, b->k_rstd, b->qkv_pre + QD, wt(m, b->kn), N, KD, W, eps);
        be->copy_rows(be, b->qkv + QD + KD, W, b->qkv_pre + QD + KD, W, N, KD);
      });
    PROF(ATTN_CORE, FWD, {
      be->rope_forward(be, b->qkv, m->rope_cos, m->rope_sin, B, T, H, hs, W);
      be->rope_forward(be, b->qkv + QD, m->rope_cos, m->rope_sin, B, T, KVH, hs, W);
      be->attention_forward(be, b->atty, b->att, b->qkv, B, T, H, KVH, hs);
    });
    PROF(RESIDUAL, FWD, be->copy(be, b->resa, in, (size_t)N * D * sizeof(float)));
    PROF(ATTN_PROJ, FWD, be->dense_forward(be, b->resa, D, b->atty, wt(m, b->ow), NULL, N, QD, D, 1));
    PROF(LAYERNORM, FWD, be->rmsnorm_forward(be, b->ln2, b->ln2_rstd, b->resa, wt(m, b->ln2w), N, D, D, eps));
    PROF(RESIDUAL, FWD, be->copy(be, out, b->resa, (size_t)N * D * sizeof(float)));
    if (b->moe) {
      *lbsum += fm_slots_moe_forward(m, b, moe_params, out, b->ln2, N);
      if (b->sgw >= 0)
        PROF(FFN, FWD, be->shared_expert_forward(be, out, b->sy, b->sg, b->sgu, b->sact, b->ln2, wt(m, b->sgw),
                                                wt(m, b->suw), wt(m, b->sdw), wt(m, b->sgt), N, D,
                                                s->shared_ffn));
    } else {
      PROF(FFN, FWD, be->swiglu_ffn_forward(be, out, b->gu, b->act, b->ln2, wt(m, b->gw), wt(m, b->uw),
                                           wt(m, b->dw), N, D, s->ffn, 1));
    }
  }
  PROF(LAYERNORM, FWD, be->rmsnorm_forward(be, m->lnf, m->lnf_rstd, m->res + L * stride, wt(m, m->lnfw), N,
                                          D, D, eps));
  PROF(HEAD, FWD, fm_model_head_forward(m, m->head, N));
}

void fm_llama_backward(fm_model *m, int lo, int k, const float *dh) {
  fm_backend *be = m->be;
  const fm_model_shape *s = &m->s;
  const int D = s->d, L = s->layers, B = m->Bc, T = m->Tc, N = B * T;
  const int H = s->heads, KVH = s->kv_heads, hs = s->head_dim, QD = H * hs, KD = KVH * hs;
  const int W = QD + 2 * KD;
  const size_t stride = (size_t)m->B * m->T * D;
  const int ra = s->attn_lora_rank;
  const float lsc = ra > 0 ? s->lora_alpha / (float)ra : 0.0f;
  PROF(HEAD, BWD, fm_model_head_backward(m, m->head, N));
  PROF(RESIDUAL, BWD, be->zero(be, m->dres, (size_t)N * D * sizeof(float)));
  PROF(LAYERNORM, BWD, be->rmsnorm_backward(be, lo <= L ? m->dres : NULL, gr(m, m->lnfw), m->dln,
                                           m->res + L * stride, wt(m, m->lnfw), m->lnf_rstd, N, D, D, 1));
  for (int l = L - 1; l >= 0 && l + 1 >= lo; l--) {
    fm_block *b = &m->blk[l];
    const float *in = m->res + l * stride;
    if (dh && k == l + 1)
      be->add(be, m->dres, dh, (size_t)N * D);
    const int want_dx = l + 1 > lo;
    PROF(RESIDUAL, BWD, be->zero(be, m->dln, (size_t)N * D * sizeof(float)));
    if (b->moe) {
      fm_slots_moe_backward(m, b, moe_params, m->dln, m->dres, b->ln2);
      if (b->sgw >= 0)
        PROF(FFN, BWD, be->shared_expert_backward(be, m->dln, gr(m, b->sgw), gr(m, b->suw), gr(m, b->sdw),
                                                 gr(m, b->sgt), m->dsy, m->dsz, m->da, m->dfc, m->dres,
                                                 b->ln2, b->sy, b->sg, b->sgu, b->sact, wt(m, b->sgw),
                                                 wt(m, b->suw), wt(m, b->sdw), wt(m, b->sgt), N, D,
                                                 s->shared_ffn));
    } else {
      PROF(FFN, BWD, be->swiglu_ffn_backward(be, m->dln, gr(m, b->gw), gr(m, b->uw), gr(m, b->dw), m->da,
                                            m->dfc, m->dres, b->ln2, b->gu, b->act, wt(m, b->gw),
                                            wt(m, b->uw), wt(m, b->dw), N, D, s->ffn, 1));
    }
    PROF(LAYERNORM, BWD, be->rmsnorm_backward(be, m->dres, gr(m, b->ln2w), m->dln, b->resa, wt(m, b->ln2w),
                                             b->ln2_rstd, N, D, D, 1));
    /* dres is now the gradient of a = h + attention */
    PROF(ATTN_PROJ, BWD, be->dense_backward(be, m->datty, gr(m, b->ow), NULL, m->dres, D, b->atty,
                                           wt(m, b->ow), N, QD, D, 0));
    PROF(ATTN_CORE, BWD, {
      be->attention_backward(be, m->dqkv, m->attscr, m->datty, b->qkv, b->att, B, T, H, KVH, hs);
      be->rope_backward(be, m->dqkv, m->rope_cos, m->rope_sin, B, T, H, hs, W);
      be->rope_backward(be, m->dqkv + QD, m->rope_cos, m->rope_sin, B, T, KVH, hs, W);
    });
    if (s->qk_norm)
      PROF(LAYERNORM, BWD, {
        be->rmsnorm_backward(be, m->dqkv, gr(m, b->qn), m->dqkv, b->qkv_pre, wt(m, b->qn), b->q_rstd, N, QD,
                            W, 0);
        be->rmsnorm_backward(be, m->dqkv + QD, gr(m, b->kn), m->dqkv + QD, b->qkv_pre + QD, wt(m, b->kn),
                            b->k_rstd, N, KD, W, 0);
      });
    PROF(ATTN_PROJ, BWD, {
      be->dense_backward(be, m->dln, gr(m, b->qw), gr(m, b->qb), m->dqkv, W, b->ln1, wt(m, b->qw), N, D, QD, 0);
      be->dense_backward(be, m->dln, gr(m, b->kw), gr(m, b->kb), m->dqkv + QD, W, b->ln1, wt(m, b->kw), N, D,
                        KD, 1);
      be->dense_backward(be, m->dln, gr(m, b->vw), gr(m, b->vb), m->dqkv + QD + KD, W, b->ln1, wt(m, b->vw),
                        N, D, KD, 1);
    });
    if (b->la1 >= 0)
      PROF(ATTN_PROJ, BWD, {
        fm_slots_lora_backward(m, FM_LORA_LINEAR, N, D, QD, ra, lsc, b->ln1, D, b->lz1, m->dqkv, W, b->la1,
                               b->lb1, m->dlz, m->dln, 1.0f);
        fm_slots_lora_backward(m, FM_LORA_LINEAR, N, D, KD, ra, lsc, b->ln1, D, b->lz2, m->dqkv + QD + KD, W,
                               b->la2, b->lb2, m->dlz, m->dln, 1.0f);
      });
    PROF(LAYERNORM, BWD, be->rmsnorm_backward(be, want_dx ? m->dres : NULL, gr(m, b->ln1w), m->dln, in,
                                             wt(m, b->ln1w), b->ln1_rstd, N, D, D, 1));
  }
  if (lo == 0) PROF(EMBED, BWD, be->embed_backward(be, gr(m, m->wte), NULL, m->dres, m->tokens, B, T, D));
}
