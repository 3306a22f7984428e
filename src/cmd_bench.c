/* cmd_bench.c - `fedmoe bench [--profile]`: training speed of four reference models
 * on one thread: three gpt2 ones and a mixtral-style one (GQA with 2 key/value heads,
 * rotary embeddings, RMSNorm, SwiGLU experts of 8/3 D rounded up to 8, untied head).
 *
 * Each model trains on random bytes with B = 16 sequences of T = 128 tokens per step;
 * a step is what a client's step is (src/fl/client.c): zero the gradients, forward,
 * backward, clip the gradient norm to 1, AdamW. After warm-up steps, every timed
 * step is measured alone; the line reports the median and the best.
 *
 *   tokens/s    B T / step time
 *   GFLOP/s     model FLOPs per token (fm_model_flops_per_token: 6 N_active + 12 L D T)
 *               times tokens/s
 *   sgemm       the rate of BLIS sgemm measured now on the model's own weight GEMMs:
 *               every linear layer's forward, input-gradient and weight-gradient GEMM
 *               with the model's shapes and transposes (MoE experts with their average
 *               N k / E rows), and the tied head's three; called directly with natural
 *               strides, each shape by the faster of BLIS's two paths (small/unpacked,
 *               its default at these sizes, or packed)
 *   of sgemm    GFLOP/s over sgemm: what is left of the GEMM limit after the rest of
 *               the model (attention core, element-wise passes, optimizer)
 *   model MiB   what the engine holds (parameters, gradients, activations) plus AdamW's
 *               two moments; peak RSS is the process's high-water mark so far.
 * --profile adds, per model, the time per part of the model, forward and backward
 * separately (the engine's per-kernel timers, include/fedmoe/nn_threads.h).
 * FEDMOE_BENCH_ONLY=NAME in the environment runs just that model, and
 * FEDMOE_BENCH_CPU=1 times with the process's CPU clock instead of the wall clock:
 * on a loaded machine that leaves out the time the process waited for a core, which
 * makes A/B comparisons of kernels steadier (the reported figures are wall time).
 * Only rank 0 works; a benchmark never asserts a speed (bench/ compares with PyTorch). */
#include "cli.h"

#include "fedmoe/model.h"
#include "fedmoe/nn_threads.h"
#include "fedmoe/rng.h"
#include "fedmoe/timer.h"

#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum { PROFILE_STEPS = 4 };

typedef struct {
  const char *name;
  int family, vocab, T, B, d, heads, kv_heads, layers, ffn, moe, experts, top_k;
  int attn_lora; /* > 0: LoRA fine-tuning, adapters of this rank on the attention, the rest frozen */
  int warmup, steps;
} bench_cfg;

/* The small models train on B = 16 sequences of T = 128 random bytes. The real-sized
 * ones (GPT-2 124M: its shape and 50257-token vocabulary, tied head; SmolLM-135M:
 * d 576, 30 blocks, 9 query heads on 3 key/value heads, SwiGLU 1536, vocabulary 49152,
 * tied, rope_theta 10000) take B = 4 sequences of T = 256 tokens, a federated client's
 * local batch (GPT-2's context cut to 256; 1024 tokens a step keeps a client's
 * activations near 1 GiB), with 1 warm-up and 3 timed steps: a step takes seconds. */
static const bench_cfg configs[] = {
  {"dense-d128", FM_FAMILY_GPT2, 256, 128, 16, 128, 4, 0, 4, 0, 0, 4, 2, 0, 2, 8},
  {"moe-d128", FM_FAMILY_GPT2, 256, 128, 16, 128, 4, 0, 4, 0, 1, 4, 2, 0, 2, 8},
  {"moe-d256", FM_FAMILY_GPT2, 256, 128, 16, 256, 4, 0, 4, 0, 1, 4, 2, 0, 2, 8},
  {"mixtral-d128", FM_FAMILY_MIXTRAL, 256, 128, 16, 128, 4, 2, 4, 0, 1, 4, 2, 0, 2, 8},
  {"gpt2-124m", FM_FAMILY_GPT2, 50257, 256, 4, 768, 12, 0, 12, 0, 0, 4, 2, 0, 1, 3},
  {"gpt2-124m-lora", FM_FAMILY_GPT2, 50257, 256, 4, 768, 12, 0, 12, 0, 0, 4, 2, 8, 1, 3},
  {"smollm-135m", FM_FAMILY_LLAMA, 49152, 256, 4, 576, 9, 3, 30, 1536, 0, 4, 2, 0, 1, 3},
  {"smollm-135m-lora", FM_FAMILY_LLAMA, 49152, 256, 4, 576, 9, 3, 30, 1536, 0, 4, 2, 8, 1, 3},
};

/* The reference: BLIS itself on row-major operands with their natural strides, by
 * either of its two paths (small = its default for these shapes, or packed; see
 * src/nn/gemm.c), so that the figure is the best BLIS does at each shape. */
static void ref_sgemm(int packed, int ta, int tb, int M, int N, int K, const float *A, int lda,
                      const float *B, int ldb, float *C, int ldc) {
  float one = 1.0f;
  rntm_t rn;
  bli_rntm_init(&rn);
  bli_rntm_set_num_threads(1, &rn);
  if (packed) bli_rntm_disable_l3_sup(&rn);
  bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, M, N, K, &one, (float *)A, ta ? 1 : lda,
               ta ? lda : 1, (float *)B, tb ? 1 : ldb, tb ? ldb : 1, &one, C, ldc, 1, NULL, &rn);
}

static int use_cpu_clock;

static double now(void) {
  if (!use_cpu_clock) return fm_wtime();
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  int ta, tb, M, N, K, count;
} gemm_shape;

enum { MAX_SHAPES = 64 * 40 };

typedef struct {
  gemm_shape g[MAX_SHAPES];
  int n;
} gemm_list;

/* A GEMM the step does; a shape seen before only counts once more (the blocks repeat) */
static void add_gemm(gemm_list *l, int ta, int tb, int M, int N, int K) {
  for (int i = 0; i < l->n; i++) {
    gemm_shape *q = &l->g[i];
    if (q->ta == ta && q->tb == tb && q->M == M && q->N == N && q->K == K) {
      q->count++;
      return;
    }
  }
  if (l->n < MAX_SHAPES) l->g[l->n++] = (gemm_shape){ta, tb, M, N, K, 1};
}

/* The GEMMs of a linear layer over M rows, C -> OC, as src/nn/linear.c does them:
 * forward, input gradient, and the weight gradient when the weight trains. GPT-2's
 * Conv1D stores w [C,OC], nn.Linear (the llama family) w [OC,C]. */
static void add_linear(gemm_list *l, int conv1d, int M, int C, int OC, int dw) {
  if (conv1d) {
    add_gemm(l, 0, 0, M, OC, C);
    add_gemm(l, 0, 1, M, C, OC);
    if (dw) add_gemm(l, 1, 0, C, OC, M);
  } else {
    add_gemm(l, 0, 1, M, OC, C);
    add_gemm(l, 0, 0, M, C, OC);
    if (dw) add_gemm(l, 1, 0, OC, C, M);
  }
}

/* A rank-R adapter on a linear map, as src/nn/lora.c does it: two forward GEMMs, and
 * dB, dz, dA, dx. */
static void add_lora(gemm_list *l, int conv1d, int n, int in, int out, int R) {
  if (conv1d) {
    add_gemm(l, 0, 0, n, R, in);
    add_gemm(l, 0, 0, n, out, R);
    add_gemm(l, 1, 0, R, out, n);
    add_gemm(l, 0, 1, n, R, out);
    add_gemm(l, 1, 0, in, R, n);
    add_gemm(l, 0, 1, n, in, R);
  } else {
    add_gemm(l, 0, 1, n, R, in);
    add_gemm(l, 0, 1, n, out, R);
    add_gemm(l, 1, 0, out, R, n);
    add_gemm(l, 0, 0, n, R, out);
    add_gemm(l, 1, 0, R, in, n);
    add_gemm(l, 0, 0, n, in, R);
  }
}

/* BLIS's rate (GFLOP/s) over the model's weight GEMMs: those of every projection,
 * FFN matrix (MoE experts with their average N k / E rows), attention adapter and
 * the head, weight gradients only where the weights train (base_frozen: LoRA
 * fine-tuning, where only the adapters do). Each distinct shape is timed by the faster
 * of BLIS's two paths, best of a few runs, and counted as often as the step runs it.
 * s is resolved (fm_model_get_shape). */
static double sgemm_rate(const fm_model_shape *s, int N, int base_frozen) {
  static gemm_list gl;
  gl.n = 0;
  const int D = s->d, V = s->vocab, gpt2 = s->family == FM_FAMILY_GPT2, dw = !base_frozen;
  const int QD = s->heads * s->head_dim, KD = s->kv_heads * s->head_dim, R = s->attn_lora_rank;
  for (int l = 0; l < s->layers; l++) {
    if (gpt2) {
      add_linear(&gl, 1, N, D, 3 * D, dw);
      if (R > 0) add_lora(&gl, 1, N, D, 3 * D, R);
    } else { /* q, k, v; adapters on q and v */
      add_linear(&gl, 0, N, D, QD, dw);
      add_linear(&gl, 0, N, D, KD, dw);
      add_linear(&gl, 0, N, D, KD, dw);
      if (R > 0) add_lora(&gl, 0, N, D, QD, R), add_lora(&gl, 0, N, D, KD, R);
    }
    add_linear(&gl, gpt2, N, QD, D, dw);
    if (gpt2 && R > 0) add_lora(&gl, 1, N, D, D, R);
    const int moe = (s->moe_mask >> l) & 1, rows = moe ? N * s->top_k / s->experts : N;
    const int F = moe ? s->expert_ffn : s->ffn;
    for (int e = 0; e < (moe ? s->experts : 1); e++) {
      add_linear(&gl, gpt2, rows, D, F, dw);
      if (!gpt2) add_linear(&gl, 0, rows, D, F, dw); /* SwiGLU's up projection */
      add_linear(&gl, gpt2, rows, F, D, dw);
    }
  }
  add_gemm(&gl, 0, 1, N, V, D);             /* logits = x head^T */
  if (dw) add_gemm(&gl, 1, 0, V, D, N);     /* dhead += dlogits^T x */
  add_gemm(&gl, 0, 0, N, D, V);             /* dx = dlogits head */
  size_t big = 0;
  double flops = 0;
  for (int i = 0; i < gl.n; i++) {
    const gemm_shape *q = &gl.g[i];
    size_t a = (size_t)q->M * q->K, b = (size_t)q->K * q->N, c = (size_t)q->M * q->N;
    if (a > big) big = a;
    if (b > big) big = b;
    if (c > big) big = c;
    flops += 2.0 * q->M * q->N * (double)q->K * q->count;
  }
  float *A = malloc(big * sizeof *A), *B = malloc(big * sizeof *B), *C = calloc(big, sizeof *C);
  if (!A || !B || !C) {
    free(A), free(B), free(C);
    return 0.0;
  }
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  for (size_t i = 0; i < big; i++) A[i] = B[i] = fm_rng_uniformf(&r) - 0.5f;
  double total = 0;
  for (int i = 0; i < gl.n; i++) {
    /* each shape: the faster path, best of 3 per path after a warm-up. A GEMM of over
     * a GFLOP has every dimension past BLIS's small-path thresholds (the real-sized
     * models: M = 1024 rows, the others 576 and more), so BLIS packs it either way: one
     * warm-up and one timed run (its time hardly varies, and the head's take seconds) */
    const gemm_shape *q = &gl.g[i];
    const int large = 2.0 * q->M * q->N * (double)q->K > 1e9, reps = large ? 2 : 8;
    double best = 1e30;
    for (int rep = 0; rep < reps; rep++) {
      double t0 = now();
      ref_sgemm(large || (rep & 1), q->ta, q->tb, q->M, q->N, q->K, A, q->ta ? q->M : q->K, B,
                q->tb ? q->K : q->N, C, q->N);
      double t = now() - t0;
      if (rep >= (large ? 1 : 2) && t < best) best = t;
    }
    total += best * q->count;
  }
  free(A), free(B), free(C);
  return flops / total * 1e-9;
}

static double peak_rss_mb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef struct {
  fm_model *m;
  fm_adamw opt;
  int32_t *tok, *tgt;
  int B, T;
} bench_model;

/* LoRA fine-tuning: the attention adapters train (class 0), everything else is frozen */
static int lora_only(const fm_tensor *t, void *ctx) {
  (void)ctx;
  return t->group == FM_GROUP_ATTN_LORA ? 0 : FM_CLASS_FROZEN;
}

/* One training step as the runtime does it (fm_client_train_step, one class). */
static fm_err train_step(bench_model *bm) {
  float ce, lb;
  fm_model_zero_grads(bm->m);
  FM_CHECK(fm_model_forward(bm->m, bm->tok, bm->tgt, bm->B, bm->T, &ce, &lb));
  FM_CHECK(fm_model_backward(bm->m));
  fm_adamw_hparams h = {1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, fm_model_clip_factor(bm->m, 1u, 1.0)};
  fm_adamw_step(&bm->opt, bm->m, 0, &h);
  return FM_OK;
}

static fm_err bench_one(const bench_cfg *c, int profile) {
  fm_model_shape s = {0};
  s.vocab = c->vocab;
  s.context = c->T;
  s.d = c->d;
  s.heads = c->heads;
  s.layers = c->layers;
  s.ffn = c->ffn;
  s.moe_mask = c->moe ? ((uint64_t)1 << c->layers) - 1 : 0;
  s.experts = c->experts;
  s.top_k = c->top_k;
  s.expert_type = FM_EXPERT_FULL;
  s.lora_rank = 8;
  s.lora_alpha = 16.0f;
  s.attn_lora_rank = c->attn_lora;
  s.init_std = 0.02f;
  s.load_balance = 0.01f;
  s.norm_topk = 1; /* renormalised top-k weights, as the figures in docs/engine.md were taken */
  s.family = c->family;
  s.kv_heads = c->kv_heads;
  s.rope_theta = 10000.0f;
  /* the small mixtral has an untied lm_head; GPT-2 and SmolLM tie theirs */
  s.tied = c->family != FM_FAMILY_MIXTRAL;
  const int B = c->B, T = c->T, N = B * T, steps = c->steps;
  bench_model bm = {.B = B, .T = T};
  fm_err err = FM_OK;
  if ((err = fm_model_create(&bm.m, &s, B, T, 1, c->attn_lora ? lora_only : NULL, NULL))) goto done;
  fm_model_init(bm.m, 1);
  if ((err = fm_adamw_create(&bm.opt, fm_model_class_numel(bm.m, 0)))) goto done;
  if ((err = fm_calloc(&bm.tok, (size_t)N, sizeof *bm.tok, "bench tokens"))) goto done;
  if ((err = fm_calloc(&bm.tgt, (size_t)N, sizeof *bm.tgt, "bench targets"))) goto done;
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < N; i++) bm.tok[i] = (int32_t)fm_rng_below(&r, (uint64_t)c->vocab);
  for (int i = 0; i < N; i++)
    bm.tgt[i] = i % T == T - 1 ? (int32_t)fm_rng_below(&r, (uint64_t)c->vocab) : bm.tok[i + 1];

  for (int i = 0; i < c->warmup; i++)
    if ((err = train_step(&bm))) goto done;
  double t[16];
  for (int i = 0; i < steps; i++) {
    double t0 = now();
    if ((err = train_step(&bm))) goto done;
    t[i] = now() - t0;
  }
  qsort(t, (size_t)steps, sizeof t[0], cmp_double);
  const double med = 0.5 * (t[(steps - 1) / 2] + t[steps / 2]), best = t[0];
  const double fpt = fm_model_step_flops_per_token(bm.m, T);
  const double gemm = sgemm_rate(fm_model_get_shape(bm.m), N, c->attn_lora > 0);
  const double gf = fpt * N / med * 1e-9;
  const double MiB = 1048576.0, trained = (double)fm_model_class_numel(bm.m, 0);
  /* the engine's bytes: frozen base, the trained tensors and their gradients, activations.
   * A process hosts its clients one at a time in one model (src/fl/client_state.c):
   * each client keeps its trained tensors and their AdamW moments; the base, the
   * gradients and the activations are there once. */
  const double engine = (double)fm_nn_model_bytes(bm.m);
  double all = 0;
  for (int i = 0; i < fm_model_ntensors(bm.m); i++) all += (double)fm_model_tensor(bm.m, i)->numel;
  const double base = sizeof(float) * (all - trained);
  printf("%-16s %10zu %8.1f %9.0f %9.0f %8.1f %7.1f %6.0f%% %9.1f %9.1f %9.1f %9.1f\n", c->name,
         fm_model_class_numel(bm.m, 0), fpt * 1e-6, N / med, N / best, gf, gemm,
         gemm > 0 ? 100.0 * gf / gemm : 0.0, 3.0 * sizeof(float) * trained / MiB, base / MiB,
         (engine - base - sizeof(float) * trained) / MiB, peak_rss_mb());
  fflush(stdout);

  if (profile) {
    fm_nn_profile_reset();
    fm_nn_profile(1);
    const int ps = c->steps < PROFILE_STEPS ? c->steps : PROFILE_STEPS;
    double t0 = fm_wtime(); /* wall time, as the kernels' timers */
    for (int i = 0; i < ps; i++)
      if ((err = train_step(&bm))) break;
    double step = (fm_wtime() - t0) / ps;
    fm_nn_profile(0);
    if (err) goto done;
    printf("  profile of %s: ms per step (mean of %d steps, %.1f ms each)\n", c->name, ps,
           1e3 * step);
    fm_nn_profile_print(ps, step);
  }
done:
  free(bm.tok);
  free(bm.tgt);
  fm_adamw_free(&bm.opt);
  fm_model_free(bm.m);
  return err;
}

/* FEDMOE_BENCH_ONLY, when set, must name one of the models */
static fm_err check_only(const char *only) {
  if (!only) return FM_OK;
  char names[512] = "";
  for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
    if (!strcmp(only, configs[i].name)) return FM_OK;
    strncat(names, " ", sizeof names - strlen(names) - 1);
    strncat(names, configs[i].name, sizeof names - strlen(names) - 1);
  }
  FM_ERROR(FM_ERR_ARG, "FEDMOE_BENCH_ONLY=%s names no model; the models are:%s", only, names);
}

fm_err fm_cmd_bench(const fm_cli *cli, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  fm_err err = FM_OK;
  if (cli->device && strcmp(cli->device, "cpu")) {
    FM_CHECK(fm_error_agree(fm_bench_gpu(cli, rank), &comm));
    return FM_OK;
  }
  if (rank == 0) {
    fm_nn_set_threads(1);
    printf("# fedmoe bench: 1 thread. *-d128/d256: B=16 T=128, vocab 256, L=4, H=4, MoE: E=4 "
           "top-2 full experts on every block (mixtral: 2 key/value heads, SwiGLU), 2 warm-up + 8 "
           "timed steps.\n# gpt2-124m, smollm-135m: B=4 T=256, their real shapes and vocabularies, "
           "tied heads, 1 warm-up + 3 timed steps; -lora: rank-8 adapters on the attention "
           "(gpt2: c_attn, c_proj; llama: q_proj, v_proj), the rest frozen.\n# A step: zero grads, "
           "forward, backward, clip 1.0, AdamW; tokens/s of the median and the best step. "
           "MFLOP/tok counts only the weight gradients computed. client MiB: what each client keeps "
           "(trained tensors, AdamW m and v); base: the frozen tensors; work: activations and the "
           "trained tensors' gradients (base and work: once per process, whichever client trains)\n");
    printf("# %-14s %10s %8s %9s %9s %8s %7s %7s %9s %9s %9s %9s\n", "model", "trained", "MFLOP/tok",
           "tok/s med", "tok/s best", "GFLOP/s", "sgemm", "of sgemm", "clientMiB", "baseMiB",
           "workMiB", "peakRSSMiB");
    fflush(stdout);
    const char *only = getenv("FEDMOE_BENCH_ONLY"), *cpu = getenv("FEDMOE_BENCH_CPU");
    use_cpu_clock = cpu && *cpu && strcmp(cpu, "0");
    if (use_cpu_clock) printf("# timed with the process CPU clock (FEDMOE_BENCH_CPU)\n");
    err = check_only(only);
    for (size_t i = 0; i < sizeof configs / sizeof configs[0] && !err; i++)
      if (!only || !strcmp(only, configs[i].name)) err = bench_one(&configs[i], cli->profile);
  }
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
