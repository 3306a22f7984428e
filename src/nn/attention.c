/* attention.c - causal multi-head self-attention (the part between c_attn and c_proj).
 *
 * Per sequence b and head h, with Q, K, V the head's [T, hs] slices of qkv (row
 * stride 3D, no copies):  P = softmax_causal(Q K^T / sqrt(hs)),  O = P V.
 * The work is cut in row blocks [i0, i1): row i attends to columns 0..i only, so a
 * row block needs columns 0..i1-1 alone. Each block is one BLIS GEMM, and the masked
 * upper triangle is computed only inside the diagonal block (then zeroed), never
 * beyond it: the score, P V and every backward GEMM do about half the square work. */
#include "nn.h"
#include "vmath.h"

#include <math.h>

static int att_block = 64;

int fm_attention_block(void) { return att_block; }
void fm_attention_set_block(int rows) { att_block = rows > 0 ? rows : 64; }
size_t fm_attention_scratch(int T) {
  int r = att_block < T ? att_block : T;
  return (size_t)r * (size_t)T;
}

/* Causal softmax of rows i0..i1-1 of P (row stride T) in place: row i over columns
 * 0..i; columns i+1..i1-1 (the masked part of the diagonal block) are set to 0. */
FM_VEC static void softmax_rows(float *P, int T, int i0, int i1) {
  for (int i = i0; i < i1; i++) {
    float *restrict p = P + (size_t)i * T;
    const float mx = fm_vmax(p, i + 1);
    for (int j = 0; j <= i; j++) p[j] = fm_vexpf(p[j] - mx);
    const float inv = 1.0f / fm_vsum(p, i + 1);
    for (int j = 0; j <= i; j++) p[j] *= inv;
    for (int j = i + 1; j < i1; j++) p[j] = 0.0f;
  }
}

/* qkv [B,T,3D] -> out [B,T,D] (written), att [B,H,T,T] probabilities (lower triangle) */
void fm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int D, int H) {
  const int hs = D / H, C3 = 3 * D;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs;
      const float *K = Q + D, *V = Q + 2 * D;
      float *P = att + ((size_t)b * H + h) * T * T;
      float *O = out + (size_t)b * T * D + (size_t)h * hs;
      for (int i0 = 0; i0 < T; i0 += att_block) {
        int i1 = i0 + att_block < T ? i0 + att_block : T, rows = i1 - i0;
        /* S[i0:i1, 0:i1] = scale Q[i0:i1] K[0:i1]^T */
        fm_gemm(0, 1, rows, i1, hs, scale, Q + (size_t)i0 * C3, C3, K, C3, 0.0f,
                P + (size_t)i0 * T, T);
        softmax_rows(P, T, i0, i1);
        /* O[i0:i1] = P[i0:i1, 0:i1] V[0:i1] */
        fm_gemm(0, 0, rows, hs, i1, 1.0f, P + (size_t)i0 * T, T, V, C3, 0.0f, O + (size_t)i0 * D,
                D);
      }
    }
}

/* Rows i0..i1-1: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) scale for j <= i, 0 for
 * i < j < i1; dS (row stride T, row i at (i - i0) T) holds dP on entry. */
FM_VEC static void softmax_backward_rows(float *dS, const float *P, int T, int i0, int i1,
                                         float scale) {
  for (int i = i0; i < i1; i++) {
    const float *restrict p = P + (size_t)i * T;
    float *restrict d = dS + (size_t)(i - i0) * T;
    const float dot = fm_vdot(p, d, i + 1);
    for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - dot) * scale;
    for (int j = i + 1; j < i1; j++) d[j] = 0.0f;
  }
}

/* dout [B,T,D] -> dqkv [B,T,3D] (written, every value). With dP = dO V^T and
 * dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) scale (j <= i):
 *   dQ = dS K,  dK = dS^T Q,  dV = P^T dO.
 * scratch: rows x T floats for dP/dS of one row block. */
void fm_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int D, int H) {
  const int hs = D / H, C3 = 3 * D;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const size_t base = (size_t)b * T * C3 + (size_t)h * hs;
      const float *Q = qkv + base, *K = Q + D, *V = Q + 2 * D;
      float *dQ = dqkv + base, *dK = dQ + D, *dV = dQ + 2 * D;
      const float *P = att + ((size_t)b * H + h) * T * T;
      const float *dO = dout + (size_t)b * T * D + (size_t)h * hs;
      /* last row block first: it reaches every column (i1 = T), so its dK and dV
       * GEMMs write them (beta 0) and the blocks above add to them: dqkv needs no
       * clearing pass */
      for (int i0 = (T - 1) / att_block * att_block; i0 >= 0; i0 -= att_block) {
        int i1 = i0 + att_block < T ? i0 + att_block : T, rows = i1 - i0;
        const float beta = i1 == T ? 0.0f : 1.0f;
        const float *Pb = P + (size_t)i0 * T;
        float *dS = scratch; /* row i of the block at dS + (i - i0) T */
        /* dP[i0:i1, 0:i1] = dO[i0:i1] V[0:i1]^T */
        fm_gemm(0, 1, rows, i1, hs, 1.0f, dO + (size_t)i0 * D, D, V, C3, 0.0f, dS, T);
        /* dV[0:i1] += P[i0:i1, 0:i1]^T dO[i0:i1]  (P is zero above the diagonal) */
        fm_gemm(1, 0, i1, hs, rows, 1.0f, Pb, T, dO + (size_t)i0 * D, D, beta, dV, C3);
        softmax_backward_rows(dS, P, T, i0, i1, scale);
        /* dQ[i0:i1] = dS[i0:i1, 0:i1] K[0:i1];  dK[0:i1] += dS^T Q[i0:i1] */
        fm_gemm(0, 0, rows, hs, i1, 1.0f, dS, T, K, C3, 0.0f, dQ + (size_t)i0 * C3, C3);
        fm_gemm(1, 0, i1, hs, rows, 1.0f, dS, T, Q + (size_t)i0 * C3, C3, beta, dK, C3);
      }
    }
}
