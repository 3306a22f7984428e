/* hf_model.c - a model's tensors from and to a Hugging Face folder: the name
 * mapping, loading with every tensor and shape checked, upcycling a dense FFN into
 * experts, the memory check before anything is allocated, and export. */
#include "fedmoe/hf.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* Tensors Hugging Face's classes have no name for: fedmoe's MoE layers on GPT-2
 * blocks and LoRA pairs. */
static int fedmoe_only(const fm_model_shape *s, const char *name) {
  return strstr(name, "lora_") || (s->family == FM_FAMILY_GPT2 && strstr(name, ".moe."));
}

void fm_hf_tensor_name(const fm_model_shape *s, const fm_tensor *t, char *out, size_t len) {
  if (fedmoe_only(s, t->name)) snprintf(out, len, "fedmoe.%s", t->name);
  else if (s->family == FM_FAMILY_GPT2 && (!strcmp(t->name, "wte") || !strcmp(t->name, "wpe")))
    snprintf(out, len, "transformer.%s.weight", t->name);
  else if (!strcmp(t->name, "lm_head.weight")) snprintf(out, len, "%s", t->name);
  else snprintf(out, len, "%s%s", s->family == FM_FAMILY_GPT2 ? "transformer." : "model.", t->name);
}

int fm_tensor_ndim(const fm_tensor *t) {
  return t->rows == 1 && (t->group == FM_GROUP_NORM || ends_with(t->name, ".bias") || ends_with(t->name, "norm.weight"))
             ? 1 : 2;
}

static void shape_text(char *out, size_t len, int ndim, const int64_t *shape) {
  size_t o = (size_t)snprintf(out, len, "[");
  for (int i = 0; i < ndim && o < len; i++) o += (size_t)snprintf(out + o, len - o, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (o < len) snprintf(out + o, len - o, "]");
}

/* A file tensor of shape (n) fits a vector [1, n]; (a, b) fits [a, b]. */
static fm_err check_shape(fm_st *st, const fm_st_tensor *f, const fm_tensor *t, const char *model_name) {
  int ok = (f->ndim == 1 && t->rows == 1 && f->shape[0] == t->cols) ||
           (f->ndim == 2 && f->shape[0] == t->rows && f->shape[1] == t->cols);
  if (ok) return FM_OK;
  char have[128], want[128];
  int64_t dims[2] = {t->rows, t->cols};
  shape_text(have, sizeof have, f->ndim, f->shape);
  if (fm_tensor_ndim(t) == 1) shape_text(want, sizeof want, 1, &dims[1]);
  else shape_text(want, sizeof want, 2, dims);
  FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s' has shape %s, the model's %s needs %s", fm_st_file_of(st, f), f->name,
           have, model_name, want);
}

/* The dense FFN tensor an upcycled expert copies: h.L.moe.experts.E.c_fc.weight <-
 * h.L.mlp.c_fc.weight (gpt2); layers.L.block_sparse_moe.experts.E.w1.weight <-
 * layers.L.mlp.gate_proj.weight (w2: down_proj, w3: up_proj; Mixtral);
 * layers.L.mlp.experts.E.gate_proj.weight <- layers.L.mlp.gate_proj.weight. 0: none. */
static int upcycle_source(const char *name, char *out, size_t len) {
  static const char *const marks[] = {".moe.experts.", ".block_sparse_moe.experts.", ".mlp.experts."};
  for (int k = 0; k < 3; k++) {
    const char *p = strstr(name, marks[k]);
    if (!p) continue;
    const char *q = p + strlen(marks[k]);
    while (*q >= '0' && *q <= '9') q++;
    if (*q != '.') return 0;
    q++;
    const char *rest = q;
    if (k == 1) {
      if (!strncmp(q, "w1.", 3)) rest = "gate_proj.weight";
      else if (!strncmp(q, "w2.", 3)) rest = "down_proj.weight";
      else if (!strncmp(q, "w3.", 3)) rest = "up_proj.weight";
      else return 0;
    }
    snprintf(out, len, "%.*s.mlp.%s", (int)(p - name), name, rest);
    return 1;
  }
  return 0;
}

/* Folder tensors no model uses that loaders skip: GPT-2's causal-mask buffers, old
 * rotary caches, the head of a tied model. */
static int ignorable(const fm_model_shape *s, const char *name) {
  return (s->family == FM_FAMILY_GPT2 && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"))) ||
         ends_with(name, "rotary_emb.inv_freq") || (!strcmp(name, "lm_head.weight") && (s->tied || s->family == FM_FAMILY_GPT2));
}

static fm_err load_all(fm_model *m, fm_st *st, const char *dir, int upcycle) {
  const fm_model_shape *s = fm_model_get_shape(m);
  char hf[256], src[sizeof ((fm_tensor *)0)->name];
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    fm_hf_tensor_name(s, t, hf, sizeof hf);
    fm_st_tensor *f = fm_st_find(st, hf);
    if (!f && upcycle == FM_UPCYCLE_COPY && t->group == FM_GROUP_EXPERT && upcycle_source(t->name, src, sizeof src)) {
      fm_tensor probe = *t;
      snprintf(probe.name, sizeof probe.name, "%s", src);
      fm_hf_tensor_name(s, &probe, hf, sizeof hf);
      f = fm_st_find(st, hf);
    }
    if (f) {
      FM_CHECK(check_shape(st, f, t, t->name));
      FM_CHECK(fm_st_read_f32(st, f, t->w));
      f->used = 1;
      continue;
    }
    /* what upcycling or the strategy adds keeps its initial value */
    int added = strstr(t->name, "lora_") ||
                (upcycle != FM_UPCYCLE_NONE && (t->group == FM_GROUP_ROUTER || t->group == FM_GROUP_EXPERT));
    if (!added)
      FM_ERROR(FM_ERR_FORMAT, "model folder %s: tensor '%s' is missing (the model's %s)", dir, hf, t->name);
  }
  for (int i = 0; i < fm_st_count(st); i++) {
    fm_st_tensor *f = fm_st_get(st, i);
    if (!f->used && !ignorable(s, f->name))
      FM_ERROR(FM_ERR_FORMAT, "%s: extra tensor '%s': the model described by config.json has no such tensor",
               fm_st_file_of(st, f), f->name);
  }
  return FM_OK;
}

fm_err fm_hf_load(fm_model *m, const char *dir, int upcycle) {
  fm_st *st;
  FM_CHECK(fm_st_open_dir(&st, dir));
  fm_err err = load_all(m, st, dir, upcycle);
  fm_st_close(st);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

double fm_hf_param_bytes(const fm_model_shape *s) {
  int n = fm_shape_tensors(s, NULL);
  fm_tensor *t = calloc((size_t)n, sizeof *t);
  if (!t) return INFINITY;
  fm_shape_tensors(s, t);
  double b = 0;
  for (int i = 0; i < n; i++) b += 4.0 * (double)t[i].numel;
  free(t);
  return b;
}

fm_err fm_hf_check_memory(double need, double mem_mb, const char *dir, const char *what) {
  const double machine = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
  if (machine > 0 && need > machine)
    FM_ERROR(FM_ERR_MEM, "the model of %s needs at least %.1f MB (%s), more than this machine's %.1f MB of memory",
             dir, need / 1048576.0, what, machine / 1048576.0);
  if (mem_mb > 0 && isfinite(mem_mb) && need > mem_mb * 1048576.0)
    FM_ERROR(FM_ERR_CONFIG, "key 'system.memory_mb': the model of %s needs at least %.1f MB (%s), a client has %.1f MB",
             dir, need / 1048576.0, what, mem_mb);
  return FM_OK;
}

/* ---- export ---- */

/* outdir absent (made, parents too) or empty; a non-empty one only with overwrite. */
static fm_err prepare_dir(const char *outdir, int overwrite, int create) {
  DIR *d = opendir(outdir);
  if (d) {
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    if (!empty && !overwrite)
      FM_ERROR(FM_ERR_ARG, "%s exists and is not empty (--overwrite replaces the model files in it)", outdir);
    return FM_OK;
  }
  if (errno != ENOENT) FM_ERROR(FM_ERR_IO, "%s: %s", outdir, strerror(errno));
  if (!create) return FM_OK;
  char p[FM_PATH_MAX];
  snprintf(p, sizeof p, "%s", outdir);
  for (char *q = p + 1; *q; q++) {
    if (*q != '/') continue;
    *q = 0;
    if (mkdir(p, 0777) && errno != EEXIST) FM_ERROR(FM_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
    *q = '/';
  }
  if (mkdir(p, 0777) && errno != EEXIST) FM_ERROR(FM_ERR_IO, "cannot create folder %s: %s", p, strerror(errno));
  return FM_OK;
}

static int set(json_t *o, const char *k, json_t *v) { return json_object_set_new(o, k, v ? v : json_null()); }

/* The "fedmoe" object: how the fedmoe.* tensors extend the base model: MoE layers
 * of LoRA experts (moe_layers, experts, top_k, expert_type, lora_rank) and LoRA
 * adapters on the attention (attn_lora_rank); lora_alpha scales both. */
static json_t *fedmoe_object(const fm_model_shape *s) {
  json_t *f = json_object();
  if (s->moe_mask) {
    char ml[256];
    size_t o = 0;
    ml[0] = 0;
    for (int l = 0; l < s->layers; l++)
      if (s->moe_mask >> l & 1) o += (size_t)snprintf(ml + o, sizeof ml - o, o ? ",%d" : "%d", l);
    set(f, "moe_layers", json_string(ml));
    set(f, "experts", json_integer(s->experts));
    set(f, "top_k", json_integer(s->top_k));
    set(f, "expert_type", json_string("lora"));
    set(f, "lora_rank", json_integer(s->lora_rank));
  }
  if (s->attn_lora_rank > 0) set(f, "attn_lora_rank", json_integer(s->attn_lora_rank));
  set(f, "lora_alpha", json_real(s->lora_alpha));
  return f;
}

static json_t *config_gpt2(const fm_model_shape *s) {
  json_t *c = json_object();
  set(c, "architectures", json_pack("[s]", "GPT2LMHeadModel"));
  set(c, "model_type", json_string("gpt2"));
  set(c, "vocab_size", json_integer(s->vocab));
  set(c, "n_positions", json_integer(s->context));
  set(c, "n_embd", json_integer(s->d));
  set(c, "n_layer", json_integer(s->layers));
  set(c, "n_head", json_integer(s->heads));
  set(c, "n_inner", s->ffn && s->ffn != 4 * s->d ? json_integer(s->ffn) : json_null());
  set(c, "activation_function", json_string("gelu_new"));
  set(c, "layer_norm_epsilon", json_real(s->norm_eps > 0 ? s->norm_eps : 1e-5));
  set(c, "resid_pdrop", json_real(0));
  set(c, "embd_pdrop", json_real(0));
  set(c, "attn_pdrop", json_real(0));
  set(c, "scale_attn_weights", json_true());
  set(c, "tie_word_embeddings", json_true());
  return c;
}

static json_t *config_llama(const fm_model_shape *s) {
  json_t *c = json_object();
  static const char *const types[] = {"", "llama", "mixtral", "olmoe", "qwen2_moe"};
  static const char *const archs[] = {"", "LlamaForCausalLM", "MixtralForCausalLM", "OlmoeForCausalLM",
                                      "Qwen2MoeForCausalLM"};
  int qwen2 = s->family == FM_FAMILY_LLAMA && s->attn_bias; /* Qwen2: q/k/v biases, none on o_proj */
  set(c, "architectures", json_pack("[s]", qwen2 ? "Qwen2ForCausalLM" : archs[s->family]));
  set(c, "model_type", json_string(qwen2 ? "qwen2" : types[s->family]));
  set(c, "vocab_size", json_integer(s->vocab));
  set(c, "max_position_embeddings", json_integer(s->context));
  set(c, "hidden_size", json_integer(s->d));
  set(c, "num_hidden_layers", json_integer(s->layers));
  set(c, "num_attention_heads", json_integer(s->heads));
  set(c, "num_key_value_heads", json_integer(s->kv_heads));
  set(c, "head_dim", json_integer(s->head_dim));
  set(c, "hidden_act", json_string("silu"));
  set(c, "rms_norm_eps", json_real(s->norm_eps));
  set(c, "tie_word_embeddings", json_boolean(s->tied));
  set(c, "attention_dropout", json_real(0));
  json_t *rope = json_object();
  set(rope, "rope_theta", json_real(s->rope_theta));
  set(rope, "rope_type", json_string(s->rope_type == FM_ROPE_LLAMA3 ? "llama3" : "default"));
  if (s->rope_type == FM_ROPE_LLAMA3) {
    set(rope, "factor", json_real(s->rope_factor));
    set(rope, "low_freq_factor", json_real(s->rope_low_freq));
    set(rope, "high_freq_factor", json_real(s->rope_high_freq));
    set(rope, "original_max_position_embeddings", json_integer(s->rope_orig_ctx));
  }
  set(c, "rope_parameters", rope);
  switch (s->family) {
  case FM_FAMILY_LLAMA:
    set(c, "intermediate_size", json_integer(s->ffn));
    if (qwen2) {
      set(c, "use_sliding_window", json_false());
      set(c, "sliding_window", json_null());
    } else {
      set(c, "attention_bias", json_false());
      set(c, "mlp_bias", json_false());
    }
    break;
  case FM_FAMILY_MIXTRAL:
    set(c, "intermediate_size", json_integer(s->expert_ffn));
    set(c, "num_local_experts", json_integer(s->experts));
    set(c, "num_experts_per_tok", json_integer(s->top_k));
    set(c, "sliding_window", json_null());
    set(c, "router_jitter_noise", json_real(0));
    break;
  case FM_FAMILY_OLMOE:
    set(c, "intermediate_size", json_integer(s->expert_ffn));
    set(c, "num_experts", json_integer(s->experts));
    set(c, "num_experts_per_tok", json_integer(s->top_k));
    set(c, "norm_topk_prob", json_boolean(s->norm_topk));
    set(c, "attention_bias", json_boolean(s->attn_bias));
    set(c, "clip_qkv", json_null());
    break;
  case FM_FAMILY_QWEN2_MOE: {
    set(c, "intermediate_size", json_integer(s->ffn));
    set(c, "moe_intermediate_size", json_integer(s->expert_ffn));
    set(c, "shared_expert_intermediate_size", json_integer(s->shared_ffn));
    set(c, "num_experts", json_integer(s->experts));
    set(c, "num_experts_per_tok", json_integer(s->top_k));
    set(c, "norm_topk_prob", json_boolean(s->norm_topk));
    set(c, "qkv_bias", json_boolean(s->attn_bias));
    set(c, "decoder_sparse_step", json_integer(1));
    json_t *dense = json_array();
    for (int l = 0; l < s->layers; l++)
      if (!(s->moe_mask >> l & 1)) json_array_append_new(dense, json_integer(l));
    set(c, "mlp_only_layers", dense);
    set(c, "use_sliding_window", json_false());
    set(c, "sliding_window", json_null());
    break;
  }
  }
  return c;
}

/* Why shape s has no Hugging Face form (NULL: it has one). */
static const char *unexportable(const fm_model_shape *s) {
  if (s->family == FM_FAMILY_GPT2 && s->moe_mask && s->expert_type == FM_EXPERT_FULL)
    return "a gpt2 model with MoE layers of full experts has no Hugging Face architecture (GPT2LMHeadModel is "
           "dense, and Mixtral's experts are SwiGLU blocks under RMSNorm, not GPT-2's); only dense gpt2 and gpt2 "
           "with LoRA experts (the base model plus fedmoe.* tensors) export";
  if (s->family == FM_FAMILY_MIXTRAL && !s->norm_topk)
    return "Mixtral always renormalises its top-k router weights, and this model has model.norm_topk = false";
  if (s->family > FM_FAMILY_QWEN2_MOE) return "unknown block family";
  return NULL;
}

fm_err fm_hf_export(fm_model *m, const char *outdir, int overwrite, int keep) {
  fm_model_shape sk = *fm_model_get_shape(m);
  const int E = sk.experts;
  if (keep > 0 && keep < E) { /* the experts the client routes to, and their router rows */
    sk.experts = keep;
    if (sk.top_k > keep) sk.top_k = keep;
  }
  const fm_model_shape *s = &sk;
  const char *why = unexportable(s);
  if (why) FM_ERROR(FM_ERR_ARG, "cannot export to %s: %s", outdir, why);
  FM_CHECK(prepare_dir(outdir, overwrite, 0)); /* refuse before writing anything */
  json_t *cfg = s->family == FM_FAMILY_GPT2 ? config_gpt2(s) : config_llama(s);
  fm_st_writer *w = NULL;
  fm_err err = cfg ? fm_st_writer_create(&w) : FM_ERR_MEM;
  int extra = 0;
  char name[256];
  for (int i = 0; !err && i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    if (t->group == FM_GROUP_EXPERT && t->expert >= s->experts) continue;
    fm_hf_tensor_name(s, t, name, sizeof name);
    extra |= !strncmp(name, "fedmoe.", 7);
    int64_t dims[2] = {t->group == FM_GROUP_ROUTER && t->rows == E ? s->experts : t->rows, t->cols};
    err = fm_tensor_ndim(t) == 1 ? fm_st_writer_add(w, name, t->w, 1, &dims[1]) : fm_st_writer_add(w, name, t->w, 2, dims);
  }
  if (!err && extra) set(cfg, "fedmoe", fedmoe_object(s));
  if (!err) set(cfg, "bos_token_id", json_null()), set(cfg, "eos_token_id", json_null());
  if (!err) set(cfg, "dtype", json_string("float32"));
  if (!err) err = prepare_dir(outdir, overwrite, 1);
  char path[FM_PATH_MAX + 64], tmp[FM_PATH_MAX + 80];
  snprintf(path, sizeof path, "%s/model.safetensors", outdir);
  if (!err) err = fm_st_writer_write(w, path);
  snprintf(path, sizeof path, "%s/config.json", outdir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (!err && (json_dump_file(cfg, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) || rename(tmp, path))) {
    unlink(tmp);
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_IO, "cannot write %s", path);
  }
  fm_st_writer_free(w);
  json_decref(cfg);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}
