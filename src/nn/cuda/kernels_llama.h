/* kernels_llama.h - C-callable launchers of the llama- and MoE-family kernels
 * (src/nn/cuda), as kernels.h's: each mirrors the CPU kernel of src/nn/nn.h with the
 * same shapes and conventions, every pointer device memory, the work queued on
 * `stream` (a cudaStream_t as void*). Launchers return the CUDA error of the launch.
 *
 * Determinism: no floating-point atomics. Column sums go in two fixed-order stages
 * (colsum.cu's scheme, with a row stride), reductions inside a row use a fixed tree,
 * the MoE dispatch is a stable sort (so each expert's rows stay in token order), and
 * the combine and the backward's sums over a token's picks gather in slot order. */
#ifndef FEDMOE_NN_CUDA_KERNELS_LLAMA_H
#define FEDMOE_NN_CUDA_KERNELS_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dense.cu: row-strided bias broadcast and column sums */
/* out[N,OC] (row stride ldo) (+)= b[OC] (accumulate 0: written) */
int fm_cuk_bias_rows_ld(float *out, int ldo, const float *b, int N, int OC, int accumulate,
                        void *stream);
/* out[C] += sum over n of in[n, C] (row stride ld); scratch fm_cuk_colsum_scratch(N, C) */
int fm_cuk_colsum_ld(float *out, const float *in, int ld, int N, int C, float *scratch,
                     void *stream);

/* ---- rmsnorm.cu: out[N,C] (row stride ld) = inp rstd w; keeps rstd[N] */
int fm_cuk_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C,
                           int ld, float eps, void *stream);
/* dinp (+)= (may be NULL, may be dout when not accumulating); dw[C] += (may be NULL;
 * scratch fm_cuk_colsum_scratch(N, C) floats) */
int fm_cuk_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, int N, int C, int ld, int accumulate,
                            float *scratch, void *stream);

/* ---- rope.cu: x [B,T, nh heads of hs] (row stride ld) rotated in place; dir +1
 * forward, -1 the backward (the inverse rotation) */
int fm_cuk_rope(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hs,
                int ld, float dir, void *stream);

/* ---- swiglu.cu */
/* a[rows,F] = silu(gu[:, :F]) * gu[:, F:] */
int fm_cuk_swiglu_forward(float *a, const float *gu, int rows, int F, void *stream);
/* dgu[rows,2F] (written) from da[rows,F] */
int fm_cuk_swiglu_backward(float *dgu, const float *gu, const float *da, int rows, int F,
                           void *stream);
/* shared expert gate: sg[n] = sigmoid(x[n] . wsg), out[n] += sg[n] y[n] (rows of D) */
int fm_cuk_gate_combine(float *out, float *sg, const float *y, const float *x, const float *wsg,
                        int N, int D, void *stream);
/* dz[n] = <dout[n], y[n]> sg (1 - sg), dy[n] = sg dout[n] */
int fm_cuk_gate_backward(float *dy, float *dz, const float *dout, const float *y, const float *sg,
                         int N, int D, void *stream);

/* ---- router.cu: router.c and loadbalance.c. allowed: a bit per expert (E <= 64) */
int fm_cuk_router_forward(float *probs, int32_t *picks, float *wts, const float *logits,
                          uint64_t allowed, int keff, int N, int E, int k, int renorm, void *stream);
int fm_cuk_router_backward(float *dlogits, const float *dwts, const float *dprobs,
                           const float *probs, const int32_t *picks, const float *wts, int N, int E,
                           int k, int renorm, void *stream);
/* f[E] and *lb (one device double) = coef E sum_e f_e P_e; part [E] doubles of scratch */
int fm_cuk_loadbalance_forward(double *lb, float *f, double *part, const float *probs,
                               const int32_t *picks, int N, int E, int k, float coef, void *stream);
/* dprobs[N,E] += dlb coef E f_e / N */
int fm_cuk_loadbalance_backward(float *dprobs, const float *f, int N, int E, float coef, float dlb,
                                void *stream);

/* ---- moe_dispatch.cu: the token -> expert assignment sorted on the device.
 * The N keff (token, slot) pairs in token order, i = n keff + j, are sorted by expert
 * with CUB's stable radix sort; pos is a pair's place in that order, so expert e's
 * rows are start[e]..start[e+1) in token order (moe.c's counting sort, the same
 * order). key, val, skey, sval [N keff] scratch; sort_tmp of fm_cuk_moe_sort_bytes. */
size_t fm_cuk_moe_sort_bytes(int npos);
/* -> start[E+1], tok[npos], slot[npos], inv[npos] (inv[n keff + j] = pos) */
int fm_cuk_moe_dispatch(int32_t *start, int32_t *tok, int32_t *slot, int32_t *inv,
                        const int32_t *picks, int N, int E, int k, int keff, int32_t *key,
                        int32_t *val, int32_t *skey, int32_t *sval, void *sort_tmp,
                        size_t sort_bytes, void *stream);
/* dst[pos, 0..W) = src[idx[pos], 0..W) (row strides W) */
int fm_cuk_gather_rows(float *dst, const float *src, const int32_t *idx, int npos, int W,
                       void *stream);
/* out[n] += sum over j < keff, in slot order, of wts[n,j] y[inv[n keff + j]] (rows of D) */
int fm_cuk_moe_combine(float *out, const float *y, const float *wts, const int32_t *inv, int N,
                       int D, int k, int keff, void *stream);
/* dwts[n,slot] = <dout[tok], y[pos]>, dy[pos] = wts dout[tok] (dwts' other slots untouched) */
int fm_cuk_moe_combine_backward(float *dy, float *dwts, const float *dout, const float *y,
                                const float *wts, const int32_t *tok, const int32_t *slot,
                                int npos, int D, int k, void *stream);
/* acc[n, 0..W) (+)= sum over j < keff, in slot order, of src[inv[n keff + j], 0..W) */
int fm_cuk_moe_gather_sum(float *acc, const float *src, const int32_t *inv, int N, int W, int keff,
                          int accumulate, void *stream);

#ifdef __cplusplus
}
#endif
#endif
