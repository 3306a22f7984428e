/* model.h - a GPT-2 style or llama-family decoder with Mixture-of-Experts
 * feed-forward layers.
 *
 * The llama family (shape.family llama, mixtral, olmoe, qwen2_moe) is described in
 * src/nn/model_llama.c and the README; its tensors are Hugging Face's names without
 * the "model." prefix, in nn.Linear layout [out, in]: embed_tokens.weight,
 * layers.{l}.input_layernorm.weight, layers.{l}.self_attn.{q,k,v,o}_proj.weight
 * (+ q/k/v .bias when attn_bias), layers.{l}.self_attn.{q,k}_norm.weight (qk_norm),
 * layers.{l}.post_attention_layernorm.weight, layers.{l}.mlp.{gate,up,down}_proj.weight
 * (dense), layers.{l}.block_sparse_moe.gate.weight and .experts.{e}.{w1,w3,w2}.weight
 * (mixtral: gate, up, down) or layers.{l}.mlp.gate.weight and
 * .experts.{e}.{gate,up,down}_proj.weight (olmoe, qwen2_moe), qwen2_moe's
 * layers.{l}.mlp.shared_expert.{gate,up,down}_proj.weight and
 * layers.{l}.mlp.shared_expert_gate.weight [1,D], norm.weight, lm_head.weight (untied).
 * LoRA experts (expert_type lora): the base layers.{l}.mlp.{gate,up,down}_proj.weight
 * (expert_ffn wide) and per expert .experts.{e}.{gate,up,down}_proj.lora_A [r,in],
 * .lora_B [out,r] (mixtral: block_sparse_moe.experts.{e}.{w1,w3,w2}.lora_A/B).
 * Attention adapters (attn_lora_rank r > 0): layers.{l}.self_attn.{q,v}_proj.lora_A
 * [r,D], .lora_B [out,r]; gpt2: h.{l}.attn.{c_attn,c_proj}.lora_A [D,r], .lora_B
 * [r,out]. Neither kind exists in a Hugging Face checkpoint.
 *
 * GPT-2 architecture (the PyTorch oracle in tests/fixtures implements exactly this):
 *   h0 = wte[tok] + wpe[pos]                                   wte [V,D], wpe [C,D]
 *   for block l:  a = h + attn(ln_1(h));  h = a + ffn_l(ln_2(a))
 *   logits = ln_f(h) @ wte^T   (tied head)
 * LayerNorm: eps norm_eps (1e-5), weight and bias. GELU: tanh approximation.
 * attn(x): qkv = x @ c_attn.weight [D,3D] + c_attn.bias [3D], split q|k|v, H heads of
 *   D/H, causal softmax(q k^T / sqrt(D/H)) v, heads concatenated,
 *   @ c_proj.weight [D,D] + c_proj.bias.
 * dense ffn(x) = gelu(x @ c_fc.weight [D,F] + c_fc.bias) @ c_proj.weight [F,D] + c_proj.bias,
 *   F = shape.ffn (4D unless a checkpoint says otherwise; experts: expert_ffn)
 * MoE ffn(x): logits = x @ router.weight^T (router.weight [E,D], no bias);
 *   p = softmax(logits) over the allowed experts (all, unless a route mask is set);
 *   K = indices of the top_k largest p (ties: lower index first);
 *   w_e = p_e / sum_{j in K} p_j for e in K (norm_topk; else w_e = p_e);
 *   out = sum_{e in K} w_e * expert_e(x).
 *   full expert e: its own c_fc/c_proj weights and biases, as the dense ffn.
 *   LoRA expert e: the block's shared base FFN (mlp.c_fc/c_proj, frozen by the
 *   strategies) with, on each of its two matrices W, a rank-r update:
 *   x @ W + (alpha/r) * (x @ A) @ B, A [in,r], B [r,out]; the base biases are shared.
 * Loss = mean cross-entropy over B*T targets (nats)
 *        + load_balance * sum over MoE layers of E * sum_e f_e * P_e, where f_e is the
 *        fraction of tokens whose top-1 expert is e (a constant) and P_e the mean of p_e.
 *
 * Tensor names follow GPT-2: wte, wpe, h.{l}.ln_1.weight, h.{l}.ln_1.bias,
 * h.{l}.attn.c_attn.weight, .bias, h.{l}.attn.c_proj.weight, .bias, h.{l}.ln_2.weight,
 * .bias, h.{l}.mlp.c_fc.weight, .bias, h.{l}.mlp.c_proj.weight, .bias (dense blocks, and
 * the base FFN of LoRA-expert blocks), h.{l}.moe.router.weight,
 * h.{l}.moe.experts.{e}.c_fc.weight, .bias, h.{l}.moe.experts.{e}.c_proj.weight, .bias
 * (full experts) or h.{l}.moe.experts.{e}.c_fc.lora_A, .lora_B, ...c_proj.lora_A,
 * .lora_B (LoRA experts), ln_f.weight, ln_f.bias. Row-major float32.
 *
 * Parameters live in sharing classes: a classifier (from the strategy) puts each
 * tensor in a class 0..nclass-1 or FM_CLASS_FROZEN; the tensors of one class are
 * contiguous in one buffer (in tensor order), with a gradient buffer beside it,
 * so a class is reduced, saved and restored in one call. Frozen tensors have no
 * gradient. A freeze flag per tensor additionally stops a trainable tensor's
 * weight gradient (and its optimizer update) for a while: CoMiGS's router phase,
 * HFedMoE's unselected experts. */
#ifndef FEDMOE_MODEL_H
#define FEDMOE_MODEL_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"

#include <stddef.h>
#include <stdint.h>

#define FM_CLASS_FROZEN (-1)
#define FM_MAX_LAYERS 64
#define FM_MAX_EXPERTS 64

#define FM_MAX_HEAD_DIM 1024

/* Architecture families (the Hugging Face model types they load from) */
enum { FM_FAMILY_GPT2, FM_FAMILY_LLAMA, FM_FAMILY_MIXTRAL, FM_FAMILY_OLMOE, FM_FAMILY_QWEN2_MOE };
/* Position encodings: GPT-2's learned wpe, rotary embeddings, rotary with llama3 scaling */
enum { FM_ROPE_NONE, FM_ROPE_DEFAULT, FM_ROPE_LLAMA3 };

/* Zero in a field below marked "0:" means its default (fm_shape_resolve), so a shape
 * made by hand with only the GPT-2 fields set is today's GPT-2 model. */
typedef struct {
  int vocab, context, d, heads, layers;
  uint64_t moe_mask;  /* bit l set: block l's FFN is MoE */
  int experts, top_k; /* E and k of every MoE layer */
  int expert_type;    /* FM_EXPERT_FULL or FM_EXPERT_LORA */
  int lora_rank;
  float lora_alpha, init_std, load_balance;
  int family;         /* FM_FAMILY_* */
  int kv_heads;       /* num_key_value_heads (GQA); 0: heads */
  int head_dim;       /* 0: d / heads */
  int ffn;            /* dense FFN inner size; 0: 4d (gpt2), the SwiGLU size of a 4d FFN (others) */
  int expert_ffn;     /* MoE expert inner size; 0: ffn */
  int shared_ffn;     /* qwen2_moe shared expert inner size; 0: none (other families: none) */
  float norm_eps;     /* layer_norm_epsilon / rms_norm_eps; 0: 1e-5 */
  int rope_type;      /* FM_ROPE_*; gpt2: always NONE, others: NONE means DEFAULT */
  float rope_theta;   /* 0: 10000 */
  float rope_factor, rope_low_freq, rope_high_freq; /* llama3 scaling */
  int rope_orig_ctx;  /* llama3: original_max_position_embeddings */
  int tied;           /* lm head tied to the token embedding (gpt2: always) */
  int attn_bias;      /* q/k/v projections have biases (gpt2: always, with c_proj's) */
  int qk_norm;        /* RMSNorm on q (heads*head_dim) and k (kv_heads*head_dim), before rope */
  int norm_topk;      /* renormalise the top-k router weights */
  int attn_lora_rank; /* rank of LoRA adapters on the attention projections (0: none),
                         scale lora_alpha / attn_lora_rank */
} fm_model_shape;

/* The defaults of the zero fields filled in, and the family's fixed choices applied
 * (gpt2: tied, biases, learned positions). Idempotent. */
void fm_shape_resolve(fm_model_shape *s);

/* Shape from the [model] section; moe_layers is parsed here ("all", "none", "0,2");
 * errors name the key. */
fm_err fm_model_shape_from_config(const fm_config *c, fm_model_shape *s);

typedef enum {
  FM_GROUP_EMBED,  /* wte, wpe */
  FM_GROUP_NORM,   /* every LayerNorm weight and bias, ln_f included */
  FM_GROUP_ATTN,   /* c_attn, attn.c_proj */
  FM_GROUP_FFN,    /* dense FFN, or the shared base FFN under LoRA experts */
  FM_GROUP_ROUTER, /* moe.router.weight */
  FM_GROUP_EXPERT, /* one expert's tensors (full FFN or LoRA A/B) */
  FM_GROUP_ATTN_LORA /* LoRA adapters on the attention projections (model.attn_lora_rank) */
} fm_group;

typedef struct {
  char name[64];
  fm_group group;
  int layer;       /* block index, -1 for wte, wpe, ln_f */
  int expert;      /* expert index for FM_GROUP_EXPERT, else -1 */
  int rows, cols;  /* shape [rows, cols]; vectors have rows = 1 */
  size_t numel;
  int cls;         /* sharing class or FM_CLASS_FROZEN */
  size_t offset;   /* in floats, inside its class buffer */
  float *w, *g;    /* weights; gradient (NULL when frozen class) */
  int frozen;      /* 1: no weight gradient and no optimizer update for now */
  int decay;       /* 1: weight decay applies (matrices; not biases, norms) */
} fm_tensor;

/* The tensors of a model of shape s in their fixed order (name, group, layer, expert,
 * shape, numel, decay; the rest zero), before any model exists (model_shape.c).
 * out NULL: just count. Returns the count. */
int fm_shape_tensors(const fm_model_shape *s, fm_tensor *out);

/* The strategy's classifier: class of a tensor (0..nclass-1) or FM_CLASS_FROZEN. */
typedef int (*fm_classify_fn)(const fm_tensor *t, void *ctx);

typedef struct fm_model fm_model;

/* A model for batches of up to B sequences of up to T tokens (T <= context);
 * activations are allocated here once. */
fm_err fm_model_create(fm_model **m, const fm_model_shape *s, int B, int T, int nclass,
                       fm_classify_fn classify, void *ctx);
/* The same for n client slots (run.client_batch; model_slots.c): the trained
 * classes held n times, the frozen base once, activations for n*B sequences. Every
 * trained tensor must be an attention LoRA tensor (no MoE layers). */
fm_err fm_model_create_slots(fm_model **m, const fm_model_shape *s, int B, int T, int nslot, int nclass,
                             fm_classify_fn classify, void *ctx);
int fm_model_nslot(const fm_model *m);
/* From here the class accessors, the tensors' w and g, AdamW and the gradient norm
 * refer to slot g's copy (0 at first); a plain forward uses it for every row. */
fm_err fm_model_set_slot(fm_model *m, int g);
/* A forward of n = fm_model_nslot parts of B sequences of T tokens (tokens, targets
 * [n][B,T]): part g through slot g's tensors, the frozen ones shared. Parts >= live
 * are idle (their rows run through the base but get no loss and no gradient; give
 * them valid tokens). ce[live]: each live part's mean cross-entropy; fm_model_backward
 * then gives each slot the gradient of its own part's mean. */
fm_err fm_model_forward_slots(fm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                              int live, float *ce);
void fm_model_free(fm_model *m);
const fm_model_shape *fm_model_get_shape(const fm_model *m);

/* Deterministic initialisation: each tensor from its own stream (seed, name), so a
 * tensor's initial value depends on the seed and its name only (not on the other
 * tensors, the classes or the rank). Matrices N(0, init_std) (c_proj matrices scaled
 * by 1/sqrt(2L) as GPT-2), biases 0, LayerNorm weight 1, LoRA A N(0, init_std), B 0. */
fm_err fm_model_init(fm_model *m, uint64_t seed);

/* A model on a GPU (run.device = cuda) keeps its values on the device and host
 * mirrors of them. What this API hands out - fm_model_class_params/grads, the w and g
 * of fm_model_tensor/find, fm_model_hidden/logits - is current when it is fetched,
 * and the caller may read and write through it; a pass (forward, backward,
 * zero_grads, AdamW, the gradient norm) then takes the host's values first and
 * makes the host copies stale again. So fetch a pointer's values again (call the
 * accessor) after a pass; a tensor pointer kept across passes must be brought up to
 * date with fm_model_sync. After it, kept pointers to the classes may be written
 * until the next pass; the frozen tensors' (which no pass changes) and those of a
 * class loaded from a stash (below; it stays on the device) are to be read only -
 * write those through an accessor. On the CPU all of this costs nothing. */
fm_err fm_model_sync(fm_model *m);
/* "cpu" or "cuda": where the model lives */
const char *fm_model_device(const fm_model *m);

/* A stash: one class's values and AdamW moments kept in a device model's own memory
 * (the GPU's), for a hosted client whose private state is resident there
 * (fl/client_state.c, run.device_state_mb). Loading and saving copy device to device,
 * exactly, so a resident client trains bit for bit as one whose state is in host
 * memory. Device models only (on the CPU the host is the device: nothing to stash). */
typedef struct fm_stash fm_stash;
/* Bytes of device memory this rank's stashes may take now: its share of what the
 * device has free (the node's ranks on the same device share it evenly), less the
 * AdamW moments the model has yet to allocate and a margin for the libraries'
 * workspaces (0 on the CPU; SIZE_MAX when the device does not say). */
size_t fm_model_stash_room(const fm_model *m);
/* Bytes one stash of class cls takes (values, two moments). */
size_t fm_model_stash_bytes(const fm_model *m, int cls);
/* A stash for class cls: values and moments zero. Fails, with the device's message,
 * when the memory is not there. */
fm_err fm_model_stash_alloc(fm_model *m, int cls, fm_stash **s);
void fm_model_stash_free(fm_model *m, fm_stash *s);
/* Class cls := the stash's values, and its moments into the device's AdamW buffers of
 * the class; the client's fm_adamw then has m = v = NULL (its moments are on the
 * device), n and step its own. The class stays on the device (fm_model_sync skips it). */
fm_err fm_model_stash_load(fm_model *m, fm_stash *s);
/* The class's values and moments (after the steps since the load) into the stash. */
void fm_model_stash_save(fm_model *m, fm_stash *s);
/* The stash to host arrays of the class's numel (for a checkpoint; any may be NULL), and
 * back from them (a resume; NULL moments: zero). */
fm_err fm_model_stash_get(fm_model *m, const fm_stash *s, float *w, float *mo, float *v);
void fm_model_stash_set(fm_model *m, fm_stash *s, const float *w, const float *mo, const float *v);
/* The device models made from now on live on (a backend from the CUDA library's
 * fm_cuda_backend_open; NULL: the CPU). */
typedef struct fm_backend fm_backend;
void fm_model_set_default_backend(fm_backend *be);

int fm_model_ntensors(const fm_model *m);
fm_tensor *fm_model_tensor(fm_model *m, int i);
fm_tensor *fm_model_find(fm_model *m, const char *name); /* NULL when absent */
int fm_model_nclass(const fm_model *m);
size_t fm_model_class_numel(const fm_model *m, int cls);
float *fm_model_class_params(fm_model *m, int cls);
float *fm_model_class_grads(fm_model *m, int cls);

/* Freeze or unfreeze every tensor of a class, or of a group in a layer (-1: all). */
void fm_model_freeze_class(fm_model *m, int cls, int frozen);
void fm_model_freeze_group(fm_model *m, fm_group g, int layer, int frozen);

/* Forward over tokens [B,T] (int32, < vocab) with targets [B,T] (int32; -1 = ignore).
 * Returns the mean cross-entropy in *ce (nats) and keeps what backward needs.
 * *lb receives the load-balancing term (already times load_balance), may be NULL. */
fm_err fm_model_forward(fm_model *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                        float *ce, float *lb);
/* Backward of ce + lb of the last forward: adds to the gradients of trainable,
 * unfrozen tensors (call fm_model_zero_grads first). */
fm_err fm_model_backward(fm_model *m);
void fm_model_zero_grads(fm_model *m);
/* Backward as above, plus the gradient dh [B*T, D] of an extra loss on the hidden
 * state at block boundary k (the output of block k-1, 1 <= k <= layers). */
fm_err fm_model_backward_inject(fm_model *m, int k, const float *dh);
/* Hidden state [B*T, D] (row stride D) at block boundary k of the last forward:
 * k = 0 the embeddings, k the output of block k-1; NULL when out of range. */
const float *fm_model_hidden(const fm_model *m, int k);
/* Logits [B,T,V] of the last forward (NULL when a GPU's fused head skipped them and the
 * weights changed since). */
const float *fm_model_logits(const fm_model *m);

/* Routing of the last forward, for MoE block l (NULL / 0 for dense blocks):
 * probs [B*T, E] softmax probabilities; picks [B*T, top_k] chosen experts. After a
 * forward of client slots: the part of the slot set (fm_model_set_slot). */
const float *fm_model_router_probs(const fm_model *m, int layer);
const int32_t *fm_model_router_picks(const fm_model *m, int layer);
/* Restrict routing of block l to experts with allowed[e] != 0 (NULL: all). */
fm_err fm_model_set_route_mask(fm_model *m, int layer, const uint8_t *allowed);

/* Model FLOPs per token for training, 6 x N_active + 12 x L x D x T (N_active: the
 * matrix weights one token passes through: attention, router, k experts, tied head). */
double fm_model_flops_per_token(const fm_model *m, int T);
/* The FLOPs per token a training step does with the tensors trainable now: 4 N_active
 * + 2 N_trained + 12 L D T, where only tensors with a weight gradient (trainable
 * class, not frozen) count in N_trained (LoRA on a frozen base: the adapters alone). */
double fm_model_step_flops_per_token(fm_model *m, int T);

/* ---- optimizer: AdamW over one class, its own state (m, v, step) ---- */
typedef struct {
  float *m, *v;
  size_t n;
  long step;
} fm_adamw;

typedef struct {
  float lr, beta1, beta2, eps, weight_decay;
  float grad_scale; /* >= 0: the gradients are taken times this (clipping, fm_model_clip_factor) */
} fm_adamw_hparams;

fm_err fm_adamw_create(fm_adamw *o, size_t n);
void fm_adamw_free(fm_adamw *o);
void fm_adamw_reset(fm_adamw *o);
/* One step on class cls of m: tensors frozen now are skipped (state untouched). */
void fm_adamw_step(fm_adamw *o, fm_model *m, int cls, const fm_adamw_hparams *h);
/* L2 norm of the gradients of the unfrozen tensors of the classes in mask (bit c). */
double fm_model_grad_norm(fm_model *m, unsigned mask);
/* The factor that clipping those gradients to norm max_norm applies (1 when the norm is within it, or
 * max_norm <= 0), for AdamW's grad_scale: the optimizer scales as it reads, which
 * saves clipping's pass over the gradients. */
float fm_model_clip_factor(fm_model *m, unsigned mask, double max_norm);
/* Learning rate at step (0-based) of total: linear warm-up, then constant or cosine
 * from lr to lr_min (train.* keys). */
float fm_lr_at(const fm_config *c, long step, long total, float lr);

#endif
