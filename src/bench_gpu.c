/* bench_gpu.c - `fedmoe bench --device cuda`: training speed of the GPU reference
 * models on the CUDA backend (a benchmark: figures, no assertion).
 *
 *   gpt2-124m   d 768, 12 layers, 12 heads, vocabulary 50257, context 1024, tied head
 *               full: every tensor trained;  lora: rank-8 adapters on c_attn and
 *               c_proj (alpha 16) trained, the base frozen
 *   smollm-135m the llama family (d 576, 30 layers, 9 heads, 3 key/value heads), full,
 *               and lora: rank-8 adapters on q_proj and v_proj (PEFT's default)
 *   moe-12x768  gpt2 with 8 full experts, top-2, on every block
 * at batch 8 x 128 and 8 x 1024 in fp32, tf32 and bf16 (one model per batch, trained on
 * through the precisions, each line printed as it is done). FEDMOE_BENCH_ONLY picks
 * cases (a comma list of MODEL or MODEL/MODE, e.g. gpt2-124m/lora,moe-12x768) and
 * FEDMOE_BENCH_PRECS precisions (e.g. bf16), so that a run fits a time limit;
 * FEDMOE_BENCH_PROFILE=1 adds, after each line, the time per part of 5 more steps with
 * each part waited for (fedmoe bench --profile's table). A step is a client's (zero the
 * gradients, forward, backward, clip the norm to 1, AdamW), waited for on the GPU; the
 * line gives tokens/s of the median and the best of the timed steps and the model's
 * TFLOP/s (fm_model_flops_per_token). A model the backend does not run prints the
 * refusal instead. bench/torch_cuda.py and bench/torch_bench.py time PyTorch on the
 * same shapes. */
#include "config.h"

#include "cli.h"

#include "fedmoe/nn_threads.h"
#include "fedmoe/rng.h"
#include "fedmoe/timer.h"

#ifdef FEDMOE_HAVE_CUDA
#include "nn/cuda/backend_cuda.h"
#include "nn/cuda/cuda_nn.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FEDMOE_HAVE_CUDA
typedef struct {
  const char *name, *mode;
  fm_model_shape s;
} gpu_case;

static int lora_only(const fm_tensor *t, void *ctx) {
  (void)ctx;
  return t->group == FM_GROUP_ATTN_LORA ? 0 : FM_CLASS_FROZEN;
}

/* Whether item (a comma list's entry) is among the names of list, compared up to
 * its comma: each of list's entries is NAME or NAME/MODE (or a precision). */
static int listed(const char *list, const char *name, const char *mode) {
  char full[64];
  snprintf(full, sizeof full, "%s/%s", name, mode ? mode : "");
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ",");
    if ((strlen(name) == n && !strncmp(p, name, n)) || (mode && strlen(full) == n && !strncmp(p, full, n)))
      return 1;
    p += n + (p[n] == ',');
  }
  return 0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* one step of a client: zero the gradients, forward, backward, clip to norm 1, AdamW,
 * waited for on the GPU */
static fm_err train_step(fm_model *m, fm_adamw *opt, fm_cu *cu, const int32_t *tok, const int32_t *tgt, int B,
                         int T, float *ce) {
  fm_model_zero_grads(m);
  FM_CHECK(fm_model_forward(m, tok, tgt, B, T, ce, NULL));
  FM_CHECK(fm_model_backward(m));
  fm_adamw_hparams h = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, fm_model_clip_factor(m, 1u, 1.0)};
  fm_adamw_step(opt, m, 0, &h);
  return fm_cu_sync(cu, "a training step");
}

/* one model at batch B x T: a line per precision (or why it does not run); the model
 * is made once and trains on through the precisions */
static fm_err bench_case(fm_backend *be, const gpu_case *gc, int B, int T, int steps, const char *only_precs,
                         int profile) {
  static const char *precs[3] = {"fp32", "tf32", "bf16"};
  const int lora = !strcmp(gc->mode, "lora"), N = B * T;
  fm_model *m = NULL;
  fm_adamw opt = {0};
  int32_t *tok = NULL, *tgt = NULL;
  double *t = NULL;
  fm_model_set_default_backend(be);
  fm_err err = fm_model_create(&m, &gc->s, B, T, 1, lora ? lora_only : NULL, NULL);
  fm_model_set_default_backend(NULL);
  if (err) { /* a refusal is a result here, not a failure of the benchmark */
    printf("%-12s %-5s %4dx%-5d %-5s refused: %s\n", gc->name, gc->mode, B, T, "-", fm_error_message());
    fm_error_clear();
    fflush(stdout);
    return FM_OK;
  }
  if (!err) err = fm_model_init(m, 1);
  if (!err) err = fm_adamw_create(&opt, fm_model_class_numel(m, 0));
  if (!err) err = fm_calloc(&tok, (size_t)N, sizeof *tok, "bench tokens");
  if (!err) err = fm_calloc(&tgt, (size_t)N, sizeof *tgt, "bench targets");
  if (!err) err = fm_calloc(&t, (size_t)steps, sizeof *t, "step times");
  if (err) goto done;
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < N; i++) tok[i] = (int32_t)fm_rng_below(&r, (uint64_t)gc->s.vocab);
  for (int i = 0; i < N; i++) tgt[i] = i + 1 < N ? tok[i + 1] : 0;
  fm_cu *cu = fm_cuda_backend_context(be);
  const double fpt = fm_model_flops_per_token(m, T);
  for (int p = 0; p < 3 && !err; p++) {
    if (only_precs && !listed(only_precs, precs[p], NULL)) continue;
    fm_cu_set_precision(cu, (fm_precision)p);
    float ce = 0, first = 0;
    for (int k = -2; k < steps && !err; k++) { /* two warm-up steps */
      double t0 = fm_wtime();
      err = train_step(m, &opt, cu, tok, tgt, B, T, &ce);
      if (err) break;
      if (k == -2) first = ce;
      if (k >= 0) t[k] = fm_wtime() - t0;
    }
    if (err) break;
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    const double med = t[steps / 2];
    printf("%-12s %-5s %4dx%-5d %-5s %10.0f %10.0f %8.1f %9.2f   %.3f -> %.3f\n", gc->name, gc->mode, B, T,
           precs[p], N / med, N / t[0], fpt * N / med * 1e-12, 1e3 * med, first, ce);
    fflush(stdout);
    if (profile) { /* 5 more steps, each part waited for (slower than the line above) */
      fm_nn_profile_reset();
      fm_nn_profile_device(be);
      fm_nn_profile(1);
      double t0 = fm_wtime();
      for (int k = 0; k < 5 && !err; k++) err = train_step(m, &opt, cu, tok, tgt, B, T, &ce);
      const double step = (fm_wtime() - t0) / 5;
      fm_nn_profile(0);
      fm_nn_profile_device(NULL);
      if (err) break;
      printf("  profile of %s %s %dx%d %s: ms per step, each part waited for (mean of 5 steps, %.2f ms each)\n",
             gc->name, gc->mode, B, T, precs[p], 1e3 * step);
      fm_nn_profile_print(5, step);
    }
  }
done:
  free(t);
  free(tok);
  free(tgt);
  fm_adamw_free(&opt);
  fm_model_free(m);
  return err;
}

static fm_err bench_all(fm_backend *be) {
  const fm_model_shape gpt2 = {.vocab = 50257, .context = 1024, .d = 768, .heads = 12, .layers = 12,
                               .experts = 1, .top_k = 1, .expert_type = FM_EXPERT_FULL, .lora_rank = 8,
                               .lora_alpha = 16.0f, .init_std = 0.02f};
  enum { NCASE = 5 };
  gpu_case cases[NCASE] = {{"gpt2-124m", "full", gpt2}, {"gpt2-124m", "lora", gpt2},
                           {"smollm-135m", "full", gpt2}, {"smollm-135m", "lora", gpt2},
                           {"moe-12x768", "full", gpt2}};
  cases[1].s.attn_lora_rank = 8;
  fm_model_shape *sm = &cases[2].s;
  sm->family = FM_FAMILY_LLAMA, sm->vocab = 49152, sm->context = 2048, sm->d = 576, sm->heads = 9;
  sm->kv_heads = 3, sm->layers = 30, sm->ffn = 1536, sm->tied = 1, sm->norm_eps = 1e-5f, sm->rope_theta = 10000;
  cases[3].s = *sm;
  cases[3].s.attn_lora_rank = 8;
  fm_model_shape *moe = &cases[4].s;
  moe->moe_mask = ((uint64_t)1 << 12) - 1, moe->experts = 8, moe->top_k = 2, moe->norm_topk = 1;
  moe->load_balance = 0.01f;
  const char *bt = getenv("FEDMOE_BENCH_BT"), *st = getenv("FEDMOE_BENCH_STEPS");
  const char *only = getenv("FEDMOE_BENCH_ONLY"), *pr = getenv("FEDMOE_BENCH_PRECS");
  const char *pf = getenv("FEDMOE_BENCH_PROFILE");
  const int prof = pf && *pf && strcmp(pf, "0");
  if (only && !*only) only = NULL;
  if (pr && !*pr) pr = NULL;
  for (const char *p = only; p && *p;) { /* every name must pick a case: a typo would time nothing */
    size_t n = strcspn(p, ",");
    char item[64];
    snprintf(item, sizeof item, "%.*s", (int)(n < 63 ? n : 63), p);
    int hit = 0;
    for (int c = 0; c < NCASE; c++) hit |= listed(item, cases[c].name, cases[c].mode);
    if (!hit)
      FM_ERROR(FM_ERR_ARG, "FEDMOE_BENCH_ONLY: '%s' names no case (gpt2-124m, smollm-135m, moe-12x768, "
               "or one with /full or /lora: gpt2-124m/lora, smollm-135m/lora)", item);
    p += n + (p[n] == ',');
  }
  for (const char *p = pr; p && *p;) {
    size_t n = strcspn(p, ",");
    if (!((n == 4 && (!strncmp(p, "fp32", 4) || !strncmp(p, "tf32", 4) || !strncmp(p, "bf16", 4)))))
      FM_ERROR(FM_ERR_ARG, "FEDMOE_BENCH_PRECS: '%.*s' is not fp32, tf32 or bf16", (int)n, p);
    p += n + (p[n] == ',');
  }
  char list[256];
  snprintf(list, sizeof list, "%s", bt && *bt ? bt : "8x128,8x1024");
  const int steps = st && atoi(st) > 0 ? atoi(st) : 5;
  fm_cu *cu = fm_cuda_backend_context(be);
  printf("# fedmoe bench --device cuda: GPU %d; %d timed steps after 2 warm-up (zero grads, forward, backward, "
         "clip 1.0, AdamW, waited for)\n",
         fm_cu_device(cu), steps);
  printf("# %-10s %-5s %-10s %-5s %10s %10s %8s %9s   %s\n", "model", "mode", "batch", "prec", "tok/s med",
         "tok/s best", "TFLOP/s", "step ms", "loss first -> last");
  fflush(stdout);
  for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
    int B = 0, T = 0;
    if (sscanf(item, "%dx%d", &B, &T) != 2 || B < 1 || T < 1 || T > 1024)
      FM_ERROR(FM_ERR_ARG, "FEDMOE_BENCH_BT: '%s' is not BxT with T at most 1024", item);
    for (int c = 0; c < NCASE; c++)
      if (!only || listed(only, cases[c].name, cases[c].mode)) FM_CHECK(bench_case(be, &cases[c], B, T, steps, pr, prof));
  }
  return FM_OK;
}
#endif

fm_err fm_bench_gpu(const fm_cli *cli, int rank) {
  if (strcmp(cli->device, "cuda"))
    FM_ERROR(FM_ERR_ARG, "--device %s: the devices are cpu and cuda", cli->device);
#ifndef FEDMOE_HAVE_CUDA
  (void)rank;
  FM_ERROR(FM_ERR_ARG, "--device cuda, but this fedmoe was built without CUDA (configure it --with-cuda)");
#else
  if (rank != 0) return FM_OK;
  fm_backend *be = NULL;
  FM_CHECK(fm_cuda_backend_open(&be, 0, 0));
  fm_err err = bench_all(be);
  fm_cuda_backend_close(be);
  return err;
#endif
}
