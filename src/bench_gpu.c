/* bench_gpu.c - `fedmoe bench --device cuda`: training speed of the GPU reference
 * models on the CUDA backend (a benchmark: figures, no assertion).
 *
 *   gpt2-124m   d 768, 12 layers, 12 heads, vocabulary 50257, context 1024, tied head
 *               full: every tensor trained;  lora: rank-8 adapters on c_attn and
 *               c_proj (alpha 16) trained, the base frozen
 *   smollm-135m the llama family (d 576, 30 layers, 9 heads, 3 key/value heads)
 *   moe-12x768  gpt2 with 8 full experts, top-2, on every block
 * at batch 8 x 128 and 8 x 1024 in fp32, tf32 and bf16 (one model per batch, trained on
 * through the three precisions, each line printed as it is done). A step is a client's (zero the
 * gradients, forward, backward, clip the norm to 1, AdamW), waited for on the GPU; the
 * line gives tokens/s of the median and the best of the timed steps and the model's
 * TFLOP/s (fm_model_flops_per_token). A model the backend does not run prints the
 * refusal instead. bench/torch_cuda.py and bench/torch_bench.py time PyTorch on the
 * same shapes. */
#include "config.h"

#include "cli.h"

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

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* one model at batch B x T: a line per precision (or why it does not run); the model
 * is made once and trains on through the precisions */
static fm_err bench_case(fm_backend *be, const gpu_case *gc, int B, int T, int steps) {
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
    fm_cu_set_precision(cu, (fm_precision)p);
    float ce = 0, first = 0;
    for (int k = -2; k < steps && !err; k++) { /* two warm-up steps */
      double t0 = fm_wtime();
      fm_model_zero_grads(m);
      err = fm_model_forward(m, tok, tgt, B, T, &ce, NULL);
      if (!err) err = fm_model_backward(m);
      if (err) break;
      fm_adamw_hparams h = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, fm_model_clip_factor(m, 1u, 1.0)};
      fm_adamw_step(&opt, m, 0, &h);
      err = fm_cu_sync(cu, "a training step");
      if (k == -2) first = ce;
      if (k >= 0) t[k] = fm_wtime() - t0;
    }
    if (err) break;
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    const double med = t[steps / 2];
    printf("%-12s %-5s %4dx%-5d %-5s %10.0f %10.0f %8.1f %9.2f   %.3f -> %.3f\n", gc->name, gc->mode, B, T,
           precs[p], N / med, N / t[0], fpt * N / med * 1e-12, 1e3 * med, first, ce);
    fflush(stdout);
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
  gpu_case cases[4] = {{"gpt2-124m", "full", gpt2}, {"gpt2-124m", "lora", gpt2}, {"smollm-135m", "full", gpt2},
                       {"moe-12x768", "full", gpt2}};
  cases[1].s.attn_lora_rank = 8;
  fm_model_shape *sm = &cases[2].s;
  sm->family = FM_FAMILY_LLAMA, sm->vocab = 49152, sm->context = 2048, sm->d = 576, sm->heads = 9;
  sm->kv_heads = 3, sm->layers = 30, sm->ffn = 1536, sm->tied = 1, sm->norm_eps = 1e-5f, sm->rope_theta = 10000;
  fm_model_shape *moe = &cases[3].s;
  moe->moe_mask = ((uint64_t)1 << 12) - 1, moe->experts = 8, moe->top_k = 2, moe->norm_topk = 1;
  moe->load_balance = 0.01f;
  const char *bt = getenv("FEDMOE_BENCH_BT"), *st = getenv("FEDMOE_BENCH_STEPS");
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
    for (int c = 0; c < 4; c++) FM_CHECK(bench_case(be, &cases[c], B, T, steps));
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
