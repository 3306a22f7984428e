/* attention.c - the causal attention core on the GPU: per sequence, the heads' score
 * GEMMs as one strided batch on cuBLAS, the causal softmax kernel between them.
 *   S = q k^T (scaled in the softmax), P = causal softmax(S), out = P v
 * Backward (dS = P o (dP - rowsum(dP o P)) / sqrt(hd)):
 *   dP = dout v^T, dv = P^T dout, dq = dS k, dk = dS^T q
 * qkv [B,T,3D]: head h of q is at column h*hd, of k at D + h*hd, of v at 2D + h*hd,
 * row stride 3D; so heads are a constant stride hd apart, and one strided batch of H
 * GEMMs serves a sequence. */
#include "context.h"

#include <math.h>

fm_err fm_cu_gemm_strided(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha,
                          const float *A, int lda, long long sa, const float *B, int ldb,
                          long long sb, float beta, float *C, int ldc, long long sc, int count);

fm_err fm_cu_attention_forward(fm_cu *cu, float *out, float *att, const float *qkv, int B, int T,
                               int D, int H) {
  const int hd = D / H, D3 = 3 * D;
  const long long TT = (long long)T * T;
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * T * D3, *k = q + D;
    float *S = att + (size_t)b * H * TT;
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 1, T, T, hd, 1.0f, q, D3, hd, k, D3, hd, 0.0f, S, T, TT, H));
  }
  FM_CUK(fm_cuk_causal_softmax(att, B * H * T, T, 1.0f / sqrtf((float)hd), cu->stream),
         "causal softmax");
  for (int b = 0; b < B; b++) {
    const float *v = qkv + (size_t)b * T * D3 + 2 * D;
    const float *P = att + (size_t)b * H * TT;
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 0, T, hd, T, 1.0f, P, T, TT, v, D3, hd, 0.0f,
                                out + (size_t)b * T * D, D, hd, H));
  }
  return FM_OK;
}

fm_err fm_cu_attention_backward(fm_cu *cu, float *dqkv, const float *dout, const float *qkv,
                                const float *att, int B, int T, int D, int H) {
  const int hd = D / H, D3 = 3 * D;
  const long long TT = (long long)T * T;
  const float scale = 1.0f / sqrtf((float)hd);
  float *dS;
  FM_CHECK(fm_cu_scratch(cu, &dS, (size_t)H * TT * sizeof(float)));
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * T * D3, *k = q + D, *v = q + 2 * D;
    const float *P = att + (size_t)b * H * TT, *dO = dout + (size_t)b * T * D;
    float *dq = dqkv + (size_t)b * T * D3, *dk = dq + D, *dv = dq + 2 * D;
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 1, T, T, hd, 1.0f, dO, D, hd, v, D3, hd, 0.0f, dS, T, TT, H));
    FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, T, hd, T, 1.0f, P, T, TT, dO, D, hd, 0.0f, dv, D3, hd, H));
    FM_CUK(fm_cuk_causal_softmax_backward(dS, P, H * T, T, scale, cu->stream), "softmax backward");
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 0, T, hd, T, 1.0f, dS, T, TT, k, D3, hd, 0.0f, dq, D3, hd, H));
    FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, T, hd, T, 1.0f, dS, T, TT, q, D3, hd, 0.0f, dk, D3, hd, H));
  }
  return FM_OK;
}
