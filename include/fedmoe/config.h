/* config.h - the run configuration: an INI file plus --set overrides.
 *
 * Every key is declared once in src/core/config_keys.c with its type, default,
 * range and help; the parser rejects unknown keys, values of the wrong type and
 * values out of range with an error naming the key and where it was set
 * (file:line or the command line). The resolved configuration (every key, with
 * where its value came from) can be printed and stored in the run file. */
#ifndef FEDMOE_CONFIG_H
#define FEDMOE_CONFIG_H

#include "fedmoe/error.h"

#include <stdint.h>
#include <stdio.h>

#define FM_LIST_MAX 32
#define FM_PATH_MAX 512

typedef struct { int n; int v[FM_LIST_MAX]; } fm_intlist;
typedef struct { int n; double v[FM_LIST_MAX]; } fm_floatlist;

/* enumerations; the order matches the choices strings in config_keys.c */
enum { FM_STRAT_LOCAL, FM_STRAT_FEDAVG, FM_STRAT_COMIGS, FM_STRAT_FEDBIOT, FM_STRAT_HFEDMOE };
enum { FM_EXPERT_FULL, FM_EXPERT_LORA };
enum { FM_ROUTER_DATA_VAL, FM_ROUTER_DATA_TRAIN }; /* comigs.router_data */
enum { FM_UPCYCLE_NONE, FM_UPCYCLE_COPY, FM_UPCYCLE_LORA };
enum { FM_TRAIN_ALL, FM_TRAIN_LORA }; /* model.train */
enum { FM_SCHED_CONSTANT, FM_SCHED_COSINE };
enum { FM_PART_BY_DOMAIN, FM_PART_DIRICHLET, FM_PART_IID };
enum { FM_SIZES_EQUAL, FM_SIZES_LOGNORMAL };
enum { FM_AGG_FIXED, FM_AGG_FLOAT };
enum { FM_SELECT_IB, FM_SELECT_RANDOM, FM_SELECT_USAGE };
enum { FM_FINAL_EVAL_ALL, FM_FINAL_EVAL_SAMPLED };
/* auto|true|false keys: auto is the family's or the shape's default */
enum { FM_TRI_AUTO, FM_TRI_TRUE, FM_TRI_FALSE };
enum { FM_DEVICE_CPU, FM_DEVICE_CUDA };
enum { FM_PRECISION_FP32, FM_PRECISION_TF32, FM_PRECISION_BF16 }; /* the order of cuda_nn.h's fm_precision */
enum { FM_ROPE_SCALING_NONE, FM_ROPE_SCALING_LLAMA3 };
enum { FM_FORMAT_AUTO, FM_FORMAT_TEXT, FM_FORMAT_JSONL };
enum { FM_SERVER_AVG, FM_SERVER_AVGM, FM_SERVER_ADAM, FM_SERVER_YOGI, FM_SERVER_ADAGRAD };
enum { FM_SAMPLING_FIXED, FM_SAMPLING_POISSON };
enum { FM_COMPRESS_NONE, FM_COMPRESS_TOPK, FM_COMPRESS_INT8 };

typedef struct fm_config {
  struct {
    char name[64];
    char output[FM_PATH_MAX];
    int64_t seed;
    int checkpoint_every, keep_last, stop_after, log_level, threads;
    int device, precision; /* FM_DEVICE_*, FM_PRECISION_* */
    int client_batch;      /* clients trained at once over the shared frozen base */
    double collective_timeout; /* seconds; 0: no watchdog */
    int device_state_mb;       /* MiB of device memory for the hosted clients' private state; -1: what fits */
  } run;
  struct {
    int vocab, context, d_model, heads, layers;
    char moe_layers[128]; /* "all", "none" or a list of block indices "1,3" */
    int experts, top_k, expert_type, lora_rank;
    double lora_alpha, init_std, load_balance;
    int family, kv_heads, head_dim, ffn, expert_ffn, shared_ffn, attn_lora_rank;
    int norm_topk, tied, attn_bias, qk_norm; /* FM_TRI_* */
    double norm_eps, rope_theta;
    int rope_scaling, rope_orig_ctx; /* FM_ROPE_SCALING_*; llama3's original context */
    double rope_factor, rope_low_freq, rope_high_freq;
    char init[FM_PATH_MAX]; /* "" or a Hugging Face model folder to start from */
    int upcycle;            /* FM_UPCYCLE_*: a dense folder's FFN into experts */
    int train;              /* FM_TRAIN_*: every tensor the strategy trains, or only LoRA pairs */
    char tokenizer[FM_PATH_MAX]; /* "": model.init's folder's tokenizer, else bytes */
  } model;
  struct {
    int batch, seq_len, schedule, warmup_steps, eval_batches;
    double lr, lr_min, weight_decay, beta1, beta2, eps, grad_clip;
  } train;
  struct {
    char path[FM_PATH_MAX];
    char domains[FM_PATH_MAX]; /* "" or a comma-separated list of domain names */
    int partition, sizes;
    double alpha, size_sigma;
    int64_t client_bytes;
    double train_frac, val_frac, test_frac, public_frac;
    int64_t min_domain_bytes, max_domain_bytes;
    char token_cache[FM_PATH_MAX]; /* "": beside the corpus or the user's cache; "off"; a folder */
    int format;                    /* FM_FORMAT_* */
    char text_field[64], prompt_template[1024], instruction_field[64], input_field[64], output_field[64];
    char client_field[64], domain_field[64];
    int allow_overlap;
  } data;
  struct {
    int strategy, rounds, clients, sample_count, local_steps, aggregation, final_eval, over_select;
    double sample_fraction, deadline_s;
  } fl;
  struct { /* the federated-learning toolkit's round options (keys fl.*; src/fl/toolkit.c) */
    int server_opt, secure_agg, sampling, scaffold, compress, finetune_steps, ditto, ditto_steps;
    double server_lr, server_momentum, server_beta2, server_eps, prox_mu, compress_ratio, ditto_lambda;
  } fltk;
  struct { /* client-level differential privacy (DP-FedAvg) */
    double clip, noise_multiplier, delta, target_epsilon;
  } privacy;
  struct { /* device and network model, per resource class (a list entry per class) */
    fm_floatlist share, flops, memory_mb, up_mbps, down_mbps, latency_ms, availability, dropout;
    double flops_spread;
    char trace[FM_PATH_MAX];
    int auto_budget;
  } system;
  struct {
    int generalists;
    fm_intlist specialists; /* per resource class */
    int router_every, router_steps;
    double router_lr;
    int router_data; /* FM_ROUTER_DATA_VAL or _TRAIN */
  } comigs;
  struct {
    double keep, align_lr;
    int adapter_layers, align_steps, adapter;
  } fedbiot;
  struct {
    fm_intlist budgets; /* per resource class */
    double lambda, beta, tau, explore;
    int score_batches, select, mask_forward;
  } hfedmoe;
  struct { /* `fedmoe pretrain`: central training of a base model */
    int steps, micro_batch, eval_every, checkpoint_every;
    char output[FM_PATH_MAX]; /* the Hugging Face folder written at the end */
  } pretrain;
  struct {
    char fail[64];
    int device_mirror; /* the stand-in device of src/nn/backend_mirror.c */
  } debug;
  int nkeys;
  char (*origin)[FM_PATH_MAX + 16]; /* where each key's value came from, by key index */
} fm_config;

typedef enum { FM_KEY_INT, FM_KEY_INT64, FM_KEY_REAL, FM_KEY_BOOL, FM_KEY_STRING, FM_KEY_ENUM,
               FM_KEY_INTLIST, FM_KEY_REALLIST } fm_key_type;

typedef struct {
  const char *name;    /* "section.key" */
  fm_key_type type;
  size_t offset, size; /* field in fm_config */
  const char *def;     /* default, as text */
  double min, max;     /* inclusive range for numbers and list entries */
  const char *choices; /* "a|b|c" for enums */
  const char *help;
  int on_resume;       /* FM_RESUME_FREE: may change when the run is resumed; 0: must keep its value */
} fm_key;
#define FM_RESUME_FREE 1

extern const fm_key fm_config_keys[];
extern const int fm_config_nkeys;

/* Defaults for every key. */
fm_err fm_config_init(fm_config *c);
void fm_config_free(fm_config *c);
/* Parse INI text; name is the file name used in messages. A key set twice in the
 * text is an error naming both lines (--set overrides, applied after the file, do
 * replace a file's value, and a later --set replaces an earlier one). */
fm_err fm_config_parse(fm_config *c, const char *text, const char *name);
/* Refuse a NUL byte among the len bytes of text read from the file name (a C string
 * would end there and the rest go unread), naming its line. */
fm_err fm_text_refuse_nul(const char *text, size_t len, const char *name);
/* Strict numbers, for every text fedmoe reads: decimal digits only (no octal "012",
 * no hex "0x10", no hex floats), finite, nothing after the number but space.
 * Return 1 when s is one; s may have its trailing space cut. */
int fm_parse_int64(const char *s, int64_t *out);
int fm_parse_real(const char *s, double *out);
/* The sections, in declaration order, into names (at most max); returns the count. */
#define FM_SECTIONS_MAX 32
int fm_config_sections(char (*names)[32], int max);
/* Parse INI text; name is the file name used in messages. `include` lines are an
 * error here (stored configurations, fuzzing: no file is read). */
fm_err fm_config_parse(fm_config *c, const char *text, const char *name);
/* Parse the text of the configuration file path: a line `include = FILE` before the
 * first [section] reads FILE there (relative to path's folder; nested up to 8 deep),
 * so the lines after it override what it sets. */
fm_err fm_config_parse_file(fm_config *c, const char *text, const char *path);
/* Read a whole file into a NUL-terminated buffer (caller frees). */
fm_err fm_read_file(const char *path, char **text, size_t *len);
/* Apply one "section.key=value" override; where names it ("--set" argument). */
fm_err fm_config_set(fm_config *c, const char *assignment, const char *where);
/* Cross-key checks (D divisible by heads, k <= E, fractions, ...). */
fm_err fm_config_validate(const fm_config *c);
/* An error naming key and where its value came from; for validation anywhere. */
fm_err fm_config_error(const fm_config *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define FM_CONFIG_ERROR(c, key, ...) \
  return fm_error_trace(__FILE__, __LINE__, __func__, fm_config_error((c), (key), __VA_ARGS__))
/* The value of key k in c as text (what fm_config_to_text writes). */
void fm_config_value_text(const fm_config *c, const fm_key *k, char *out, size_t len);
/* The resolved configuration as INI text, with origins as comments. */
fm_err fm_config_to_text(const fm_config *c, char **text);
/* Name of the current value of an enum key ("fl.strategy" -> "comigs"). */
const char *fm_config_enum_name(const fm_config *c, const char *key);
const fm_key *fm_config_find_key(const char *name);

#endif
