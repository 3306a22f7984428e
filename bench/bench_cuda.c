/* bench_cuda.c - training speed of the model on the CUDA backend (a benchmark: it
 * prints figures and asserts nothing). A GPT-2-124M-sized model (d 768, 12 layers, 12
 * heads, vocabulary 50257, tied head), fully fine-tuned with AdamW, at batch B x T for
 * each precision, a step being a client's (zero, forward, backward, AdamW):
 *   bench_cuda [B T [steps]]   (default 8 128 20; also run 8 1024)
 * prints one line per precision: tokens/s of the median step and model TFLOP/s
 * (6 N + 12 L D T per token, fm_model_flops_per_token). bench/torch_cuda.py runs the
 * same model and step in PyTorch on the same GPU. */
#include "backend_cuda.h"
#include "cuda_nn.h"

#include "fedmoe/model.h"

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
  int32_t *tok = malloc((size_t)B * T * sizeof *tok), *tgt = malloc((size_t)B * T * sizeof *tgt);
  fm_rng r;
  fm_rng_init(&r, 1, 0, 0, FM_RNG_TEST);
  for (int i = 0; i < B * T; i++) tok[i] = (int32_t)fm_rng_below(&r, 50257);
  for (int i = 0; i < B * T; i++) tgt[i] = i + 1 < B * T ? tok[i + 1] : 0;
  const char *names[] = {"fp32", "tf32", "bf16"};
  printf("bench_cuda: GPT-2-124M-sized, full fine-tuning, batch %d x %d, %d steps\n", B, T, steps);
  for (int p = 0; p < 3; p++) {
    fm_backend *gpu = NULL;
    TRY(fm_cuda_backend_open(&gpu, 0, p));
    fm_model_set_default_backend(gpu);
    fm_model *m = NULL;
    TRY(fm_model_create(&m, &s, B, T, 1, NULL, NULL));
    fm_model_set_default_backend(NULL);
    TRY(fm_model_init(m, 1));
    fm_adamw opt;
    TRY(fm_adamw_create(&opt, fm_model_class_numel(m, 0)));
    const double flops = fm_model_flops_per_token(m, T);
    fm_adamw_hparams h = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .grad_scale = 1.0f};
    double *t = malloc((size_t)steps * sizeof *t);
    float ce = 0, first = 0;
    for (int k = -3; k < steps; k++) { /* three warm-up steps */
      double t0 = now();
      fm_model_zero_grads(m);
      TRY(fm_model_forward(m, tok, tgt, B, T, &ce, NULL));
      TRY(fm_model_backward(m));
      fm_adamw_step(&opt, m, 0, &h);
      TRY(fm_cu_sync(fm_cuda_backend_context(gpu), "a training step"));
      if (k == -3) first = ce;
      if (k >= 0) t[k] = now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, cmp);
    const double med = t[steps / 2], tps = B * T / med;
    printf("  %-5s %10.0f tokens/s  (best %.0f)  %6.1f TFLOP/s  step %.2f ms  loss %.3f -> %.3f\n",
           names[p], tps, B * T / t[0], tps * flops / 1e12, med * 1e3, first, ce);
    free(t);
    fm_adamw_free(&opt);
    fm_model_free(m);
    fm_cuda_backend_close(gpu);
  }
  free(tok);
  free(tgt);
  MPI_Finalize();
  return 0;
}
