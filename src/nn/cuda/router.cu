/* router.cu - MoE routing (src/nn/router.c) and the load-balancing term
 * (src/nn/loadbalance.c) on the GPU. A router row is at most FM_MAX_EXPERTS (64)
 * values, so one thread takes one row and runs the CPU's loops in the CPU's order:
 * the softmax over the allowed experts, keff passes of argmax with strict '>' (ties to
 * the lower index), the weights renormalised over the picks or not. The load balance
 * sums each expert's probabilities in double through a fixed tree, one block per
 * expert, then the experts in order. */
#include "common.cuh"
#include "kernels_llama.h"

__global__ void router_fwd(float *probs, int32_t *picks, float *wts, const float *logits,
                           uint64_t allowed, int keff, int N, int E, int k, int renorm) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const float *z = logits + (size_t)n * E;
  float *p = probs + (size_t)n * E;
  int32_t *pk = picks + (size_t)n * k;
  float *w = wts + (size_t)n * k;
  float mx = -INFINITY;
  for (int e = 0; e < E; e++)
    if ((allowed >> e & 1) && z[e] > mx) mx = z[e];
  float s = 0.0f;
  for (int e = 0; e < E; e++) {
    p[e] = (allowed >> e & 1) ? expf(z[e] - mx) : 0.0f;
    s += p[e];
  }
  const float inv = 1.0f / s;
  for (int e = 0; e < E; e++) p[e] *= inv;
  uint64_t taken = 0;
  float psum = 0.0f;
  for (int j = 0; j < keff; j++) {
    int best = -1;
    for (int e = 0; e < E; e++) {
      if ((taken >> e & 1) || !(allowed >> e & 1)) continue;
      if (best < 0 || p[e] > p[best]) best = e;
    }
    taken |= (uint64_t)1 << best;
    pk[j] = best;
    psum += p[best];
  }
  for (int j = 0; j < keff; j++) w[j] = renorm ? p[pk[j]] / psum : p[pk[j]];
  for (int j = keff; j < k; j++) {
    pk[j] = -1;
    w[j] = 0.0f;
  }
}

extern "C" int fm_cuk_router_forward(float *probs, int32_t *picks, float *wts, const float *logits,
                                     uint64_t allowed, int keff, int N, int E, int k, int renorm,
                                     void *stream) {
  if (N > 0)
    router_fwd<<<fm_blocks(N, 128), 128, 0, (cudaStream_t)stream>>>(probs, picks, wts, logits,
                                                                     allowed, keff, N, E, k, renorm);
  return (int)cudaGetLastError();
}

/* dlogits (may be the logits' buffer) from dwts and dprobs, router.c's formulas */
__global__ void router_bwd(float *dlogits, const float *dwts, const float *dprobs,
                           const float *probs, const int32_t *picks, const float *wts, int N, int E,
                           int k, int renorm) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  const float *p = probs + (size_t)n * E;
  const int32_t *pk = picks + (size_t)n * k;
  const float *w = wts + (size_t)n * k, *dw = dwts + (size_t)n * k;
  float *d = dlogits + (size_t)n * E;
  for (int e = 0; e < E; e++) d[e] = dprobs ? dprobs[(size_t)n * E + e] : 0.0f;
  if (renorm) {
    float S = 0.0f, dot = 0.0f;
    for (int j = 0; j < k && pk[j] >= 0; j++) {
      S += p[pk[j]];
      dot += dw[j] * w[j];
    }
    for (int j = 0; j < k && pk[j] >= 0; j++) d[pk[j]] += (dw[j] - dot) / S;
  } else {
    for (int j = 0; j < k && pk[j] >= 0; j++) d[pk[j]] += dw[j];
  }
  float pd = 0.0f;
  for (int e = 0; e < E; e++) pd += p[e] * d[e];
  for (int e = 0; e < E; e++) d[e] = p[e] * (d[e] - pd);
}

extern "C" int fm_cuk_router_backward(float *dlogits, const float *dwts, const float *dprobs,
                                      const float *probs, const int32_t *picks, const float *wts,
                                      int N, int E, int k, int renorm, void *stream) {
  if (N > 0)
    router_bwd<<<fm_blocks(N, 128), 128, 0, (cudaStream_t)stream>>>(dlogits, dwts, dprobs, probs,
                                                                     picks, wts, N, E, k, renorm);
  return (int)cudaGetLastError();
}

#define LB_THREADS 256

/* block e: the top-1 count of expert e and the sum of its probabilities (double, fixed
 * tree); f[e] = count / N and part[e] = f[e] * (P / N) */
__global__ void lb_parts(double *part, float *f, const float *probs, const int32_t *picks, int N,
                         int E, int k) {
  __shared__ double sp[LB_THREADS];
  __shared__ int sc[LB_THREADS];
  const int e = blockIdx.x, t = threadIdx.x;
  double P = 0.0;
  int c = 0;
  for (int n = t; n < N; n += LB_THREADS) {
    P += probs[(size_t)n * E + e];
    c += picks[(size_t)n * k] == e;
  }
  sp[t] = P;
  sc[t] = c;
  __syncthreads();
  for (int h = LB_THREADS / 2; h > 0; h /= 2) {
    if (t < h) {
      sp[t] += sp[t + h];
      sc[t] += sc[t + h];
    }
    __syncthreads();
  }
  if (t == 0) {
    const float fe = (float)sc[0] / (float)N;
    f[e] = fe;
    part[e] = (double)fe * (sp[0] / N);
  }
}

__global__ void lb_finish(double *lb, const double *part, int E, float coef) {
  double s = 0.0;
  for (int e = 0; e < E; e++) s += part[e];
  *lb = (double)coef * E * s;
}

extern "C" int fm_cuk_loadbalance_forward(double *lb, float *f, double *part, const float *probs,
                                          const int32_t *picks, int N, int E, int k, float coef,
                                          void *stream) {
  cudaStream_t st = (cudaStream_t)stream;
  if (N <= 0) {
    cudaMemsetAsync(f, 0, (size_t)E * sizeof(float), st);
    cudaMemsetAsync(lb, 0, sizeof(double), st);
    return (int)cudaGetLastError();
  }
  lb_parts<<<E, LB_THREADS, 0, st>>>(part, f, probs, picks, N, E, k);
  lb_finish<<<1, 1, 0, st>>>(lb, part, E, coef);
  return (int)cudaGetLastError();
}

__global__ void lb_bwd(float *dprobs, const float *f, int N, int E, float coef, float dlb) {
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (size_t)N * E) return;
  const int e = (int)(i % E);
  dprobs[i] += dlb * coef * (float)E * f[e] / (float)N;
}

extern "C" int fm_cuk_loadbalance_backward(float *dprobs, const float *f, int N, int E, float coef,
                                           float dlb, void *stream) {
  const size_t total = (size_t)N * E;
  if (N > 0)
    lb_bwd<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(dprobs, f, N, E, coef, dlb);
  return (int)cudaGetLastError();
}
