/* attention.c - the causal attention core on the GPU behind nn.h's
 * fm_attention_forward/backward signature, on one of two paths:
 *
 * fused (flash_attention.cu): the T x T scores never written; `att` keeps only what
 *   the backward needs to recompute them tile by tile: the log-sum-exp of each query
 *   row [B,H,T], then a copy of the output [B,T,H hs] (for D_i = dO_i . O_i, which the
 *   CPU's signature does not pass to the backward). Any KVH dividing H.
 * GEMM: per sequence the heads' score GEMMs as one strided cuBLAS batch, the causal
 *   softmax kernel between them; `att` holds the probabilities [B,H,T,T] as on the
 *   CPU. Multi-head only (KVH = H: heads a constant stride apart).
 *
 * Which one: bf16 runs fused (tensor-core tiles in registers); fp32 and tf32 run the
 * GEMM path when the heads allow it, since there cuBLAS's fp32/TF32 GEMMs beat the
 * fused kernels' (measured on an H200 at 8 x 1024: tf32 fused 150 ms a step against
 * 66, before the fused loads were batched); grouped-query heads always run fused.
 * FEDMOE_CUDA_ATTENTION=fused or =gemm forces one (figures, comparisons). The choice is
 * a function of the precision and the shapes only, so a backward always reads `att`
 * as its forward wrote it; `att` must hold fm_cu_attention_saved floats (both
 * layouts fit). */
#include "context.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

fm_err fm_cu_gemm_strided(fm_cu *cu, int ta, int tb, int M, int N, int K, float alpha,
                          const float *A, int lda, long long sa, const float *B, int ldb,
                          long long sb, float beta, float *C, int ldc, long long sc, int count);

/* = nn.h's fm_attention_saved (the model's arena sizes att with that one) */
size_t fm_cu_attention_saved(int B, int T, int H, int hs) {
  const size_t probs = (size_t)B * H * T * T, fused = (size_t)B * H * T + (size_t)B * T * H * hs;
  return probs > fused ? probs : fused;
}

/* 0 auto, 1 fused, 2 GEMM, set by fm_cu_attention_set_path (tests); -1: the context's
 * (FEDMOE_CUDA_ATTENTION) */
static int path = -1;

void fm_cu_attention_set_path(int p) { path = p >= 0 && p <= 2 ? p : 0; }

static int use_gemm(const fm_cu *cu, int H, int KVH) {
  if (KVH != H) return 0;
  const int f = path >= 0 ? path : cu->attn_path;
  return f == 2 || (f == 0 && cu->prec != FM_PREC_BF16);
}

/* the fused kernels' tile products for the context's precision: 0 exact fp32, 1 TF32,
 * 2 bf16 (mma.sync) */
static int tile_mode(const fm_cu *cu) {
  return cu->prec == FM_PREC_BF16 ? 2 : cu->prec == FM_PREC_TF32 ? 1 : 0;
}

static fm_err check_shape(int T, int H, int KVH, int hs) {
  if (hs <= 0 || hs > FM_CU_ATTENTION_MAX_HS)
    FM_ERROR(FM_ERR_ARG, "GPU attention: head size %d is not supported (1..%d)", hs,
             FM_CU_ATTENTION_MAX_HS);
  if (H <= 0 || KVH <= 0 || H % KVH)
    FM_ERROR(FM_ERR_ARG, "GPU attention: %d query heads are not a multiple of %d key/value heads",
             H, KVH);
  if (T <= 0) FM_ERROR(FM_ERR_ARG, "GPU attention: sequence length %d", T);
  return FM_OK;
}

/* ---- the GEMM path (KVH = H, D = H hs, row stride 3D) ----
 *   S = q k^T (scaled in the softmax), P = causal softmax(S), out = P v
 * Backward (dS = P o (dP - rowsum(dP o P)) / sqrt(hs)):
 *   dP = dout v^T, dv = P^T dout, dq = dS k, dk = dS^T q */
static fm_err gemm_forward(fm_cu *cu, float *out, float *att, const float *qkv, int B, int T, int H,
                           int hs) {
  const int D = H * hs, D3 = 3 * D;
  const long long TT = (long long)T * T;
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * T * D3, *k = q + D;
    float *S = att + (size_t)b * H * TT;
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 1, T, T, hs, 1.0f, q, D3, hs, k, D3, hs, 0.0f, S, T, TT, H));
  }
  FM_CUK(fm_cuk_causal_softmax(att, B * H * T, T, 1.0f / sqrtf((float)hs), cu->stream),
         "causal softmax");
  for (int b = 0; b < B; b++) {
    const float *v = qkv + (size_t)b * T * D3 + 2 * D;
    const float *P = att + (size_t)b * H * TT;
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 0, T, hs, T, 1.0f, P, T, TT, v, D3, hs, 0.0f,
                                out + (size_t)b * T * D, D, hs, H));
  }
  return FM_OK;
}

static fm_err gemm_backward(fm_cu *cu, float *dqkv, const float *dout, const float *qkv,
                            const float *att, int B, int T, int H, int hs) {
  const int D = H * hs, D3 = 3 * D;
  const long long TT = (long long)T * T;
  const float scale = 1.0f / sqrtf((float)hs);
  float *dS;
  FM_CHECK(fm_cu_scratch(cu, &dS, (size_t)H * TT * sizeof(float)));
  for (int b = 0; b < B; b++) {
    const float *q = qkv + (size_t)b * T * D3, *k = q + D, *v = q + 2 * D;
    const float *P = att + (size_t)b * H * TT, *dO = dout + (size_t)b * T * D;
    float *dq = dqkv + (size_t)b * T * D3, *dk = dq + D, *dv = dq + 2 * D;
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 1, T, T, hs, 1.0f, dO, D, hs, v, D3, hs, 0.0f, dS, T, TT, H));
    FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, T, hs, T, 1.0f, P, T, TT, dO, D, hs, 0.0f, dv, D3, hs, H));
    FM_CUK(fm_cuk_causal_softmax_backward(dS, P, H * T, T, scale, cu->stream), "softmax backward");
    FM_CHECK(fm_cu_gemm_strided(cu, 0, 0, T, hs, T, 1.0f, dS, T, TT, k, D3, hs, 0.0f, dq, D3, hs, H));
    FM_CHECK(fm_cu_gemm_strided(cu, 1, 0, T, hs, T, 1.0f, dS, T, TT, q, D3, hs, 0.0f, dk, D3, hs, H));
  }
  return FM_OK;
}

fm_err fm_cu_attention_forward(fm_cu *cu, float *out, float *att, const float *qkv, int B, int T,
                               int H, int KVH, int hs) {
  FM_CHECK(check_shape(T, H, KVH, hs));
  if (use_gemm(cu, H, KVH)) return gemm_forward(cu, out, att, qkv, B, T, H, hs);
  float *lse = att, *ocopy = att + (size_t)B * H * T;
  const int mode = tile_mode(cu);
  const size_t nq = (size_t)B * T * (H + 2 * KVH) * hs;
  void *qkvh = NULL;
  if (mode == 2) { /* the mma kernels read a bf16 copy */
    FM_CHECK(fm_cu_scratch(cu, &qkvh, nq * 2));
    FM_CUK(fm_cuk_to_bf16(qkvh, qkv, nq, cu->stream), "attention input to bf16");
  }
  FM_CUK(fm_cuk_attention_forward(out, ocopy, lse, qkv, qkvh, B, T, H, KVH, hs, mode, cu->stream),
         "fused attention forward");
  return FM_OK;
}

fm_err fm_cu_attention_backward(fm_cu *cu, float *dqkv, float *scratch, const float *dout,
                                const float *qkv, const float *att, int B, int T, int H, int KVH,
                                int hs) {
  (void)scratch;
  FM_CHECK(check_shape(T, H, KVH, hs));
  if (use_gemm(cu, H, KVH)) return gemm_backward(cu, dqkv, dout, qkv, att, B, T, H, hs);
  const float *lse = att, *o = att + (size_t)B * H * T;
  const int mode = tile_mode(cu);
  /* scratch: D [B,H,T] | bf16 copies of qkv and dout (mode 2) */
  const size_t nl = (size_t)B * H * T, nq = (size_t)B * T * (H + 2 * KVH) * hs,
               no = (size_t)B * T * H * hs, lb = (nl * sizeof(float) + 255) / 256 * 256,
               qb = (nq * 2 + 255) / 256 * 256;
  unsigned char *s;
  FM_CHECK(fm_cu_scratch(cu, &s, lb + (mode == 2 ? qb + no * 2 : 0)));
  float *Dv = (float *)s;
  void *qkvh = NULL, *douth = NULL;
  if (mode == 2) {
    qkvh = s + lb, douth = s + lb + qb;
    FM_CUK(fm_cuk_to_bf16(qkvh, qkv, nq, cu->stream), "attention input to bf16");
    FM_CUK(fm_cuk_to_bf16(douth, dout, no, cu->stream), "attention gradient to bf16");
  }
  FM_CUK(fm_cuk_attention_backward(dqkv, Dv, dout, qkv, douth, qkvh, o, lse, B, T, H, KVH, hs, mode,
                                   cu->stream),
         "fused attention backward");
  return FM_OK;
}
