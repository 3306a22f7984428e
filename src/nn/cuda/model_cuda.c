/* model_cuda.c - the passes of model_pass.c on the GPU, kernel for kernel.
 *
 *   h0 = wte[tok] + wpe[pos]
 *   block l:  a = h + c_proj(attn(c_attn(ln_1(h))));  h' = a + ffn(ln_2(a))
 *   logits = ln_f(h_L) wte^T;   loss = CE(logits, targets)
 *
 * The head and its cross-entropy are one fused, row-chunked call (head.c) that never
 * holds the [N,V] logits: when some tensor is to be trained, the forward computes the
 * head's gradients with the loss (dln, and the head weights' into dwhead, added to
 * their gradient by the backward), since the logits are at hand then.
 *
 * Every array below is device memory; the host fm_model supplies the tensor table
 * (names, classes, offsets, freeze flags), never its values. */
#include "model_cuda.h"

#include "../model_impl.h"
#include "context.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *resa, *ln2, *ln2_mean, *ln2_rstd, *fch, *fcg;
} cu_block;

struct fm_cu_model {
  fm_cu *cu;
  fm_model *m;
  int B, T, Bc, Tc, nvalid, have_fwd;
  int head_dx, head_dw;      /* the forward's fused head left dln (and dwhead) */
  float **cw, **cg, *fw;    /* per class: parameters, gradients; the frozen tensors */
  float **am, **av;         /* per class: AdamW moments */
  long *step;               /* per class: AdamW steps */
  float **tw;               /* per tensor: its device values */
  cu_block *blk;
  float *arena;             /* activations, one allocation */
  size_t arena_n, bytes;
  float *res, *lnf, *lnf_mean, *lnf_rstd, *lse, *dres, *dln, *datty, *dqkv, *dfc;
  float *dwhead;            /* the head weights' gradient from the fused head [V,D] */
  int32_t *tokens, *targets;
};

/* Time per part of the passes (FEDMOE_CUDA_PROFILE=1; bench_cuda prints it): each
 * timed call is bracketed by events and waited for, which serialises the stream, so
 * the figures are for finding where the time goes, not for the step's speed. */
enum { PROF_EMBED, PROF_NORM, PROF_ATTN_PROJ, PROF_ATTN_CORE, PROF_FFN, PROF_HEAD, PROF_OPT, PROF_OTHER, PROF_N };
static const char *prof_name[PROF_N] = {"embed", "norms", "attn proj", "attn core", "ffn", "head+loss", "optimizer", "other"};
static double prof_ms[PROF_N];
static int prof_on = -1;


void fm_cu_model_profile_print(int steps) {
  double total = 0;
  for (int i = 0; i < PROF_N; i++) total += prof_ms[i];
  if (total <= 0) return;
  for (int i = 0; i < PROF_N; i++)
    printf("      %-10s %8.2f ms a step  %5.1f%%\n", prof_name[i], prof_ms[i] / steps, 100 * prof_ms[i] / total);
  memset(prof_ms, 0, sizeof prof_ms);
}

static int profiling(void) {
  if (prof_on < 0) prof_on = getenv("FEDMOE_CUDA_PROFILE") && *getenv("FEDMOE_CUDA_PROFILE") == '1';
  return prof_on;
}

/* time from the previous mark to now into part (profiling only) */
static cudaEvent_t prof_ev[2];
static void mark(fm_cu *cu, int part) {
  if (!profiling()) return;
  if (!prof_ev[0]) {
    cudaEventCreate(&prof_ev[0]);
    cudaEventCreate(&prof_ev[1]);
    cudaEventRecord(prof_ev[0], cu->stream);
    return;
  }
  cudaEventRecord(prof_ev[1], cu->stream);
  cudaEventSynchronize(prof_ev[1]);
  float ms = 0;
  cudaEventElapsedTime(&ms, prof_ev[0], prof_ev[1]);
  if (part >= 0) prof_ms[part] += ms;
  cudaEventRecord(prof_ev[0], cu->stream);
}

/* the device gradient of tensor i as a kernel sees it: NULL when frozen (class or flag) */
static float *grad_of(const fm_cu_model *g, int i) {
  const fm_tensor *t = &g->m->t[i];
  if (i < 0 || !t->g || t->frozen) return NULL;
  return g->cg[t->cls] + t->offset;
}

static fm_err alloc_floats(fm_cu_model *g, float **p, size_t n, const char *what) {
  FM_CHECK(fm_cu_alloc(g->cu, p, (n ? n : 1) * sizeof(float), what));
  g->bytes += (n ? n : 1) * sizeof(float);
  return FM_OK;
}

static fm_err alloc_params(fm_cu_model *g) {
  fm_model *m = g->m;
  const int nc = m->nclass;
  FM_CALLOC(g->cw, nc ? nc : 1, "GPU class table");
  FM_CALLOC(g->cg, nc ? nc : 1, "GPU class table");
  FM_CALLOC(g->am, nc ? nc : 1, "GPU class table");
  FM_CALLOC(g->av, nc ? nc : 1, "GPU class table");
  FM_CALLOC(g->step, nc ? nc : 1, "GPU class table");
  for (int c = 0; c < nc; c++) {
    FM_CHECK(alloc_floats(g, &g->cw[c], m->cn[c], "a class of parameters"));
    FM_CHECK(alloc_floats(g, &g->cg[c], m->cn[c], "a class of gradients"));
    FM_CHECK(alloc_floats(g, &g->am[c], m->cn[c], "AdamW first moments"));
    FM_CHECK(alloc_floats(g, &g->av[c], m->cn[c], "AdamW second moments"));
  }
  FM_CHECK(alloc_floats(g, &g->fw, m->fn, "the frozen parameters"));
  FM_CALLOC(g->tw, m->nt, "GPU tensor table");
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    g->tw[i] = (t->cls == FM_CLASS_FROZEN ? g->fw : g->cw[t->cls]) + t->offset;
  }
  return FM_OK;
}

/* the arena of model.c's alloc_activations, dense blocks only */
static fm_err alloc_activations(fm_cu_model *g) {
  const fm_model_shape *s = &g->m->s;
  const size_t N = (size_t)g->B * g->T, D = (size_t)s->d, V = (size_t)s->vocab, F = (size_t)s->ffn;
  const size_t att = fm_cu_attention_saved(g->B, g->T, s->heads, s->d / s->heads);
  const size_t per_block = 2 * N + N * D + N * 3 * D + att + 2 * N * D + 2 * N + N * D + 2 * N * F;
  const size_t total = (s->layers + 1) * N * D + N * D + 2 * N + N + 3 * N * D + 3 * N * D +
                       N * F + s->layers * per_block;
  FM_CHECK(alloc_floats(g, &g->arena, total, "the model's activations"));
  FM_CHECK(alloc_floats(g, &g->dwhead, V * D, "the head weights' gradient"));
  g->arena_n = total;
  float *q = g->arena;
#define TAKE(ptr, n) (ptr = q, q += (n))
  TAKE(g->res, (s->layers + 1) * N * D);
  TAKE(g->lnf, N * D);
  TAKE(g->lnf_mean, N);
  TAKE(g->lnf_rstd, N);
  TAKE(g->lse, N);
  TAKE(g->dres, N * D);
  TAKE(g->dln, N * D);
  TAKE(g->datty, N * D);
  TAKE(g->dqkv, 3 * N * D);
  TAKE(g->dfc, N * F);
  FM_CALLOC(g->blk, s->layers, "GPU block table");
  for (int l = 0; l < s->layers; l++) {
    cu_block *b = &g->blk[l];
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
    TAKE(b->fch, N * F);
    TAKE(b->fcg, N * F);
  }
#undef TAKE
  if ((size_t)(q - g->arena) != total) FM_ERROR(FM_ERR_INTERNAL, "GPU activation arena miscounted");
  FM_CHECK(fm_cu_alloc(g->cu, &g->tokens, N * sizeof(int32_t), "token ids"));
  FM_CHECK(fm_cu_alloc(g->cu, &g->targets, N * sizeof(int32_t), "targets"));
  g->bytes += 2 * N * sizeof(int32_t);
  return FM_OK;
}

fm_err fm_cu_model_create(fm_cu_model **out, fm_cu *cu, fm_model *m, int B, int T) {
  const fm_model_shape *s = &m->s;
  if (s->moe_mask)
    FM_ERROR(FM_ERR_CONFIG, "run.device = cuda: MoE blocks (model.moe_layers) do not run on the GPU yet; "
             "set model.moe_layers = none or run.device = cpu");
  if (s->family != FM_FAMILY_GPT2 || s->attn_lora_rank > 0)
    FM_ERROR(FM_ERR_CONFIG, "run.device = cuda: only the gpt2 family without attention LoRA runs on the GPU yet "
             "(model.family, model.attn_lora_rank)");
  if (B < 1 || T < 1 || T > s->context) FM_ERROR(FM_ERR_ARG, "GPU model for [%d,%d] tokens", B, T);
  fm_cu_model *g;
  FM_CALLOC(g, 1, "GPU model");
  g->cu = cu;
  g->m = m;
  g->B = B;
  g->T = T;
  fm_err e = alloc_params(g);
  if (!e) e = alloc_activations(g);
  if (e) {
    fm_cu_model_free(g);
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  mark(cu, -1); /* the profile starts here */
  *out = g;
  return FM_OK;
}

void fm_cu_model_free(fm_cu_model *g) {
  if (!g) return;
  for (int c = 0; c < g->m->nclass && g->cw; c++) {
    fm_cu_free(g->cw[c]);
    fm_cu_free(g->cg[c]);
    fm_cu_free(g->am[c]);
    fm_cu_free(g->av[c]);
  }
  fm_cu_free(g->fw);
  fm_cu_free(g->arena);
  fm_cu_free(g->dwhead);
  fm_cu_free(g->tokens);
  fm_cu_free(g->targets);
  free(g->cw), free(g->cg), free(g->am), free(g->av), free(g->step), free(g->tw), free(g->blk);
  free(g);
}

size_t fm_cu_model_bytes(const fm_cu_model *g) { return g->bytes; }

fm_err fm_cu_model_upload(fm_cu_model *g) {
  fm_model *m = g->m;
  for (int c = 0; c < m->nclass; c++)
    FM_CHECK(fm_cu_upload(g->cu, g->cw[c], m->cw[c], m->cn[c] * sizeof(float)));
  FM_CHECK(fm_cu_upload(g->cu, g->fw, m->fw, m->fn * sizeof(float)));
  return fm_cu_sync(g->cu, "upload the model");
}

fm_err fm_cu_model_download_params(fm_cu_model *g, int cls) {
  if (cls < 0 || cls >= g->m->nclass) FM_ERROR(FM_ERR_INTERNAL, "download of class %d", cls);
  return fm_cu_download(g->cu, g->m->cw[cls], g->cw[cls], g->m->cn[cls] * sizeof(float));
}

fm_err fm_cu_model_download_grads(fm_cu_model *g, int cls) {
  if (cls < 0 || cls >= g->m->nclass) FM_ERROR(FM_ERR_INTERNAL, "download of class %d", cls);
  return fm_cu_download(g->cu, g->m->cg[cls], g->cg[cls], g->m->cn[cls] * sizeof(float));
}

fm_err fm_cu_model_zero_grads(fm_cu_model *g) {
  mark(g->cu, -1);
  for (int c = 0; c < g->m->nclass; c++)
    FM_CHECK(FM_CU(cudaMemsetAsync(g->cg[c], 0, g->m->cn[c] * sizeof(float), g->cu->stream),
                   "clear the gradients"));
  mark(g->cu, PROF_OTHER);
  return FM_OK;
}

/* as model_pass.c: the lowest level whose tensors want a gradient (L+2: none) */
static int lowest_level(const fm_model *m) {
  int lo = m->s.layers + 2;
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    if (!t->g || t->frozen) continue;
    int lev = t->group == FM_GROUP_EMBED ? 0 : t->layer >= 0 ? t->layer + 1 : m->s.layers + 1;
    if (lev < lo) lo = lev;
  }
  return lo;
}

fm_err fm_cu_model_forward(fm_cu_model *g, const int32_t *tokens, const int32_t *targets, int B,
                           int T, float *ce) {
  fm_model *m = g->m;
  const fm_model_shape *s = &m->s;
  const int D = s->d, V = s->vocab, L = s->layers, F = s->ffn;
  if (B < 1 || B > g->B || T < 1 || T > g->T)
    FM_ERROR(FM_ERR_ARG, "GPU forward over [%d,%d] tokens: made for at most [%d,%d]", B, T, g->B, g->T);
  const int N = B * T;
  for (int n = 0; n < N; n++)
    if (tokens[n] < 0 || tokens[n] >= V || targets[n] >= V)
      FM_ERROR(FM_ERR_DATA, "token %d / target %d at position %d is outside the vocabulary 0..%d",
               tokens[n], targets[n], n, V - 1);
  fm_cu *cu = g->cu;
  FM_CHECK(fm_cu_upload(cu, g->tokens, tokens, (size_t)N * sizeof *tokens));
  FM_CHECK(fm_cu_upload(cu, g->targets, targets, (size_t)N * sizeof *targets));
  mark(cu, PROF_OTHER);
  g->Bc = B;
  g->Tc = T;
  const size_t stride = (size_t)g->B * g->T * D;
  float **w = g->tw;
  FM_CHECK(fm_cu_embed_forward(cu, g->res, g->tokens, w[m->wte], w[m->wpe], B, T, D));
  mark(cu, PROF_EMBED);
  for (int l = 0; l < L; l++) {
    const fm_block *hb = &m->blk[l];
    cu_block *b = &g->blk[l];
    const float *in = g->res + l * stride;
    float *out = g->res + (l + 1) * stride;
    FM_CHECK(fm_cu_layernorm_forward(cu, b->ln1, b->ln1_mean, b->ln1_rstd, in, w[hb->ln1w], w[hb->ln1b], N, D, s->norm_eps));
    mark(cu, PROF_NORM);
    FM_CHECK(fm_cu_linear_forward(cu, b->qkv, b->ln1, w[hb->attw], w[hb->attb], N, D, 3 * D, 0));
    mark(cu, PROF_ATTN_PROJ);
    FM_CHECK(fm_cu_attention_forward(cu, b->atty, b->att, b->qkv, B, T, s->heads, s->heads, D / s->heads));
    mark(cu, PROF_ATTN_CORE);
    FM_CHECK(FM_CU(cudaMemcpyAsync(b->resa, in, (size_t)N * D * sizeof(float), cudaMemcpyDeviceToDevice,
                                   cu->stream), "residual"));
    FM_CHECK(fm_cu_linear_forward(cu, b->resa, b->atty, w[hb->aprw], w[hb->aprb], N, D, D, 1));
    mark(cu, PROF_ATTN_PROJ);
    FM_CHECK(fm_cu_layernorm_forward(cu, b->ln2, b->ln2_mean, b->ln2_rstd, b->resa, w[hb->ln2w],
                                     w[hb->ln2b], N, D, s->norm_eps));
    mark(cu, PROF_NORM);
    FM_CHECK(FM_CU(cudaMemcpyAsync(out, b->resa, (size_t)N * D * sizeof(float), cudaMemcpyDeviceToDevice,
                                   cu->stream), "residual"));
    /* the dense FFN of ffn.c: h = x fc_w, bias + GELU, out += g pj_w + pj_b */
    FM_CHECK(fm_cu_gemm(cu, 0, 0, N, F, D, 1.0f, b->ln2, D, w[hb->fcw], F, 0.0f, b->fch, F));
    FM_CHECK(fm_cu_bias_gelu_forward(cu, b->fcg, b->fch, w[hb->fcb], N, F));
    FM_CHECK(fm_cu_linear_forward(cu, out, b->fcg, w[hb->fpw], w[hb->fpb], N, F, D, 1));
    mark(cu, PROF_FFN);
  }
  FM_CHECK(fm_cu_layernorm_forward(cu, g->lnf, g->lnf_mean, g->lnf_rstd, g->res + L * stride,
                                   w[m->lnfw], w[m->lnfb], N, D, s->norm_eps));
  mark(cu, PROF_NORM);
  /* the fused head: loss, and when training the head's gradients (see the top) */
  const int train = lowest_level(m) <= L + 1;
  float *dwte = train ? grad_of(g, m->wte) : NULL;
  double loss;
  FM_CHECK(fm_cu_head_crossentropy(cu, &loss, &g->nvalid, g->lse, train ? g->dln : NULL,
                                   dwte ? g->dwhead : NULL, 0, g->lnf, w[m->wte], g->targets, N, D,
                                   V, 1.0f));
  g->head_dx = train;
  g->head_dw = dwte != NULL;
  mark(cu, PROF_HEAD);
  g->have_fwd = 1;
  if (ce) *ce = (float)loss;
  return FM_OK;
}

fm_err fm_cu_model_backward(fm_cu_model *g) {
  if (!g->have_fwd) FM_ERROR(FM_ERR_INTERNAL, "GPU backward without a forward");
  fm_model *m = g->m;
  fm_cu *cu = g->cu;
  const fm_model_shape *s = &m->s;
  const int D = s->d, V = s->vocab, L = s->layers, F = s->ffn, B = g->Bc, T = g->Tc, N = B * T;
  const size_t stride = (size_t)g->B * g->T * D;
  const int lo = lowest_level(m);
  if (lo > L + 1) return FM_OK;
  float **w = g->tw;
  float *dwte = grad_of(g, m->wte);
  if (g->head_dx && (g->head_dw || !dwte)) {
    if (dwte) {
      const float one = 1.0f;
      FM_CHECK(FM_CUBLAS(cublasSaxpy(cu->blas, V * D, &one, g->dwhead, 1, dwte, 1), "head gradient"));
    }
  } else { /* the freeze flags changed since the forward: the head's gradients now */
    double l;
    int nv;
    FM_CHECK(fm_cu_head_crossentropy(cu, &l, &nv, NULL, g->dln, dwte, 1, g->lnf, w[m->wte], g->targets,
                                     N, D, V, 1.0f));
  }
  mark(cu, PROF_HEAD);
  FM_CHECK(FM_CU(cudaMemsetAsync(g->dres, 0, (size_t)N * D * sizeof(float), cu->stream), "clear"));
  FM_CHECK(fm_cu_layernorm_backward(cu, lo <= L ? g->dres : NULL, grad_of(g, m->lnfw), grad_of(g, m->lnfb),
                                    g->dln, g->res + L * stride, w[m->lnfw], g->lnf_mean, g->lnf_rstd, N, D));
  mark(cu, PROF_NORM);
  for (int l = L - 1; l >= 0 && l + 1 >= lo; l--) {
    const fm_block *hb = &m->blk[l];
    cu_block *b = &g->blk[l];
    const float *in = g->res + l * stride;
    const int want_dx = l + 1 > lo;
    FM_CHECK(FM_CU(cudaMemsetAsync(g->dln, 0, (size_t)N * D * sizeof(float), cu->stream), "clear"));
    /* ffn.c's backward: c_proj, then GELU with the c_fc bias, then c_fc */
    float *dfcw = grad_of(g, hb->fcw), *dfcb = grad_of(g, hb->fcb);
    FM_CHECK(fm_cu_linear_backward(cu, g->dfc, grad_of(g, hb->fpw), grad_of(g, hb->fpb), g->dres, b->fcg,
                                   w[hb->fpw], N, F, D, 0));
    FM_CHECK(fm_cu_gelu_backward_bias(cu, g->dfc, b->fch, dfcb, N, F));
    FM_CHECK(fm_cu_linear_backward(cu, g->dln, dfcw, NULL, g->dfc, b->ln2, w[hb->fcw], N, D, F, 1));
    mark(cu, PROF_FFN);
    FM_CHECK(fm_cu_layernorm_backward(cu, g->dres, grad_of(g, hb->ln2w), grad_of(g, hb->ln2b), g->dln,
                                      b->resa, w[hb->ln2w], b->ln2_mean, b->ln2_rstd, N, D));
    mark(cu, PROF_NORM);
    FM_CHECK(fm_cu_linear_backward(cu, g->datty, grad_of(g, hb->aprw), grad_of(g, hb->aprb), g->dres,
                                   b->atty, w[hb->aprw], N, D, D, 0));
    mark(cu, PROF_ATTN_PROJ);
    FM_CHECK(fm_cu_attention_backward(cu, g->dqkv, NULL, g->datty, b->qkv, b->att, B, T, s->heads, s->heads,
                                      D / s->heads));
    mark(cu, PROF_ATTN_CORE);
    FM_CHECK(fm_cu_linear_backward(cu, g->dln, grad_of(g, hb->attw), grad_of(g, hb->attb), g->dqkv, b->ln1,
                                   w[hb->attw], N, D, 3 * D, 0));
    mark(cu, PROF_ATTN_PROJ);
    FM_CHECK(fm_cu_layernorm_backward(cu, want_dx ? g->dres : NULL, grad_of(g, hb->ln1w), grad_of(g, hb->ln1b),
                                      g->dln, in, w[hb->ln1w], b->ln1_mean, b->ln1_rstd, N, D));
    mark(cu, PROF_NORM);
  }
  if (lo == 0) FM_CHECK(fm_cu_embed_backward(cu, dwte, grad_of(g, m->wpe), g->dres, g->tokens, B, T, D));
  mark(cu, PROF_EMBED);
  return fm_cu_sync(cu, "the backward pass");
}

fm_err fm_cu_model_adamw(fm_cu_model *g, int cls, const fm_adamw_hparams *h) {
  fm_model *m = g->m;
  if (cls < 0 || cls >= m->nclass) FM_ERROR(FM_ERR_INTERNAL, "GPU AdamW on class %d", cls);
  if (!(h->grad_scale >= 0.0f)) FM_ERROR(FM_ERR_INTERNAL, "GPU AdamW with grad_scale %g", (double)h->grad_scale);
  const long step = ++g->step[cls];
  mark(g->cu, -1);
  for (int i = 0; i < m->nt; i++) {
    const fm_tensor *t = &m->t[i];
    if (t->cls != cls || t->frozen) continue;
    FM_CHECK(fm_cu_adamw(g->cu, g->cw[cls] + t->offset, g->am[cls] + t->offset, g->av[cls] + t->offset,
                         g->cg[cls] + t->offset, t->numel, h->lr, h->beta1, h->beta2, h->eps,
                         t->decay ? h->weight_decay : 0.0f, step, h->grad_scale));
  }
  mark(g->cu, PROF_OPT);
  return FM_OK;
}
