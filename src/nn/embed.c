/* embed.c - token plus position embedding. */
#include "nn.h"
#include "vmath.h"

#include <string.h>

/* out[B,T,D] = wte[tok[b,t], :] + wpe[t, :]   (wte [V,D], wpe [C,D], T <= C; wpe NULL:
 * no position embedding, the llama family's rotary embeddings act in attention) */
FM_VEC void fm_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe, int B,
                      int T, int D) {
  if (!wpe) {
    for (int n = 0; n < B * T; n++)
      memcpy(out + (size_t)n * D, wte + (size_t)tok[n] * D, (size_t)D * sizeof(float));
    return;
  }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      float *restrict o = out + ((size_t)b * T + t) * D;
      const float *restrict we = wte + (size_t)tok[b * T + t] * D;
      const float *restrict pe = wpe + (size_t)t * D;
      for (int i = 0; i < D; i++) o[i] = we[i] + pe[i];
    }
}

/* dwte[tok[b,t]] += dout[b,t];  dwpe[t] += dout[b,t]  (either may be NULL) */
FM_VEC void fm_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok, int B,
                       int T, int D) {
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const float *restrict d = dout + ((size_t)b * T + t) * D;
      if (dwte) {
        float *restrict we = dwte + (size_t)tok[b * T + t] * D;
        for (int i = 0; i < D; i++) we[i] += d[i];
      }
      if (dwpe) {
        float *restrict pe = dwpe + (size_t)t * D;
        for (int i = 0; i < D; i++) pe[i] += d[i];
      }
    }
}
