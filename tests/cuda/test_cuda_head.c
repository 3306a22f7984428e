/* test_cuda_head.c - the fused LM head + cross-entropy of src/nn/cuda/head.c against
 * the CPU's head (fm_gemm to the logits, fm_crossentropy_forward/backward, the two
 * gradient GEMMs, as model_pass.c). Needs a GPU (make check-cuda). Row counts that are
 * not multiples of the chunk (several chunks and a remainder), ignored targets, dW
 * accumulated onto a non-zero gradient and written; loss, lse, dx, dW within 1e-5
 * relative in fp32 and 1e-2 in bf16; two runs bitwise equal; the loss alone matches
 * the loss with gradients. */
#include "nn.h"

#define FM_TEST_NAME "test_cuda_head"
#include "cuda_check.h"

static void check(int N, int D, int V, int chunk, fm_precision prec, double tol) {
  CU_ASSERT_FATAL(cu != NULL);
  char tag[96];
  snprintf(tag, sizeof tag, "[%s N %d D %d V %d chunk %d]", prec == FM_PREC_BF16 ? "bf16" : "fp32",
           N, D, V, chunk);
  float *x = host_rand((size_t)N * D, 31, 1), *W = host_rand((size_t)V * D, 32, 0.5f),
        *dW0 = host_rand((size_t)V * D, 33, 0.01f);
  int32_t *tg = malloc(N * sizeof *tg);
  for (int n = 0; n < N; n++) tg[n] = n % 7 == 3 ? -1 : (n * 37 + 11) % V; /* some ignored */
  /* the CPU: model_pass.c's head */
  float *z = malloc((size_t)N * V * 4), *dz = malloc((size_t)N * V * 4), *lse = malloc(N * 4),
        *dx = malloc((size_t)N * D * 4), *dW = malloc((size_t)V * D * 4);
  memcpy(dW, dW0, (size_t)V * D * 4);
  int nv = 0;
  fm_gemm(0, 1, N, V, D, 1.0f, x, D, W, D, 0.0f, z, V);
  const double loss = fm_crossentropy_forward(lse, z, tg, N, V, &nv);
  fm_crossentropy_backward(dz, z, lse, tg, N, V, nv, 0.75f);
  fm_gemm(1, 0, V, D, N, 1.0f, dz, V, x, D, 1.0f, dW, D);
  fm_gemm(0, 0, N, D, V, 1.0f, dz, V, W, D, 0.0f, dx, D);
  /* the GPU */
  fm_cu_set_precision(cu, prec);
  fm_cu_head_set_chunk(chunk);
  float *gx = dev_copy(x, (size_t)N * D * 4), *gW = dev_copy(W, (size_t)V * D * 4),
        *gdW = dev_copy(dW0, (size_t)V * D * 4), *gdW2 = dev_copy(NULL, (size_t)V * D * 4),
        *gdx = dev_copy(NULL, (size_t)N * D * 4), *gdx2 = dev_copy(NULL, (size_t)N * D * 4),
        *glse = dev_copy(NULL, N * 4);
  int32_t *gt = dev_copy(tg, N * sizeof *tg);
  double gl = 0, gl2 = 0, gl3 = 0;
  int gnv = 0, gnv2 = 0, gnv3 = 0;
  CU_ASSERT(fm_cu_head_crossentropy(cu, &gl, &gnv, glse, gdx, gdW, 1, gx, gW, gt, N, D, V, 0.75f) == FM_OK);
  /* again, dW written (accumulate 0): must be the first run's dW minus dW0, bitwise equal dx */
  CU_ASSERT(fm_cu_head_crossentropy(cu, &gl2, &gnv2, NULL, gdx2, gdW2, 0, gx, gW, gt, N, D, V, 0.75f) == FM_OK);
  CU_ASSERT(fm_cu_head_crossentropy(cu, &gl3, &gnv3, NULL, NULL, NULL, 0, gx, gW, gt, N, D, V, 0.75f) == FM_OK);
  if (fm_cu_sync(cu, "head test") != FM_OK) {
    printf("\n    %s: %s\n", tag, fm_error_message());
    CU_FAIL("a kernel failed");
    fm_error_clear();
  }
  fm_cu_head_set_chunk(0);
  fm_cu_set_precision(cu, FM_PREC_FP32);
  CU_ASSERT_EQUAL(gnv, nv);
  if (!(fabs(gl - loss) <= tol * fabs(loss)))
    printf("\n    %s loss: gpu %.9g cpu %.9g\n", tag, gl, loss);
  CU_ASSERT(fabs(gl - loss) <= tol * fabs(loss));
  CU_ASSERT(gl2 == gl && gl3 == gl && gnv2 == gnv && gnv3 == gnv);
  float *hlse = download(glse, N), *hdx = download(gdx, (size_t)N * D), *hdx2 = download(gdx2, (size_t)N * D),
        *hdW = download(gdW, (size_t)V * D), *hdW2 = download(gdW2, (size_t)V * D);
  CU_ASSERT(close_enough("lse", tag, hlse, lse, N, prec == FM_PREC_BF16 ? 2e-3 : 1e-6));
  CU_ASSERT(close_enough("dx", tag, hdx, dx, (size_t)N * D, tol));
  CU_ASSERT(close_enough("dW (accumulated)", tag, hdW, dW, (size_t)V * D, tol));
  for (size_t i = 0; i < (size_t)V * D; i++) dW[i] -= dW0[i];
  CU_ASSERT(close_enough("dW (written)", tag, hdW2, dW, (size_t)V * D, tol));
  int same = !memcmp(hdx, hdx2, (size_t)N * D * 4);
  if (!same) printf("\n    %s: two runs give different dx\n", tag);
  CU_ASSERT(same);
  fm_cu_free(gx), fm_cu_free(gW), fm_cu_free(gdW), fm_cu_free(gdW2), fm_cu_free(gdx), fm_cu_free(gdx2);
  fm_cu_free(glse), fm_cu_free(gt);
  free(x), free(W), free(dW0), free(tg), free(z), free(dz), free(lse), free(dx), free(dW);
  free(hlse), free(hdx), free(hdx2), free(hdW), free(hdW2);
}

static void fp32(void) {
  check(203, 72, 1001, 64, FM_PREC_FP32, 1e-5); /* four chunks, the last of 11 rows */
  check(50, 40, 3001, 0, FM_PREC_FP32, 1e-5);   /* one chunk */
}
static void bf16(void) {
  check(203, 72, 1001, 64, FM_PREC_BF16, 1e-2);
  check(130, 64, 50257, 48, FM_PREC_BF16, 1e-2); /* GPT-2's vocabulary */
}

static void bad_shape(void) {
  CU_ASSERT_FATAL(cu != NULL);
  double l;
  int nv;
  CU_ASSERT_EQUAL(fm_cu_head_crossentropy(cu, &l, &nv, NULL, NULL, NULL, 0, NULL, NULL, NULL, 0, 8, 10, 1.0f),
                  FM_ERR_ARG);
  CU_ASSERT(strstr(fm_error_message(), "GPU head") != NULL);
  fm_error_clear();
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"fp32 against the CPU head, chunked", fp32},
                                  {"bf16 against the CPU head", bf16},
                                  {"empty input is refused", bad_shape},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("fused LM head + cross-entropy on the GPU", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
