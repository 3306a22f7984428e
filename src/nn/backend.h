/* backend.h - where a model's memory lives and its kernels run (private to src/nn).
 *
 * The passes (model_pass.c, model_llama.c, the head, AdamW and the gradient norm)
 * call the kernels through a table of operations instead of nn.h directly, so one
 * pass code serves the CPU and a GPU. Every kernel operation has exactly the
 * arguments of nn.h's function of the same name, after the backend itself, and the
 * same conventions ("+=", "=", NULL gradients); its pointers are the backend's memory
 * (host memory for the CPU, device memory for CUDA).
 *
 * backend_cpu.c: nn.h's kernels as they are (host memory, nothing queued, no errors).
 * cuda/backend_cuda.c: the fm_cu_* kernels of cuda/cuda_nn.h on one GPU's stream.
 *
 * Errors: a device backend queues work; an operation that fails records the first
 * failure in `err` and the later ones do nothing, so the passes stay free of checks;
 * `sync` waits for the queued work and returns (and clears) that error. The CPU
 * backend's operations cannot fail and its sync returns FM_OK.
 *
 * A kernel a backend lacks is NULL; `refuse` says, before a model is made, what of
 * its shape the backend cannot run (a message naming the family or feature). */
#ifndef FEDMOE_NN_BACKEND_H
#define FEDMOE_NN_BACKEND_H

#include "nn.h"

typedef struct fm_backend fm_backend;

struct fm_backend {
  const char *name; /* "cpu", "cuda" */
  int device;       /* 1: its memory is not the host's (mirrors and transfers needed) */
  int sharers;      /* ranks of this node on the same device, this one included (its
                     * memory is theirs to share; 0 or 1: this rank's alone) */
  fm_err err;       /* first failure of a queued operation (device backends) */
  void *ctx;        /* the backend's own state (CUDA: its fm_cu context) */

  /* ---- the model as a whole */
  /* FM_OK when the backend runs every part of shape s, else an error naming what not */
  fm_err (*refuse)(fm_backend *be, const fm_model_shape *s);
  /* floats of what one block's attention forward keeps for its backward (the att
   * argument of attention_forward): the CPU's [B,H,T,T] probabilities */
  size_t (*attention_saved)(fm_backend *be, int B, int T, int H, int hs);
  /* bytes the backend's memory has free now (SIZE_MAX: no limit known) */
  size_t (*mem_free)(fm_backend *be);

  /* ---- memory: alloc zeroes and fails with a message saying what, how much needed
   * and how much there is; download waits until the host values are there */
  fm_err (*alloc)(fm_backend *be, void *pptr, size_t bytes, const char *what);
  void (*free)(fm_backend *be, void *p);
  void (*upload)(fm_backend *be, void *dst, const void *src, size_t bytes);
  void (*download)(fm_backend *be, void *dst, const void *src, size_t bytes);
  void (*copy)(fm_backend *be, void *dst, const void *src, size_t bytes);
  void (*zero)(fm_backend *be, void *p, size_t bytes);
  /* dst[rows, cols] (row stride ldd) = src (row stride lds) */
  void (*copy_rows)(fm_backend *be, float *dst, int ldd, const float *src, int lds, int rows, int cols);
  /* dst[n] += src[n] */
  void (*add)(fm_backend *be, float *dst, const float *src, size_t n);
  fm_err (*sync)(fm_backend *be, const char *what);

  /* ---- optimizer and clipping (device backends only: the CPU keeps adamw.c's and
   * clip.c's loops, whose results the tests pin down bit for bit) */
  /* sum over the count arrays x[i] of n[i] values of x^2, in a fixed order (downloaded) */
  double (*sumsq)(fm_backend *be, const float *const *x, const size_t *n, int count);
  /* AdamW on one tensor (adamw.c's rule; c1, c2 the bias corrections) */
  void (*adamw)(fm_backend *be, float *w, float *m, float *v, const float *g, size_t n, float lr,
                float b1, float b2, float eps, float wd, float c1, float c2, float grad_scale);

  /* ---- the kernels of nn.h, same arguments */
  void (*gemm)(fm_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);
  void (*linear_forward)(fm_backend *be, float *out, const float *inp, const float *w, const float *b,
                         int N, int C, int OC, int accumulate);
  void (*linear_backward)(fm_backend *be, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, int N, int C, int OC, int accumulate);
  void (*layernorm_forward)(fm_backend *be, float *out, float *mean, float *rstd, const float *inp,
                            const float *w, const float *b, int N, int C, float eps);
  void (*layernorm_backward)(fm_backend *be, float *dinp, float *dw, float *db, const float *dout,
                             const float *inp, const float *w, const float *mean, const float *rstd,
                             int N, int C);
  void (*ffn_forward)(fm_backend *be, float *out, float *h, float *g, const float *x, const float *fc_w,
                      const float *fc_b, const float *pj_w, const float *pj_b, int N, int D, int F);
  void (*ffn_backward)(fm_backend *be, float *dx, float *dfc_w, float *dfc_b, float *dpj_w,
                       float *dpj_b, float *dg, const float *dout, const float *x, const float *h,
                       const float *g, const float *fc_w, const float *pj_w, int N, int D, int F);
  void (*attention_forward)(fm_backend *be, float *out, float *att, const float *qkv, int B, int T,
                            int H, int KVH, int hs);
  void (*attention_backward)(fm_backend *be, float *dqkv, float *scratch, const float *dout,
                             const float *qkv, const float *att, int B, int T, int H, int KVH, int hs);
  void (*embed_forward)(fm_backend *be, float *out, const int32_t *tok, const float *wte,
                        const float *wpe, int B, int T, int D);
  void (*embed_backward)(fm_backend *be, float *dwte, float *dwpe, const float *dout,
                         const int32_t *tok, int B, int T, int D);
  /* crossentropy.c's forward and backward on logits [N,V] in rows of ld >= V values
   * (dlogits too); the backward may run in place (dlogits == logits) */
  double (*crossentropy_forward)(fm_backend *be, float *lse, const float *logits, int ld,
                                 const int32_t *targets, int N, int V, int *nvalid);
  void (*crossentropy_backward)(fm_backend *be, float *dlogits, const float *logits, int ld, const float *lse,
                                const int32_t *targets, int N, int V, int nvalid, float dloss);
  /* The model's dlogits rows: ld rounded up to a multiple of logits_align (0: rows of
   * V), for cuBLAS's aligned kernels with an odd vocabulary (GPT-2's 50257);
   * FEDMOE_CUDA_HEAD=padded on the GPU, always on the CPU's stand-in device */
  int logits_align;
  void (*lora_forward)(fm_backend *be, int layout, int n, int in, int out, int R, float s,
                       const float *x, int ldx, const float *A, const float *B, float *z, float *y,
                       int ldy);
  void (*lora_backward)(fm_backend *be, int layout, int n, int in, int out, int R, float s,
                        const float *x, int ldx, const float *z, const float *dy, int ldy, fm_param A,
                        fm_param B, float *dz, float *dx, float beta);
  /* optional (NULL: lora_forward/backward per group): lora_grouped.c's G groups */
  void (*lora_grouped_forward)(fm_backend *be, int layout, int G, int n, int in, int out, int R, float s,
                               const float *x, int ldx, const float *A, size_t sA, const float *B, size_t sB,
                               float *z, float *y, int ldy);
  void (*lora_grouped_backward)(fm_backend *be, int layout, int G, int n, int in, int out, int R, float s,
                                const float *x, int ldx, const float *z, const float *dy, int ldy, fm_param A,
                                fm_param B, size_t sA, size_t sB, float *dz, float *dx, float beta);
  /* llama family */
  void (*dense_forward)(fm_backend *be, float *out, int ldo, const float *inp, const float *w,
                        const float *b, int N, int C, int OC, int accumulate);
  void (*dense_backward)(fm_backend *be, float *dinp, float *dw, float *db, const float *dout, int ldd,
                         const float *inp, const float *w, int N, int C, int OC, int accumulate);
  void (*rmsnorm_forward)(fm_backend *be, float *out, float *rstd, const float *inp, const float *w,
                          int N, int C, int ld, float eps);
  void (*rmsnorm_backward)(fm_backend *be, float *dinp, float *dw, const float *dout, const float *inp,
                           const float *w, const float *rstd, int N, int C, int ld, int accumulate);
  void (*rope_forward)(fm_backend *be, float *x, const float *cos_t, const float *sin_t, int B, int T,
                       int nh, int hs, int ld);
  void (*rope_backward)(fm_backend *be, float *dx, const float *cos_t, const float *sin_t, int B, int T,
                        int nh, int hs, int ld);
  void (*swiglu_ffn_forward)(fm_backend *be, float *out, float *gu, float *a, const float *x,
                             const float *wg, const float *wu, const float *wd, int N, int D, int F,
                             int accumulate);
  void (*swiglu_ffn_backward)(fm_backend *be, float *dx, float *dwg, float *dwu, float *dwd, float *da,
                              float *dgu, const float *dout, const float *x, const float *gu,
                              const float *a, const float *wg, const float *wu, const float *wd, int N,
                              int D, int F, int accumulate);
  void (*shared_expert_forward)(fm_backend *be, float *out, float *y, float *sg, float *gu, float *a,
                                const float *x, const float *wg, const float *wu, const float *wd,
                                const float *wsg, int N, int D, int F);
  void (*shared_expert_backward)(fm_backend *be, float *dx, float *dwg, float *dwu, float *dwd,
                                 float *dwsg, float *dy, float *dz, float *da, float *dgu,
                                 const float *dout, const float *x, const float *y, const float *sg,
                                 const float *gu, const float *a, const float *wg, const float *wu,
                                 const float *wd, const float *wsg, int N, int D, int F);
  /* optional (NULL: the head is the gemm and crossentropy operations above): the LM
   * head fused with the cross-entropy, logits = x W^T never whole. Returns the mean
   * loss over the rows with targets >= 0 (*nvalid of them), lse [N] (may be NULL);
   * gradients of dloss times the loss: dx [N,D] written, dW [V,D] (accumulate ? += :
   * =); either may be NULL (neither: the loss alone). x [N,D], W [V,D], targets [N]. */
  double (*head_crossentropy)(fm_backend *be, int *nvalid, float *lse, float *dx, float *dW, int accumulate,
                              const float *x, const float *W, const int32_t *targets, int N, int D, int V,
                              float dloss);
  /* one MoE layer (moe.c: router, dispatch, experts, combine), its state in L (host:
   * dimensions, mask, the routing the runtime reads) and, on a device, in dev: the
   * backend's own layer of L's dimensions, made by moe_create (NULL on the CPU, which
   * uses L itself); moe_set_mask follows fm_moe_set_mask on L, moe_routing copies the
   * last forward's routing (probs, picks, f, row offsets) into L */
  fm_err (*moe_create)(fm_backend *be, const fm_moe *L, void **dev);
  void (*moe_destroy)(fm_backend *be, void *dev);
  fm_err (*moe_set_mask)(fm_backend *be, void *dev, const uint8_t *allowed);
  fm_err (*moe_routing)(fm_backend *be, void *dev, fm_moe *L);
  double (*moe_forward)(fm_backend *be, fm_moe *L, void *dev, const fm_moe_params *p, float *out,
                        const float *x, int N, float lb_coef);
  void (*moe_backward)(fm_backend *be, fm_moe *L, void *dev, const fm_moe_params *p, float *dx,
                       const float *dout, const float *x, float lb_coef, float dlb);
};

/* The CPU backend (backend_cpu.c): shared by every CPU model, never written. */
extern fm_backend fm_backend_cpu;

/* A stand-in device for tests (backend_mirror.c): the CPU's kernels on memory of
 * their own behind the host mirrors of a device model. */
fm_backend *fm_backend_mirror(void);

/* The backend fm_model_create puts new models on: the CPU unless a command chose a
 * device (fm_backend_set_default, before making models; run.device). */
fm_backend *fm_backend_default(void);
void fm_backend_set_default(fm_backend *be);

#endif
