/* test_cuda_attention.c - the fused causal attention of src/nn/cuda against the CPU's
 * fm_attention_forward/backward (needs a GPU: make check-cuda). Sequence lengths that
 * are not multiples of the kernels' tiles (64 rows, 32 for fp32 head size 128), B > 1,
 * multi-head and grouped-query heads, head sizes 8..128; relative L2 error at most
 * 1e-5 in fp32 and 1e-2 in tf32 and bf16 for the output, the log-sum-exp and the gradient;
 * each backward run twice gives bitwise the same gradient; the GEMM path (multi-head)
 * against the CPU too; a central finite difference
 * of <out, dout> along a random direction agrees with the GPU gradient. */
#include "nn.h"

#define FM_TEST_NAME "test_cuda_attention"
#include "cuda_check.h"

/* the log-sum-exp of each query row's scaled scores, in double */
static void lse_ref(float *lse, const float *qkv, int B, int T, int H, int KVH, int hs) {
  const int W = (H + 2 * KVH) * hs, group = H / KVH;
  const double scale = 1.0 / sqrt((double)hs);
  double *s = malloc((size_t)T * sizeof *s);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < T; i++) {
        const float *q = qkv + ((size_t)b * T + i) * W + (size_t)h * hs;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j <= i; j++) {
          const float *k = qkv + ((size_t)b * T + j) * W + (size_t)(H + h / group) * hs;
          double d = 0;
          for (int c = 0; c < hs; c++) d += (double)q[c] * k[c];
          s[j] = d * scale;
          if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j <= i; j++) sum += exp(s[j] - mx);
        lse[((size_t)b * H + h) * T + i] = (float)(mx + log(sum));
      }
  free(s);
}

typedef struct {
  int B, T, H, KVH, hs;
} shape;

/* path 1: the fused kernels (att: lse, then the output); 2: the GEMM path (att: the
 * probabilities, compared with the CPU's lower triangle) */
static void check_shape_on(shape sh, fm_precision prec, double tol, int path) {
  CU_ASSERT_FATAL(cu != NULL);
  const int B = sh.B, T = sh.T, H = sh.H, KVH = sh.KVH, hs = sh.hs;
  const int W = (H + 2 * KVH) * hs;
  char tag[128];
  snprintf(tag, sizeof tag, "[%s %s B %d T %d H %d KVH %d hs %d]", path == 2 ? "gemm" : "fused",
           prec == FM_PREC_BF16 ? "bf16" : prec == FM_PREC_TF32 ? "tf32" : "fp32", B, T, H, KVH, hs);
  const size_t nq = (size_t)B * T * W, no = (size_t)B * T * H * hs, nl = (size_t)B * H * T;
  const size_t na = fm_cu_attention_saved(B, T, H, hs);
  float *qkv = host_rand(nq, 100 + T, 1.5f), *dout = host_rand(no, 200 + T, 1);
  float *out = calloc(no, 4), *att = calloc((size_t)B * H * T * T, 4), *dqkv = calloc(nq, 4);
  float *scr = calloc(fm_attention_scratch(T), 4), *lse = malloc(nl * 4);
  fm_attention_forward(out, att, qkv, B, T, H, KVH, hs);
  fm_attention_backward(dqkv, scr, dout, qkv, att, B, T, H, KVH, hs);
  lse_ref(lse, qkv, B, T, H, KVH, hs);
  fm_cu_set_precision(cu, prec);
  fm_cu_attention_set_path(path);
  float *gq = dev_floats(qkv, nq), *gd = dev_floats(dout, no), *go = dev_floats(NULL, no),
        *ga = dev_floats(NULL, na), *gdq = dev_floats(NULL, nq), *gdq2 = dev_floats(NULL, nq);
  CU_ASSERT(fm_cu_attention_forward(cu, go, ga, gq, B, T, H, KVH, hs) == FM_OK);
  CU_ASSERT(fm_cu_attention_backward(cu, gdq, NULL, gd, gq, ga, B, T, H, KVH, hs) == FM_OK);
  CU_ASSERT(fm_cu_attention_backward(cu, gdq2, NULL, gd, gq, ga, B, T, H, KVH, hs) == FM_OK);
  if (fm_cu_sync(cu, "attention test") != FM_OK) {
    printf("\n    %s: %s\n", tag, fm_error_message());
    CU_FAIL("a kernel failed");
    fm_error_clear();
  }
  float *ho = download(go, no), *ha = download(ga, na), *hd = download(gdq, nq),
        *hd2 = download(gdq2, nq);
  CU_ASSERT(close_enough("output", tag, ho, out, no, tol));
  CU_ASSERT(close_enough("dqkv", tag, hd, dqkv, nq, tol));
  if (path == 2) { /* the probabilities, lower triangle (the CPU leaves the rest unwritten) */
    double worst = 0;
    for (size_t r = 0; r < nl; r++)
      for (int j = 0; j <= (int)(r % T); j++) {
        double e = fabs((double)ha[r * T + j] - att[r * T + j]);
        if (e > worst) worst = e;
      }
    if (!(worst <= tol)) printf("\n    %s: probabilities off by %.3g\n", tag, worst);
    CU_ASSERT(worst <= tol);
  } else {
    CU_ASSERT(close_enough("log-sum-exp", tag, ha, lse, nl, tol));
    if (memcmp(ha + nl, ho, no * 4)) printf("\n    %s: the saved output is not the output\n", tag);
    CU_ASSERT(!memcmp(ha + nl, ho, no * 4));
  }
  int same = !memcmp(hd, hd2, nq * 4);
  if (!same) printf("\n    %s: two backward runs differ\n", tag);
  CU_ASSERT(same);
  fm_cu_set_precision(cu, FM_PREC_FP32);
  fm_cu_attention_set_path(0);
  fm_cu_free(gq), fm_cu_free(gd), fm_cu_free(go), fm_cu_free(ga), fm_cu_free(gdq), fm_cu_free(gdq2);
  free(qkv), free(dout), free(out), free(att), free(dqkv), free(scr), free(lse);
  free(ho), free(ha), free(hd), free(hd2);
}

static void check_shape(shape sh, fm_precision prec, double tol) { check_shape_on(sh, prec, tol, 1); }

/* awkward lengths: below one tile, one past a tile, several tiles and a remainder */
static const shape shapes[] = {
    {3, 37, 4, 4, 12},   /* MHA, a small head padded to 32 */
    {2, 131, 6, 2, 64},  /* GQA, three key tiles, GPT-2's head size */
    {2, 77, 4, 1, 32},   /* multi-query */
    {1, 70, 4, 2, 128},  /* Llama's head size; fp32 tiles of 32 rows */
    {2, 200, 3, 3, 64},  /* MHA over four tiles */
    {1, 1, 2, 1, 8},     /* one position */
};

static void fp32(void) {
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) check_shape(shapes[k], FM_PREC_FP32, 1e-5);
}
static void tf32(void) {
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) check_shape(shapes[k], FM_PREC_TF32, 1e-2);
}
static void bf16(void) { /* the mma.sync kernels */
  for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) check_shape(shapes[k], FM_PREC_BF16, 1e-2);
}

/* the GEMM path on the multi-head shapes (it takes KVH = H only) */
static void gemm_path(void) {
  const fm_precision precs[3] = {FM_PREC_FP32, FM_PREC_TF32, FM_PREC_BF16};
  const double tols[3] = {1e-5, 1e-2, 1e-2};
  for (int p = 0; p < 3; p++)
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
      if (shapes[k].KVH == shapes[k].H) check_shape_on(shapes[k], precs[p], tols[p], 2);
}

/* <out, u> along qkv + e v: (f(+e) - f(-e)) / 2e against <dqkv, v>, fp32 on the GPU */
static double objective(const float *hq, const float *hv, float e, const float *gu, float *gq,
                        float *go, float *ga, shape sh, size_t nq, size_t no) {
  float *x = malloc(nq * 4), *o;
  for (size_t i = 0; i < nq; i++) x[i] = hq[i] + e * hv[i];
  CU_ASSERT_FATAL(fm_cu_upload(cu, gq, x, nq * 4) == FM_OK);
  CU_ASSERT(fm_cu_attention_forward(cu, go, ga, gq, sh.B, sh.T, sh.H, sh.KVH, sh.hs) == FM_OK);
  o = download(go, no);
  float *u = download(gu, no);
  double s = 0;
  for (size_t i = 0; i < no; i++) s += (double)o[i] * u[i];
  free(x), free(o), free(u);
  return s;
}

static void finite_difference(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const shape sh = {2, 69, 4, 2, 32}; /* grouped heads: the fused kernels */
  const int W = (sh.H + 2 * sh.KVH) * sh.hs;
  const size_t nq = (size_t)sh.B * sh.T * W, no = (size_t)sh.B * sh.T * sh.H * sh.hs;
  float *hq = host_rand(nq, 7, 1), *hv = host_rand(nq, 8, 1), *hu = host_rand(no, 9, 1);
  float *gq = dev_floats(hq, nq), *gu = dev_floats(hu, no), *go = dev_floats(NULL, no),
        *ga = dev_floats(NULL, fm_cu_attention_saved(sh.B, sh.T, sh.H, sh.hs)),
        *gdq = dev_floats(NULL, nq);
  CU_ASSERT(fm_cu_attention_forward(cu, go, ga, gq, sh.B, sh.T, sh.H, sh.KVH, sh.hs) == FM_OK);
  CU_ASSERT(fm_cu_attention_backward(cu, gdq, NULL, gu, gq, ga, sh.B, sh.T, sh.H, sh.KVH, sh.hs) == FM_OK);
  float *hd = download(gdq, nq);
  double analytic = 0;
  for (size_t i = 0; i < nq; i++) analytic += (double)hd[i] * hv[i];
  const float e = 3e-3f;
  double numeric = (objective(hq, hv, e, gu, gq, go, ga, sh, nq, no) -
                    objective(hq, hv, -e, gu, gq, go, ga, sh, nq, no)) / (2.0 * e);
  double rel = fabs(numeric - analytic) / fmax(fabs(analytic), 1e-12);
  if (!(rel <= 1e-3))
    printf("\n    finite difference %.8g, gradient %.8g: relative %.3g\n", numeric, analytic, rel);
  CU_ASSERT(rel <= 1e-3);
  fm_cu_free(gq), fm_cu_free(gu), fm_cu_free(go), fm_cu_free(ga), fm_cu_free(gdq);
  free(hq), free(hv), free(hu), free(hd);
}

static void bad_head_size(void) {
  CU_ASSERT_FATAL(cu != NULL);
  CU_ASSERT_EQUAL(fm_cu_attention_forward(cu, NULL, NULL, NULL, 1, 4, 2, 1, 160), FM_ERR_ARG);
  CU_ASSERT(strstr(fm_error_message(), "head size 160") != NULL);
  fm_error_clear();
  CU_ASSERT_EQUAL(fm_cu_attention_forward(cu, NULL, NULL, NULL, 1, 4, 6, 4, 64), FM_ERR_ARG);
  CU_ASSERT(strstr(fm_error_message(), "6 query heads") != NULL);
  fm_error_clear();
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"fp32 against the CPU, MHA/GQA, awkward T", fp32},
                                  {"tf32 tensor cores against the CPU", tf32},
                                  {"bf16 tensor cores (mma.sync) against the CPU", bf16},
                                  {"the GEMM path against the CPU", gemm_path},
                                  {"finite-difference gradient", finite_difference},
                                  {"unsupported shapes are refused", bad_head_size},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("fused causal attention on the GPU", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
