/* model_decode.c - the model's inference forward for one sequence, with a key/value
 * cache (include/fedmoe/decode.h).
 *
 * A step takes the n tokens after the pos already seen and runs them through the
 * blocks as model_pass.c (gpt2) and model_llama.c (llama, mixtral, olmoe, qwen2_moe)
 * do, with the same kernels, on n rows instead of B*T:
 *   gpt2:  x = wte[tok] + wpe[pos..pos+n)
 *   llama: x = embed_tokens[tok]; q and k rotated at positions pos..pos+n (rope.c)
 * (the cache holds the positions asked for at creation, at most the context)
 * Each block's new keys and values (after q/k norm and rotation) go into the cache
 * at rows pos..pos+n, and the new queries attend to cache rows 0..pos+i
 * (attention_cached.c): the prefix is never recomputed. MoE blocks route the new
 * rows through a layer of their own (moe.c, sized for the step), with the model's
 * current route mask. Nothing of the model is written: the decoder only reads its
 * weights, so a model and its decoders may be used in turn. */
#include "decode_impl.h"
#include "model_impl.h"

#include "fedmoe/decode.h"

#include <stdlib.h>
#include <string.h>

struct fm_decoder {
  fm_model *m;
  int rows, ctx, pos;
  int H, KVH, hs, QD, KD, W;
  float *arena;
  float *kc, *vc;                  /* [L][ctx, KD]: keys (rotated) and values of every position */
  float *x, *resa, *ln;            /* [rows, D]: the residual stream, h + attention, a norm's output */
  float *mean, *rstd, *qr, *kr;    /* [rows]: norm statistics (kept by the kernels, unused here) */
  float *qkv, *pre;                /* [rows, W]: q | k | v; before q/k norm (qk_norm) */
  float *atty, *score;             /* [rows, QD], [rows, ctx] */
  float *fa, *fb;                  /* dense FFN: [rows, 2F] [rows, F] (gpt2: before and after GELU) */
  float *sy, *sg, *sgu, *sact;     /* qwen2_moe shared expert: [rows, D] [rows] [rows, 2FS] [rows, FS] */
  float *z;                        /* attention LoRA x A [rows, r] */
  float *logits;                   /* [rows, V] */
  fm_moe *moe;                     /* [L]: the MoE blocks' layers, sized for rows */
};

/* The arena cut in order: with next NULL only counted (take returns NULL then). */
typedef struct {
  float *next;
  size_t n;
} cutter;

static float *take(cutter *c, size_t count) {
  float *p = c->next;
  if (p) c->next += count;
  c->n += count;
  return p;
}

/* The arena's layout from base (NULL: only counted). Returns the floats it takes. */
static size_t carve(fm_decoder *d, float *base) {
  const fm_model_shape *s = &d->m->s;
  const size_t R = (size_t)d->rows, C = (size_t)d->ctx, D = (size_t)s->d, L = (size_t)s->layers;
  const size_t F = (size_t)s->ffn, FS = (size_t)s->shared_ffn, RA = (size_t)s->attn_lora_rank;
  cutter c = {base, 0};
  d->kc = take(&c, L * C * d->KD);
  d->vc = take(&c, L * C * d->KD);
  d->x = take(&c, R * D);
  d->resa = take(&c, R * D);
  d->ln = take(&c, R * D);
  d->mean = take(&c, R);
  d->rstd = take(&c, R);
  d->qr = take(&c, R);
  d->kr = take(&c, R);
  d->qkv = take(&c, R * d->W);
  d->pre = s->qk_norm ? take(&c, R * d->W) : NULL;
  d->atty = take(&c, R * d->QD);
  d->score = take(&c, R * C);
  d->fa = take(&c, R * 2 * F);
  d->fb = take(&c, R * F);
  d->sy = take(&c, R * D);
  d->sg = take(&c, R);
  d->sgu = take(&c, R * 2 * FS);
  d->sact = take(&c, R * FS);
  d->z = take(&c, R * RA);
  d->logits = take(&c, R * (size_t)s->vocab);
  return c.n;
}

fm_err fm_decoder_create(fm_decoder **dp, fm_model *m, int rows, int positions) {
  *dp = NULL;
  const fm_model_shape *s = &m->s;
  if (positions == 0) positions = s->context;
  if (positions < 1 || positions > s->context)
    FM_ERROR(FM_ERR_ARG, "a decoder cache of %d positions: the model's context is %d", positions, s->context);
  if (rows < 1 || rows > positions)
    FM_ERROR(FM_ERR_ARG, "a decoder taking %d tokens per step: its cache holds %d positions", rows, positions);
  /* the decoder runs on the host's copy of the weights: a GPU model's comes down here */
  FM_CHECK(fm_model_sync(m));
  fm_decoder *d;
  FM_CALLOC(d, 1, "decoder");
  d->m = m;
  d->rows = rows;
  d->ctx = positions;
  d->H = s->heads;
  d->KVH = s->kv_heads;
  d->hs = s->head_dim;
  d->QD = d->H * d->hs;
  d->KD = d->KVH * d->hs;
  d->W = d->QD + 2 * d->KD;
  fm_err err = FM_OK;
  const size_t total = carve(d, NULL);
  if (!(err = fm_calloc(&d->arena, total, sizeof(float), "decoder cache and activations"))) carve(d, d->arena);
  if (!err) err = fm_calloc(&d->moe, (size_t)s->layers, sizeof *d->moe, "decoder MoE layers");
  for (int l = 0; !err && l < s->layers; l++) {
    if (!m->blk[l].moe) continue;
    const fm_moe *ml = &m->blk[l].moe_layer; /* the same layer, sized for one step */
    fm_moe_dims dm = {.D = ml->D, .F = ml->F, .E = ml->E, .k = ml->k, .type = ml->type, .r = ml->r,
                      .swiglu = ml->swiglu, .renorm = ml->renorm, .alpha = s->lora_alpha};
    err = fm_moe_alloc(&d->moe[l], rows, &dm);
  }
  if (err) {
    fm_decoder_free(d);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  *dp = d;
  return FM_OK;
}

void fm_decoder_free(fm_decoder *d) {
  if (!d) return;
  if (d->moe)
    for (int l = 0; l < d->m->s.layers; l++)
      if (d->moe[l].logits) fm_moe_free(&d->moe[l]);
  free(d->moe);
  free(d->arena);
  free(d);
}

void fm_decoder_reset(fm_decoder *d) { d->pos = 0; }
int fm_decoder_pos(const fm_decoder *d) { return d->pos; }
int fm_decoder_context(const fm_decoder *d) { return d->ctx; }
int fm_decoder_rows(const fm_decoder *d) { return d->rows; }
int fm_decoder_vocab(const fm_decoder *d) { return d->m->s.vocab; }

static const float *wt(const fm_model *m, int i) { return i >= 0 ? m->t[i].w : NULL; }
static fm_param par(const fm_model *m, int i) {
  fm_param p = {wt(m, i), NULL}; /* inference: no gradients */
  return p;
}

/* The MoE layer's weights, in the order of the family's tensor table (model_pass.c,
 * model_llama.c) */
static void moe_params(const fm_model *m, const fm_block *b, fm_moe_params *p) {
  const fm_model_shape *s = &m->s;
  const int lora = s->expert_type == FM_EXPERT_LORA, llama = s->family != FM_FAMILY_GPT2;
  memset(p, 0, sizeof *p);
  p->router = par(m, b->router);
  if (llama && lora) {
    p->fc_w = par(m, b->gw);
    p->fup_w = par(m, b->uw);
    p->pj_w = par(m, b->dw);
  } else if (!llama) {
    p->fc_w = par(m, b->fcw);
    p->fc_b = par(m, b->fcb);
    p->pj_w = par(m, b->fpw);
    p->pj_b = par(m, b->fpb);
  }
  for (int e = 0; e < s->experts; e++) {
    if (llama && lora) { /* A, B on gate, up, down */
      fm_param *dst[6] = {&p->a1[e], &p->b1[e], &p->a3[e], &p->b3[e], &p->a2[e], &p->b2[e]};
      for (int j = 0; j < 6; j++) *dst[j] = par(m, b->ex0 + 6 * e + j);
    } else if (llama) { /* gate (w1), up (w3), down (w2) */
      fm_param *dst[3] = {&p->efc_w[e], &p->eup_w[e], &p->epj_w[e]};
      for (int j = 0; j < 3; j++) *dst[j] = par(m, b->ex0 + 3 * e + j);
    } else {
      fm_param *full[4] = {&p->efc_w[e], &p->efc_b[e], &p->epj_w[e], &p->epj_b[e]};
      fm_param *adapt[4] = {&p->a1[e], &p->b1[e], &p->a2[e], &p->b2[e]};
      for (int j = 0; j < 4; j++) *(lora ? adapt[j] : full[j]) = par(m, b->ex0 + 4 * e + j);
    }
  }
}

/* The new rows' keys and values (qkv [n, W]: q | k | v) into the cache at rows p0.. */
static void cache_store(fm_decoder *d, int l, int n) {
  const size_t KD = (size_t)d->KD, off = ((size_t)l * d->ctx + d->pos) * KD;
  for (int i = 0; i < n; i++) {
    const float *row = d->qkv + (size_t)i * d->W;
    memcpy(d->kc + off + i * KD, row + d->QD, KD * sizeof(float));
    memcpy(d->vc + off + i * KD, row + d->QD + KD, KD * sizeof(float));
  }
}

static void attend(fm_decoder *d, int l, int n) {
  cache_store(d, l, n);
  const size_t off = (size_t)l * d->ctx * d->KD;
  fm_attention_cached_forward(d->atty, d->QD, d->score, d->qkv, d->W, d->kc + off, d->vc + off, d->KD, d->pos, n,
                              d->H, d->KVH, d->hs);
}

/* x [n, D] += the MoE layer of block l over ln, with the model's route mask */
static void moe_ffn(fm_decoder *d, int l, int n) {
  const fm_model *m = d->m;
  fm_moe *L = &d->moe[l];
  const fm_moe *ml = &m->blk[l].moe_layer;
  memcpy(L->allowed, ml->allowed, sizeof L->allowed);
  L->nallowed = ml->nallowed;
  fm_moe_params p;
  moe_params(m, &m->blk[l], &p);
  fm_moe_forward(L, &p, d->x, d->ln, n, 0.0f);
}

/* gpt2 block l over the n new rows (model_pass.c's forward) */
static void gpt2_block(fm_decoder *d, int l, int n) {
  const fm_model *m = d->m;
  const fm_model_shape *s = &m->s;
  const fm_block *b = &m->blk[l];
  const int D = s->d, ra = s->attn_lora_rank;
  const float lsc = ra > 0 ? s->lora_alpha / (float)ra : 0.0f, eps = s->norm_eps;
  fm_layernorm_forward(d->ln, d->mean, d->rstd, d->x, wt(m, b->ln1w), wt(m, b->ln1b), n, D, eps);
  fm_linear_forward(d->qkv, d->ln, wt(m, b->attw), wt(m, b->attb), n, D, 3 * D, 0);
  if (b->la1 >= 0)
    fm_lora_forward(FM_LORA_CONV1D, n, D, 3 * D, ra, lsc, d->ln, D, wt(m, b->la1), wt(m, b->lb1), d->z, d->qkv,
                    3 * D);
  attend(d, l, n);
  memcpy(d->resa, d->x, (size_t)n * D * sizeof(float));
  fm_linear_forward(d->resa, d->atty, wt(m, b->aprw), wt(m, b->aprb), n, D, D, 1);
  if (b->la2 >= 0)
    fm_lora_forward(FM_LORA_CONV1D, n, D, D, ra, lsc, d->atty, D, wt(m, b->la2), wt(m, b->lb2), d->z, d->resa, D);
  fm_layernorm_forward(d->ln, d->mean, d->rstd, d->resa, wt(m, b->ln2w), wt(m, b->ln2b), n, D, eps);
  memcpy(d->x, d->resa, (size_t)n * D * sizeof(float));
  if (b->moe)
    moe_ffn(d, l, n);
  else
    fm_ffn_forward(d->x, d->fa, d->fb, d->ln, wt(m, b->fcw), wt(m, b->fcb), wt(m, b->fpw), wt(m, b->fpb), n, D,
                   s->ffn);
}

/* llama-family block l over the n new rows (model_llama.c's forward) */
static void llama_block(fm_decoder *d, int l, int n) {
  const fm_model *m = d->m;
  const fm_model_shape *s = &m->s;
  const fm_block *b = &m->blk[l];
  const int D = s->d, QD = d->QD, KD = d->KD, W = d->W, h2 = d->hs / 2, ra = s->attn_lora_rank;
  const float lsc = ra > 0 ? s->lora_alpha / (float)ra : 0.0f, eps = s->norm_eps;
  fm_rmsnorm_forward(d->ln, d->rstd, d->x, wt(m, b->ln1w), n, D, D, eps);
  float *proj = s->qk_norm ? d->pre : d->qkv;
  fm_dense_forward(proj, W, d->ln, wt(m, b->qw), wt(m, b->qb), n, D, QD, 0);
  fm_dense_forward(proj + QD, W, d->ln, wt(m, b->kw), wt(m, b->kb), n, D, KD, 0);
  fm_dense_forward(proj + QD + KD, W, d->ln, wt(m, b->vw), wt(m, b->vb), n, D, KD, 0);
  if (b->la1 >= 0) {
    fm_lora_forward(FM_LORA_LINEAR, n, D, QD, ra, lsc, d->ln, D, wt(m, b->la1), wt(m, b->lb1), d->z, proj, W);
    fm_lora_forward(FM_LORA_LINEAR, n, D, KD, ra, lsc, d->ln, D, wt(m, b->la2), wt(m, b->lb2), d->z,
                    proj + QD + KD, W);
  }
  if (s->qk_norm) {
    fm_rmsnorm_forward(d->qkv, d->qr, d->pre, wt(m, b->qn), n, QD, W, eps);
    fm_rmsnorm_forward(d->qkv + QD, d->kr, d->pre + QD, wt(m, b->kn), n, KD, W, eps);
    for (int i = 0; i < n; i++)
      memcpy(d->qkv + (size_t)i * W + QD + KD, d->pre + (size_t)i * W + QD + KD, (size_t)KD * sizeof(float));
  }
  /* the tables' rows from position pos on */
  const float *cs = m->rope_cos + (size_t)d->pos * h2, *sn = m->rope_sin + (size_t)d->pos * h2;
  fm_rope_forward(d->qkv, cs, sn, 1, n, d->H, d->hs, W);
  fm_rope_forward(d->qkv + QD, cs, sn, 1, n, d->KVH, d->hs, W);
  attend(d, l, n);
  memcpy(d->resa, d->x, (size_t)n * D * sizeof(float));
  fm_dense_forward(d->resa, D, d->atty, wt(m, b->ow), NULL, n, QD, D, 1);
  fm_rmsnorm_forward(d->ln, d->rstd, d->resa, wt(m, b->ln2w), n, D, D, eps);
  memcpy(d->x, d->resa, (size_t)n * D * sizeof(float));
  if (b->moe) {
    moe_ffn(d, l, n);
    if (b->sgw >= 0)
      fm_shared_expert_forward(d->x, d->sy, d->sg, d->sgu, d->sact, d->ln, wt(m, b->sgw), wt(m, b->suw),
                               wt(m, b->sdw), wt(m, b->sgt), n, D, s->shared_ffn);
  } else {
    fm_swiglu_ffn_forward(d->x, d->fa, d->fb, d->ln, wt(m, b->gw), wt(m, b->uw), wt(m, b->dw), n, D, s->ffn, 1);
  }
}

fm_err fm_decoder_step(fm_decoder *d, const int32_t *tok, int n, int all, const float **logits) {
  const fm_model *m = d->m;
  const fm_model_shape *s = &m->s;
  const int D = s->d, V = s->vocab, gpt2 = s->family == FM_FAMILY_GPT2;
  if (n < 1 || n > d->rows)
    FM_ERROR(FM_ERR_ARG, "a decoding step of %d tokens: this decoder takes 1..%d", n, d->rows);
  if (d->pos + n > d->ctx)
    FM_ERROR(FM_ERR_ARG, "%d more tokens after %d: the decoder's context holds %d", n, d->pos, d->ctx);
  for (int i = 0; i < n; i++)
    if (tok[i] < 0 || tok[i] >= V)
      FM_ERROR(FM_ERR_DATA, "token %d at position %d is outside the vocabulary 0..%d", tok[i], d->pos + i, V - 1);
  fm_embed_forward(d->x, tok, wt(m, m->wte), gpt2 ? wt(m, m->wpe) + (size_t)d->pos * D : NULL, 1, n, D);
  for (int l = 0; l < s->layers; l++) (gpt2 ? gpt2_block : llama_block)(d, l, n);
  if (gpt2)
    fm_layernorm_forward(d->ln, d->mean, d->rstd, d->x, wt(m, m->lnfw), wt(m, m->lnfb), n, D, s->norm_eps);
  else
    fm_rmsnorm_forward(d->ln, d->rstd, d->x, wt(m, m->lnfw), n, D, D, s->norm_eps);
  /* the head (gpt2's is tied to wte): every new row, or the last one alone */
  const int head = gpt2 ? m->wte : m->head, rows = all ? n : 1;
  fm_gemm(0, 1, rows, V, D, 1.0f, d->ln + (size_t)(n - rows) * D, D, m->t[head].w, D, 0.0f, d->logits, V);
  d->pos += n;
  *logits = d->logits;
  return FM_OK;
}
