/* test_cuda.c - every CUDA kernel against its CPU twin in src/nn (needs a GPU: make
 * check-cuda). Random inputs at awkward sizes (not multiples of 32), forward and
 * backward, relative L2 error at most 1e-5 in fp32 and 1e-2 in bf16; and each
 * backward run twice must give bitwise the same gradients (no atomics). */
#include "nn.h"

#define FM_TEST_NAME "test_cuda"
#include "cuda_check.h"

static void test_gemm(fm_precision prec, double tol) {
  CU_ASSERT_FATAL(cu != NULL);
  const int M = 67, N = 45, K = 129;
  fm_cu_set_precision(cu, prec);
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      float *A = host_rand((size_t)M * K, 1, 1), *B = host_rand((size_t)K * N, 2, 1),
            *C = host_rand((size_t)M * N, 3, 1);
      int lda = ta ? M : K, ldb = tb ? K : N;
      float *dA = dev_floats(A, (size_t)M * K), *dB = dev_floats(B, (size_t)K * N),
            *dC = dev_floats(C, (size_t)M * N);
      fm_gemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C, N);
      CU_ASSERT(fm_cu_gemm(cu, ta, tb, M, N, K, 0.7f, dA, lda, dB, ldb, 0.3f, dC, N) == FM_OK);
      CLOSE(dC, C, (size_t)M * N, tol);
      fm_cu_free(dA), fm_cu_free(dB), fm_cu_free(dC), free(A), free(B), free(C);
    }
  fm_cu_set_precision(cu, FM_PREC_FP32);
}
static void gemm_fp32(void) { test_gemm(FM_PREC_FP32, 1e-5); }
static void gemm_tf32(void) { test_gemm(FM_PREC_TF32, 1e-2); }
static void gemm_bf16(void) { test_gemm(FM_PREC_BF16, 1e-2); }

static void linear(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 70, C = 48, OC = 100;
  float *x = host_rand((size_t)N * C, 4, 1), *w = host_rand((size_t)C * OC, 5, 0.2f),
        *b = host_rand(OC, 6, 1), *dout = host_rand((size_t)N * OC, 7, 1);
  float *out = calloc((size_t)N * OC, 4), *dx = calloc((size_t)N * C, 4),
        *dw = calloc((size_t)C * OC, 4), *db = calloc(OC, 4);
  float *gx = dev_floats(x, (size_t)N * C), *gw = dev_floats(w, (size_t)C * OC), *gb = dev_floats(b, OC),
        *gd = dev_floats(dout, (size_t)N * OC), *go = dev_floats(NULL, (size_t)N * OC),
        *gdx = dev_floats(NULL, (size_t)N * C), *gdw = dev_floats(NULL, (size_t)C * OC),
        *gdb = dev_floats(NULL, OC), *gdb2 = dev_floats(NULL, OC);
  fm_linear_forward(out, x, w, b, N, C, OC, 0);
  fm_linear_backward(dx, dw, db, dout, x, w, N, C, OC, 0);
  CU_ASSERT(fm_cu_linear_forward(cu, go, gx, gw, gb, N, C, OC, 0) == FM_OK);
  CU_ASSERT(fm_cu_linear_backward(cu, gdx, gdw, gdb, gd, gx, gw, N, C, OC, 0) == FM_OK);
  CU_ASSERT(fm_cu_linear_backward(cu, NULL, NULL, gdb2, gd, gx, gw, N, C, OC, 0) == FM_OK);
  CLOSE(go, out, (size_t)N * OC, 1e-5);
  CLOSE(gdx, dx, (size_t)N * C, 1e-5);
  CLOSE(gdw, dw, (size_t)C * OC, 1e-5);
  CLOSE(gdb, db, OC, 1e-5);
  SAME_BITS(gdb, gdb2, OC);
}

static void layernorm(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 131, C = 77;
  float *x = host_rand((size_t)N * C, 8, 2), *w = host_rand(C, 9, 1), *b = host_rand(C, 10, 1),
        *dout = host_rand((size_t)N * C, 11, 1);
  float *out = calloc((size_t)N * C, 4), *mean = calloc(N, 4), *rstd = calloc(N, 4),
        *dx = calloc((size_t)N * C, 4), *dw = calloc(C, 4), *db = calloc(C, 4);
  float *gx = dev_floats(x, (size_t)N * C), *gw = dev_floats(w, C), *gb = dev_floats(b, C),
        *gd = dev_floats(dout, (size_t)N * C), *go = dev_floats(NULL, (size_t)N * C),
        *gm = dev_floats(NULL, N), *gr = dev_floats(NULL, N), *gdx = dev_floats(NULL, (size_t)N * C),
        *gdw = dev_floats(NULL, C), *gdb = dev_floats(NULL, C), *gdw2 = dev_floats(NULL, C);
  fm_layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5f);
  fm_layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, N, C);
  CU_ASSERT(fm_cu_layernorm_forward(cu, go, gm, gr, gx, gw, gb, N, C, 1e-5f) == FM_OK);
  CU_ASSERT(fm_cu_layernorm_backward(cu, gdx, gdw, gdb, gd, gx, gw, gm, gr, N, C) == FM_OK);
  CU_ASSERT(fm_cu_layernorm_backward(cu, NULL, gdw2, NULL, gd, gx, gw, gm, gr, N, C) == FM_OK);
  CLOSE(go, out, (size_t)N * C, 1e-5);
  CLOSE(gm, mean, N, 1e-5);
  CLOSE(gr, rstd, N, 1e-5);
  CLOSE(gdx, dx, (size_t)N * C, 1e-5);
  CLOSE(gdw, dw, C, 1e-5);
  CLOSE(gdb, db, C, 1e-5);
  SAME_BITS(gdw, gdw2, C);
}

static void gelu(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int R = 93, F = 130;
  const size_t n = (size_t)R * F;
  float *h = host_rand(n, 12, 3), *b = host_rand(F, 13, 1), *dh = host_rand(n, 14, 1);
  float *g = calloc(n, 4), *db = calloc(F, 4);
  float *gh = dev_floats(h, n), *gbb = dev_floats(b, F), *gg = dev_floats(NULL, n),
        *gdh = dev_floats(dh, n), *gdb = dev_floats(NULL, F);
  fm_bias_gelu_forward(g, h, b, R, F);
  CU_ASSERT(fm_cu_bias_gelu_forward(cu, gg, gh, gbb, R, F) == FM_OK);
  CLOSE(gh, h, n, 1e-6);
  CLOSE(gg, g, n, 1e-5);
  fm_gelu_backward_bias(dh, h, db, R, F);
  CU_ASSERT(fm_cu_gelu_backward_bias(cu, gdh, gh, gdb, R, F) == FM_OK);
  CLOSE(gdh, dh, n, 1e-5);
  CLOSE(gdb, db, F, 1e-5);
}

static void crossentropy(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 57, V = 1003;
  float *z = host_rand((size_t)N * V, 15, 4);
  int32_t *tg = malloc(N * sizeof *tg);
  for (int i = 0; i < N; i++) tg[i] = i % 7 == 3 ? -1 : (i * 131) % V;
  float *lse = calloc(N, 4), *dz = calloc((size_t)N * V, 4);
  int nv = 0, gnv = 0;
  double loss = fm_crossentropy_forward(lse, z, tg, N, V, &nv), gloss = 0;
  fm_crossentropy_backward(dz, z, lse, tg, N, V, nv, 1.0f);
  float *gz = dev_floats(z, (size_t)N * V), *glse = dev_floats(NULL, N), *gdz = dev_floats(NULL, (size_t)N * V);
  int32_t *gt = dev_copy(tg, N * sizeof *tg);
  CU_ASSERT(fm_cu_crossentropy_forward(cu, &gloss, &gnv, glse, gz, gt, N, V) == FM_OK);
  CU_ASSERT_EQUAL(gnv, nv);
  FM_ASSERT_CLOSE(gloss, loss, 1e-6, 0);
  CLOSE(glse, lse, N, 1e-6);
  CU_ASSERT(fm_cu_crossentropy_backward(cu, gdz, gz, glse, gt, N, V, gnv, 1.0f) == FM_OK);
  CLOSE(gdz, dz, (size_t)N * V, 1e-5);
}

static void embed(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int B = 4, T = 29, D = 40, V = 50;
  const int N = B * T;
  int32_t *tok = malloc(N * sizeof *tok);
  for (int i = 0; i < N; i++) tok[i] = (i * 7 + i / 5) % 11 * 3; /* repeats, gaps */
  float *wte = host_rand((size_t)V * D, 18, 1), *wpe = host_rand((size_t)T * D, 19, 1),
        *dout = host_rand((size_t)N * D, 20, 1);
  float *out = calloc((size_t)N * D, 4), *dwte = calloc((size_t)V * D, 4), *dwpe = calloc((size_t)T * D, 4);
  fm_embed_forward(out, tok, wte, wpe, B, T, D);
  fm_embed_backward(dwte, dwpe, dout, tok, B, T, D);
  int32_t *gt = dev_copy(tok, N * sizeof *tok);
  float *gwte = dev_floats(wte, (size_t)V * D), *gwpe = dev_floats(wpe, (size_t)T * D),
        *gd = dev_floats(dout, (size_t)N * D), *go = dev_floats(NULL, (size_t)N * D),
        *gdwte = dev_floats(NULL, (size_t)V * D), *gdwpe = dev_floats(NULL, (size_t)T * D),
        *gdwte2 = dev_floats(NULL, (size_t)V * D);
  CU_ASSERT(fm_cu_embed_forward(cu, go, gt, gwte, gwpe, B, T, D) == FM_OK);
  CU_ASSERT(fm_cu_embed_backward(cu, gdwte, gdwpe, gd, gt, B, T, D) == FM_OK);
  CU_ASSERT(fm_cu_embed_backward(cu, gdwte2, NULL, gd, gt, B, T, D) == FM_OK);
  CLOSE(go, out, (size_t)N * D, 1e-6);
  CLOSE(gdwte, dwte, (size_t)V * D, 1e-6);
  CLOSE(gdwpe, dwpe, (size_t)T * D, 1e-6);
  SAME_BITS(gdwte, gdwte2, (size_t)V * D);
}

static void adamw(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const size_t n = 1000;
  float *w = host_rand(n, 21, 1), *g = host_rand(n, 22, 1), *m = calloc(n, 4), *v = calloc(n, 4);
  float *gw = dev_floats(w, n), *gg = dev_floats(g, n), *gm = dev_floats(NULL, n), *gv = dev_floats(NULL, n);
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
  for (long step = 1; step <= 3; step++) {
    const float c1 = 1.0f / (float)(1.0 - pow(b1, (double)step)), c2 = 1.0f / (float)(1.0 - pow(b2, (double)step));
    for (size_t j = 0; j < n; j++) { /* the rule of src/nn/adamw.c, written out */
      float gj = gs * g[j];
      m[j] = b1 * m[j] + (1.0f - b1) * gj;
      v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
      w[j] -= lr * (m[j] * c1 / (sqrtf(v[j] * c2) + eps) + wd * w[j]);
    }
    CU_ASSERT(fm_cu_adamw(cu, gw, gm, gv, gg, n, lr, b1, b2, eps, wd, step, gs) == FM_OK);
  }
  CLOSE(gw, w, n, 1e-6);
  CLOSE(gm, m, n, 1e-6);
  CLOSE(gv, v, n, 1e-6);
}

static void oom_message(void) {
  CU_ASSERT_FATAL(cu != NULL);
  void *p = NULL;
  fm_err e = fm_cu_alloc(cu, &p, (size_t)1 << 50, "a test's impossible buffer");
  CU_ASSERT_EQUAL(e, FM_ERR_MEM);
  CU_ASSERT(strstr(fm_error_message(), "a test's impossible buffer needs") != NULL);
  CU_ASSERT(strstr(fm_error_message(), "MiB are free") != NULL);
  fm_error_clear();
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"gemm fp32, all transposes", gemm_fp32},
                                  {"gemm tf32", gemm_tf32},
                                  {"gemm bf16", gemm_bf16},
                                  {"linear forward/backward", linear},
                                  {"layernorm forward/backward", layernorm},
                                  {"bias+GELU forward/backward", gelu},
                                  {"cross-entropy forward/backward", crossentropy},
                                  {"embedding forward/backward", embed},
                                  {"AdamW", adamw},
                                  {"out-of-memory message", oom_message},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("cuda kernels against the CPU", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
