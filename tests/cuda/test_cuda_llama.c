/* test_cuda_llama.c - the llama family's kernels and LoRA on the GPU against their CPU
 * twins in src/nn (needs a GPU: make check-cuda): dense (nn.Linear layout, row
 * strides), RMSNorm (strided rows, the q/k-norm and per-head uses, in place), RoPE,
 * SwiGLU and its FFN, the shared expert, LoRA in both layouts (and grouped, for client
 * slots), the router (masks, ties, keff < k, with and without renormalisation) and
 * the load balance. Random
 * inputs at awkward sizes; relative L2 error at most 1e-5 in fp32; each backward run
 * twice gives bitwise the same results (no atomics). */
#include "nn.h"

#include "cuda_check.h"

#define TOL 1e-5

static void gelu_pair(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const size_t n = 4099;
  float *x = host_rand(n, 180, 4), *d = host_rand(n, 181, 1), *y = calloc(n, 4), *dx = calloc(n, 4);
  float *gx = dev_floats(x, n), *gd = dev_floats(d, n), *gy = dev_floats(NULL, n);
  fm_gelu_forward(y, x, n);
  fm_gelu_backward(dx, x, d, n);
  CU_ASSERT(fm_cu_gelu_forward(cu, gy, gx, n) == FM_OK);
  CLOSE(gy, y, n, TOL);
  CU_ASSERT(fm_cu_gelu_backward(cu, gd, gx, gd, n) == FM_OK); /* in place, as the MoE layer runs it */
  CLOSE(gd, dx, n, TOL);
}

static void dense(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 37, C = 45, OC = 70, ld = OC + 3;
  float *x = host_rand((size_t)N * C, 1, 1), *w = host_rand((size_t)OC * C, 2, 0.2f),
        *b = host_rand(OC, 3, 1), *dout = host_rand((size_t)N * ld, 4, 1),
        *out = host_rand((size_t)N * ld, 5, 1), *dx = host_rand((size_t)N * C, 6, 1),
        *dw = host_rand((size_t)OC * C, 7, 1), *db = host_rand(OC, 8, 1);
  float *gx = dev_floats(x, (size_t)N * C), *gw = dev_floats(w, (size_t)OC * C), *gb = dev_floats(b, OC),
        *gd = dev_floats(dout, (size_t)N * ld), *go = dev_floats(out, (size_t)N * ld),
        *gdx = dev_floats(dx, (size_t)N * C), *gdw = dev_floats(dw, (size_t)OC * C),
        *gdb = dev_floats(db, OC);
  /* with a bias (written), then without (accumulated): the gaps of the rows stay */
  fm_dense_forward(out, ld, x, w, b, N, C, OC, 0);
  fm_dense_forward(out, ld, x, w, NULL, N, C, OC, 1);
  CU_ASSERT(fm_cu_dense_forward(cu, go, ld, gx, gw, gb, N, C, OC, 0) == FM_OK);
  CU_ASSERT(fm_cu_dense_forward(cu, go, ld, gx, gw, NULL, N, C, OC, 1) == FM_OK);
  CLOSE(go, out, (size_t)N * ld, TOL);
  fm_dense_backward(dx, dw, db, dout, ld, x, w, N, C, OC, 1);
  CU_ASSERT(fm_cu_dense_backward(cu, gdx, gdw, gdb, gd, ld, gx, gw, N, C, OC, 1) == FM_OK);
  CLOSE(gdx, dx, (size_t)N * C, TOL);
  CLOSE(gdw, dw, (size_t)OC * C, TOL);
  CLOSE(gdb, db, OC, TOL);
  /* written input gradient; twice, bitwise */
  fm_dense_backward(dx, NULL, NULL, dout, ld, x, w, N, C, OC, 0);
  float *r1[3], *r2[3];
  for (int run = 0; run < 2; run++) {
    float **r = run ? r2 : r1;
    r[0] = dev_floats(NULL, (size_t)N * C), r[1] = dev_floats(NULL, (size_t)OC * C), r[2] = dev_floats(NULL, OC);
    CU_ASSERT(fm_cu_dense_backward(cu, r[0], r[1], r[2], gd, ld, gx, gw, N, C, OC, 0) == FM_OK);
  }
  CLOSE(r1[0], dx, (size_t)N * C, TOL);
  SAME_BITS(r1[0], r2[0], (size_t)N * C);
  SAME_BITS(r1[1], r2[1], (size_t)OC * C);
  SAME_BITS(r1[2], r2[2], OC);
}

/* one RMSNorm case: N rows of C values at stride ld */
static void rms_case(int N, int C, int ld, unsigned seed) {
  const size_t n = (size_t)N * ld;
  float *x = host_rand(n, seed, 2), *w = host_rand(C, seed + 1, 1), *dout = host_rand(n, seed + 2, 1),
        *out = host_rand(n, seed + 3, 1), *rstd = calloc(N, 4), *dx = host_rand(n, seed + 4, 1),
        *dw = host_rand(C, seed + 5, 1);
  float *gx = dev_floats(x, n), *gw = dev_floats(w, C), *gd = dev_floats(dout, n), *go = dev_floats(out, n),
        *gr = dev_floats(NULL, N), *gdx = dev_floats(dx, n), *gdw = dev_floats(dw, C);
  fm_rmsnorm_forward(out, rstd, x, w, N, C, ld, 1e-6f);
  CU_ASSERT(fm_cu_rmsnorm_forward(cu, go, gr, gx, gw, N, C, ld, 1e-6f) == FM_OK);
  CLOSE(go, out, n, TOL);
  CLOSE(gr, rstd, N, TOL);
  fm_rmsnorm_backward(dx, dw, dout, x, w, rstd, N, C, ld, 1);
  CU_ASSERT(fm_cu_rmsnorm_backward(cu, gdx, gdw, gd, gx, gw, gr, N, C, ld, 1) == FM_OK);
  CLOSE(gdx, dx, n, TOL);
  CLOSE(gdw, dw, C, TOL);
  /* in place (dinp = dout, written), twice: bitwise the same */
  float *din = host_copy(dout, n);
  fm_rmsnorm_backward(din, NULL, din, x, w, rstd, N, C, ld, 0);
  float *g1 = dev_floats(dout, n), *g2 = dev_floats(dout, n), *w1 = dev_floats(NULL, C), *w2 = dev_floats(NULL, C);
  CU_ASSERT(fm_cu_rmsnorm_backward(cu, g1, w1, g1, gx, gw, gr, N, C, ld, 0) == FM_OK);
  CU_ASSERT(fm_cu_rmsnorm_backward(cu, g2, w2, g2, gx, gw, gr, N, C, ld, 0) == FM_OK);
  CLOSE(g1, din, n, TOL);
  SAME_BITS(g1, g2, n);
  SAME_BITS(w1, w2, C);
  /* the in-place dw is that of the original dout */
  float *dw0 = calloc(C, 4);
  fm_rmsnorm_backward(NULL, dw0, dout, x, w, rstd, N, C, ld, 0);
  CLOSE(w1, dw0, C, TOL);
}

static void rmsnorm(void) {
  CU_ASSERT_FATAL(cu != NULL);
  rms_case(53, 77, 77, 10);       /* the block norms */
  rms_case(41, 60, 60 + 2 * 20, 20); /* OLMoE's q-norm over all heads of a qkv row */
  rms_case(29 * 3, 24, 24, 30);   /* a per-head norm: rows of one head */
  rms_case(70, 1000, 1031, 40);   /* wide rows */
}

static void rope(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int B = 2, T = 19, nh = 3, hs = 20, ctx = 23, ld = nh * hs + 2 * hs + 5;
  fm_model_shape s;
  memset(&s, 0, sizeof s);
  s.rope_type = FM_ROPE_LLAMA3;
  s.rope_theta = 500000.0f;
  s.rope_factor = 8.0f, s.rope_low_freq = 1.0f, s.rope_high_freq = 4.0f, s.rope_orig_ctx = 8;
  float *ct = malloc((size_t)ctx * hs / 2 * 4), *st = malloc((size_t)ctx * hs / 2 * 4);
  fm_rope_table(ct, st, ctx, hs, &s);
  const size_t n = (size_t)B * T * ld;
  float *x = host_rand(n, 50, 1), *x0 = host_copy(x, n);
  float *gct = dev_floats(NULL, (size_t)ctx * hs / 2), *gst = dev_floats(NULL, (size_t)ctx * hs / 2),
        *gx = dev_floats(x, n);
  CU_ASSERT_FATAL(fm_cu_rope_table(cu, gct, gst, ctx, hs, &s) == FM_OK);
  CU_ASSERT(same_bits_host("cos table", gct, ct, (size_t)ctx * hs / 2));
  CU_ASSERT(same_bits_host("sin table", gst, st, (size_t)ctx * hs / 2));
  fm_rope_forward(x, ct, st, B, T, nh, hs, ld);
  CU_ASSERT(fm_cu_rope_forward(cu, gx, gct, gst, B, T, nh, hs, ld) == FM_OK);
  CLOSE(gx, x, n, TOL);
  fm_rope_backward(x, ct, st, B, T, nh, hs, ld);
  CU_ASSERT(fm_cu_rope_backward(cu, gx, gct, gst, B, T, nh, hs, ld) == FM_OK);
  CLOSE(gx, x, n, TOL);
  CLOSE(gx, x0, n, 1e-6); /* the backward of a rotation is its inverse */
}

static void swiglu(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int R = 43, F = 77;
  float *gu = host_rand((size_t)R * 2 * F, 60, 4), *da = host_rand((size_t)R * F, 61, 1),
        *a = calloc((size_t)R * F, 4), *dgu = calloc((size_t)R * 2 * F, 4);
  float *ggu = dev_floats(gu, (size_t)R * 2 * F), *gda = dev_floats(da, (size_t)R * F),
        *ga = dev_floats(NULL, (size_t)R * F), *gdgu = dev_floats(NULL, (size_t)R * 2 * F);
  fm_swiglu_forward(a, gu, R, F);
  fm_swiglu_backward(dgu, gu, da, R, F);
  CU_ASSERT(fm_cu_swiglu_forward(cu, ga, ggu, R, F) == FM_OK);
  CU_ASSERT(fm_cu_swiglu_backward(cu, gdgu, ggu, gda, R, F) == FM_OK);
  CLOSE(ga, a, (size_t)R * F, TOL);
  CLOSE(gdgu, dgu, (size_t)R * 2 * F, TOL);
}

static void swiglu_ffn(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 39, D = 50, F = 67;
  const size_t nd = (size_t)N * D, fd = (size_t)F * D;
  float *x = host_rand(nd, 70, 1), *wg = host_rand(fd, 71, 0.3f), *wu = host_rand(fd, 72, 0.3f),
        *wd = host_rand(fd, 73, 0.3f), *dout = host_rand(nd, 74, 1), *out = host_rand(nd, 75, 1),
        *dx = host_rand(nd, 76, 1), *dwg = host_rand(fd, 77, 1), *dwu = host_rand(fd, 78, 1),
        *dwd = host_rand(fd, 79, 1);
  float *gu = calloc((size_t)N * 2 * F, 4), *a = calloc((size_t)N * F, 4), *da = calloc((size_t)N * F, 4),
        *dgu = calloc((size_t)N * 2 * F, 4);
  float *gx = dev_floats(x, nd), *gwg = dev_floats(wg, fd), *gwu = dev_floats(wu, fd), *gwd = dev_floats(wd, fd),
        *gd = dev_floats(dout, nd), *go = dev_floats(out, nd), *ggu = dev_floats(NULL, (size_t)N * 2 * F),
        *ga = dev_floats(NULL, (size_t)N * F), *gda = dev_floats(NULL, (size_t)N * F),
        *gdgu = dev_floats(NULL, (size_t)N * 2 * F), *gdx = dev_floats(dx, nd), *gdwg = dev_floats(dwg, fd),
        *gdwu = dev_floats(dwu, fd), *gdwd = dev_floats(dwd, fd);
  fm_swiglu_ffn_forward(out, gu, a, x, wg, wu, wd, N, D, F, 1);
  CU_ASSERT(fm_cu_swiglu_ffn_forward(cu, go, ggu, ga, gx, gwg, gwu, gwd, N, D, F, 1) == FM_OK);
  CLOSE(go, out, nd, TOL);
  CLOSE(ggu, gu, (size_t)N * 2 * F, TOL);
  CLOSE(ga, a, (size_t)N * F, TOL);
  fm_swiglu_ffn_backward(dx, dwg, dwu, dwd, da, dgu, dout, x, gu, a, wg, wu, wd, N, D, F, 1);
  CU_ASSERT(fm_cu_swiglu_ffn_backward(cu, gdx, gdwg, gdwu, gdwd, gda, gdgu, gd, gx, ggu, ga, gwg, gwu,
                                      gwd, N, D, F, 1) == FM_OK);
  CLOSE(gdx, dx, nd, TOL);
  CLOSE(gdwg, dwg, fd, TOL);
  CLOSE(gdwu, dwu, fd, TOL);
  CLOSE(gdwd, dwd, fd, TOL);
  /* the written dx, twice */
  float *r[2][4];
  for (int run = 0; run < 2; run++) {
    for (int i = 0; i < 4; i++) r[run][i] = dev_floats(NULL, i ? fd : nd);
    CU_ASSERT(fm_cu_swiglu_ffn_backward(cu, r[run][0], r[run][1], r[run][2], r[run][3], gda, gdgu, gd, gx,
                                        ggu, ga, gwg, gwu, gwd, N, D, F, 0) == FM_OK);
  }
  for (int i = 0; i < 4; i++) SAME_BITS(r[0][i], r[1][i], i ? fd : nd);
}

static void shared_expert(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 33, D = 48, F = 70;
  const size_t nd = (size_t)N * D, fd = (size_t)F * D;
  float *x = host_rand(nd, 80, 1), *wg = host_rand(fd, 81, 0.3f), *wu = host_rand(fd, 82, 0.3f),
        *wd = host_rand(fd, 83, 0.3f), *wsg = host_rand(D, 84, 0.5f), *dout = host_rand(nd, 85, 1),
        *out = host_rand(nd, 86, 1), *dx = host_rand(nd, 87, 1), *dwg = calloc(fd, 4),
        *dwu = calloc(fd, 4), *dwd = calloc(fd, 4), *dwsg = calloc(D, 4);
  float *y = calloc(nd, 4), *sg = calloc(N, 4), *gu = calloc((size_t)N * 2 * F, 4), *a = calloc((size_t)N * F, 4),
        *dy = calloc(nd, 4), *dz = calloc(N, 4), *da = calloc((size_t)N * F, 4), *dgu = calloc((size_t)N * 2 * F, 4);
  float *gx = dev_floats(x, nd), *gwg = dev_floats(wg, fd), *gwu = dev_floats(wu, fd), *gwd = dev_floats(wd, fd),
        *gwsg = dev_floats(wsg, D), *gd = dev_floats(dout, nd), *go = dev_floats(out, nd),
        *gy = dev_floats(NULL, nd), *gsg = dev_floats(NULL, N), *ggu = dev_floats(NULL, (size_t)N * 2 * F),
        *ga = dev_floats(NULL, (size_t)N * F), *gdy = dev_floats(NULL, nd), *gdz = dev_floats(NULL, N),
        *gda = dev_floats(NULL, (size_t)N * F), *gdgu = dev_floats(NULL, (size_t)N * 2 * F);
  fm_shared_expert_forward(out, y, sg, gu, a, x, wg, wu, wd, wsg, N, D, F);
  CU_ASSERT(fm_cu_shared_expert_forward(cu, go, gy, gsg, ggu, ga, gx, gwg, gwu, gwd, gwsg, N, D, F) == FM_OK);
  CLOSE(go, out, nd, TOL);
  CLOSE(gy, y, nd, TOL);
  CLOSE(gsg, sg, N, TOL);
  float *dx0 = host_copy(dx, nd);
  fm_shared_expert_backward(dx, dwg, dwu, dwd, dwsg, dy, dz, da, dgu, dout, x, y, sg, gu, a, wg, wu, wd,
                            wsg, N, D, F);
  float *r[2][5];
  for (int run = 0; run < 2; run++) {
    r[run][0] = dev_floats(dx0, nd);
    for (int i = 1; i < 4; i++) r[run][i] = dev_floats(NULL, fd);
    r[run][4] = dev_floats(NULL, D);
    CU_ASSERT(fm_cu_shared_expert_backward(cu, r[run][0], r[run][1], r[run][2], r[run][3], r[run][4], gdy,
                                           gdz, gda, gdgu, gd, gx, gy, gsg, ggu, ga, gwg, gwu, gwd, gwsg,
                                           N, D, F) == FM_OK);
  }
  CLOSE(r[0][0], dx, nd, TOL);
  CLOSE(r[0][1], dwg, fd, TOL);
  CLOSE(r[0][2], dwu, fd, TOL);
  CLOSE(r[0][3], dwd, fd, TOL);
  CLOSE(r[0][4], dwsg, D, TOL);
  for (int i = 0; i < 5; i++) SAME_BITS(r[0][i], r[1][i], i == 0 ? nd : i == 4 ? (size_t)D : fd);
}

static void lora_case(int layout) {
  const int n = 41, in = 50, out = 66, R = 5, ldx = in + 3, ldy = out + 7;
  const float s = 2.0f, beta = 0.5f;
  const size_t nx = (size_t)n * ldx, ny = (size_t)n * ldy, na = (size_t)in * R, nb = (size_t)R * out;
  float *x = host_rand(nx, 90 + layout, 1), *A = host_rand(na, 91, 0.3f), *B = host_rand(nb, 92, 0.3f),
        *y = host_rand(ny, 93, 1), *dy = host_rand(ny, 94, 1), *z = calloc((size_t)n * R, 4),
        *dz = calloc((size_t)n * R, 4), *dA = host_rand(na, 95, 1), *dB = host_rand(nb, 96, 1),
        *dx = host_rand(nx, 97, 1);
  float *gxx = dev_floats(x, nx), *gA = dev_floats(A, na), *gB = dev_floats(B, nb), *gy = dev_floats(y, ny),
        *gdy = dev_floats(dy, ny), *gz = dev_floats(NULL, (size_t)n * R), *gdz = dev_floats(NULL, (size_t)n * R),
        *gdA = dev_floats(dA, na), *gdB = dev_floats(dB, nb), *gdx = dev_floats(dx, nx);
  fm_lora_forward(layout, n, in, out, R, s, x, ldx, A, B, z, y, ldy);
  CU_ASSERT(fm_cu_lora_forward(cu, layout, n, in, out, R, s, gxx, ldx, gA, gB, gz, gy, ldy) == FM_OK);
  CLOSE(gy, y, ny, TOL);
  CLOSE(gz, z, (size_t)n * R, TOL);
  fm_lora_backward(layout, n, in, out, R, s, x, ldx, z, dy, ldy, (fm_param){A, dA}, (fm_param){B, dB}, dz,
                   dx, beta);
  CU_ASSERT(fm_cu_lora_backward(cu, layout, n, in, out, R, s, gxx, ldx, gz, gdy, ldy, (fm_param){gA, gdA},
                                (fm_param){gB, gdB}, gdz, gdx, beta) == FM_OK);
  CLOSE(gdx, dx, nx, TOL);
  CLOSE(gdA, dA, na, TOL);
  CLOSE(gdB, dB, nb, TOL);
  CLOSE(gdz, dz, (size_t)n * R, TOL);
  /* frozen A (no gradient), twice */
  float *r[2][2];
  for (int run = 0; run < 2; run++) {
    r[run][0] = dev_floats(x, nx), r[run][1] = dev_floats(NULL, nb);
    CU_ASSERT(fm_cu_lora_backward(cu, layout, n, in, out, R, s, gxx, ldx, gz, gdy, ldy, (fm_param){gA, NULL},
                                  (fm_param){gB, r[run][1]}, gdz, r[run][0], 0.0f) == FM_OK);
  }
  SAME_BITS(r[0][0], r[1][0], nx);
  SAME_BITS(r[0][1], r[1][1], nb);
}

static void lora_conv1d(void) {
  CU_ASSERT_FATAL(cu != NULL);
  lora_case(FM_LORA_CONV1D);
}
static void lora_linear(void) {
  CU_ASSERT_FATAL(cu != NULL);
  lora_case(FM_LORA_LINEAR);
}

/* one router case; coarse logits (multiples of 1/4) make ties */
/* client slots (run.client_batch): G groups of rows, each with its own pair at a
 * padded stride, in strided-batched GEMMs, against lora_grouped.c's loop */
static void lora_grouped_case(int layout) {
  const int G = 5, n = 19, in = 50, out = 66, R = 4, ldx = in + 3, ldy = out + 7;
  const float s = 2.0f, beta = 1.0f;
  const size_t sA = (size_t)in * R + 5, sB = (size_t)R * out + 3, rows = (size_t)G * n;
  const size_t nx = rows * ldx, ny = rows * ldy, na = G * sA, nb = G * sB, nz = rows * R;
  float *x = host_rand(nx, 70 + layout, 1), *A = host_rand(na, 71, 0.3f), *B = host_rand(nb, 72, 0.3f),
        *y = host_rand(ny, 73, 1), *dy = host_rand(ny, 74, 1), *z = calloc(nz, 4), *dz = calloc(nz, 4),
        *dA = host_rand(na, 75, 1), *dB = host_rand(nb, 76, 1), *dx = host_rand(nx, 77, 1);
  float *gxx = dev_floats(x, nx), *gA = dev_floats(A, na), *gB = dev_floats(B, nb), *gy = dev_floats(y, ny),
        *gdy = dev_floats(dy, ny), *gz = dev_floats(NULL, nz), *gdz = dev_floats(NULL, nz),
        *gdA = dev_floats(dA, na), *gdB = dev_floats(dB, nb), *gdx = dev_floats(dx, nx);
  printf("\n    grouped lora %s: G %d, n %d, in %d, out %d, R %d, strides %zu %zu",
         layout == FM_LORA_LINEAR ? "linear" : "conv1d", G, n, in, out, R, sA, sB);
  fm_lora_grouped_forward(layout, G, n, in, out, R, s, x, ldx, A, sA, B, sB, z, y, ldy);
  CU_ASSERT(fm_cu_lora_grouped_forward(cu, layout, G, n, in, out, R, s, gxx, ldx, gA, sA, gB, sB, gz, gy, ldy) ==
            FM_OK);
  CLOSE(gy, y, ny, TOL);
  CLOSE(gz, z, nz, TOL);
  fm_lora_grouped_backward(layout, G, n, in, out, R, s, x, ldx, z, dy, ldy, (fm_param){A, dA}, (fm_param){B, dB},
                           sA, sB, dz, dx, beta);
  CU_ASSERT(fm_cu_lora_grouped_backward(cu, layout, G, n, in, out, R, s, gxx, ldx, gz, gdy, ldy,
                                        (fm_param){gA, gdA}, (fm_param){gB, gdB}, sA, sB, gdz, gdx, beta) == FM_OK);
  CLOSE(gdx, dx, nx, TOL);
  CLOSE(gdA, dA, na, TOL); /* the padding between pairs included: it keeps its values */
  CLOSE(gdB, dB, nb, TOL);
  CLOSE(gdz, dz, nz, TOL);
  /* twice, bitwise */
  float *r[2][2];
  for (int run = 0; run < 2; run++) {
    r[run][0] = dev_floats(x, nx), r[run][1] = dev_floats(NULL, nb);
    CU_ASSERT(fm_cu_lora_grouped_backward(cu, layout, G, n, in, out, R, s, gxx, ldx, gz, gdy, ldy,
                                          (fm_param){gA, NULL}, (fm_param){gB, r[run][1]}, sA, sB, gdz, r[run][0],
                                          0.0f) == FM_OK);
  }
  SAME_BITS(r[0][0], r[1][0], nx);
  SAME_BITS(r[0][1], r[1][1], nb);
}
static void lora_grouped(void) {
  CU_ASSERT_FATAL(cu != NULL);
  lora_grouped_case(FM_LORA_CONV1D);
  lora_grouped_case(FM_LORA_LINEAR);
}

static void router_case(int N, int E, int k, int renorm, const uint8_t *allowed, int coarse, unsigned seed) {
  const size_t ne = (size_t)N * E, nk = (size_t)N * k;
  float *z = host_rand(ne, seed, 3), *dw = host_rand(nk, seed + 1, 1), *dp = host_rand(ne, seed + 2, 1);
  if (coarse)
    for (size_t i = 0; i < ne; i++) z[i] = roundf(z[i] * 2.0f) / 4.0f;
  float *p = calloc(ne, 4), *wts = calloc(nk, 4), *dz = calloc(ne, 4), *dz0 = calloc(ne, 4);
  int32_t *pk = calloc(nk, 4), *gpkh = calloc(nk, 4);
  const int keff = fm_router_forward(p, pk, wts, z, allowed, N, E, k, renorm);
  fm_router_backward(dz, dw, dp, p, pk, wts, N, E, k, renorm);
  fm_router_backward(dz0, dw, NULL, p, pk, wts, N, E, k, renorm);
  float *gz = dev_floats(z, ne), *gp = dev_floats(NULL, ne), *gw = dev_floats(NULL, nk),
        *gdw = dev_floats(dw, nk), *gdp = dev_floats(dp, ne), *gdz = dev_floats(NULL, ne),
        *gdz2 = dev_floats(NULL, ne), *gdz0 = dev_floats(NULL, ne);
  int32_t *gpk = dev_copy(NULL, nk * 4);
  int gkeff = -1;
  CU_ASSERT(fm_cu_router_forward(cu, &gkeff, gp, gpk, gw, gz, allowed, N, E, k, renorm) == FM_OK);
  CU_ASSERT_EQUAL(gkeff, keff);
  CU_ASSERT_FATAL(fm_cu_download(cu, gpkh, gpk, nk * 4) == FM_OK);
  size_t bad = 0;
  while (bad < nk && gpkh[bad] == pk[bad]) bad++;
  if (bad < nk)
    printf("\n    router N %d E %d k %d: pick %zu is %d on the GPU, %d on the CPU\n", N, E, k, bad, gpkh[bad],
           pk[bad]);
  CU_ASSERT(bad == nk);
  CLOSE(gp, p, ne, TOL);
  CLOSE(gw, wts, nk, TOL);
  CU_ASSERT(fm_cu_router_backward(cu, gdz, gdw, gdp, gp, gpk, gw, N, E, k, renorm) == FM_OK);
  CU_ASSERT(fm_cu_router_backward(cu, gdz2, gdw, gdp, gp, gpk, gw, N, E, k, renorm) == FM_OK);
  CU_ASSERT(fm_cu_router_backward(cu, gdz0, gdw, NULL, gp, gpk, gw, N, E, k, renorm) == FM_OK);
  CLOSE(gdz, dz, ne, TOL);
  CLOSE(gdz0, dz0, ne, TOL);
  SAME_BITS(gdz, gdz2, ne);
}

static void router(void) {
  CU_ASSERT_FATAL(cu != NULL);
  uint8_t mask[12] = {1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0}, two[5] = {0, 1, 0, 0, 1};
  router_case(67, 8, 2, 1, NULL, 0, 100);  /* Mixtral */
  router_case(45, 64, 8, 0, NULL, 0, 110); /* OLMoE */
  router_case(53, 12, 3, 1, mask, 1, 120); /* a mask, ties */
  router_case(53, 12, 3, 0, mask, 1, 130);
  router_case(31, 5, 3, 1, two, 0, 140);   /* keff = 2 < k */
  router_case(31, 5, 3, 0, two, 1, 150);
}

static void loadbalance(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 301, E = 12, k = 3;
  const size_t ne = (size_t)N * E;
  float *z = host_rand(ne, 160, 3), *p = calloc(ne, 4), *wts = calloc((size_t)N * k, 4), *f = calloc(E, 4),
        *dp = host_rand(ne, 161, 1);
  int32_t *pk = calloc((size_t)N * k, 4);
  fm_router_forward(p, pk, wts, z, NULL, N, E, k, 1);
  const double lb = fm_loadbalance_forward(f, p, pk, N, E, k, 0.02f);
  fm_loadbalance_backward(dp, f, N, E, 0.02f, 1.5f);
  float *gp = dev_floats(p, ne), *gf = dev_floats(NULL, E), *gdp = dev_floats(NULL, ne);
  int32_t *gpk = dev_copy(pk, (size_t)N * k * 4);
  CU_ASSERT_FATAL(fm_cu_upload(cu, gdp, host_rand(ne, 161, 1), ne * 4) == FM_OK);
  double glb = 0;
  CU_ASSERT(fm_cu_loadbalance_forward(cu, &glb, gf, gp, gpk, N, E, k, 0.02f) == FM_OK);
  if (!(fabs(glb - lb) <= 1e-6 * fabs(lb))) printf("\n    load balance %.9g on the GPU, %.9g on the CPU\n", glb, lb);
  FM_ASSERT_CLOSE(glb, lb, 1e-6, 0);
  CLOSE(gf, f, E, 1e-7);
  CU_ASSERT(fm_cu_loadbalance_backward(cu, gdp, gf, N, E, 0.02f, 1.5f) == FM_OK);
  CLOSE(gdp, dp, ne, TOL);
}

/* bf16 GEMMs (the context's precision; element-wise work stays fp32): 1e-2 */
static void bf16_gemms(void) {
  CU_ASSERT_FATAL(cu != NULL);
  const int N = 37, D = 45, F = 70;
  const size_t nd = (size_t)N * D, fd = (size_t)F * D;
  float *x = host_rand(nd, 170, 1), *wg = host_rand(fd, 171, 0.3f), *wu = host_rand(fd, 172, 0.3f),
        *wd = host_rand(fd, 173, 0.3f), *b = host_rand(F, 174, 1), *dout = host_rand(nd, 175, 1);
  float *h = calloc((size_t)N * F, 4), *out = calloc(nd, 4), *gu = calloc((size_t)N * 2 * F, 4),
        *a = calloc((size_t)N * F, 4), *da = calloc((size_t)N * F, 4), *dgu = calloc((size_t)N * 2 * F, 4),
        *dx = calloc(nd, 4), *dwg = calloc(fd, 4);
  float *gx = dev_floats(x, nd), *gwg = dev_floats(wg, fd), *gwu = dev_floats(wu, fd), *gwd = dev_floats(wd, fd),
        *gb = dev_floats(b, F), *gd = dev_floats(dout, nd), *gh = dev_floats(NULL, (size_t)N * F),
        *go = dev_floats(NULL, nd), *ggu = dev_floats(NULL, (size_t)N * 2 * F), *ga = dev_floats(NULL, (size_t)N * F),
        *gda = dev_floats(NULL, (size_t)N * F), *gdgu = dev_floats(NULL, (size_t)N * 2 * F),
        *gdx = dev_floats(NULL, nd), *gdwg = dev_floats(NULL, fd);
  fm_cu_set_precision(cu, FM_PREC_BF16);
  fm_dense_forward(h, F, x, wg, b, N, D, F, 0);
  CU_ASSERT(fm_cu_dense_forward(cu, gh, F, gx, gwg, gb, N, D, F, 0) == FM_OK);
  CLOSE(gh, h, (size_t)N * F, 1e-2);
  fm_swiglu_ffn_forward(out, gu, a, x, wg, wu, wd, N, D, F, 0);
  fm_swiglu_ffn_backward(dx, dwg, NULL, NULL, da, dgu, dout, x, gu, a, wg, wu, wd, N, D, F, 0);
  CU_ASSERT(fm_cu_swiglu_ffn_forward(cu, go, ggu, ga, gx, gwg, gwu, gwd, N, D, F, 0) == FM_OK);
  CU_ASSERT(fm_cu_swiglu_ffn_backward(cu, gdx, gdwg, NULL, NULL, gda, gdgu, gd, gx, ggu, ga, gwg, gwu, gwd, N,
                                      D, F, 0) == FM_OK);
  fm_cu_set_precision(cu, FM_PREC_FP32);
  CLOSE(go, out, nd, 1e-2);
  CLOSE(gdx, dx, nd, 1e-2);
  CLOSE(gdwg, dwg, fd, 1e-2);
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"GELU forward/backward", gelu_pair},
                                  {"dense (nn.Linear) forward/backward", dense},
                                  {"rmsnorm forward/backward", rmsnorm},
                                  {"rope forward/backward", rope},
                                  {"swiglu forward/backward", swiglu},
                                  {"swiglu FFN forward/backward", swiglu_ffn},
                                  {"shared expert forward/backward", shared_expert},
                                  {"lora conv1d layout", lora_conv1d},
                                  {"lora linear layout", lora_linear},
                                  {"grouped lora of client slots, both layouts", lora_grouped},
                                  {"router forward/backward", router},
                                  {"load balance forward/backward", loadbalance},
                                  {"bf16 GEMMs: dense, SwiGLU FFN", bf16_gemms},
                                  {NULL, NULL}};
  CU_pSuite s = CU_add_suite("llama-family cuda kernels against the CPU", open_gpu, close_gpu);
  if (!s) return 1;
  for (const fm_test *t = tests; t->name; t++)
    if (!CU_add_test(s, t->name, t->fn)) return 1;
  return 0;
}
