/* model_impl.h - the model object, shared by model.c (parameters, classes, init)
 * and model_pass.c (forward and backward). Private to src/nn. */
#ifndef FEDMOE_NN_MODEL_IMPL_H
#define FEDMOE_NN_MODEL_IMPL_H

#include "backend.h"

#include <stddef.h>
#include <string.h>

typedef struct {
  int moe; /* 1: the FFN part is an MoE layer */
  /* indices into the tensor table; -1 when the block has no such tensor */
  int ln1w, ln1b, attw, attb, aprw, aprb, ln2w, ln2b, fcw, fcb, fpw, fpb, router, ex0;
  /* llama family (model_llama.c): projections, q/k norms, SwiGLU FFN, shared expert;
   * experts from ex0 on, 3 tensors each (gate, up, down) */
  int qw, qb, kw, kb, vw, vb, ow, qn, kn, gw, uw, dw, sgw, suw, sdw, sgt;
  /* attention LoRA (model.attn_lora_rank): A, B on c_attn / q_proj (1) and c_proj /
   * v_proj (2), -1 when none; x A kept [N,r] each */
  int la1, lb1, la2, lb2;
  float *lz1, *lz2;
  float *qkv_pre, *q_rstd, *k_rstd; /* q/k norm: projections before it [N,W], [N], [N] */
  float *gu, *act;                  /* SwiGLU FFN: gate|up [N,2F], silu(gate) * up [N,F] */
  float *sy, *sg, *sgu, *sact;      /* shared expert: out [N,D], gate [N], [N,2Fs], [N,Fs] */
  /* activations of the last forward, [N, ...] with N = B'T' rows (room for B*T) */
  float *ln1, *ln1_mean, *ln1_rstd; /* [N,D] [N] [N] */
  float *qkv, *att, *atty, *resa;   /* [N,3D] [B,H,T,T] [N,D] [N,D] (h + attn) */
  float *ln2, *ln2_mean, *ln2_rstd; /* [N,D] [N] [N] */
  float *fch, *fcg;                 /* dense FFN: [N,4D] before and after GELU */
  fm_moe moe_layer;                 /* MoE FFN: its own activations */
  void *moe_dev;                    /* a device backend's layer beside it (backend.h) */
  /* client slots 1.. (model_slots.c): a layer each for its part of the rows, which its
   * own router routes (moe_layer is slot 0's, sized for every row) */
  fm_moe *moe_more;
  void **moe_more_dev;
} fm_block;

/* the MoE layers' dimensions of shape s (SwiGLU experts in the llama family) */
static inline fm_moe_dims fm_shape_moe_dims(const fm_model_shape *s) {
  fm_moe_dims dm = {.D = s->d, .F = s->expert_ffn, .E = s->experts, .k = s->top_k, .type = s->expert_type,
                    .r = s->lora_rank, .swiglu = s->family != FM_FAMILY_GPT2, .renorm = s->norm_topk,
                    .alpha = s->lora_alpha};
  return dm;
}

/* block b's MoE layer of client slot g, and a device's beside it */
static inline fm_moe *fm_block_moe(fm_block *b, int g) { return g ? &b->moe_more[g - 1] : &b->moe_layer; }
static inline void *fm_block_moe_dev(const fm_block *b, int g) {
  return g ? (b->moe_more_dev ? b->moe_more_dev[g - 1] : NULL) : b->moe_dev;
}

/* Who holds the newest values of a buffer that lives on a device with a host mirror */
enum { FM_SYNC_SAME, FM_SYNC_HOST, FM_SYNC_DEVICE };

struct fm_model {
  fm_model_shape s;
  /* where the values live and the kernels run (backend.h); every pointer below that
   * the passes use (tw, tg, the arena, tokens) is the backend's memory */
  fm_backend *be;
  int B, T; /* capacity */
  int nt;
  fm_tensor *t;
  int wte, wpe, lnfw, lnfb;
  fm_block *blk;
  /* parameters: one buffer per class (and its gradients), one for the frozen tensors */
  int nclass;
  float **cw, **cg;
  size_t *cn;
  float *fw;
  size_t fn;
  /* the passes' view of tensor i: its values and gradient in the backend's memory
   * (the CPU: t->w and t->g themselves) */
  float **tw, **tg;
  /* device backends: the class buffers on the device (index nclass: the frozen one),
   * the owner of each (FM_SYNC_*: params, grads), the AdamW moments of the host
   * state (fm_adamw) last used on class c, which are newer than that state's host
   * arrays when adev[c]; a host staging buffer for what the model hands out
   * (hidden states, logits) */
  float **dw, **dg;
  uint8_t *wsync, *gsync;
  float **am, **av;
  float **atag_m, **atag_v;
  uint8_t *adev;
  /* a resident client's class (model_stash.c): astash[c], the stash whose moments
   * am/av hold instead of a host state's (then adev: newer than the stash's), and
   * keep[c], set while class c holds a stash's values, which fm_model_sync leaves on
   * the device */
  fm_stash **astash;
  uint8_t *keep;
  float *stage, *dinj;
  size_t stage_n;
  /* activations: one arena */
  float *arena;
  size_t arena_n; /* floats in the arena */
  float *res;                         /* [L+1][B*T,D]: block inputs, then the last output */
  float *lnf, *lnf_mean, *lnf_rstd;   /* [N,D] [N] [N] */
  float *logits, *lse;                /* [N,V] [N] */
  float *dres, *dln, *dqkv, *datty;   /* backward scratch [N,D] [N,D] [N,3D] [N,D] */
  float *dfc, *dlogits, *attscr;      /* [N,4D] [N,ldv] attention rows */
  int ldv;                            /* dlogits' row stride: V, or padded (backend.h logits_align) */
  int dlogits_grad;                   /* padded rows: dlogits holds the gradient, not the logits */
  int32_t *tokens, *targets;          /* copies of the last forward's inputs */
  /* llama family: head (lm_head, or the embedding when tied), rotary tables
   * [context, hs/2], more backward scratch */
  int head;
  float *rope_cos, *rope_sin;
  float *da, *dsy, *dsz;              /* [N,max F] [N,D] [N] */
  float *dlz;                         /* attention LoRA scratch [N,r] */
  int Bc, Tc, nvalid, have_fwd, routed;
  /* client slots (model_slots.c, run.client_batch): each trained class buffer (and its
   * gradients, and a device's copies) holds nslot copies, slot g at g * cn[c]; the
   * frozen buffer is shared. slot: the copy the class accessors, the tensors' w/g
   * and tw/tg refer to now. The last forward split its rows into nact equal parts,
   * part g trained by slot g's tensors (1: a plain forward, the current slot over
   * every row); parts >= live are idle (no LoRA, no loss, no gradient). */
  int nslot, slot, nact, live;
  float *slot_ce;   /* [nslot] the last forward's mean loss of each live part */
  int *slot_nvalid; /* [nslot] its rows with a target */
  /* a fused head left the logits unwritten: 1 fm_model_logits makes them from the
   * forward's inputs, 2 no longer (the weights changed since) */
  int logits_stale;
  float ce, lb;
};

static inline int fm_ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* the parameter as a kernel sees it: gradient NULL when frozen class or frozen flag */
static inline fm_param fm_model_param(const fm_model *m, int i) {
  fm_param p = {NULL, NULL};
  if (i < 0) return p;
  const fm_tensor *t = &m->t[i];
  p.w = m->tw[i];
  p.g = t->g && !t->frozen ? m->tg[i] : NULL;
  return p;
}

/* the values of tensor i in the backend's memory (NULL for i < 0) */
static inline const float *fm_model_w(const fm_model *m, int i) { return i >= 0 ? m->tw[i] : NULL; }
/* its gradient as a kernel sees it: NULL when frozen (class or flag) */
static inline float *fm_model_g(const fm_model *m, int i) {
  return i >= 0 && m->t[i].g && !m->t[i].frozen ? m->tg[i] : NULL;
}

static inline int fm_model_on_device(const fm_model *m) { return m->be->device; }

/* model_device.c: host mirrors of a model on a device backend. Before a pass, every
 * buffer the host owns goes up; fm_model_host_params/grads bring one class (or the
 * frozen buffer, cls = FM_CLASS_FROZEN) down when the device is newer and give it to
 * the host, whose caller may then write it. No-ops on the CPU. */
fm_err fm_model_to_device(fm_model *m);
fm_err fm_model_host_params(fm_model *m, int cls);
fm_err fm_model_host_grads(fm_model *m, int cls);
fm_err fm_model_device_alloc(fm_model *m);
/* block b's MoE layer for N rows: moe.c's, and a device backend's beside it */
fm_err fm_model_moe_alloc(fm_model *m, fm_block *b, int N, const fm_moe_dims *dm);
/* the last forward's routing copied into the host layers, once per forward */
void fm_model_routing_to_host(const fm_model *m);
void fm_model_device_free(fm_model *m);
/* a device array of n floats handed to the host (the staging buffer, valid until the next call) */
const float *fm_model_stage(const fm_model *m, const float *dev, size_t n);
void fm_adamw_step_device(fm_adamw *o, fm_model *m, int cls, const fm_adamw_hparams *h);
double fm_model_grad_norm_device(fm_model *m, unsigned mask);

/* values of tensor i in slot g's copy (the backend's memory): the frozen ones are
 * every slot's */
static inline float *fm_slot_w(const fm_model *m, int i, int g) {
  const int c = m->t[i].cls;
  return c == FM_CLASS_FROZEN ? m->tw[i] : m->tw[i] + ((ptrdiff_t)g - m->slot) * (ptrdiff_t)m->cn[c];
}
static inline fm_param fm_slot_param(const fm_model *m, int i, int g) {
  fm_param p = fm_model_param(m, i);
  const int c = m->t[i].cls;
  if (c == FM_CLASS_FROZEN) return p;
  const ptrdiff_t d = ((ptrdiff_t)g - m->slot) * (ptrdiff_t)m->cn[c];
  p.w += d;
  if (p.g) p.g += d;
  return p;
}

/* model_slots.c: the passes' LoRA updates and head over a slotted forward's parts
 * (a plain forward: the backend's operation over every row, with the current slot) */
void fm_slots_lora_forward(fm_model *m, int layout, int N, int in, int out, int R, float s, const float *x,
                           int ldx, int ia, int ib, float *z, float *y, int ldy);
void fm_slots_lora_backward(fm_model *m, int layout, int N, int in, int out, int R, float s, const float *x,
                            int ldx, const float *z, const float *dy, int ldy, int ia, int ib, float *dz,
                            float *dx, float beta);
/* an MoE block's forward and backward over the parts (backend.h's moe_forward and
 * moe_backward): each live part through its slot's layer with its slot's tensors, as
 * `params` gives them for the slot set; the forward returns the parts' summed
 * load-balance terms */
typedef void (*fm_moe_params_fn)(const fm_model *m, const fm_block *b, fm_moe_params *p);
double fm_slots_moe_forward(fm_model *m, fm_block *b, fm_moe_params_fn params, float *out, const float *x, int N);
void fm_slots_moe_backward(fm_model *m, fm_block *b, fm_moe_params_fn params, float *dx, const float *dout,
                           const float *x);
void fm_slots_head_forward(fm_model *m, int head, int N);
void fm_slots_head_backward(fm_model *m, int head, int N);

/* model_pass.c: the LM head (tensor index head, tied or not) and the cross-entropy */
void fm_model_head_forward(fm_model *m, int head, int N);
void fm_model_head_backward(fm_model *m, int head, int N);
/* the last forward's logits in the arena, made now if a fused head skipped them */
void fm_model_logits_ready(fm_model *m);

/* model_llama.c: the llama family's blocks (index, activations, passes) */
fm_err fm_llama_index(fm_model *m);
fm_err fm_llama_alloc(fm_model *m);
void fm_llama_forward(fm_model *m, int B, int T, double *lbsum);
void fm_llama_backward(fm_model *m, int lo, int k, const float *dh);

/* model_stash.c: the AdamW moments of a stash on class c (astash[c]) back into it
 * when newer, and the class no longer the stash's: before another state's moments
 * take the device buffers */
void fm_model_stash_release(fm_model *m, int c);
/* model_device.c: the device's moments of class c back into the host state they
 * belong to (atag) when newer, and the class no longer that state's */
void fm_model_flush_adamw(fm_model *m, int c);

#endif
