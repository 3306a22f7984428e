/* model_impl.h - the model object, shared by model.c (parameters, classes, init)
 * and model_pass.c (forward and backward). Private to src/nn. */
#ifndef FEDMOE_NN_MODEL_IMPL_H
#define FEDMOE_NN_MODEL_IMPL_H

#include "nn.h"

typedef struct {
  int moe; /* 1: the FFN part is an MoE layer */
  /* indices into the tensor table; -1 when the block has no such tensor */
  int ln1w, ln1b, attw, attb, aprw, aprb, ln2w, ln2b, fcw, fcb, fpw, fpb, router, ex0;
  /* activations of the last forward, [N, ...] with N = B'T' rows (room for B*T) */
  float *ln1, *ln1_mean, *ln1_rstd; /* [N,D] [N] [N] */
  float *qkv, *att, *atty, *resa;   /* [N,3D] [B,H,T,T] [N,D] [N,D] (h + attn) */
  float *ln2, *ln2_mean, *ln2_rstd; /* [N,D] [N] [N] */
  float *fch, *fcg;                 /* dense FFN: [N,4D] before and after GELU */
  fm_moe moe_layer;                 /* MoE FFN: its own activations */
} fm_block;

struct fm_model {
  fm_model_shape s;
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
  /* activations: one arena */
  float *arena;
  size_t arena_n; /* floats in the arena */
  float *res;                         /* [L+1][B*T,D]: block inputs, then the last output */
  float *lnf, *lnf_mean, *lnf_rstd;   /* [N,D] [N] [N] */
  float *logits, *lse;                /* [N,V] [N] */
  float *dres, *dln, *dqkv, *datty;   /* backward scratch [N,D] [N,D] [N,3D] [N,D] */
  float *dfc, *dlogits, *attscr;      /* [N,4D] [N,V] attention rows */
  int32_t *tokens, *targets;          /* copies of the last forward's inputs */
  int Bc, Tc, nvalid, have_fwd;
  float ce, lb;
};

/* the parameter as a kernel sees it: gradient NULL when frozen class or frozen flag */
static inline fm_param fm_model_param(const fm_model *m, int i) {
  fm_param p = {NULL, NULL};
  if (i < 0) return p;
  const fm_tensor *t = &m->t[i];
  p.w = t->w;
  p.g = t->g && !t->frozen ? t->g : NULL;
  return p;
}

#endif
