/* decode_impl.h - the inference-only kernels of the decoder (model_decode.c),
 * private to src/nn and its tests. */
#ifndef FEDMOE_NN_DECODE_IMPL_H
#define FEDMOE_NN_DECODE_IMPL_H

/* ---- attention_cached.c: causal attention of n new rows against a key/value cache.
 * q [n, H hs] (row stride ldq): the new rows' query heads, at positions p0..p0+n-1;
 * kc, vc [p0+n, KVH hs] (row stride ldkv): the keys and values of every position so
 * far, the new ones included; query head h reads key/value head h / (H/KVH).
 * -> out [n, H hs] (row stride ldo, written). score: scratch [n, p0+n].
 * Row i is softmax(q_i K[0..p0+i]^T / sqrt(hs)) V[0..p0+i], computed as
 * fm_attention_forward computes it (one GEMM for the scores, the same softmax, one
 * for P V), so with p0 = 0 and n = T the two agree. Inference only: no backward. */
void fm_attention_cached_forward(float *out, int ldo, float *score, const float *q, int ldq, const float *kc,
                                 const float *vc, int ldkv, int p0, int n, int H, int KVH, int hs);

#endif
