/* nn_threads.h - how many threads the model's GEMMs (BLIS) may use.
 *
 * BLIS here is built with OpenMP and would otherwise follow BLIS_NUM_THREADS or
 * OMP_NUM_THREADS from the environment. fedmoe decides the thread count itself
 * (run.threads): until fm_nn_set_threads is called, the first GEMM sets 1 thread,
 * so the program never silently runs more threads than it was asked to. */
#ifndef FEDMOE_NN_THREADS_H
#define FEDMOE_NN_THREADS_H

/* Threads for every later GEMM of this process (n >= 1; smaller values mean 1). */
void fm_nn_set_threads(int n);
/* The count in force (1 until set). */
int fm_nn_threads(void);

#include <stddef.h>

/* ---- per-kernel profile of the model engine (fedmoe bench --profile) ----
 * The kernels' timers are compiled in but cost one flag test per kernel call while
 * profiling is off. Times accumulate per part of the model and per pass until reset. */
enum {
  FM_PROF_EMBED,     /* token (+ position) embedding */
  FM_PROF_LAYERNORM, /* ln_1, ln_2, ln_f; the llama family's RMSNorms, q/k norms included */
  FM_PROF_ATTN_PROJ, /* c_attn and attn.c_proj, or q/k/v/o_proj (GEMMs, biases, LoRA) */
  FM_PROF_ATTN_CORE, /* causal softmax(q k^T) v per head; rotary embeddings */
  FM_PROF_FFN,       /* dense FFN, shared expert, or the MoE experts' GEMMs and activation */
  FM_PROF_DISPATCH,  /* MoE gather of rows per expert and weighted combine */
  FM_PROF_ROUTER,    /* router GEMM, softmax/top-k, load balancing */
  FM_PROF_HEAD,      /* head GEMM (tied or lm_head) and cross-entropy */
  FM_PROF_RESIDUAL,  /* residual copies */
  FM_PROF_OPTIMIZER, /* zeroing gradients, clipping, AdamW */
  FM_PROF_NKINDS
};
enum { FM_PROF_FWD, FM_PROF_BWD, FM_PROF_NPASS };

void fm_nn_profile(int on); /* switch the timers on (1) or off (0) */
int fm_nn_profiling(void);
void fm_nn_profile_reset(void);
double fm_nn_profile_seconds(int kind, int pass); /* accumulated time */
const char *fm_nn_profile_name(int kind);
/* A device's work is queued, so its timers mean something only if each timed region
 * waits for it: with a device backend set here (NULL: none), every timer read first
 * syncs it. Profiling then costs a sync per region; the step is slower than without. */
struct fm_backend;
void fm_nn_profile_device(struct fm_backend *be);
/* The table of `--profile`: ms per step of each part, forward and backward, for the
 * accumulated timers of `steps` steps of `step` seconds each. */
void fm_nn_profile_print(int steps, double step);

/* Bytes the model engine holds for a model: parameters, gradients and activations
 * (not the optimizer state, which its owner allocates). */
struct fm_model;
size_t fm_nn_model_bytes(const struct fm_model *m);

#endif
