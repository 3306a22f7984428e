/* attention.c - causal multi-head self-attention (the part between the projections),
 * with grouped-query attention (GQA).
 *
 * A row of qkv holds H query heads, then KVH key heads, then KVH value heads, each of
 * hs values: [q: H hs | k: KVH hs | v: KVH hs], row stride W = (H + 2 KVH) hs. Query
 * head h reads key/value head h / (H / KVH): with KVH = H this is plain multi-head
 * attention, and GPT-2's c_attn output (q | k | v, W = 3D) is that layout.
 * Per sequence b and query head h, with Q, K, V the heads' [T, hs] slices of qkv (row
 * stride W, no copies):  P = softmax_causal(Q K^T / sqrt(hs)),  O = P V.
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
size_t fm_attention_saved(int B, int T, int H, int hs) {
  const size_t probs = (size_t)B * H * T * T, fused = (size_t)B * H * T + (size_t)B * T * H * hs;
  return probs > fused ? probs : fused;
}
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

/* qkv [B,T,W] -> out [B,T,H hs] (written), att [B,H,T,T] probabilities (lower triangle) */
void fm_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int KVH,
                          int hs) {
  const int W = (H + 2 * KVH) * hs, HD = H * hs, group = H / KVH;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const float *base = qkv + (size_t)b * T * W;
      const float *Q = base + (size_t)h * hs;
      const float *K = base + HD + (size_t)(h / group) * hs, *V = K + (size_t)KVH * hs;
      float *P = att + ((size_t)b * H + h) * T * T;
      float *O = out + (size_t)b * T * HD + (size_t)h * hs;
      for (int i0 = 0; i0 < T; i0 += att_block) {
        int i1 = i0 + att_block < T ? i0 + att_block : T, rows = i1 - i0;
        /* S[i0:i1, 0:i1] = scale Q[i0:i1] K[0:i1]^T */
        fm_gemm(0, 1, rows, i1, hs, scale, Q + (size_t)i0 * W, W, K, W, 0.0f,
                P + (size_t)i0 * T, T);
        softmax_rows(P, T, i0, i1);
        /* O[i0:i1] = P[i0:i1, 0:i1] V[0:i1] */
        fm_gemm(0, 0, rows, hs, i1, 1.0f, P + (size_t)i0 * T, T, V, W, 0.0f, O + (size_t)i0 * HD,
                HD);
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

/* dout [B,T,H hs] -> dqkv [B,T,W] (written, every value). With dP = dO V^T and
 * dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik) scale (j <= i):
 *   dQ = dS K,  dK = sum over the group's query heads of dS^T Q,  dV = sum of P^T dO.
 * scratch: rows x T floats for dP/dS of one row block. */
void fm_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int H, int KVH, int hs) {
  const int W = (H + 2 * KVH) * hs, HD = H * hs, group = H / KVH;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const size_t base = (size_t)b * T * W;
      const size_t koff = (size_t)HD + (size_t)(h / group) * hs, voff = koff + (size_t)KVH * hs;
      const float *Q = qkv + base + (size_t)h * hs, *K = qkv + base + koff, *V = qkv + base + voff;
      float *dQ = dqkv + base + (size_t)h * hs, *dK = dqkv + base + koff, *dV = dqkv + base + voff;
      const float *P = att + ((size_t)b * H + h) * T * T;
      const float *dO = dout + (size_t)b * T * HD + (size_t)h * hs;
      /* last row block first: it reaches every column (i1 = T), so for the group's
       * first query head its dK and dV GEMMs write them (beta 0) and everything after
       * adds to them: dqkv needs no clearing pass */
      for (int i0 = (T - 1) / att_block * att_block; i0 >= 0; i0 -= att_block) {
        int i1 = i0 + att_block < T ? i0 + att_block : T, rows = i1 - i0;
        const float beta = i1 == T && h % group == 0 ? 0.0f : 1.0f;
        const float *Pb = P + (size_t)i0 * T;
        float *dS = scratch; /* row i of the block at dS + (i - i0) T */
        /* dP[i0:i1, 0:i1] = dO[i0:i1] V[0:i1]^T */
        fm_gemm(0, 1, rows, i1, hs, 1.0f, dO + (size_t)i0 * HD, HD, V, W, 0.0f, dS, T);
        /* dV[0:i1] += P[i0:i1, 0:i1]^T dO[i0:i1]  (P is zero above the diagonal) */
        fm_gemm(1, 0, i1, hs, rows, 1.0f, Pb, T, dO + (size_t)i0 * HD, HD, beta, dV, W);
        softmax_backward_rows(dS, P, T, i0, i1, scale);
        /* dQ[i0:i1] = dS[i0:i1, 0:i1] K[0:i1];  dK[0:i1] += dS^T Q[i0:i1] */
        fm_gemm(0, 0, rows, hs, i1, 1.0f, dS, T, K, W, 0.0f, dQ + (size_t)i0 * W, W);
        fm_gemm(1, 0, i1, hs, rows, 1.0f, dS, T, Q + (size_t)i0 * W, W, beta, dK, W);
      }
    }
}
