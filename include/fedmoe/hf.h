/* hf.h - Hugging Face model folders: safetensors files, config.json, and a model's
 * tensors read from and written to them.
 *
 * A folder holds config.json and either model.safetensors or a sharded
 * model.safetensors.index.json whose weight_map names the shard of every tensor.
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the
 * tensor bytes (offsets relative to the end of the header), row-major.
 *
 * Model tensor names are the Hugging Face names less the base prefix ("transformer."
 * for gpt2, "model." for the others; lm_head.weight has none), each in the
 * checkpoint's own layout (GPT-2's Conv1D weights are [in, out]), so loading is
 * name for name. gpt2's embeddings are wte/wpe here, transformer.wte.weight/.wpe.weight
 * there. Tensors Hugging Face has no name for (fedmoe's MoE layers on GPT-2 blocks,
 * LoRA pairs) travel as "fedmoe.<name>" beside them, config.json saying how in its
 * "fedmoe" object (see fm_hf_export). */
#ifndef FEDMOE_HF_H
#define FEDMOE_HF_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/model.h"

#include <stddef.h>
#include <stdint.h>

/* ---- safetensors ---- */
enum { FM_ST_F32, FM_ST_F16, FM_ST_BF16 };

typedef struct {
  char *name;
  int dtype;            /* FM_ST_* */
  int ndim;
  int64_t shape[8];
  size_t numel;
  uint64_t begin, end;  /* byte range in its file's data section */
  int file;             /* index into the shard list */
  int used;             /* set by the loader: the tensor went into the model */
} fm_st_tensor;

typedef struct fm_st fm_st;

/* Open the safetensors of a model folder (model.safetensors, else the shards of
 * model.safetensors.index.json) and check every header: JSON, known dtypes, shapes
 * whose byte counts match data_offsets, data within the file (a truncated file names
 * the tensor it cuts). Errors name the file and the tensor or field. */
fm_err fm_st_open_dir(fm_st **st, const char *dir);
/* One safetensors file. */
fm_err fm_st_open_file(fm_st **st, const char *path);
void fm_st_close(fm_st *st);
int fm_st_count(const fm_st *st);
fm_st_tensor *fm_st_get(fm_st *st, int i);
fm_st_tensor *fm_st_find(fm_st *st, const char *name); /* NULL when absent */
const char *fm_st_file_of(const fm_st *st, const fm_st_tensor *t);
/* A tensor's values converted to float32 into out [numel]. */
fm_err fm_st_read_f32(fm_st *st, const fm_st_tensor *t, float *out);

/* Writing: add tensors (the data must stay valid until fm_st_write), then write
 * path (as path.tmp, renamed into place): header keys sorted, the header padded
 * with spaces to a multiple of 8 bytes, tensors in name order, F32. */
typedef struct fm_st_writer fm_st_writer;
fm_err fm_st_writer_create(fm_st_writer **w);
fm_err fm_st_writer_add(fm_st_writer *w, const char *name, const float *data, int ndim, const int64_t *shape);
fm_err fm_st_writer_write(fm_st_writer *w, const char *path);
void fm_st_writer_free(fm_st_writer *w);

/* ---- config.json ---- */
typedef struct {
  char model_type[32];  /* as config.json says: gpt2, llama, qwen2, mistral, ... */
  fm_model_shape s;     /* the whole shape (lora and init fields from fedmoe's defaults) */
  int moe;              /* 1: the checkpoint has MoE layers */
  char moe_layers[128]; /* s.moe_mask as model.moe_layers text */
  int fedmoe_extra;     /* 1: fedmoe.* tensors ride along (config.json "fedmoe" object) */
} fm_hf_config;

#define FM_HF_MODEL_TYPES "gpt2, llama, qwen2, mistral, mixtral, olmoe, qwen2_moe"

/* Parse config.json text (path names it in messages). */
fm_err fm_hf_config_parse(const char *text, const char *path, fm_hf_config *h);
/* Read DIR/config.json. */
fm_err fm_hf_config_read(const char *dir, fm_hf_config *h);
/* Refuse a folder whose blocks this build does not have (path names it). */
fm_err fm_hf_check_built(const fm_hf_config *h, const char *path);
/* model.init = DIR: the [model] keys the folder fixes take its values (their origin
 * becomes DIR/config.json); a key set explicitly to another value is an error naming
 * both. model.upcycle (copy|lora) leaves the MoE keys to the configuration. text is
 * config.json's content (read once by the caller). Families whose blocks this build
 * lacks are refused. */
fm_err fm_hf_config_apply(fm_config *c, const char *text);

/* ---- a model from/to a folder ---- */
/* The Hugging Face name of model tensor t in a model of shape s (out of len). */
void fm_hf_tensor_name(const fm_model_shape *s, const fm_tensor *t, char *out, size_t len);
/* The dimensions a tensor has in a file: 1 for biases and norm weights (vectors), 2
 * for matrices (rows x cols, [1, n] included). */
int fm_tensor_ndim(const fm_tensor *t);

/* Load every tensor of m from the folder's safetensors. A tensor the folder lacks is
 * an error unless the strategy or upcycling adds it (routers, experts, LoRA pairs:
 * with upcycle copy an expert takes the pretrained FFN's values, otherwise its
 * fm_model_init value stays); a folder tensor the model does not use is an error, and
 * so is a shape that differs (both named). */
fm_err fm_hf_load(fm_model *m, const char *dir, int upcycle);
/* Bytes the folder's parameters take as float32 (for the memory checks). */
double fm_hf_param_bytes(const fm_model_shape *s);
/* Refuse, before anything is allocated, the model of folder dir when need bytes
 * (what says for what: its weights, and what training adds) exceed mem_mb (the
 * smallest system.memory_mb; <= 0 or infinite: not checked) or this machine's
 * memory, saying how much it needs. */
fm_err fm_hf_check_memory(double need, double mem_mb, const char *dir, const char *what);

/* Write m as a Hugging Face folder: config.json and model.safetensors in outdir
 * (which must not exist or be empty unless overwrite). gpt2 with MoE layers of LoRA
 * experts: the base model as GPT2LMHeadModel plus the routers and LoRA pairs as
 * fedmoe.* tensors (transformers ignores them and scores the base model; fedmoe
 * --model and model.init read them); gpt2 with full experts has no Hugging Face
 * architecture and is refused. keep_experts > 0: only experts 0..keep_experts-1 and
 * their router rows (a CoMiGS client's model routes to no others; softmax over the
 * kept rows is the same routing). */
fm_err fm_hf_export(fm_model *m, const char *outdir, int overwrite, int keep_experts);

#endif
