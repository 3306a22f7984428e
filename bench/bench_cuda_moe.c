/* bench_cuda_moe.c - speed of one MoE layer on the GPU (fm_cu_moe; a benchmark: it
 * prints figures and asserts nothing). A Mixtral-style layer (SwiGLU experts, top-k
 * with renormalised weights) of width D and expert width F over B x T tokens, forward
 * and backward with every gradient, for each precision:
 *   bench_cuda_moe [B T [steps [D F E k]]]   (default 8 128 20 768 2048 8 2: the
 * 12-layer Mixtral-style MoE of bench/torch_cuda.py, one layer of it)
 * prints the median forward and backward times and the layer's tokens/s (forward +
 * backward), and the same for the SwiGLU FFN of one expert over all tokens (the dense
 * layer of the same width, for scale). */
#include "cuda_nn.h"

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
  fprintf(stderr, "bench_cuda_moe: %s\n", buf);
  exit(e ? 1 : 0);
}
#define TRY(call) do { fm_err e_ = (call); if (e_) die(e_); } while (0)

static float *dev_rand(fm_cu *cu, size_t n, float scale, unsigned *seed) {
  float *h = malloc(n * sizeof *h), *d = NULL;
  for (size_t i = 0; i < n; i++) {
    *seed = *seed * 1664525u + 1013904223u;
    h[i] = scale * ((float)(*seed >> 8) / 16777216.0f * 2.0f - 1.0f);
  }
  TRY(fm_cu_alloc(cu, &d, n * sizeof *d, "bench tensor"));
  TRY(fm_cu_upload(cu, d, h, n * sizeof *d));
  TRY(fm_cu_sync(cu, "bench upload"));
  free(h);
  return d;
}

static float *dev_zeros(fm_cu *cu, size_t n) {
  float *d = NULL;
  TRY(fm_cu_alloc(cu, &d, n * sizeof *d, "bench gradient"));
  return d;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  const int B = argc > 2 ? atoi(argv[1]) : 8, T = argc > 2 ? atoi(argv[2]) : 128;
  const int steps = argc > 3 ? atoi(argv[3]) : 20;
  const int D = argc > 7 ? atoi(argv[4]) : 768, F = argc > 7 ? atoi(argv[5]) : 2048;
  const int E = argc > 7 ? atoi(argv[6]) : 8, k = argc > 7 ? atoi(argv[7]) : 2;
  const int N = B * T;
  const fm_moe_dims dm = {.D = D, .F = F, .E = E, .k = k, .type = FM_EXPERT_FULL, .swiglu = 1, .renorm = 1};
  printf("bench_cuda_moe: one MoE layer, D %d F %d, %d SwiGLU experts, top-%d, batch %d x %d, %d steps\n", D, F,
         E, k, B, T, steps);
  const char *names[] = {"fp32", "tf32", "bf16"};
  for (int prec = 0; prec < 3; prec++) {
    fm_cu *cu = NULL;
    TRY(fm_cu_open(&cu, 0, (fm_precision)prec));
    unsigned seed = 1;
    fm_moe_params p = {0};
    p.router = (fm_param){dev_rand(cu, (size_t)E * D, 0.05f, &seed), dev_zeros(cu, (size_t)E * D)};
    for (int e = 0; e < E; e++) {
      p.efc_w[e] = (fm_param){dev_rand(cu, (size_t)F * D, 0.03f, &seed), dev_zeros(cu, (size_t)F * D)};
      p.eup_w[e] = (fm_param){dev_rand(cu, (size_t)F * D, 0.03f, &seed), dev_zeros(cu, (size_t)F * D)};
      p.epj_w[e] = (fm_param){dev_rand(cu, (size_t)D * F, 0.03f, &seed), dev_zeros(cu, (size_t)D * F)};
    }
    float *x = dev_rand(cu, (size_t)N * D, 1.0f, &seed), *dout = dev_rand(cu, (size_t)N * D, 1.0f, &seed);
    float *out = dev_zeros(cu, (size_t)N * D), *dx = dev_zeros(cu, (size_t)N * D);
    fm_cu_moe L;
    TRY(fm_cu_moe_alloc(cu, &L, N, &dm));
    double *tf = malloc(steps * sizeof *tf), *tb = malloc(steps * sizeof *tb), lb = 0;
    for (int it = -2; it < steps; it++) { /* two warm-up steps */
      double t0 = now();
      TRY(fm_cu_moe_forward(cu, &L, &p, &lb, out, x, N, 0.01f));
      TRY(fm_cu_sync(cu, "MoE forward"));
      double t1 = now();
      TRY(fm_cu_moe_backward(cu, &L, &p, dx, dout, x, 0.01f, 1.0f));
      TRY(fm_cu_sync(cu, "MoE backward"));
      double t2 = now();
      if (it >= 0) tf[it] = t1 - t0, tb[it] = t2 - t1;
    }
    qsort(tf, steps, sizeof *tf, cmp);
    qsort(tb, steps, sizeof *tb, cmp);
    const double f = tf[steps / 2], b = tb[steps / 2];
    /* the dense SwiGLU FFN of one expert over all N tokens, for scale */
    float *gu = dev_zeros(cu, (size_t)N * 2 * F), *a = dev_zeros(cu, (size_t)N * F), *da = dev_zeros(cu, (size_t)N * F),
          *dgu = dev_zeros(cu, (size_t)N * 2 * F);
    for (int it = -2; it < steps; it++) {
      double t0 = now();
      TRY(fm_cu_swiglu_ffn_forward(cu, out, gu, a, x, p.efc_w[0].w, p.eup_w[0].w, p.epj_w[0].w, N, D, F, 0));
      TRY(fm_cu_swiglu_ffn_backward(cu, dx, p.efc_w[0].g, p.eup_w[0].g, p.epj_w[0].g, da, dgu, dout, x, gu, a,
                                    p.efc_w[0].w, p.eup_w[0].w, p.epj_w[0].w, N, D, F, 0));
      TRY(fm_cu_sync(cu, "SwiGLU FFN"));
      if (it >= 0) tf[it] = now() - t0;
    }
    qsort(tf, steps, sizeof *tf, cmp);
    printf("%s: MoE layer forward %.3f ms, backward %.3f ms, %.0f tokens/s; dense SwiGLU FFN (one expert, all "
           "tokens) %.3f ms, %.0f tokens/s\n",
           names[prec], 1e3 * f, 1e3 * b, N / (f + b), 1e3 * tf[steps / 2], N / tf[steps / 2]);
    fflush(stdout);
    fm_cu_moe_free(&L);
    fm_cu_close(cu); /* the bench's tensors go with the process */
  }
  MPI_Finalize();
  return 0;
}
