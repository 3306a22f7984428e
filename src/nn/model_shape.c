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

static int tri(int v, int dflt) { return v == FM_TRI_AUTO ? dflt : v == FM_TRI_TRUE; }

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
  s->family = c->model.family;
  const int gpt2 = s->family == FM_FAMILY_GPT2;
  s->kv_heads = c->model.kv_heads;
  s->head_dim = c->model.head_dim;
  s->ffn = c->model.ffn;
  s->expert_ffn = c->model.expert_ffn;
  s->shared_ffn = s->family == FM_FAMILY_QWEN2_MOE ? c->model.shared_ffn : 0;
  s->norm_eps = (float)c->model.norm_eps;
  s->rope_type = gpt2 ? FM_ROPE_NONE : FM_ROPE_DEFAULT;
  s->rope_theta = (float)c->model.rope_theta;
  if (c->model.rope_scaling == FM_ROPE_SCALING_LLAMA3) {
    if (gpt2) FM_CONFIG_ERROR(c, "model.rope_scaling", "gpt2 has learned positions, no rotary embedding");
    if (c->model.rope_high_freq <= c->model.rope_low_freq)
      FM_CONFIG_ERROR(c, "model.rope_high_freq", "%g must exceed model.rope_low_freq = %g",
                      c->model.rope_high_freq, c->model.rope_low_freq);
    s->rope_type = FM_ROPE_LLAMA3;
    s->rope_factor = (float)c->model.rope_factor;
    s->rope_low_freq = (float)c->model.rope_low_freq;
    s->rope_high_freq = (float)c->model.rope_high_freq;
    s->rope_orig_ctx = c->model.rope_orig_ctx;
  }
  s->norm_topk = tri(c->model.norm_topk, s->top_k >= 2);
  s->tied = tri(c->model.tied, gpt2);
  s->attn_bias = tri(c->model.attn_bias, gpt2 || s->family == FM_FAMILY_QWEN2_MOE);
  s->qk_norm = tri(c->model.qk_norm, s->family == FM_FAMILY_OLMOE);
  s->attn_lora_rank = c->model.attn_lora_rank;
  if (s->layers < 1 || s->layers > FM_MAX_LAYERS)
    FM_CONFIG_ERROR(c, "model.layers", "%d blocks: must be 1..%d", s->layers, FM_MAX_LAYERS);
  if (s->heads < 1 || (!s->head_dim && s->d % s->heads))
    FM_CONFIG_ERROR(c, "model.heads", "model.d_model = %d is not divisible by %d heads", s->d, s->heads);
  if (s->experts < 1 || s->experts > FM_MAX_EXPERTS)
    FM_CONFIG_ERROR(c, "model.experts", "%d experts: must be 1..%d", s->experts, FM_MAX_EXPERTS);
  if (s->top_k < 1 || s->top_k > s->experts)
    FM_CONFIG_ERROR(c, "model.top_k", "top_k = %d exceeds model.experts = %d", s->top_k, s->experts);
  if (gpt2 && !s->tied) FM_CONFIG_ERROR(c, "model.tied", "gpt2's LM head is always tied to wte");
  if (gpt2 && !s->attn_bias) FM_CONFIG_ERROR(c, "model.attn_bias", "gpt2's projections always have biases");
  if (gpt2 && s->qk_norm) FM_CONFIG_ERROR(c, "model.qk_norm", "q/k norms are for the llama family");
  if (gpt2 && (s->kv_heads || s->head_dim))
    FM_CONFIG_ERROR(c, s->kv_heads ? "model.kv_heads" : "model.head_dim",
                    "gpt2 has kv_heads = heads and head_dim = d_model / heads (leave it 0)");
  if (s->kv_heads && (s->kv_heads > s->heads || s->heads % s->kv_heads))
    FM_CONFIG_ERROR(c, "model.kv_heads", "%d heads are not a multiple of %d key/value heads", s->heads,
                    s->kv_heads);
  if (s->head_dim % 2 || (!s->head_dim && !gpt2 && (s->d / s->heads) % 2))
    FM_CONFIG_ERROR(c, s->head_dim ? "model.head_dim" : "model.heads",
                    "the rotary embedding needs an even head_dim (here %d)",
                    s->head_dim ? s->head_dim : s->d / s->heads);
  FM_CHECK(parse_moe_layers(c, s->layers, &s->moe_mask));
  fm_shape_resolve(s);
  /* made from scratch, a qwen2_moe shared expert is 4 experts wide unless set (a
   * loaded checkpoint states its size, 0 meaning none) */
  if (s->family == FM_FAMILY_QWEN2_MOE && !s->shared_ffn) s->shared_ffn = 4 * s->expert_ffn;
  return FM_OK;
}

void fm_shape_resolve(fm_model_shape *s) {
  const int gpt2 = s->family == FM_FAMILY_GPT2;
  if (!s->kv_heads) s->kv_heads = s->heads;
  if (!s->head_dim && s->heads > 0) s->head_dim = s->d / s->heads;
  if (!s->ffn) s->ffn = gpt2 ? 4 * s->d : (8 * s->d / 3 + 7) / 8 * 8;
  if (!s->expert_ffn) s->expert_ffn = s->ffn;
  if (s->family != FM_FAMILY_QWEN2_MOE) s->shared_ffn = 0;
  if (s->norm_eps <= 0) s->norm_eps = 1e-5f;
  if (gpt2) {
    s->rope_type = FM_ROPE_NONE;
    s->tied = s->attn_bias = 1;
    s->qk_norm = 0;
  } else if (s->rope_type == FM_ROPE_NONE) {
    s->rope_type = FM_ROPE_DEFAULT;
  }
  if (s->rope_theta <= 0) s->rope_theta = 10000.0f;
}

#define SHAPE_ERROR(key, ...) \
  FM_ERROR(FM_ERR_CONFIG, "model shape: key '" key "': " __VA_ARGS__)

/* s is resolved first (a copy), so a hand-made shape may leave the defaults at 0 */
fm_err fm_shape_check(const fm_model_shape *s0) {
  fm_model_shape r = *s0, *s = &r;
  fm_shape_resolve(s);
  if (s->vocab < 1) SHAPE_ERROR("model.vocab", "vocab = %d", s->vocab);
  if (s->context < 1) SHAPE_ERROR("model.context", "context = %d", s->context);
  if (s->d < 1) SHAPE_ERROR("model.d_model", "d_model = %d", s->d);
  if (s->layers < 1 || s->layers > FM_MAX_LAYERS)
    SHAPE_ERROR("model.layers", "%d blocks: must be 1..%d", s->layers, FM_MAX_LAYERS);
  if (s->family < FM_FAMILY_GPT2 || s->family > FM_FAMILY_QWEN2_MOE)
    SHAPE_ERROR("model.family", "unknown family %d", s->family);
  if (s->heads < 1 || (s->family == FM_FAMILY_GPT2 && s->d % s->heads))
    SHAPE_ERROR("model.heads", "model.d_model = %d is not divisible by %d heads", s->d, s->heads);
  if (s->family == FM_FAMILY_GPT2 && (s->kv_heads != s->heads || s->head_dim * s->heads != s->d))
    SHAPE_ERROR("model.kv_heads", "gpt2 needs kv_heads = heads and head_dim = d_model / heads");
  if (s->kv_heads < 1 || s->kv_heads > s->heads || s->heads % s->kv_heads)
    SHAPE_ERROR("model.kv_heads", "%d heads are not a multiple of %d key/value heads", s->heads,
                s->kv_heads);
  if (s->head_dim < 1 || s->head_dim > FM_MAX_HEAD_DIM ||
      (s->family != FM_FAMILY_GPT2 && s->head_dim % 2))
    SHAPE_ERROR("model.head_dim", "head_dim = %d: must be 1..%d, and even for the rotary embedding",
                s->head_dim, FM_MAX_HEAD_DIM);
  if (s->ffn < 1 || s->expert_ffn < 1 || s->shared_ffn < 0)
    SHAPE_ERROR("model.ffn", "FFN sizes %d (dense), %d (experts), %d (shared)", s->ffn, s->expert_ffn,
                s->shared_ffn);
  if (s->rope_type == FM_ROPE_LLAMA3 &&
      !(s->rope_factor > 0 && s->rope_low_freq > 0 && s->rope_high_freq > s->rope_low_freq &&
        s->rope_orig_ctx > 0))
    SHAPE_ERROR("model.rope_theta", "llama3 rope scaling needs factor > 0, 0 < low_freq_factor < "
                "high_freq_factor and original_max_position_embeddings > 0");
  if (s->attn_lora_rank < 0) SHAPE_ERROR("model.attn_lora_rank", "attn_lora_rank = %d", s->attn_lora_rank);
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

static int gpt2_tensors(const fm_model_shape *s, fm_tensor *out) {
  const int D = s->d, F = s->ffn, FE = s->expert_ffn, E = s->experts, r = s->lora_rank;
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
    if (s->attn_lora_rank > 0) { /* GPT-2's layout: A [in,r], B [r,out] */
      const int ra = s->attn_lora_rank;
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, D, ra, 1, "h.%d.attn.c_attn.lora_A", l);
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, ra, 3 * D, 1, "h.%d.attn.c_attn.lora_B", l);
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, D, ra, 1, "h.%d.attn.c_proj.lora_A", l);
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, ra, D, 1, "h.%d.attn.c_proj.lora_B", l);
    }
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "h.%d.ln_2.weight", l);
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "h.%d.ln_2.bias", l);
    if (!moe || lora) {
      const int FB = moe ? FE : F; /* the base FFN of LoRA experts has the experts' size */
      put(out, &n, FM_GROUP_FFN, l, -1, D, FB, 1, "h.%d.mlp.c_fc.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, 1, FB, 0, "h.%d.mlp.c_fc.bias", l);
      put(out, &n, FM_GROUP_FFN, l, -1, FB, D, 1, "h.%d.mlp.c_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, 1, D, 0, "h.%d.mlp.c_proj.bias", l);
    }
    if (!moe) continue;
    put(out, &n, FM_GROUP_ROUTER, l, -1, E, D, 1, "h.%d.moe.router.weight", l);
    for (int e = 0; e < E; e++) {
      if (lora) {
        put(out, &n, FM_GROUP_EXPERT, l, e, D, r, 1, "h.%d.moe.experts.%d.c_fc.lora_A", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, r, FE, 1, "h.%d.moe.experts.%d.c_fc.lora_B", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, FE, r, 1, "h.%d.moe.experts.%d.c_proj.lora_A", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, r, D, 1, "h.%d.moe.experts.%d.c_proj.lora_B", l, e);
      } else {
        put(out, &n, FM_GROUP_EXPERT, l, e, D, FE, 1, "h.%d.moe.experts.%d.c_fc.weight", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, 1, FE, 0, "h.%d.moe.experts.%d.c_fc.bias", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, FE, D, 1, "h.%d.moe.experts.%d.c_proj.weight", l, e);
        put(out, &n, FM_GROUP_EXPERT, l, e, 1, D, 0, "h.%d.moe.experts.%d.c_proj.bias", l, e);
      }
    }
  }
  put(out, &n, FM_GROUP_NORM, -1, -1, 1, D, 0, "ln_f.weight");
  put(out, &n, FM_GROUP_NORM, -1, -1, 1, D, 0, "ln_f.bias");
  return n;
}

/* The llama family, in Hugging Face's names without the "model." prefix and in
 * nn.Linear layout [out, in]. MoE blocks: Mixtral's block_sparse_moe.{gate, experts.e.
 * w1 (gate), w2 (down), w3 (up)}, or mlp.{gate, experts.e.{gate,up,down}_proj} of
 * OLMoE and Qwen2-MoE (and llama-family MoE blocks made from scratch); Qwen2-MoE adds
 * mlp.shared_expert.* and mlp.shared_expert_gate. model_llama.c indexes them in this
 * order. */
static int llama_tensors(const fm_model_shape *s, fm_tensor *out) {
  const int D = s->d, F = s->ffn, FE = s->expert_ffn, FS = s->shared_ffn, E = s->experts;
  const int lora = s->expert_type == FM_EXPERT_LORA, r = s->lora_rank;
  /* an expert's three matrices: HF's names, and [out, in] of each */
  static const char *const mixtral_mat[3] = {"w1", "w3", "w2"};
  static const char *const mlp_mat[3] = {"gate_proj", "up_proj", "down_proj"};
  const int QD = s->heads * s->head_dim, KD = s->kv_heads * s->head_dim;
  int n = 0;
  put(out, &n, FM_GROUP_EMBED, -1, -1, s->vocab, D, 1, "embed_tokens.weight");
  for (int l = 0; l < s->layers; l++) {
    const int moe = (s->moe_mask >> l) & 1;
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "layers.%d.input_layernorm.weight", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, QD, D, 1, "layers.%d.self_attn.q_proj.weight", l);
    if (s->attn_bias) put(out, &n, FM_GROUP_ATTN, l, -1, 1, QD, 0, "layers.%d.self_attn.q_proj.bias", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, KD, D, 1, "layers.%d.self_attn.k_proj.weight", l);
    if (s->attn_bias) put(out, &n, FM_GROUP_ATTN, l, -1, 1, KD, 0, "layers.%d.self_attn.k_proj.bias", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, KD, D, 1, "layers.%d.self_attn.v_proj.weight", l);
    if (s->attn_bias) put(out, &n, FM_GROUP_ATTN, l, -1, 1, KD, 0, "layers.%d.self_attn.v_proj.bias", l);
    put(out, &n, FM_GROUP_ATTN, l, -1, D, QD, 1, "layers.%d.self_attn.o_proj.weight", l);
    if (s->attn_lora_rank > 0) { /* PEFT's layout on q and v: A [r,in], B [out,r] */
      const int ra = s->attn_lora_rank;
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, ra, D, 1, "layers.%d.self_attn.q_proj.lora_A", l);
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, QD, ra, 1, "layers.%d.self_attn.q_proj.lora_B", l);
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, ra, D, 1, "layers.%d.self_attn.v_proj.lora_A", l);
      put(out, &n, FM_GROUP_ATTN_LORA, l, -1, KD, ra, 1, "layers.%d.self_attn.v_proj.lora_B", l);
    }
    if (s->qk_norm) {
      put(out, &n, FM_GROUP_NORM, l, -1, 1, QD, 0, "layers.%d.self_attn.q_norm.weight", l);
      put(out, &n, FM_GROUP_NORM, l, -1, 1, KD, 0, "layers.%d.self_attn.k_norm.weight", l);
    }
    put(out, &n, FM_GROUP_NORM, l, -1, 1, D, 0, "layers.%d.post_attention_layernorm.weight", l);
    if (!moe || lora) { /* the dense FFN, or the shared base under LoRA experts */
      const int FB = moe ? FE : F;
      put(out, &n, FM_GROUP_FFN, l, -1, FB, D, 1, "layers.%d.mlp.gate_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, FB, D, 1, "layers.%d.mlp.up_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, D, FB, 1, "layers.%d.mlp.down_proj.weight", l);
    }
    if (!moe) continue;
    const int mix = s->family == FM_FAMILY_MIXTRAL;
    const char *moe_name = mix ? "block_sparse_moe" : "mlp";
    const char *const *mat = mix ? mixtral_mat : mlp_mat;
    put(out, &n, FM_GROUP_ROUTER, l, -1, E, D, 1, "layers.%d.%s.gate.weight", l, moe_name);
    for (int e = 0; e < E; e++)
      for (int j = 0; j < 3; j++) {
        const int rows = j == 2 ? D : FE, cols = j == 2 ? FE : D; /* [out, in] */
        if (lora) { /* PEFT's layout: lora_A [r, in], lora_B [out, r] */
          put(out, &n, FM_GROUP_EXPERT, l, e, r, cols, 1, "layers.%d.%s.experts.%d.%s.lora_A", l,
              moe_name, e, mat[j]);
          put(out, &n, FM_GROUP_EXPERT, l, e, rows, r, 1, "layers.%d.%s.experts.%d.%s.lora_B", l,
              moe_name, e, mat[j]);
        } else {
          put(out, &n, FM_GROUP_EXPERT, l, e, rows, cols, 1, "layers.%d.%s.experts.%d.%s.weight", l,
              moe_name, e, mat[j]);
        }
      }
    if (FS > 0) {
      put(out, &n, FM_GROUP_FFN, l, -1, FS, D, 1, "layers.%d.mlp.shared_expert.gate_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, FS, D, 1, "layers.%d.mlp.shared_expert.up_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, D, FS, 1, "layers.%d.mlp.shared_expert.down_proj.weight", l);
      put(out, &n, FM_GROUP_FFN, l, -1, 1, D, 1, "layers.%d.mlp.shared_expert_gate.weight", l);
    }
  }
  put(out, &n, FM_GROUP_NORM, -1, -1, 1, D, 0, "norm.weight");
  if (!s->tied) put(out, &n, FM_GROUP_EMBED, -1, -1, s->vocab, D, 1, "lm_head.weight");
  return n;
}

/* s must be resolved (fm_shape_resolve) */
int fm_shape_tensors(const fm_model_shape *s, fm_tensor *out) {
  return s->family == FM_FAMILY_GPT2 ? gpt2_tensors(s, out) : llama_tensors(s, out);
}

/* 6 N_active + 12 L (H hs) T. N_active counts the matrix weights one token passes
 * through: attention (q and o: D H hs each; k and v: D KVH hs each; 4 D^2 for
 * GPT-2), the dense FFN (2 D F for GELU, 3 D F for SwiGLU) or, in an MoE block, the
 * router (E D) and top_k experts (the same per expert; for LoRA experts the base FFN
 * once plus top_k adapters of 2 r (D + F)), Qwen2-MoE's shared expert (3 D Fs + its
 * gate D), attention LoRA adapters, and the head (V D, tied or not). Embedding
 * lookups, norms and biases are not counted. */
double fm_model_flops_per_token(const fm_model *m, int T) {
  const fm_model_shape *s = fm_model_get_shape(m);
  const double D = s->d, F = s->ffn, FE = s->expert_ffn, A = (double)s->heads * s->head_dim;
  const double KV = (double)s->kv_heads * s->head_dim;
  const double nmat = s->family == FM_FAMILY_GPT2 ? 2.0 : 3.0; /* FFN matrices */
  double n = (double)s->vocab * D;
  /* attention adapters: r (in + out) each; gpt2 c_attn and c_proj, llama q and v */
  const double ra = s->attn_lora_rank;
  const double attn_lora = s->family == FM_FAMILY_GPT2 ? ra * (D + 3 * D) + ra * (D + D)
                                                         : ra * (D + A) + ra * (D + KV);
  for (int l = 0; l < s->layers; l++) {
    n += 2.0 * D * A + 2.0 * D * KV;
    if (ra > 0) n += attn_lora;
    if (!((s->moe_mask >> l) & 1)) {
      n += nmat * D * F;
      continue;
    }
    n += (double)s->experts * D;
    if (s->expert_type == FM_EXPERT_LORA) /* an adapter per matrix: r (in + out) */
      n += nmat * D * FE + (double)s->top_k * s->lora_rank * nmat * (D + FE);
    else
      n += (double)s->top_k * nmat * D * FE;
    if (s->shared_ffn > 0) n += 3.0 * D * s->shared_ffn + D;
  }
  return 6.0 * n + 12.0 * s->layers * A * T;
}

/* What one training step does per token now, counting only the weight gradients that
 * are computed: 4 N_active (forward and input gradient of every matrix a token passes)
 * + 2 N_trained (the weight gradients of the tensors that have one now: a trainable
 * class and not frozen) + 12 L (H hs) T. N_trained counts the same matrices as
 * N_active, each scaled by the share of tokens that pass it (an expert's: top_k / E);
 * embedding lookups (wpe, an untied embed_tokens) are not matrices a token passes.
 * With every tensor trained this is fm_model_flops_per_token. */
double fm_model_step_flops_per_token(fm_model *m, int T) {
  const fm_model_shape *s = fm_model_get_shape(m);
  const double full = fm_model_flops_per_token(m, T);
  const double attn_core = 12.0 * s->layers * (double)s->heads * s->head_dim * T;
  const double n_all = (full - attn_core) / 6.0;
  double n_trained = 0.0;
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    const fm_tensor *t = fm_model_tensor(m, i);
    if (!t->g || t->frozen || !t->decay) continue; /* no weight gradient, or not a matrix */
    if (t->group == FM_GROUP_EMBED &&
        !(!strcmp(t->name, "wte") || !strcmp(t->name, "lm_head.weight") ||
          (s->tied && !strcmp(t->name, "embed_tokens.weight"))))
      continue; /* a lookup table only */
    const double share = t->group == FM_GROUP_EXPERT ? (double)s->top_k / s->experts : 1.0;
    n_trained += share * (double)t->numel;
  }
  return 4.0 * n_all + 2.0 * n_trained + attn_core;
}
