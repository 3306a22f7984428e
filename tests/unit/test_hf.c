/* test_hf.c - safetensors reading and writing, config.json of every family, and
 * model.init's reconciliation of the folder with the [model] keys. */
#include "cunit_main.h"

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/hf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void remove_dir(void) {
  static const char *const files[] = {"w.safetensors", "h.safetensors", "bad.safetensors"};
  char p[128];
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  rmdir(dir);
}

static int setup_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/fedmoe-test-hf.XXXXXX");
  if (!mkdtemp(dir)) return 1;
  atexit(remove_dir);
  return 0;
}

static const char *path_in(const char *name) {
  static char p[4][128];
  static int k;
  char *o = p[k++ & 3];
  snprintf(o, 128, "%s/%s", dir, name);
  return o;
}

/* A raw safetensors file: header text (padded as given) and data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  uint64_t len = strlen(header);
  unsigned char l8[8];
  for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(len >> (8 * i));
  fwrite(l8, 1, 8, f);
  fwrite(header, 1, len, f);
  if (n) fwrite(data, 1, n, f);
  fclose(f);
}

static void test_write_read(void) {
  float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {-1.5f, 0, 1e-30f};
  int64_t sa[2] = {2, 3}, sb[1] = {3};
  fm_st_writer *w;
  CU_ASSERT_EQUAL_FATAL(fm_st_writer_create(&w), FM_OK);
  CU_ASSERT_EQUAL(fm_st_writer_add(w, "z.weight", a, 2, sa), FM_OK);
  CU_ASSERT_EQUAL(fm_st_writer_add(w, "a.bias", b, 1, sb), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_st_writer_write(w, path_in("w.safetensors")), FM_OK);
  fm_st_writer_free(w);
  CU_ASSERT_NOT_EQUAL(access(path_in("w.safetensors.tmp"), F_OK), 0);
  /* header length a multiple of 8, keys sorted, data in name order */
  FILE *f = fopen(path_in("w.safetensors"), "rb");
  unsigned char l8[8];
  CU_ASSERT_EQUAL_FATAL(fread(l8, 1, 8, f), 8);
  uint64_t N = 0;
  for (int i = 7; i >= 0; i--) N = N << 8 | l8[i];
  CU_ASSERT_EQUAL(N % 8, 0);
  char *h = calloc(N + 1, 1);
  CU_ASSERT_EQUAL(fread(h, 1, N, f), N);
  fclose(f);
  CU_ASSERT_PTR_NOT_NULL(strstr(h, "\"a.bias\""));
  CU_ASSERT(strstr(h, "\"a.bias\"") < strstr(h, "\"z.weight\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(h, "\"shape\":[2,3]"));
  free(h);
  fm_st *st;
  CU_ASSERT_EQUAL_FATAL(fm_st_open_file(&st, path_in("w.safetensors")), FM_OK);
  CU_ASSERT_EQUAL(fm_st_count(st), 2);
  fm_st_tensor *t = fm_st_find(st, "z.weight");
  CU_ASSERT_PTR_NOT_NULL_FATAL(t);
  CU_ASSERT_EQUAL(t->ndim, 2);
  CU_ASSERT_EQUAL(t->shape[0], 2);
  CU_ASSERT_EQUAL(t->shape[1], 3);
  CU_ASSERT_EQUAL(t->begin, 12); /* after a.bias's 3 floats */
  float out[6];
  CU_ASSERT_EQUAL(fm_st_read_f32(st, t, out), FM_OK);
  CU_ASSERT_EQUAL(memcmp(out, a, sizeof a), 0);
  CU_ASSERT_EQUAL(fm_st_read_f32(st, fm_st_find(st, "a.bias"), out), FM_OK);
  CU_ASSERT_EQUAL(memcmp(out, b, sizeof b), 0);
  CU_ASSERT_PTR_NULL(fm_st_find(st, "missing"));
  fm_st_close(st);
}

static void test_half_types(void) {
  /* F16: 1, -2, 65504 (largest), 2^-24 (smallest subnormal), +inf, 0.5 + 2^-11 */
  uint16_t h[6] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x3801};
  /* BF16: 1, -3.5, 2^-128 (subnormal), 1.5 */
  uint16_t bf[4] = {0x3f80, 0xc060, 0x0020, 0x3fc0};
  unsigned char data[20];
  memcpy(data, h, 12);
  memcpy(data + 12, bf, 8);
  write_raw(path_in("h.safetensors"),
            "{\"h\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]},"
            "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[12,20]},\"__metadata__\":{\"format\":\"pt\"}}",
            data, sizeof data);
  fm_st *st;
  CU_ASSERT_EQUAL_FATAL(fm_st_open_file(&st, path_in("h.safetensors")), FM_OK);
  float o[6];
  CU_ASSERT_EQUAL(fm_st_read_f32(st, fm_st_find(st, "h"), o), FM_OK);
  CU_ASSERT_EQUAL(o[0], 1.0f);
  CU_ASSERT_EQUAL(o[1], -2.0f);
  CU_ASSERT_EQUAL(o[2], 65504.0f);
  CU_ASSERT_EQUAL(o[3], ldexpf(1.0f, -24));
  CU_ASSERT(isinf(o[4]) && o[4] > 0);
  CU_ASSERT_EQUAL(o[5], 0.5f + ldexpf(1.0f, -11));
  CU_ASSERT_EQUAL(fm_st_read_f32(st, fm_st_find(st, "b"), o), FM_OK);
  CU_ASSERT_EQUAL(o[0], 1.0f);
  CU_ASSERT_EQUAL(o[1], -3.5f);
  CU_ASSERT_EQUAL(o[2], ldexpf(1.0f, -128));
  CU_ASSERT_EQUAL(o[3], 1.5f);
  fm_st_close(st);
}

/* A bad file is refused with a message naming the file and what is wrong. */
static void expect_bad(const char *header, size_t ndata, const char *what) {
  static const unsigned char zeros[64];
  write_raw(path_in("bad.safetensors"), header, zeros, ndata);
  fm_st *st = NULL;
  CU_ASSERT_NOT_EQUAL(fm_st_open_file(&st, path_in("bad.safetensors")), FM_OK);
  CU_ASSERT_PTR_NULL(st);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), what));
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "bad.safetensors"));
  if (!strstr(fm_error_message(), what)) fprintf(stderr, "\n  message: %s\n", fm_error_message());
}

static void test_bad_files(void) {
  expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
             "truncated: tensor 'x' ends at byte");
  expect_bad("{not json", 0, "the header is not JSON");
  expect_bad("{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "dtype I64");
  expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16, "need 12 bytes");
  expect_bad("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 8, "data_offsets");
  expect_bad("[1,2]", 0, "not a JSON object");
  /* a header length beyond the file */
  FILE *f = fopen(path_in("bad.safetensors"), "wb");
  unsigned char l8[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
  fwrite(l8, 1, 8, f);
  fwrite("{}", 1, 2, f);
  fclose(f);
  fm_st *st = NULL;
  CU_ASSERT_NOT_EQUAL(fm_st_open_file(&st, path_in("bad.safetensors")), FM_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "truncated or not safetensors"));
  /* shorter than the length itself */
  f = fopen(path_in("bad.safetensors"), "wb");
  fwrite(l8, 1, 3, f);
  fclose(f);
  CU_ASSERT_NOT_EQUAL(fm_st_open_file(&st, path_in("bad.safetensors")), FM_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "shorter than the 8-byte header length"));
}

/* ---- config.json ---- */
static const char *LLAMA =
    "{\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
    "\"num_hidden_layers\":2,\"num_key_value_heads\":2,\"head_dim\":8,\"max_position_embeddings\":64,"
    "\"rms_norm_eps\":1e-06,\"hidden_act\":\"silu\",\"attention_bias\":false,\"mlp_bias\":false,"
    "\"tie_word_embeddings\":false,\"vocab_size\":256,\"pretraining_tp\":1,\"rope_parameters\":{\"factor\":8.0,"
    "\"high_freq_factor\":4.0,\"low_freq_factor\":1.0,\"original_max_position_embeddings\":32,"
    "\"rope_theta\":10000.0,\"rope_type\":\"llama3\"}}";

static void test_config_families(void) {
  fm_hf_config h;
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(LLAMA, "llama/config.json", &h), FM_OK);
  CU_ASSERT_EQUAL(h.s.family, FM_FAMILY_LLAMA);
  CU_ASSERT_EQUAL(h.s.d, 32);
  CU_ASSERT_EQUAL(h.s.kv_heads, 2);
  CU_ASSERT_EQUAL(h.s.head_dim, 8);
  CU_ASSERT_EQUAL(h.s.ffn, 48);
  CU_ASSERT_EQUAL(h.s.context, 64);
  CU_ASSERT_EQUAL(h.s.tied, 0);
  CU_ASSERT_EQUAL(h.s.rope_type, FM_ROPE_LLAMA3);
  CU_ASSERT_EQUAL(h.s.rope_factor, 8.0f);
  CU_ASSERT_EQUAL(h.s.rope_orig_ctx, 32);
  CU_ASSERT_EQUAL(h.s.rope_theta, 10000.0f);
  CU_ASSERT_EQUAL(h.s.moe_mask, 0);
  CU_ASSERT_STRING_EQUAL(h.moe_layers, "none");
  /* the older spelling: top-level rope_theta and rope_scaling */
  const char *old = "{\"model_type\":\"qwen2\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                    "\"num_hidden_layers\":2,\"max_position_embeddings\":64,\"vocab_size\":256,\"rope_theta\":500000,"
                    "\"rope_scaling\":{\"type\":\"llama3\",\"factor\":4,\"low_freq_factor\":1,\"high_freq_factor\":2,"
                    "\"original_max_position_embeddings\":16},\"tie_word_embeddings\":true}";
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(old, "qwen2/config.json", &h), FM_OK);
  CU_ASSERT_EQUAL(h.s.rope_theta, 500000.0f);
  CU_ASSERT_EQUAL(h.s.rope_type, FM_ROPE_LLAMA3);
  CU_ASSERT_EQUAL(h.s.rope_high_freq, 2.0f);
  CU_ASSERT_EQUAL(h.s.attn_bias, 1); /* qwen2: q/k/v biases */
  CU_ASSERT_EQUAL(h.s.kv_heads, 4);  /* absent: as many as the heads */
  CU_ASSERT_EQUAL(h.s.head_dim, 8);
  CU_ASSERT_EQUAL(h.s.tied, 1);
  const char *mix = "{\"model_type\":\"mixtral\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                    "\"num_hidden_layers\":2,\"num_key_value_heads\":2,\"head_dim\":null,\"max_position_embeddings\":64,"
                    "\"vocab_size\":256,\"num_local_experts\":4,\"num_experts_per_tok\":2,\"sliding_window\":null,"
                    "\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"}}";
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(mix, "mixtral/config.json", &h), FM_OK);
  CU_ASSERT_EQUAL(h.s.family, FM_FAMILY_MIXTRAL);
  CU_ASSERT_EQUAL(h.s.experts, 4);
  CU_ASSERT_EQUAL(h.s.top_k, 2);
  CU_ASSERT_EQUAL(h.s.expert_ffn, 48);
  CU_ASSERT_EQUAL(h.s.norm_topk, 1);
  CU_ASSERT_EQUAL(h.s.head_dim, 8);
  CU_ASSERT_EQUAL(h.s.rope_type, FM_ROPE_DEFAULT);
  CU_ASSERT_STRING_EQUAL(h.moe_layers, "all");
  const char *olmoe = "{\"model_type\":\"olmoe\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                      "\"num_hidden_layers\":2,\"num_key_value_heads\":2,\"max_position_embeddings\":64,\"vocab_size\":256,"
                      "\"num_experts\":4,\"num_experts_per_tok\":1,\"norm_topk_prob\":false,\"clip_qkv\":null}";
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(olmoe, "olmoe/config.json", &h), FM_OK);
  CU_ASSERT_EQUAL(h.s.family, FM_FAMILY_OLMOE);
  CU_ASSERT_EQUAL(h.s.qk_norm, 1);
  CU_ASSERT_EQUAL(h.s.norm_topk, 0);
  CU_ASSERT_EQUAL(h.s.top_k, 1);
  const char *qm = "{\"model_type\":\"qwen2_moe\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                   "\"num_hidden_layers\":3,\"num_key_value_heads\":2,\"max_position_embeddings\":64,\"vocab_size\":256,"
                   "\"num_experts\":4,\"num_experts_per_tok\":2,\"norm_topk_prob\":false,\"moe_intermediate_size\":24,"
                   "\"shared_expert_intermediate_size\":40,\"decoder_sparse_step\":1,\"mlp_only_layers\":[1],"
                   "\"qkv_bias\":true,\"sliding_window\":0,\"use_sliding_window\":false}";
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(qm, "qwen2_moe/config.json", &h), FM_OK);
  CU_ASSERT_EQUAL(h.s.family, FM_FAMILY_QWEN2_MOE);
  CU_ASSERT_EQUAL(h.s.expert_ffn, 24);
  CU_ASSERT_EQUAL(h.s.shared_ffn, 40);
  CU_ASSERT_EQUAL(h.s.ffn, 48);
  CU_ASSERT_EQUAL(h.s.moe_mask, 5); /* blocks 0 and 2; block 1 dense */
  CU_ASSERT_STRING_EQUAL(h.moe_layers, "0,2");
  CU_ASSERT_EQUAL(h.s.attn_bias, 1);
  const char *g = "{\"model_type\":\"gpt2\",\"n_embd\":32,\"n_head\":4,\"n_layer\":2,\"n_positions\":64,"
                  "\"vocab_size\":256,\"n_inner\":null,\"activation_function\":\"gelu_new\",\"layer_norm_epsilon\":1e-05}";
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(g, "gpt2/config.json", &h), FM_OK);
  CU_ASSERT_EQUAL(h.s.family, FM_FAMILY_GPT2);
  CU_ASSERT_EQUAL(h.s.ffn, 128);
  CU_ASSERT_EQUAL(h.s.tied, 1);
  CU_ASSERT_EQUAL(h.s.heads, 4);
}

/* The config.json transformers 5.17 wrote for the fixtures of tests/fixtures/hf/. */
static void test_fixture_configs(void) {
  static const struct { const char *name; int family, kv, experts, top_k, tied, bias, qk, norm_topk, ffn, eff, sff, rope; } f[] = {
    {"gpt2", FM_FAMILY_GPT2, 4, 1, 1, 1, 1, 0, 1, 128, 0, 0, FM_ROPE_NONE},
    {"llama", FM_FAMILY_LLAMA, 2, 1, 1, 0, 0, 0, 1, 48, 0, 0, FM_ROPE_LLAMA3},
    {"qwen2", FM_FAMILY_LLAMA, 2, 1, 1, 1, 1, 0, 1, 48, 0, 0, FM_ROPE_DEFAULT},
    {"mixtral", FM_FAMILY_MIXTRAL, 2, 4, 2, 0, 0, 0, 1, 48, 48, 0, FM_ROPE_DEFAULT},
    {"mixtral_top1", FM_FAMILY_MIXTRAL, 2, 4, 1, 0, 0, 0, 1, 48, 48, 0, FM_ROPE_DEFAULT},
    {"olmoe", FM_FAMILY_OLMOE, 2, 4, 2, 0, 0, 1, 0, 48, 48, 0, FM_ROPE_DEFAULT},
    {"olmoe_top1", FM_FAMILY_OLMOE, 2, 4, 1, 0, 0, 1, 0, 48, 48, 0, FM_ROPE_DEFAULT},
    {"qwen2_moe", FM_FAMILY_QWEN2_MOE, 2, 4, 2, 0, 1, 0, 0, 48, 24, 40, FM_ROPE_DEFAULT},
  };
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    char rel[64];
    snprintf(rel, sizeof rel, "hf/%s/config.json", f[i].name);
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(fm_read_file(fm_fixture(rel), &text, NULL), FM_OK);
    fm_hf_config h;
    CU_ASSERT_EQUAL_FATAL(fm_hf_config_parse(text, rel, &h), FM_OK);
    free(text);
    const fm_model_shape *s = &h.s;
    CU_ASSERT_EQUAL(s->family, f[i].family);
    CU_ASSERT_EQUAL(s->vocab, 256);
    CU_ASSERT_EQUAL(s->d, 32);
    CU_ASSERT_EQUAL(s->layers, 2);
    CU_ASSERT_EQUAL(s->heads, 4);
    CU_ASSERT_EQUAL(s->head_dim, 8);
    CU_ASSERT_EQUAL(s->context, 64);
    CU_ASSERT_EQUAL(s->kv_heads, f[i].kv);
    CU_ASSERT_EQUAL(s->tied, f[i].tied);
    CU_ASSERT_EQUAL(s->attn_bias, f[i].bias);
    CU_ASSERT_EQUAL(s->qk_norm, f[i].qk);
    CU_ASSERT_EQUAL(s->ffn, f[i].ffn);
    CU_ASSERT_EQUAL(s->rope_type, f[i].rope);
    CU_ASSERT_EQUAL(s->moe_mask, f[i].experts > 1 ? 3u : 0u);
    if (f[i].experts > 1) {
      CU_ASSERT_EQUAL(s->experts, f[i].experts);
      CU_ASSERT_EQUAL(s->top_k, f[i].top_k);
      CU_ASSERT_EQUAL(s->norm_topk, f[i].norm_topk);
      CU_ASSERT_EQUAL(s->expert_ffn, f[i].eff);
      CU_ASSERT_EQUAL(s->shared_ffn, f[i].sff);
      CU_ASSERT_EQUAL(s->expert_type, FM_EXPERT_FULL);
    }
    /* the weights: every tensor's header accepted and its values read */
    static const int ntensors[] = {28, 21, 26, 41, 41, 45, 45, 55};
    char folder[64];
    snprintf(folder, sizeof folder, "hf/%s", f[i].name);
    fm_st *st = NULL;
    CU_ASSERT_EQUAL_FATAL(fm_st_open_dir(&st, fm_fixture(folder)), FM_OK);
    CU_ASSERT_EQUAL(fm_st_count(st), ntensors[i]);
    for (int k = 0; k < fm_st_count(st); k++) {
      fm_st_tensor *t = fm_st_get(st, k);
      float *v = malloc(t->numel * sizeof *v);
      CU_ASSERT_EQUAL(fm_st_read_f32(st, t, v), FM_OK);
      free(v);
    }
    CU_ASSERT_PTR_NOT_NULL(fm_st_find(st, f[i].family == FM_FAMILY_GPT2 ? "transformer.wte.weight" : "model.embed_tokens.weight"));
    CU_ASSERT_EQUAL(fm_st_find(st, "lm_head.weight") == NULL, f[i].tied);
    fm_st_close(st);
    if (s->rope_type == FM_ROPE_LLAMA3) {
      CU_ASSERT_EQUAL(s->rope_factor, 8.0f);
      CU_ASSERT_EQUAL(s->rope_low_freq, 1.0f);
      CU_ASSERT_EQUAL(s->rope_high_freq, 4.0f);
      CU_ASSERT_EQUAL(s->rope_orig_ctx, 32);
    }
  }
}

static void expect_cfg_error(const char *text, const char *what) {
  fm_hf_config h;
  CU_ASSERT_NOT_EQUAL(fm_hf_config_parse(text, "m/config.json", &h), FM_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), what));
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "m/config.json"));
  if (!strstr(fm_error_message(), what)) fprintf(stderr, "\n  message: %s\n", fm_error_message());
}

static void test_config_errors(void) {
  expect_cfg_error("{\"model_type\":\"bert\"}", "'bert' is not supported (supported: gpt2, llama, qwen2");
  expect_cfg_error("{\"n_embd\":3}", "no string field 'model_type'");
  expect_cfg_error("{\"model_type\":", "not JSON");
  expect_cfg_error("{\"model_type\":\"gpt2\",\"n_head\":4,\"n_layer\":2,\"n_positions\":64,\"vocab_size\":256}",
                   "field 'n_embd': missing");
  expect_cfg_error("{\"model_type\":\"gpt2\",\"n_embd\":32,\"n_head\":4,\"n_layer\":2,\"n_positions\":64,"
                   "\"vocab_size\":256,\"activation_function\":\"relu\"}", "field 'activation_function'");
  expect_cfg_error("{\"model_type\":\"mistral\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                   "\"num_hidden_layers\":2,\"max_position_embeddings\":64,\"vocab_size\":256,\"sliding_window\":4096}",
                   "field 'sliding_window': must be null");
  expect_cfg_error("{\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                   "\"num_hidden_layers\":2,\"max_position_embeddings\":64,\"vocab_size\":256,"
                   "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2}}", "rope_type 'yarn' is not supported");
  expect_cfg_error("{\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                   "\"num_hidden_layers\":2,\"num_key_value_heads\":3,\"max_position_embeddings\":64,\"vocab_size\":256}",
                   "field 'num_key_value_heads'");
  const char *llama = "{\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":48,"
                      "\"num_attention_heads\":4,\"num_hidden_layers\":2,\"max_position_embeddings\":64,"
                      "\"vocab_size\":256,";
  char buf[512];
  snprintf(buf, sizeof buf, "%s\"attention_bias\":true}", llama);
  expect_cfg_error(buf, "field 'attention_bias': true is not supported (it adds an o_proj bias");
  snprintf(buf, sizeof buf, "%s\"mlp_bias\":true}", llama);
  expect_cfg_error(buf, "field 'mlp_bias': true is not supported");
  expect_cfg_error("{\"model_type\":\"olmoe\",\"hidden_size\":32,\"intermediate_size\":48,\"num_attention_heads\":4,"
                   "\"num_hidden_layers\":2,\"max_position_embeddings\":64,\"vocab_size\":256,\"num_experts\":4,"
                   "\"num_experts_per_tok\":2,\"clip_qkv\":8}", "field 'clip_qkv'");
}

/* model.init: the folder's values replace defaults; explicit equal values stay;
 * explicit other values are an error naming both */
static void test_apply(void) {
  const char *g = "{\"model_type\":\"gpt2\",\"n_embd\":32,\"n_head\":4,\"n_layer\":3,\"n_positions\":48,"
                  "\"vocab_size\":256}";
  fm_config c;
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[model]\ninit = /m\nheads = 4\n", "t.ini"), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_apply(&c, g), FM_OK);
  CU_ASSERT_EQUAL(c.model.d_model, 32);
  CU_ASSERT_EQUAL(c.model.layers, 3);
  CU_ASSERT_EQUAL(c.model.context, 48);
  CU_ASSERT_STRING_EQUAL(c.model.moe_layers, "none");
  fm_config_free(&c);
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[model]\ninit = /m\nd_model = 64\n", "t.ini"), FM_OK);
  CU_ASSERT_NOT_EQUAL(fm_hf_config_apply(&c, g), FM_OK);
  const char *msg = fm_error_message();
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "t.ini:3: key 'model.d_model' = 64 conflicts"));
  CU_ASSERT_PTR_NOT_NULL(strstr(msg, "/m/config.json has n_embd = 32"));
  fm_config_free(&c);
  /* upcycling: the MoE keys stay the configuration's; expert_type follows the mode */
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[model]\ninit = /m\nupcycle = lora\nmoe_layers = 1\n", "t.ini"), FM_OK);
  CU_ASSERT_EQUAL_FATAL(fm_hf_config_apply(&c, g), FM_OK);
  CU_ASSERT_STRING_EQUAL(c.model.moe_layers, "1");
  CU_ASSERT_EQUAL(c.model.expert_type, FM_EXPERT_LORA);
  fm_config_free(&c);
  fm_config_init(&c);
  CU_ASSERT_EQUAL(fm_config_parse(&c, "[model]\ninit = /m\nupcycle = copy\nexpert_type = lora\n", "t.ini"), FM_OK);
  CU_ASSERT_NOT_EQUAL(fm_hf_config_apply(&c, g), FM_OK);
  CU_ASSERT_PTR_NOT_NULL(strstr(fm_error_message(), "key 'model.expert_type' = lora conflicts"));
  fm_config_free(&c);
}

/* Model tensor names to Hugging Face names, and which are vectors in files. */
static void test_names(void) {
  static fm_model_shape g, l;
  g.family = FM_FAMILY_GPT2;
  l.family = FM_FAMILY_MIXTRAL;
  static const struct { const fm_model_shape *s; const char *name; int group, rows; const char *hf; int ndim; } c[] = {
    {&g, "wte", FM_GROUP_EMBED, 256, "transformer.wte.weight", 2},
    {&g, "h.0.attn.c_attn.bias", FM_GROUP_ATTN, 1, "transformer.h.0.attn.c_attn.bias", 1},
    {&g, "h.1.ln_2.weight", FM_GROUP_NORM, 1, "transformer.h.1.ln_2.weight", 1},
    {&g, "h.1.moe.router.weight", FM_GROUP_ROUTER, 4, "fedmoe.h.1.moe.router.weight", 2},
    {&g, "h.1.moe.experts.2.c_fc.lora_A", FM_GROUP_EXPERT, 32, "fedmoe.h.1.moe.experts.2.c_fc.lora_A", 2},
    {&l, "embed_tokens.weight", FM_GROUP_EMBED, 256, "model.embed_tokens.weight", 2},
    {&l, "lm_head.weight", FM_GROUP_EMBED, 256, "lm_head.weight", 2},
    {&l, "layers.0.block_sparse_moe.experts.3.w2.weight", FM_GROUP_EXPERT, 32,
     "model.layers.0.block_sparse_moe.experts.3.w2.weight", 2},
    {&l, "layers.0.self_attn.q_norm.weight", FM_GROUP_ATTN, 1, "model.layers.0.self_attn.q_norm.weight", 1},
    {&l, "layers.0.mlp.shared_expert_gate.weight", FM_GROUP_ROUTER, 1, "model.layers.0.mlp.shared_expert_gate.weight", 2},
  };
  for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
    fm_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", c[i].name);
    t.group = (fm_group)c[i].group;
    t.rows = c[i].rows;
    t.cols = 32;
    char hf[128];
    fm_hf_tensor_name(c[i].s, &t, hf, sizeof hf);
    CU_ASSERT_STRING_EQUAL(hf, c[i].hf);
    CU_ASSERT_EQUAL(fm_tensor_ndim(&t), c[i].ndim);
  }
}

int fm_test_register(void) {
  static const fm_test st_tests[] = {{"write then read", test_write_read},
                                     {"F16 and BF16 into float32", test_half_types},
                                     {"bad files refused", test_bad_files},
                                     {NULL, NULL}};
  static const fm_test cfg_tests[] = {{"every family", test_config_families},
                                      {"the transformers fixtures' config.json", test_fixture_configs},
                                      {"bad config.json", test_config_errors},
                                      {"model.init keys", test_apply},
                                      {"tensor names", test_names},
                                      {NULL, NULL}};
  if (setup_dir()) return 1;
  return fm_test_suite("safetensors", st_tests) || fm_test_suite("config.json", cfg_tests);
}
