/* bench_cuda.c - training speed of the GPU passes (a benchmark: it prints figures and
 * asserts nothing). A GPT-2-124M-sized model (d 768, 12 layers, 12 heads, vocabulary
 * 50257, tied head), fully fine-tuned with AdamW, at batch B x T for each precision:
 *   bench_cuda [B T [steps]]   (default 8 128 20; also run 8 1024)
 * prints one line per precision: tokens/s of the median step and model TFLOP/s
 * (6 N + 12 L D T per token, fm_model_flops_per_token). bench/torch_cuda.py runs the
 * same model and step in PyTorch on the same GPU. */
#include "model_cuda.h"

#include "fedmoe/rng.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void die(fm_err e) {
  char buf[2048];
  fm_error_format(buf, sizeof buf);
  fprintf(stderr, "bench_cuda: %s\n", buf);
  exit(e ? 1 : 0);
}
#define TRY(call) do { fm_err e_ = (call); if (e_) die(e_); } while (0)

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const int B = argc > 2 ? atoi(argv[1]) : 8, T = argc > 2 ? atoi(argv[2]) : 128;
  const int steps = argc > 3 ? atoi(argv[3]) : 20;
  fm_model_shape s = {.vocab = 50257, .context = 1024, .d = 768, .heads = 12, .layers = 12,
                      .moe_mask = 0, .experts = 1, .top_k = 1, .expert_type = FM_EXPERT_FULL,
                      .lora_rank = 8, .lora_alpha = 16.0f, .init_std = 0.02f};
  fm_model *m = NULL;
  TRY(fm_model_create(&m, &s, 1, 1, 1, NULL, NULL)); /* host copy: parameters only */
  TRY(fm_model_init(m, 1));
  int32_t *tok = malloc((size_t)B * T * sizeof *tok), *tgt = malloc((size_t)B * T * sizeof *tgt);
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < B * T; i++) tok[i] = (int32_t)fm_rng_below(&r, 50257);
  for (int i = 0; i < B * T; i++) tgt[i] = i + 1 < B * T ? tok[i + 1] : 0;
  const char *names[] = {"fp32", "tf32", "bf16"};
  const double flops = fm_model_flops_per_token(m, T);
  printf("bench_cuda: GPT-2-124M-sized, full fine-tuning, batch %d x %d, %d steps, %.0f MFLOP/token\n", B,
         T, steps, flops / 1e6);
  for (int p = 0; p < 3; p++) {
    fm_cu *cu = NULL;
    TRY(fm_cu_open(&cu, 0, (fm_precision)p));
    fm_cu_model *g = NULL;
    TRY(fm_cu_model_create(&g, cu, m, B, T));
    TRY(fm_cu_model_upload(g));
    fm_adamw_hparams h = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_scale = 1.0f};
    double *t = malloc((size_t)steps * sizeof *t);
    float ce = 0, first = 0;
    for (int k = -3; k < steps; k++) { /* three warm-up steps */
      double t0 = now();
      TRY(fm_cu_model_zero_grads(g));
      TRY(fm_cu_model_forward(g, tok, tgt, B, T, &ce));
      TRY(fm_cu_model_backward(g));
      TRY(fm_cu_model_adamw(g, 0, &h));
      TRY(fm_cu_sync(cu, "a training step"));
      if (k == -3) first = ce;
      if (k >= 0) t[k] = now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp);
    const double med = t[steps / 2], tps = B * T / med;
    printf("  %-5s %10.0f tokens/s  (best %.0f)  %6.1f TFLOP/s  step %.2f ms  loss %.3f -> %.3f  GPU memory %.0f MiB\n",
           names[p], tps, B * T / t[0], tps * flops / 1e12, med * 1e3, first, ce,
           fm_cu_model_bytes(g) / 1048576.0);
    fm_cu_model_profile_print(steps + 3); /* FEDMOE_CUDA_PROFILE=1 */
    free(t);
    fm_cu_model_free(g);
    fm_cu_close(cu);
  }
  fm_model_free(m);
  MPI_Finalize();
  return 0;
}
