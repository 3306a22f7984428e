/* model_shape.c - the model's shape: from the configuration, checked, listed as
 * tensors (names, shapes, groups), and its training FLOPs per token. */
#include "nn.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "all", "none" or a comma-separated list of block indices in [0, layers) */
static fm_err parse_moe_layers(const fm_config *c, int layers, uint64_t *mask) {
  const char *p = c->model.moe_layers;
  while (isspace((unsigned char)*p)) p++;
  size_t len = strlen(p);
  while (len && isspace((unsigned char)p[len - 1])) len--;
  if (len == 3 && !strncmp(p, "all", 3)) {
    *mask = layers >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << layers) - 1);
    return FM_OK;
  }
  if (len == 4 && !strncmp(p, "none", 4)) {
    *mask = 0;
    return FM_OK;
  }
  if (!len) FM_CONFIG_ERROR(c, "model.moe_layers", "empty: use \"all\", \"none\" or a list like \"0,2\"");
  uint64_t m = 0;
  const char *q = p, *end = p + len;
  while (q < end) {
    while (q < end && isspace((unsigned char)*q)) q++;
    char *stop;
    long v = strtol(q, &stop, 10);
    if (stop == q || !isdigit((unsigned char)*q))
      FM_CONFIG_ERROR(c, "model.moe_layers", "'%s' is not \"all\", \"none\" or a list of block indices",
                      c->model.moe_layers);
    if (v < 0 || v >= layers)
      FM_CONFIG_ERROR(c, "model.moe_layers", "block %ld is out of range 0..%d (model.layers = %d)", v,
                      layers - 1, layers);
    if ((m >> v) & 1) FM_CONFIG_ERROR(c, "model.moe_layers", "block %ld is listed twice", v);
    m |= (uint64_t)1 << v;
    q = stop;
    while (q < end && isspace((unsigned char)*q)) q++;
    if (q < end && *q != ',')
      FM_CONFIG_ERROR(c, "model.moe_layers", "'%s' is not \"all\", \"none\" or a list of block indices",
                      c->model.moe_layers);
    if (q < end) {
      q++;
      if (q >= end) FM_CONFIG_ERROR(c, "model.moe_layers", "'%s' ends with a comma", c->model.moe_layers);
    }
  }
  *mask = m;
  return FM_OK;
}

fm_err fm_model_shape_from_config(const fm_config *c, fm_model_shape *s) {
  memset(s, 0, sizeof *s);
  s->vocab = c->model.vocab;
  s->context = c->model.context;
  s->d = c->model.d_model;
  s->heads = c->model.heads;
  s->layers = c->model.layers;
  s->experts = c->model.experts;
  s->top_k = c->model.top_k;
  s->expert_type = c->model.expert_type;
  s->lora_rank = c->model.lora_rank;
  s->lora_alpha = (float)c->model.lora_alpha;
  s->init_std = (float)c->model.init_std;
  s->load_balance = (float)c->model.load_balance;
  if (s->layers < 1 || s->layers > FM_MAX_LAYERS)
    FM_CONFIG_ERROR(c, "model.layers", "%d blocks: must be 1..%d", s->layers, FM_MAX_LAYERS);
  if (s->heads < 1 || s->d % s->heads)
    FM_CONFIG_ERROR(c, "model.heads", "model.d_model = %d is not divisible by %d heads", s->d, s->heads);
  if (s->experts < 1 || s->experts > FM_MAX_EXPERTS)
    FM_CONFIG_ERROR(c, "model.experts", "%d experts: must be 1..%d", s->experts, FM_MAX_EXPERTS);
  if (s->top_k < 1 || s->top_k > s->experts)
    FM_CONFIG_ERROR(c, "model.top_k", "top_k = %d exceeds model.experts = %d", s->top_k, s->experts);
  FM_CHECK(parse_moe_layers(c, s->layers, &s->moe_mask));
  return FM_OK;
}

#define SHAPE_ERROR(key, ...) \
  FM_ERROR(FM_ERR_CONFIG, "model shape: key '" key "': " __VA_ARGS__)

fm_err fm_shape_check(const fm_model_shape *s) {
  if (s->vocab < 1) SHAPE_ERROR("model.vocab", "vocab = %d", s->vocab);
  if (s->context < 1) SHAPE_ERROR("model.context", "context = %d", s->context);
  if (s->d < 1) SHAPE_ERROR("model.d_model", "d_model = %d", s->d);
  if (s->layers < 1 || s->layers > FM_MAX_LAYERS)
    SHAPE_ERROR("model.layers", "%d blocks: must be 1..%d", s->layers, FM_MAX_LAYERS);
  if (s->heads < 1 || s->d % s->heads)
    SHAPE_ERROR("model.heads", "model.d_model = %d is not divisible by %d heads", s->d, s->heads);
  if (s->layers < 64 && (s->moe_mask >> s->layers))
    SHAPE_ERROR("model.moe_layers", "MoE block index beyond model.layers = %d", s->layers);
  if (s->moe_mask) {
    if (s->experts < 1 || s->experts > FM_MAX_EXPERTS)
      SHAPE_ERROR("model.experts", "%d experts: must be 1..%d", s->experts, FM_MAX_EXPERTS);
    if (s->top_k < 1 || s->top_k > s->experts)
      SHAPE_ERROR("model.top_k", "top_k = %d exceeds model.experts = %d", s->top_k, s->experts);
    if (s->expert_type != FM_EXPERT_FULL && s->expert_type != FM_EXPERT_LORA)
      SHAPE_ERROR("model.expert_type", "unknown expert type %d", s->expert_type);
    if (s->expert_type == FM_EXPERT_LORA && s->lora_rank < 1)
      SHAPE_ERROR("model.lora_rank", "lora_rank = %d", s->lora_rank);
  }
  return FM_OK;
}

__attribute__((format(printf, 9, 10))) static void put(fm_tensor *out, int *n, fm_group g, int layer, int expert, int rows, int cols,
                int decay, const char *fmt, ...) {
  if (out) {
    fm_tensor *t = &out[*n];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->group = g;
    t->layer = layer;
    t->expert = expert;
    t->rows = rows;
    t->cols = cols;
    t->numel = (size_t)rows * (size_t)cols;
    t->decay = decay;
  }
  (*n)++;
}

int fm_shape_tensors(const fm_model_shape *s, fm_tensor *out) {
  const int D = s->d, F = 4 * D, E = s->experts, r = s->lora_rank;
  int n = 0;
  put(out, &n, FM_GROUP_EMBED, -1, -1, s->vocab, D, 1, "wte");
  put(out, &n, FM_GROUP_EMBED, -1, -1, s->context, D, 1, "wpe");
  for (int l = 0; l < s->layers; l++) {
    const int moe = (s->moe_mask >> l) & 1, lora = s->expert_type == FM_EXPERT_LORA;
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "h.%d.ln_1.weight", l);
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "h.%d.ln_1.bias", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, D, 3 * D, 1, "h.%d.attn.c_attn.weight", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, 1, 3 * D, 0, "h.%d.attn.c_attn.bias", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, D, D, 1, "h.%d.attn.c_proj.weight", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, 1, D, 0, "h.%d.attn.c_proj.bias", l);
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "h.%d.ln_2.weight", l);
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "h.%d.ln_2.bias", l);
    if (!moe || lora) {
      put(out, &n, FM_GROUP_FFN, l, -1, D, F, 1, "h.%d.mlp.c_fc.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, 1, F, 0, "h.%d.mlp.c_fc.bias", l);
      put(out, &n, FM_GROUP_FFN, l, -1, F, D, 1, "h.%d.mlp.c_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, 1, D, 0, "h.%d.mlp.c_proj.bias", l);
    }
    if (!moe) continue;
    put(out, &n, FM_GROUP_ROUTER, l, -1, E, D, 1, "h.%d.moe.router.weight", l);
    for (int e = 0; e < E; e++) {
      if (lora) {
        put(out, &n, FM_GROUP_EXPERT, l, e, D, r, 1, "h.%d.moe.experts.%d.c_fc.lora_A", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, r, F, 1, "h.%d.moe.experts.%d.c_fc.lora_B", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, F, r, 1, "h.%d.moe.experts.%d.c_proj.lora_A", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, r, D, 1, "h.%d.moe.experts.%d.c_proj.lora_B", l, e);
      } else {
        put(out, &n, FM_GROUP_EXPERT, l, e, D, F, 1, "h.%d.moe.experts.%d.c_fc.weight", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, 1, F, 0, "h.%d.moe.experts.%d.c_fc.bias", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, F, D, 1, "h.%d.moe.experts.%d.c_proj.weight", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, 1, D, 0, "h.%d.moe.experts.%d.c_proj.bias", l, e);
      }
    }
  }
  put(out, &n, FM_GROUP_NORM, -1, -1, 1, D, 0, "ln_f.weight");
  put(out, &n, FM_GROUP_NORM, -1, -1, 1, D, 0, "ln_f.bias");
  return n;
}

/* 6 N_active + 12 L D T. N_active counts the matrix weights one token passes
 * through: attention (4 D^2 per block), the dense FFN (8 D^2) or, in an MoE block,
 * the router (E D) and top_k experts (8 D^2 each for full experts; for LoRA experts
 * the base FFN once, 8 D^2, plus top_k adapters of 10 D r), and the tied head (V D).
 * Embedding lookups and biases are not counted. */
double fm_model_flops_per_token(const fm_model *m, int T) {
  const fm_model_shape *s = fm_model_get_shape(m);
  const double D = s->d, F = 4.0 * D;
  double n = (double)s->vocab * D;
  for (int l = 0; l < s->layers; l++) {
    n += 4.0 * D * D;
    if (!((s->moe_mask >> l) & 1)) {
      n += 2.0 * D * F;
      continue;
    }
    n += (double)s->experts * D;
    if (s->expert_type == FM_EXPERT_LORA)
      n += 2.0 * D * F + (double)s->top_k * s->lora_rank * 2.0 * (D + F);
    else
      n += (double)s->top_k * 2.0 * D * F;
  }
  return 6.0 * n + 12.0 * s->layers * D * T;
}
