/* linear.c - the affine map of GPT-2's Conv1D: weights stored [in, out]. */
#include "nn.h"
#include "vmath.h"

#include <string.h>

/* out[N,OC] (row stride ldo) (+)= b: the bias goes in first so that one GEMM with
 * beta = 1 finishes the job */
FM_VEC static void bias_rows(float *out, int ldo, const float *b, int N, int OC, int accumulate) {
  for (int n = 0; n < N; n++) {
    float *restrict o = out + (size_t)n * ldo;
    if (accumulate)
      for (int j = 0; j < OC; j++) o[j] += b[j];
    else
      memcpy(o, b, (size_t)OC * sizeof *o);
  }
}

/* db[OC] += sum_n dout[n] (row stride ldd) */
FM_VEC static void bias_grad(float *db, const float *dout, int ldd, int N, int OC) {
  for (int n = 0; n < N; n++) {
    const float *restrict d = dout + (size_t)n * ldd;
    float *restrict acc = db;
    for (int j = 0; j < OC; j++) acc[j] += d[j];
  }
}

/* out[N,OC] (+)= inp[N,C] @ w[C,OC] + b[OC] */
void fm_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int C,
                       int OC, int accumulate) {
  if (b) {
    bias_rows(out, OC, b, N, OC, accumulate);
    accumulate = 1;
  }
  fm_gemm(0, 0, N, OC, C, 1.0f, inp, C, w, OC, accumulate ? 1.0f : 0.0f, out, OC);
}

/* dinp[N,C] (+)= dout[N,OC] @ w^T;  dw[C,OC] += inp^T @ dout;  db[OC] += sum_n dout[n] */
void fm_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *w, int N, int C, int OC, int accumulate) {
  if (dinp) fm_gemm(0, 1, N, C, OC, 1.0f, dout, OC, w, OC, accumulate ? 1.0f : 0.0f, dinp, C);
  if (dw) fm_gemm(1, 0, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dw, OC);
  if (db) bias_grad(db, dout, OC, N, OC);
}

/* nn.Linear layout (the llama family's projections): weights stored [out, in].
 * out[N,OC] (row stride ldo) (+)= inp[N,C] @ w[OC,C]^T + b[OC] (b may be NULL) */
void fm_dense_forward(float *out, int ldo, const float *inp, const float *w, const float *b, int N,
                      int C, int OC, int accumulate) {
  if (b) {
    bias_rows(out, ldo, b, N, OC, accumulate);
    accumulate = 1;
  }
  fm_gemm(0, 1, N, OC, C, 1.0f, inp, C, w, C, accumulate ? 1.0f : 0.0f, out, ldo);
}

/* dout [N,OC] (row stride ldd): dinp[N,C] (+)= dout @ w;  dw[OC,C] += dout^T @ inp;
 * db[OC] += sum_n dout[n] (each may be NULL) */
void fm_dense_backward(float *dinp, float *dw, float *db, const float *dout, int ldd, const float *inp,
                       const float *w, int N, int C, int OC, int accumulate) {
  if (dinp) fm_gemm(0, 0, N, C, OC, 1.0f, dout, ldd, w, C, accumulate ? 1.0f : 0.0f, dinp, C);
  if (dw) fm_gemm(1, 0, OC, C, N, 1.0f, dout, ldd, inp, C, 1.0f, dw, C);
  if (db) bias_grad(db, dout, ldd, N, OC);
}
