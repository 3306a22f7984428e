/* attention_cached.c - the attention of a decoding step: a few new query rows
 * against the keys and values of every position so far (the decoder's cache). */
#include "decode_impl.h"
#include "nn.h"
#include "vmath.h"

#include <math.h>

/* Causal softmax of the n rows of S (row stride ld) in place: row i, at position
 * p0 + i, over columns 0..p0+i; the columns after it, up to p0+n, are set to 0. The
 * same arithmetic as attention.c's rows (max, fm_vexpf, one sum, one reciprocal). */
FM_VEC static void softmax_rows(float *S, int ld, int p0, int n) {
  for (int i = 0; i < n; i++) {
    float *restrict p = S + (size_t)i * ld;
    const int len = p0 + i + 1;
    const float mx = fm_vmax(p, len);
    for (int j = 0; j < len; j++) p[j] = fm_vexpf(p[j] - mx);
    const float inv = 1.0f / fm_vsum(p, len);
    for (int j = 0; j < len; j++) p[j] *= inv;
    for (int j = len; j < p0 + n; j++) p[j] = 0.0f;
  }
}

void fm_attention_cached_forward(float *out, int ldo, float *score, const float *q, int ldq, const float *kc,
                                 const float *vc, int ldkv, int p0, int n, int H, int KVH, int hs) {
  const int T = p0 + n, group = H / KVH;
  const float scale = 1.0f / sqrtf((float)hs);
  for (int h = 0; h < H; h++) {
    const float *K = kc + (size_t)(h / group) * hs, *V = vc + (size_t)(h / group) * hs;
    /* S[n, T] = scale Q_h K^T;  O_h = softmax(S) V */
    fm_gemm(0, 1, n, T, hs, scale, q + (size_t)h * hs, ldq, K, ldkv, 0.0f, score, T);
    softmax_rows(score, T, p0, n);
    fm_gemm(0, 0, n, hs, T, 1.0f, score, T, V, ldkv, 0.0f, out + (size_t)h * hs, ldo);
  }
}
