/* hf_config.c - a Hugging Face config.json as a model shape, and model.init's
 * reconciliation of the folder with the [model] keys.
 *
 * model_type: gpt2; llama, qwen2 (llama with q/k/v biases), mistral (llama; no
 * sliding window); mixtral, olmoe (q/k RMSNorm), qwen2_moe (a shared expert with a
 * sigmoid gate). Rotary settings come from transformers 5's rope_parameters or the
 * older top-level rope_theta / rope_scaling. Settings the blocks cannot reproduce
 * (another activation, sliding windows, a rope type other than default and llama3)
 * are refused, naming the field. */
#include "fedmoe/hf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Errors name the file and the field. */
#define CFG_ERROR(h, field, fmt, ...) \
  FM_ERROR(FM_ERR_FORMAT, "%s: field '%s': " fmt, (h)->path, (field), ##__VA_ARGS__)

typedef struct {
  const char *path;
  json_t *root;
} jctx;

/* An integer field (integral reals too: some exporters write 32.0); def when the
 * field is absent or null, def < INT_MIN-ish (-2^31 - 1 as required) an error. */
#define REQUIRED (-2147483647LL - 1)
static fm_err get_int(const jctx *h, json_t *obj, const char *field, long long def, long long lo, long long hi,
                      int *out) {
  json_t *v = json_object_get(obj, field);
  long long x;
  if (!v || json_is_null(v)) {
    if (def == REQUIRED) CFG_ERROR(h, field, "missing (an integer is needed)");
    x = def;
  } else if (json_is_integer(v)) {
    x = json_integer_value(v);
  } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))) {
    x = (long long)json_real_value(v);
  } else {
    CFG_ERROR(h, field, "not an integer");
  }
  if (x < lo || x > hi) CFG_ERROR(h, field, "%lld is outside %lld..%lld", x, lo, hi);
  *out = (int)x;
  return FM_OK;
}

static fm_err get_real(const jctx *h, json_t *obj, const char *field, double def, int required, float *out) {
  json_t *v = json_object_get(obj, field);
  if (!v || json_is_null(v)) {
    if (required) CFG_ERROR(h, field, "missing (a number is needed)");
    *out = (float)def;
    return FM_OK;
  }
  if (!json_is_number(v)) CFG_ERROR(h, field, "not a number");
  *out = (float)json_number_value(v);
  return FM_OK;
}

static fm_err get_bool(const jctx *h, json_t *obj, const char *field, int def, int *out) {
  json_t *v = json_object_get(obj, field);
  if (!v || json_is_null(v)) *out = def;
  else if (json_is_boolean(v)) *out = json_is_true(v);
  else CFG_ERROR(h, field, "not true or false");
  return FM_OK;
}

/* A string field's value, or def when absent/null. */
static const char *get_str(json_t *obj, const char *field, const char *def) {
  json_t *v = json_object_get(obj, field);
  return json_is_string(v) ? json_string_value(v) : def;
}

static fm_err must_be_null(const jctx *h, const char *field, const char *why) {
  json_t *v = json_object_get(h->root, field);
  if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 0) && !json_is_false(v))
    CFG_ERROR(h, field, "must be null or absent: %s", why);
  return FM_OK;
}

static void mask_text(uint64_t mask, int layers, char *out, size_t len) {
  uint64_t all = layers >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << layers) - 1);
  if (mask == all) { snprintf(out, len, "all"); return; }
  if (!mask) { snprintf(out, len, "none"); return; }
  size_t o = 0;
  out[0] = 0;
  for (int l = 0; l < layers && o + 8 < len; l++)
    if (mask >> l & 1) o += (size_t)snprintf(out + o, len - o, o ? ",%d" : "%d", l);
}

/* Rotary settings: rope_parameters (transformers 5) or rope_theta + rope_scaling. */
static fm_err parse_rope(const jctx *h, fm_model_shape *s) {
  json_t *rp = json_object_get(h->root, "rope_parameters");
  json_t *sc = json_object_get(h->root, "rope_scaling");
  const char *field = "rope_parameters";
  json_t *obj = rp;
  float theta;
  if (json_is_object(rp)) {
    FM_CHECK(get_real(h, rp, "rope_theta", 10000.0, 0, &theta));
  } else {
    FM_CHECK(get_real(h, h->root, "rope_theta", 10000.0, 0, &theta));
    obj = json_is_object(sc) ? sc : NULL;
    field = "rope_scaling";
  }
  s->rope_theta = theta;
  s->rope_type = FM_ROPE_DEFAULT;
  if (!obj) return FM_OK;
  const char *type = get_str(obj, "rope_type", get_str(obj, "type", "default"));
  if (!strcmp(type, "default")) return FM_OK;
  if (strcmp(type, "llama3"))
    CFG_ERROR(h, field, "rope_type '%s' is not supported (default, llama3)", type);
  s->rope_type = FM_ROPE_LLAMA3;
  FM_CHECK(get_real(h, obj, "factor", 0, 1, &s->rope_factor));
  FM_CHECK(get_real(h, obj, "low_freq_factor", 0, 1, &s->rope_low_freq));
  FM_CHECK(get_real(h, obj, "high_freq_factor", 0, 1, &s->rope_high_freq));
  FM_CHECK(get_int(h, obj, "original_max_position_embeddings", REQUIRED, 1, 1 << 24, &s->rope_orig_ctx));
  if (s->rope_high_freq <= s->rope_low_freq)
    CFG_ERROR(h, field, "high_freq_factor %g must exceed low_freq_factor %g", s->rope_high_freq, s->rope_low_freq);
  return FM_OK;
}

/* fedmoe's own additions to the base model (written by fm_hf_export): MoE layers of
 * LoRA experts (moe_layers, experts, top_k, expert_type "lora", lora_rank) and LoRA
 * adapters on the attention (attn_lora_rank); lora_alpha scales both. */
static fm_err parse_fedmoe(const jctx *h, fm_hf_config *hc) {
  json_t *o = json_object_get(h->root, "fedmoe");
  if (!o || json_is_null(o)) return FM_OK;
  if (!json_is_object(o)) CFG_ERROR(h, "fedmoe", "not an object");
  fm_model_shape *s = &hc->s;
  const char *ml = get_str(o, "moe_layers", NULL);
  const char *et = get_str(o, "expert_type", NULL);
  FM_CHECK(get_int(h, o, "attn_lora_rank", 0, 0, 4096, &s->attn_lora_rank));
  if (!ml && !s->attn_lora_rank) CFG_ERROR(h, "fedmoe", "needs moe_layers (LoRA experts) or attn_lora_rank");
  FM_CHECK(get_real(h, o, "lora_alpha", 0, 1, &s->lora_alpha));
  hc->fedmoe_extra = 1;
  if (!ml) return FM_OK;
  if (!et || strcmp(et, "lora")) CFG_ERROR(h, "fedmoe", "moe_layers needs expert_type \"lora\"");
  FM_CHECK(get_int(h, o, "experts", REQUIRED, 1, FM_MAX_EXPERTS, &s->experts));
  FM_CHECK(get_int(h, o, "top_k", REQUIRED, 1, s->experts, &s->top_k));
  FM_CHECK(get_int(h, o, "lora_rank", REQUIRED, 1, 4096, &s->lora_rank));
  s->expert_type = FM_EXPERT_LORA;
  /* the same text model.moe_layers takes */
  uint64_t m = 0;
  if (!strcmp(ml, "all")) m = s->layers >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->layers) - 1);
  else
    for (const char *p = ml; *p;) {
      char *end;
      long l = strtol(p, &end, 10);
      if (end == p || l < 0 || l >= s->layers) CFG_ERROR(h, "fedmoe", "moe_layers '%s' is not a block list", ml);
      m |= (uint64_t)1 << l;
      p = *end == ',' ? end + 1 : end;
      if (*end && *end != ',') CFG_ERROR(h, "fedmoe", "moe_layers '%s' is not a block list", ml);
    }
  s->moe_mask = m;
  hc->moe = m != 0;
  return FM_OK;
}

static fm_err parse_gpt2(const jctx *h, fm_hf_config *hc) {
  fm_model_shape *s = &hc->s;
  json_t *r = h->root;
  s->family = FM_FAMILY_GPT2;
  FM_CHECK(get_int(h, r, "n_embd", REQUIRED, 1, 65536, &s->d));
  FM_CHECK(get_int(h, r, "n_head", REQUIRED, 1, 1024, &s->heads));
  FM_CHECK(get_int(h, r, "n_layer", REQUIRED, 1, FM_MAX_LAYERS, &s->layers));
  FM_CHECK(get_int(h, r, "n_positions", REQUIRED, 1, 65536, &s->context));
  FM_CHECK(get_int(h, r, "n_inner", 4LL * s->d, 1, 1 << 20, &s->ffn));
  FM_CHECK(get_real(h, r, "layer_norm_epsilon", 1e-5, 0, &s->norm_eps));
  FM_CHECK(get_bool(h, r, "tie_word_embeddings", 1, &s->tied));
  if (s->d % s->heads) CFG_ERROR(h, "n_head", "n_embd = %d is not divisible by %d heads", s->d, s->heads);
  const char *act = get_str(r, "activation_function", "gelu_new");
  if (strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh") && strcmp(act, "gelu_fast"))
    CFG_ERROR(h, "activation_function", "'%s': fedmoe's GPT-2 blocks use the tanh GELU (gelu_new)", act);
  int flag;
  FM_CHECK(get_bool(h, r, "scale_attn_weights", 1, &flag));
  if (!flag) CFG_ERROR(h, "scale_attn_weights", "false is not supported (attention scales by 1/sqrt(head_dim))");
  FM_CHECK(get_bool(h, r, "scale_attn_by_inverse_layer_idx", 0, &flag));
  if (flag) CFG_ERROR(h, "scale_attn_by_inverse_layer_idx", "true is not supported");
  if (!s->tied) CFG_ERROR(h, "tie_word_embeddings", "false: fedmoe's GPT-2 blocks have a tied head");
  s->kv_heads = s->heads;
  s->head_dim = s->d / s->heads;
  s->rope_type = FM_ROPE_NONE;
  s->attn_bias = 1;
  s->norm_topk = 1;
  FM_CHECK(parse_fedmoe(h, hc));
  return FM_OK;
}

/* llama and the families built on its blocks. */
static fm_err parse_llama(const jctx *h, fm_hf_config *hc, const char *mt) {
  fm_model_shape *s = &hc->s;
  json_t *r = h->root;
  FM_CHECK(get_int(h, r, "hidden_size", REQUIRED, 1, 65536, &s->d));
  FM_CHECK(get_int(h, r, "num_attention_heads", REQUIRED, 1, 1024, &s->heads));
  FM_CHECK(get_int(h, r, "num_hidden_layers", REQUIRED, 1, FM_MAX_LAYERS, &s->layers));
  FM_CHECK(get_int(h, r, "max_position_embeddings", REQUIRED, 1, 1 << 24, &s->context));
  FM_CHECK(get_int(h, r, "num_key_value_heads", s->heads, 1, s->heads, &s->kv_heads));
  if (s->heads % s->kv_heads)
    CFG_ERROR(h, "num_key_value_heads", "%d heads are not a multiple of %d key/value heads", s->heads, s->kv_heads);
  if (s->d % s->heads && !json_is_integer(json_object_get(r, "head_dim")))
    CFG_ERROR(h, "num_attention_heads", "hidden_size = %d is not divisible by %d heads and head_dim is not given",
              s->d, s->heads);
  FM_CHECK(get_int(h, r, "head_dim", s->d / s->heads, 1, 65536, &s->head_dim));
  FM_CHECK(get_int(h, r, "intermediate_size", REQUIRED, 1, 1 << 20, &s->ffn));
  FM_CHECK(get_real(h, r, "rms_norm_eps", 1e-6, 0, &s->norm_eps));
  FM_CHECK(get_bool(h, r, "tie_word_embeddings", 0, &s->tied));
  FM_CHECK(get_bool(h, r, "attention_bias", 0, &s->attn_bias));
  /* llama's and OLMoE's attention_bias also biases o_proj, which the blocks lack;
   * qwen2's q/k/v biases are set by model_type below */
  if (s->attn_bias && strcmp(mt, "qwen2") && strcmp(mt, "qwen2_moe"))
    CFG_ERROR(h, "attention_bias", "true is not supported (it adds an o_proj bias, which fedmoe's blocks lack)");
  FM_CHECK(parse_rope(h, s));
  const char *act = get_str(r, "hidden_act", "silu");
  if (strcmp(act, "silu")) CFG_ERROR(h, "hidden_act", "'%s': the llama blocks use SwiGLU (silu)", act);
  int flag;
  FM_CHECK(get_bool(h, r, "mlp_bias", 0, &flag));
  if (flag) CFG_ERROR(h, "mlp_bias", "true is not supported");
  int tp;
  FM_CHECK(get_int(h, r, "pretraining_tp", 1, 1, 1, &tp));
  FM_CHECK(get_bool(h, r, "use_sliding_window", 0, &flag));
  if (flag) CFG_ERROR(h, "use_sliding_window", "true: sliding-window attention is not supported");
  s->family = FM_FAMILY_LLAMA;
  s->norm_topk = 1;
  if (!strcmp(mt, "qwen2")) s->attn_bias = 1;
  if (!strcmp(mt, "mistral") || !strcmp(mt, "mixtral"))
    FM_CHECK(must_be_null(h, "sliding_window", "sliding-window attention is not supported"));
  uint64_t all = s->layers >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->layers) - 1);
  if (!strcmp(mt, "mixtral")) {
    s->family = FM_FAMILY_MIXTRAL;
    FM_CHECK(get_int(h, r, "num_local_experts", REQUIRED, 1, FM_MAX_EXPERTS, &s->experts));
    FM_CHECK(get_int(h, r, "num_experts_per_tok", REQUIRED, 1, s->experts, &s->top_k));
    s->expert_ffn = s->ffn;
    s->norm_topk = 1; /* Mixtral renormalises its top-k */
    s->moe_mask = all;
  } else if (!strcmp(mt, "olmoe")) {
    s->family = FM_FAMILY_OLMOE;
    FM_CHECK(get_int(h, r, "num_experts", REQUIRED, 1, FM_MAX_EXPERTS, &s->experts));
    FM_CHECK(get_int(h, r, "num_experts_per_tok", REQUIRED, 1, s->experts, &s->top_k));
    FM_CHECK(get_bool(h, r, "norm_topk_prob", 0, &s->norm_topk));
    FM_CHECK(must_be_null(h, "clip_qkv", "clipping q/k/v is not supported"));
    s->expert_ffn = s->ffn;
    s->qk_norm = 1;
    s->moe_mask = all;
  } else if (!strcmp(mt, "qwen2_moe")) {
    s->family = FM_FAMILY_QWEN2_MOE;
    FM_CHECK(get_int(h, r, "num_experts", REQUIRED, 1, FM_MAX_EXPERTS, &s->experts));
    FM_CHECK(get_int(h, r, "num_experts_per_tok", REQUIRED, 1, s->experts, &s->top_k));
    FM_CHECK(get_bool(h, r, "norm_topk_prob", 0, &s->norm_topk));
    FM_CHECK(get_int(h, r, "moe_intermediate_size", REQUIRED, 1, 1 << 20, &s->expert_ffn));
    FM_CHECK(get_int(h, r, "shared_expert_intermediate_size", 0, 0, 1 << 20, &s->shared_ffn));
    FM_CHECK(get_bool(h, r, "qkv_bias", 1, &s->attn_bias)); /* older configs: always biased */
    int step;
    FM_CHECK(get_int(h, r, "decoder_sparse_step", 1, 1, 1 << 20, &step));
    uint64_t mask = 0;
    for (int l = 0; l < s->layers; l++)
      if ((l + 1) % step == 0) mask |= (uint64_t)1 << l;
    json_t *only = json_object_get(r, "mlp_only_layers");
    if (only && !json_is_null(only)) {
      if (!json_is_array(only)) CFG_ERROR(h, "mlp_only_layers", "not a list of block indices");
      for (size_t i = 0; i < json_array_size(only); i++) {
        json_t *v = json_array_get(only, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= s->layers)
          CFG_ERROR(h, "mlp_only_layers", "entry %zu is not a block index 0..%d", i, s->layers - 1);
        mask &= ~((uint64_t)1 << json_integer_value(v));
      }
    }
    s->moe_mask = mask;
  }
  if (s->moe_mask) s->expert_type = FM_EXPERT_FULL;
  hc->moe = s->moe_mask != 0;
  FM_CHECK(parse_fedmoe(h, hc)); /* LoRA adapters on any family; LoRA experts override native experts */
  return FM_OK;
}

fm_err fm_hf_config_parse(const char *text, const char *path, fm_hf_config *hc) {
  memset(hc, 0, sizeof *hc);
  json_error_t je;
  json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
  if (!root) FM_ERROR(FM_ERR_FORMAT, "%s: not JSON (%s, line %d column %d)", path, je.text, je.line, je.column);
  jctx h = {path, root};
  fm_model_shape *s = &hc->s;
  /* fedmoe's defaults for what a checkpoint does not describe */
  s->experts = 1;
  s->top_k = 1;
  s->lora_rank = 8;
  s->lora_alpha = 16;
  s->init_std = 0.02f;
  s->load_balance = 0.01f;
  fm_err err = FM_OK;
  const char *mt = get_str(root, "model_type", NULL);
  if (!json_is_object(root))
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: not a JSON object", path);
  else if (!mt)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                       "%s: no string field 'model_type' (supported: " FM_HF_MODEL_TYPES ")", path);
  else if (strlen(mt) >= sizeof hc->model_type)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: field 'model_type': '%.40s...' is not "
                       "supported (supported: " FM_HF_MODEL_TYPES ")", path, mt);
  else {
    snprintf(hc->model_type, sizeof hc->model_type, "%s", mt);
    if (!strcmp(mt, "gpt2")) err = parse_gpt2(&h, hc);
    else if (!strcmp(mt, "llama") || !strcmp(mt, "qwen2") || !strcmp(mt, "mistral") || !strcmp(mt, "mixtral") ||
             !strcmp(mt, "olmoe") || !strcmp(mt, "qwen2_moe"))
      err = parse_llama(&h, hc, mt);
    else
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: field 'model_type': '%s' is not "
                         "supported (supported: " FM_HF_MODEL_TYPES ")", path, mt);
  }
  if (!err) err = get_int(&h, root, "vocab_size", REQUIRED, 2, 1 << 24, &s->vocab);
  json_decref(root);
  if (err) return fm_error_trace(__FILE__, __LINE__, __func__, err);
  mask_text(s->moe_mask, s->layers, hc->moe_layers, sizeof hc->moe_layers);
  return FM_OK;
}

fm_err fm_hf_config_read(const char *dir, fm_hf_config *hc) {
  char path[FM_PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/config.json", dir);
  char *text = NULL;
  FM_CHECK(fm_read_file(path, &text, NULL)); /* its message names the file */
  fm_err err = fm_hf_config_parse(text, path, hc);
  free(text);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

fm_err fm_hf_check_built(const fm_hf_config *hc, const char *path) {
  /* the llama-family blocks come with their [model] keys (model.family and others) */
  if (hc->s.family != FM_FAMILY_GPT2 && !fm_config_find_key("model.family"))
    FM_ERROR(FM_ERR_CONFIG, "%s: model_type '%s' needs the llama-family blocks, which this build of fedmoe does "
             "not have (it runs gpt2 folders)", path, hc->model_type);
  return FM_OK;
}

/* ---- model.init: the folder's values into the [model] keys ---- */

/* A key's current value as text. */
static void key_value(const fm_config *c, const fm_key *k, char *out, size_t len) {
  const char *f = (const char *)c + k->offset;
  switch (k->type) {
  case FM_KEY_INT: snprintf(out, len, "%d", *(const int *)f); break;
  case FM_KEY_INT64: snprintf(out, len, "%lld", (long long)*(const int64_t *)f); break;
  case FM_KEY_REAL: snprintf(out, len, "%.9g", *(const double *)f); break;
  case FM_KEY_BOOL: snprintf(out, len, "%s", *(const int *)f ? "true" : "false"); break;
  case FM_KEY_STRING: snprintf(out, len, "%s", f); break;
  case FM_KEY_ENUM: snprintf(out, len, "%s", fm_config_enum_name(c, k->name)); break;
  default: snprintf(out, len, "?"); break;
  }
}

static int key_index(const fm_key *k) { return (int)(k - fm_config_keys); }

/* Set key to the folder's value: a default is replaced (origin: the folder); an
 * explicit value must agree. Keys this build does not have are skipped (they
 * describe blocks whose own keys say whether the build has them). */
static fm_err fix_key(fm_config *c, const char *key, const char *value, const char *src, const char *field) {
  const fm_key *k = fm_config_find_key(key);
  if (!k) return FM_OK;
  char cur[640], want[640], assign[768], where[FM_PATH_MAX + 16];
  key_value(c, k, cur, sizeof cur);
  fm_config probe;
  FM_CHECK(fm_config_init(&probe));
  snprintf(assign, sizeof assign, "%s=%s", key, value);
  fm_err err = fm_config_set(&probe, assign, src);
  if (!err) key_value(&probe, k, want, sizeof want);
  int same = !err && !memcmp((const char *)c + k->offset, (const char *)&probe + k->offset, k->size);
  if (!err && k->type == FM_KEY_REAL) { /* the folder's values are float32: agree to their precision */
    double a = *(const double *)((const char *)c + k->offset), b = *(const double *)((const char *)&probe + k->offset);
    same = fabs(a - b) <= 1e-6 * fmax(fabs(a), fabs(b));
  }
  fm_config_free(&probe);
  FM_CHECK(err);
  const char *origin = c->origin[key_index(k)];
  if (!same && strcmp(origin, "default") && !strstr(origin, "config.json"))
    FM_ERROR(FM_ERR_CONFIG, "%s: key '%s' = %s conflicts with the model folder: %s has %s = %s; leave the key "
             "out or set it to %s", origin, key, cur, src, field, want, want);
  snprintf(where, sizeof where, "%s", src);
  FM_CHECK(fm_config_set(c, assign, where));
  return FM_OK;
}

static fm_err check_shape(const fm_config *c, const fm_hf_config *hc, int family, const char *src) {
  fm_model_shape b;
  FM_CHECK(fm_model_shape_from_config(c, &b));
  const fm_model_shape *s = &hc->s;
  const int llama = s->family != FM_FAMILY_GPT2, moe = b.moe_mask != 0 && b.expert_type == FM_EXPERT_FULL;
  struct { const char *what; double want, got; int used; } f[] = {
    {"family", family, b.family, 1},
    {"kv_heads", s->kv_heads, b.kv_heads, llama},
    {"head_dim", s->head_dim, b.head_dim, llama},
    {"ffn", s->ffn, b.ffn, llama},
    {"norm_eps", s->norm_eps, b.norm_eps, llama},
    {"rope_type", s->rope_type, b.rope_type, llama},
    {"rope_theta", s->rope_theta, b.rope_theta, llama},
    {"rope_factor", s->rope_factor, b.rope_factor, s->rope_type == FM_ROPE_LLAMA3},
    {"rope_low_freq", s->rope_low_freq, b.rope_low_freq, s->rope_type == FM_ROPE_LLAMA3},
    {"rope_high_freq", s->rope_high_freq, b.rope_high_freq, s->rope_type == FM_ROPE_LLAMA3},
    {"rope_orig_ctx", s->rope_orig_ctx, b.rope_orig_ctx, s->rope_type == FM_ROPE_LLAMA3},
    {"tied", s->tied, b.tied, llama},
    {"attn_bias", s->attn_bias, b.attn_bias, llama},
    {"qk_norm", s->qk_norm, b.qk_norm, llama},
    {"norm_topk", s->norm_topk, b.norm_topk, llama && hc->moe},
    {"expert_ffn", family == FM_FAMILY_MIXTRAL && !hc->moe ? s->ffn : s->expert_ffn, b.expert_ffn, llama && moe},
    {"shared_ffn", s->shared_ffn, b.shared_ffn, s->family == FM_FAMILY_QWEN2_MOE},
  };
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (f[i].used && fabs(f[i].want - f[i].got) > 1e-6 * fabs(f[i].want))
      FM_ERROR(FM_ERR_CONFIG, "%s: the model's %s is %g there, but the [model] keys of this build give %g (a key "
               "that model.init does not set by name?)", src, f[i].what, f[i].want, f[i].got);
  return FM_OK;
}

fm_err fm_hf_config_apply(fm_config *c, const char *text) {
  char src[FM_PATH_MAX + 32];
  snprintf(src, sizeof src, "%s/config.json", c->model.init);
  fm_hf_config hc;
  FM_CHECK(fm_hf_config_parse(text, src, &hc));
  const fm_model_shape *s = &hc.s;
  const int upcycle = c->model.upcycle;
  if (upcycle != FM_UPCYCLE_NONE && hc.moe)
    FM_CONFIG_ERROR(c, "model.upcycle", "the folder %s already holds an MoE model (%s); upcycling takes a dense "
                    "checkpoint (model.upcycle = none)", c->model.init, hc.model_type);
  FM_CHECK(fm_hf_check_built(&hc, src));
  char v[160];
#define FIX(key, field, ...) \
  do { snprintf(v, sizeof v, __VA_ARGS__); FM_CHECK(fix_key(c, key, v, src, field)); } while (0)
  FIX("model.vocab", "vocab_size", "%d", s->vocab);
  FIX("model.context", s->family == FM_FAMILY_GPT2 ? "n_positions" : "max_position_embeddings", "%d", s->context);
  FIX("model.d_model", s->family == FM_FAMILY_GPT2 ? "n_embd" : "hidden_size", "%d", s->d);
  FIX("model.heads", s->family == FM_FAMILY_GPT2 ? "n_head" : "num_attention_heads", "%d", s->heads);
  FIX("model.layers", s->family == FM_FAMILY_GPT2 ? "n_layer" : "num_hidden_layers", "%d", s->layers);
  if (s->family == FM_FAMILY_GPT2 && s->ffn != 4 * s->d && !fm_config_find_key("model.ffn"))
    FM_ERROR(FM_ERR_CONFIG, "%s: field 'n_inner' = %d: this build's GPT-2 blocks have an FFN of 4 x n_embd = %d",
             src, s->ffn, 4 * s->d);
  if (s->family == FM_FAMILY_GPT2 && fabsf(s->norm_eps - 1e-5f) > 1e-9f && !fm_config_find_key("model.norm_eps"))
    FM_ERROR(FM_ERR_CONFIG, "%s: field 'layer_norm_epsilon' = %g: this build's LayerNorm uses 1e-5", src,
             s->norm_eps);
  static const char *const families[] = {"gpt2", "llama", "mixtral", "olmoe", "qwen2_moe"};
  /* upcycling a llama into experts gives Mixtral's layout */
  int family = s->family == FM_FAMILY_LLAMA && upcycle == FM_UPCYCLE_COPY ? FM_FAMILY_MIXTRAL : s->family;
  FIX("model.family", "model_type", "%s", families[family]);
  /* gpt2's attention is fixed by d_model and heads: its keys stay 0 (the default) */
  if (s->family != FM_FAMILY_GPT2) {
    FIX("model.kv_heads", "num_key_value_heads", "%d", s->kv_heads);
    FIX("model.head_dim", "head_dim", "%d", s->head_dim);
  }
  FIX("model.ffn", s->family == FM_FAMILY_GPT2 ? "n_inner" : "intermediate_size", "%d", s->ffn);
  FIX("model.norm_eps", s->family == FM_FAMILY_GPT2 ? "layer_norm_epsilon" : "rms_norm_eps", "%.9g", s->norm_eps);
  if (s->rope_type != FM_ROPE_NONE) {
    FIX("model.rope_theta", "rope_theta", "%.9g", s->rope_theta);
    FIX("model.rope_scaling", "rope_type", "%s", s->rope_type == FM_ROPE_LLAMA3 ? "llama3" : "none");
  }
  if (s->rope_type == FM_ROPE_LLAMA3) {
    FIX("model.rope_factor", "factor", "%.9g", s->rope_factor);
    FIX("model.rope_low_freq", "low_freq_factor", "%.9g", s->rope_low_freq);
    FIX("model.rope_high_freq", "high_freq_factor", "%.9g", s->rope_high_freq);
    FIX("model.rope_orig_ctx", "original_max_position_embeddings", "%d", s->rope_orig_ctx);
  }
  FIX("model.tied", "tie_word_embeddings", "%s", s->tied ? "true" : "false");
  FIX("model.attn_bias", "attention_bias", "%s", s->attn_bias ? "true" : "false");
  FIX("model.qk_norm", "model_type", "%s", s->qk_norm ? "true" : "false");
  if (s->attn_lora_rank > 0) { /* adapters the folder carries (a folder without them may get new ones) */
    FIX("model.attn_lora_rank", "fedmoe.attn_lora_rank", "%d", s->attn_lora_rank);
    FIX("model.lora_alpha", "fedmoe.lora_alpha", "%.9g", s->lora_alpha);
  }
  if (upcycle == FM_UPCYCLE_NONE) {
    FIX("model.moe_layers", hc.fedmoe_extra && hc.moe ? "fedmoe.moe_layers" : "model_type", "%s", hc.moe_layers);
    if (hc.moe) {
      const char *ef = hc.fedmoe_extra ? "fedmoe.experts" : family == FM_FAMILY_MIXTRAL ? "num_local_experts"
                                                                                           : "num_experts";
      FIX("model.experts", ef, "%d", s->experts);
      FIX("model.top_k", hc.fedmoe_extra ? "fedmoe.top_k" : "num_experts_per_tok", "%d", s->top_k);
      FIX("model.expert_type", hc.fedmoe_extra ? "fedmoe.expert_type" : "model_type", "%s",
          s->expert_type == FM_EXPERT_LORA ? "lora" : "full");
      FIX("model.norm_topk", "norm_topk_prob", "%s", s->norm_topk ? "true" : "false");
      if (s->expert_type == FM_EXPERT_LORA) {
        FIX("model.lora_rank", "fedmoe.lora_rank", "%d", s->lora_rank);
        FIX("model.lora_alpha", "fedmoe.lora_alpha", "%.9g", s->lora_alpha);
      }
      if (s->family != FM_FAMILY_GPT2) {
        FIX("model.expert_ffn", "moe_intermediate_size", "%d", s->expert_ffn);
        FIX("model.shared_ffn", "shared_expert_intermediate_size", "%d", s->shared_ffn);
      }
    }
  } else {
    /* the pretrained FFN becomes the experts (copy) or their frozen base (lora) */
    FIX("model.expert_type", "model.upcycle", "%s", upcycle == FM_UPCYCLE_LORA ? "lora" : "full");
    if (family == FM_FAMILY_MIXTRAL) FIX("model.expert_ffn", "intermediate_size", "%d", s->ffn);
  }
#undef FIX
  /* with the llama-family keys in the build, the shape they give must be the folder's
   * (a key this file does not know by name would otherwise leave a default) */
  if (fm_config_find_key("model.family")) FM_CHECK(check_shape(c, &hc, family, src));
  return FM_OK;
}
