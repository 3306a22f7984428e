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

enum { BENCH_B = 16, BENCH_T = 128, WARMUP = 2, STEPS = 8, PROFILE_STEPS = 4 };

typedef struct {
  const char *name;
  int d, heads, layers, moe, experts, top_k, family, kv_heads;
} bench_cfg;

static const bench_cfg configs[] = {
  {"dense-d128", 128, 4, 4, 0, 4, 2, FM_FAMILY_GPT2, 0},
  {"moe-d128", 128, 4, 4, 1, 4, 2, FM_FAMILY_GPT2, 0},
  {"moe-d256", 256, 4, 4, 1, 4, 2, FM_FAMILY_GPT2, 0},
  {"mixtral-d128", 128, 4, 4, 1, 4, 2, FM_FAMILY_MIXTRAL, 2},
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
  int ta, tb, M, N, K;
} gemm_shape;

/* The three GEMMs of a linear layer inp[M,C] @ w[C,OC]: forward, dinp, dw. */
static int add_linear(gemm_shape *g, int n, int M, int C, int OC) {
  g[n++] = (gemm_shape){0, 0, M, OC, C};
  g[n++] = (gemm_shape){0, 1, M, C, OC};
  g[n++] = (gemm_shape){1, 0, C, OC, M};
  return n;
}

/* BLIS's rate (GFLOP/s) over the model's weight GEMMs, best of a few repetitions.
 * s is resolved (fm_model_get_shape). */
static double sgemm_rate(const fm_model_shape *s, int N) {
  gemm_shape g[64 * 20];
  int n = 0;
  const int D = s->d, V = s->vocab, gpt2 = s->family == FM_FAMILY_GPT2;
  const int QD = s->heads * s->head_dim, KD = s->kv_heads * s->head_dim;
  for (int l = 0; l < s->layers; l++) {
    if (gpt2) {
      n = add_linear(g, n, N, D, 3 * D);
    } else { /* q, k, v */
      n = add_linear(g, n, N, D, QD);
      n = add_linear(g, n, N, D, KD);
      n = add_linear(g, n, N, D, KD);
    }
    n = add_linear(g, n, N, QD, D);
    const int moe = (s->moe_mask >> l) & 1, rows = moe ? N * s->top_k / s->experts : N;
    const int F = moe ? s->expert_ffn : s->ffn;
    for (int e = 0; e < (moe ? s->experts : 1); e++) {
      n = add_linear(g, n, rows, D, F);
      if (!gpt2) n = add_linear(g, n, rows, D, F); /* SwiGLU's up projection */
      n = add_linear(g, n, rows, F, D);
    }
  }
  g[n++] = (gemm_shape){0, 1, N, V, D}; /* logits = x head^T */
  g[n++] = (gemm_shape){1, 0, V, D, N}; /* dwte += dlogits^T x */
  g[n++] = (gemm_shape){0, 0, N, D, V}; /* dx = dlogits wte */
  size_t big = 0;
  double flops = 0;
  for (int i = 0; i < n; i++) {
    size_t a = (size_t)g[i].M * g[i].K, b = (size_t)g[i].K * g[i].N, c = (size_t)g[i].M * g[i].N;
    if (a > big) big = a;
    if (b > big) big = b;
    if (c > big) big = c;
    flops += 2.0 * g[i].M * g[i].N * (double)g[i].K;
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
  for (int i = 0; i < n; i++) { /* each shape: the faster path, best of 3 per path after a warm-up */
    const gemm_shape *q = &g[i];
    double best = 1e30;
    for (int rep = 0; rep < 8; rep++) {
      double t0 = now();
      ref_sgemm(rep & 1, q->ta, q->tb, q->M, q->N, q->K, A, q->ta ? q->M : q->K, B,
                q->tb ? q->K : q->N, C, q->N);
      double t = now() - t0;
      if (rep >= 2 && t < best) best = t;
    }
    total += best;
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
} bench_model;

/* One training step as the runtime does it (fm_client_train_step, one class). */
static fm_err train_step(bench_model *bm) {
  float ce, lb;
  fm_model_zero_grads(bm->m);
  FM_CHECK(fm_model_forward(bm->m, bm->tok, bm->tgt, BENCH_B, BENCH_T, &ce, &lb));
  FM_CHECK(fm_model_backward(bm->m));
  fm_adamw_hparams h = {1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, fm_model_clip_factor(bm->m, 1u, 1.0)};
  fm_adamw_step(&bm->opt, bm->m, 0, &h);
  return FM_OK;
}

static fm_err bench_one(const bench_cfg *c, int profile) {
  fm_model_shape s = {0};
  s.vocab = 256;
  s.context = BENCH_T;
  s.d = c->d;
  s.heads = c->heads;
  s.layers = c->layers;
  s.moe_mask = c->moe ? ((uint64_t)1 << c->layers) - 1 : 0;
  s.experts = c->experts;
  s.top_k = c->top_k;
  s.expert_type = FM_EXPERT_FULL;
  s.lora_rank = 8;
  s.lora_alpha = 16.0f;
  s.init_std = 0.02f;
  s.load_balance = 0.01f;
  s.norm_topk = 1; /* renormalised top-k weights, as the figures in docs/engine.md were taken */
  s.family = c->family;
  s.kv_heads = c->kv_heads;
  s.tied = c->family == FM_FAMILY_GPT2; /* mixtral: untied lm_head */
  const int N = BENCH_B * BENCH_T;
  bench_model bm = {0};
  fm_err err = FM_OK;
  if ((err = fm_model_create(&bm.m, &s, BENCH_B, BENCH_T, 1, NULL, NULL))) goto done;
  fm_model_init(bm.m, 1);
  if ((err = fm_adamw_create(&bm.opt, fm_model_class_numel(bm.m, 0)))) goto done;
  if ((err = fm_calloc(&bm.tok, (size_t)N, sizeof *bm.tok, "bench tokens"))) goto done;
  if ((err = fm_calloc(&bm.tgt, (size_t)N, sizeof *bm.tgt, "bench targets"))) goto done;
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < N; i++) bm.tok[i] = (int32_t)fm_rng_below(&r, 256);
  for (int i = 0; i < N; i++) bm.tgt[i] = i % BENCH_T == BENCH_T - 1 ? (int32_t)fm_rng_below(&r, 256) : bm.tok[i + 1];

  for (int i = 0; i < WARMUP; i++)
    if ((err = train_step(&bm))) goto done;
  double t[STEPS];
  for (int i = 0; i < STEPS; i++) {
    double t0 = now();
    if ((err = train_step(&bm))) goto done;
    t[i] = now() - t0;
  }
  qsort(t, STEPS, sizeof t[0], cmp_double);
  const double med = 0.5 * (t[(STEPS - 1) / 2] + t[STEPS / 2]), best = t[0];
  const double fpt = fm_model_flops_per_token(bm.m, BENCH_T);
  const double gemm = sgemm_rate(fm_model_get_shape(bm.m), N);
  const double gf = fpt * N / med * 1e-9;
  const double mb = ((double)fm_nn_model_bytes(bm.m) + 2.0 * sizeof(float) * bm.opt.n) / 1048576.0;
  printf("%-11s %9zu %8.2f %10.0f %10.0f %8.1f %8.1f %6.0f%% %9.1f %9.1f\n", c->name,
         fm_model_class_numel(bm.m, 0), fpt * 1e-6, N / med, N / best, gf, gemm,
         gemm > 0 ? 100.0 * gf / gemm : 0.0, mb, peak_rss_mb());
  fflush(stdout);

  if (profile) {
    fm_nn_profile_reset();
    fm_nn_profile(1);
    double t0 = fm_wtime(); /* wall time, as the kernels' timers */
    for (int i = 0; i < PROFILE_STEPS; i++)
      if ((err = train_step(&bm))) break;
    double step = (fm_wtime() - t0) / PROFILE_STEPS;
    fm_nn_profile(0);
    if (err) goto done;
    printf("  profile of %s: ms per step (mean of %d steps, %.1f ms each)\n", c->name,
           PROFILE_STEPS, 1e3 * step);
    printf("  %-22s %9s %9s %9s %7s\n", "part", "forward", "backward", "total", "share");
    double sum = 0;
    for (int k = 0; k < FM_PROF_NKINDS; k++) {
      double f = fm_nn_profile_seconds(k, FM_PROF_FWD) / PROFILE_STEPS;
      double b = fm_nn_profile_seconds(k, FM_PROF_BWD) / PROFILE_STEPS;
      sum += f + b;
      printf("  %-22s %9.2f %9.2f %9.2f %6.1f%%\n", fm_nn_profile_name(k), 1e3 * f, 1e3 * b,
             1e3 * (f + b), 100.0 * (f + b) / step);
    }
    printf("  %-22s %9s %9s %9.2f %6.1f%%\n", "unattributed", "", "", 1e3 * (step - sum),
           100.0 * (step - sum) / step);
    fflush(stdout);
  }
done:
  free(bm.tok);
  free(bm.tgt);
  fm_adamw_free(&bm.opt);
  fm_model_free(bm.m);
  return err;
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
    printf("# fedmoe bench: 1 thread, B=%d T=%d (%d tokens/step), vocab 256, L=4, H=4, MoE: E=4 "
           "top-2 full experts on every block (mixtral: 2 key/value heads, SwiGLU)\n# %d warm-up + %d timed steps per model (zero grads, "
           "forward, backward, clip 1.0, AdamW); tokens/s of the median and the best step\n",
           BENCH_B, BENCH_T, BENCH_B * BENCH_T, WARMUP, STEPS);
    printf("# %-9s %9s %8s %10s %10s %8s %8s %7s %9s %9s\n", "model", "params", "MFLOP/tok",
           "tok/s med", "tok/s best", "GFLOP/s", "sgemm", "of sgemm", "model MiB", "peakRSSMiB");
    fflush(stdout);
    const char *only = getenv("FEDMOE_BENCH_ONLY"), *cpu = getenv("FEDMOE_BENCH_CPU");
    use_cpu_clock = cpu && *cpu && strcmp(cpu, "0");
    if (use_cpu_clock) printf("# timed with the process CPU clock (FEDMOE_BENCH_CPU)\n");
    for (size_t i = 0; i < sizeof configs / sizeof configs[0] && !err; i++)
      if (!only || !strcmp(only, configs[i].name)) err = bench_one(&configs[i], cli->profile);
  }
  FM_CHECK(fm_error_agree(err, &comm));
  return FM_OK;
}
