/* attention.c - the causal attention core on the GPU: the fused kernels of
 * flash_attention.cu behind nn.h's fm_attention_forward/backward signature.
 * The CPU keeps the [B,H,T,T] probabilities in `att`; here `att` keeps only what the
 * backward needs to recompute them tile by tile: the log-sum-exp of each query row
 * [B,H,T], and a copy of the output [B,T,H hs] (for D_i = dO_i . O_i, which the
 * CPU's signature does not pass to the backward). */
#include "context.h"

size_t fm_cu_attention_saved(int B, int T, int H, int hs) {
  return (size_t)B * H * T + (size_t)B * T * H * hs;
}

static int bf16_wmma = 0; /* bf16 on the WMMA kernels instead of the mma.sync ones */

void fm_cu_attention_use_wmma(int on) { bf16_wmma = on != 0; }

/* the kernels' tile products for the context's precision: 0 exact fp32, 1 TF32,
 * 2 bf16 (mma.sync), 3 bf16 (WMMA) */
static int tile_mode(const fm_cu *cu) {
  return cu->prec == FM_PREC_BF16 ? (bf16_wmma ? 3 : 2) : cu->prec == FM_PREC_TF32 ? 1 : 0;
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

fm_err fm_cu_attention_forward(fm_cu *cu, float *out, float *att, const float *qkv, int B, int T,
                               int H, int KVH, int hs) {
  FM_CHECK(check_shape(T, H, KVH, hs));
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
