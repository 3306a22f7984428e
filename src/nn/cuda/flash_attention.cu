/* flash_attention.cu - the fused causal attention core (flash-attention style), GQA.
 *
 * Layout as src/nn/attention.c: qkv [B,T,W], W = (H + 2 KVH) hs, a row holds
 * [q: H hs | k: KVH hs | v: KVH hs]; query head h reads key/value head h / (H/KVH);
 * out [B,T,H hs]. With s_ij = scale q_i.k_j (scale = 1/sqrt(hs)) and j <= i:
 *   forward   P = softmax_j(s), O = P V, lse_i = log sum_j exp(s_ij)   (lse [B,H,T])
 *   backward  P recomputed as exp(s - lse), dP = dO V^T, D_i = dO_i . O_i,
 *             dS = P (dP - D) scale, dQ = dS K, dK = dS^T Q, dV = P^T dO.
 * The T x T matrices are never written: a block takes a tile of ROWS queries (or keys)
 * into shared memory and walks the tiles of keys (or queries) it meets below the
 * diagonal, keeping the softmax's running max and sum (forward). The backward runs two
 * kernels so that nothing is summed by atomics: one block per key tile accumulates
 * that tile's dK and dV over every query head of its group and every query tile, in a
 * fixed order; one block per query tile accumulates dQ over the key tiles. Each output
 * value is written by exactly one thread, so runs are bitwise repeatable.
 *
 * A block has ROWS/16 warps; warp w owns rows 16w..16w+15 of its tile from the GEMMs
 * to the softmax, so warps only meet at tile loads. The tile GEMMs are a warp's 16 x N
 * accumulator (Acc): tensor-core WMMA on fp32 tiles rounded to TF32 (E = tf32), fp32
 * accumulation, or exact fp32 FMAs (E = float). bf16 runs on the kernels of
 * flash_attention_mma.cu, which keep the tiles in registers and feed the tensor cores
 * by ldmatrix and cp.async. Inputs
 * stay fp32 in global memory and are rounded to E when a tile is loaded; the softmax
 * and all statistics are fp32. Head sizes up to 128 are padded with zero columns to a
 * compiled size HSP of 32, 64 or 128. */
#include "common.cuh"
#include "kernels.h"

#include <mma.h>

namespace {

constexpr float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;

struct Geo {
  int T, H, KVH, hs, W, HD, group;
  float scale;
};

/* The two kinds of tile product, E: float (exact fp32 FMAs) and tf32 (tensor cores on
 * fp32 tiles rounded to TF32 in the fragments).
 * S is the type a shared tile stores; fp32 rows get an odd stride (no bank conflicts
 * when lanes walk a column), WMMA tiles a stride with 16-byte rows. */
struct tf32 {};
template <typename E> struct Elt;
template <> struct Elt<float> {
  using S = float;
  static constexpr int PAD = 1;
  static __device__ __forceinline__ float cvt(float x) { return x; }
};
template <> struct Elt<tf32> {
  using S = float;
  static constexpr int PAD = 4;
  static __device__ __forceinline__ float cvt(float x) { return x; }
};

/* A warp's 16 x N fp32 accumulator C += A B over K, A row-major [16][lda] and
 * B(k,n) = B[k ldb + n] (BCOL false) or B[n ldb + k] (BCOL true), all in shared memory. */
template <typename E, int N> struct Acc;

template <int N> struct Acc<float, N> { /* lane l owns columns l, l+32, ... of all 16 rows */
  static constexpr int J = (N + FM_WARP - 1) / FM_WARP;
  float c[16][J];
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int r = 0; r < 16; r++)
#pragma unroll
      for (int j = 0; j < J; j++) c[r][j] = 0.0f;
  }
  template <bool BCOL>
  __device__ __forceinline__ void mma(const float *A, int lda, const float *B, int ldb, int K) {
    const int lane = threadIdx.x % FM_WARP;
    for (int k = 0; k < K; k++) {
      float b[J];
#pragma unroll
      for (int j = 0; j < J; j++) {
        const int n = lane + FM_WARP * j;
        b[j] = n < N ? (BCOL ? B[n * ldb + k] : B[k * ldb + n]) : 0.0f;
      }
#pragma unroll
      for (int r = 0; r < 16; r++) {
        const float a = A[r * lda + k];
#pragma unroll
        for (int j = 0; j < J; j++) c[r][j] = fmaf(a, b[j], c[r][j]);
      }
    }
  }
  __device__ __forceinline__ void store(float *C, int ldc) const {
    const int lane = threadIdx.x % FM_WARP;
#pragma unroll
    for (int r = 0; r < 16; r++)
#pragma unroll
      for (int j = 0; j < J; j++)
        if (lane + FM_WARP * j < N) C[r * ldc + lane + FM_WARP * j] = c[r][j];
  }
  __device__ __forceinline__ void load(const float *C, int ldc) {
    const int lane = threadIdx.x % FM_WARP;
#pragma unroll
    for (int r = 0; r < 16; r++)
#pragma unroll
      for (int j = 0; j < J; j++)
        c[r][j] = lane + FM_WARP * j < N ? C[r * ldc + lane + FM_WARP * j] : 0.0f;
  }
};

template <int N> struct Acc<tf32, N> { /* N/16 WMMA 16x16 fp32 accumulators, k steps of 8 */
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float> f[N / 16];
  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int j = 0; j < N / 16; j++) nvcuda::wmma::fill_fragment(f[j], 0.0f);
  }
  template <typename F> static __device__ __forceinline__ void round(F &x) {
#pragma unroll
    for (int e = 0; e < x.num_elements; e++) x.x[e] = nvcuda::wmma::__float_to_tf32(x.x[e]);
  }
  template <bool BCOL>
  __device__ __forceinline__ void mma(const float *A, int lda, const float *B, int ldb, int K) {
    using namespace nvcuda;
    for (int k0 = 0; k0 < K; k0 += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
      wmma::load_matrix_sync(a, A + k0, lda);
      round(a);
#pragma unroll
      for (int j = 0; j < N / 16; j++) {
        if constexpr (BCOL) {
          wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> b;
          wmma::load_matrix_sync(b, B + 16 * j * ldb + k0, ldb);
          round(b);
          wmma::mma_sync(f[j], a, b, f[j]);
        } else {
          wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
          wmma::load_matrix_sync(b, B + k0 * ldb + 16 * j, ldb);
          round(b);
          wmma::mma_sync(f[j], a, b, f[j]);
        }
      }
    }
  }
  __device__ __forceinline__ void store(float *C, int ldc) const {
#pragma unroll
    for (int j = 0; j < N / 16; j++)
      nvcuda::wmma::store_matrix_sync(C + 16 * j, f[j], ldc, nvcuda::wmma::mem_row_major);
  }
  __device__ __forceinline__ void load(const float *C, int ldc) {
#pragma unroll
    for (int j = 0; j < N / 16; j++)
      nvcuda::wmma::load_matrix_sync(f[j], C + 16 * j, ldc, nvcuda::wmma::mem_row_major);
  }
};

constexpr size_t align128(size_t b) { return (b + 127) / 128 * 128; }

/* The shared-memory plan of one kernel: `tiles` operand tiles [ROWS][LDT] of E, `sq`
 * fp32 score tiles [ROWS][LDS], `pt` E tiles [ROWS][LDP] (P, dS), `ot` fp32 output
 * tiles [ROWS][LDO], two fp32 vectors [ROWS] (lse, D); the output staging of the
 * backward reuses the operand tiles from the third one on. */
template <typename E, int ROWS, int HSP> struct Plan {
  static constexpr int LDT = HSP + Elt<E>::PAD, LDS = ROWS + 4, LDP = ROWS + Elt<E>::PAD,
                       LDO = HSP + 4;
  using S = typename Elt<E>::S;
  static constexpr size_t TILE = align128(sizeof(S) * ROWS * LDT),
                          SQ = align128(sizeof(float) * ROWS * LDS),
                          PT = align128(sizeof(S) * ROWS * LDP),
                          OT = align128(sizeof(float) * ROWS * LDO),
                          VEC = align128(sizeof(float) * ROWS);
  static_assert(2 * TILE >= OT, "the backward's output staging fits two operand tiles");
};

/* Tile loads: each thread issues a batch of 16 independent global loads before it stores
 * any of them, so a tile costs a few memory latencies; a loop that stores each value
 * before its next load waits out one latency per element, and that made the kernels
 * memory-latency bound (measured: slower than the unfused attention at T = 1024). */
constexpr int LOAD_BATCH = 16;

/* rows t0.. of a [T, stride] slice (hs columns from base) into s[ROWS][ld] as E, zero
 * beyond T and beyond hs (to HSP); by the block's ROWS * 2 threads */
template <typename E, int ROWS, int HSP>
__device__ __forceinline__ void load_tile(typename Elt<E>::S *s, int ld, const float *base, int stride, int t0,
                                          int T, int hs) {
  constexpr int NT = ROWS * 2, PER = ROWS * HSP / NT, BATCH = PER < LOAD_BATCH ? PER : LOAD_BATCH;
  static_assert(PER % BATCH == 0, "whole batches");
#pragma unroll 1
  for (int b0 = 0; b0 < PER; b0 += BATCH) {
    float v[BATCH];
#pragma unroll
    for (int k = 0; k < BATCH; k++) {
      const int idx = threadIdx.x + (b0 + k) * NT, r = idx / HSP, c = idx % HSP, t = t0 + r;
      v[k] = t < T && c < hs ? base[(size_t)t * stride + c] : 0.0f;
    }
#pragma unroll
    for (int k = 0; k < BATCH; k++) {
      const int idx = threadIdx.x + (b0 + k) * NT, r = idx / HSP, c = idx % HSP;
      s[r * ld + c] = Elt<E>::cvt(v[k]);
    }
  }
}

/* rows t0.. of s[ROWS][ld] (fp32) to a [T, stride] slice, hs columns */
template <int ROWS, int HSP>
__device__ __forceinline__ void store_tile(float *base, int stride, const float *s, int ld,
                                           int t0, int T, int hs) {
  for (int idx = threadIdx.x; idx < ROWS * HSP; idx += blockDim.x) {
    const int r = idx / HSP, c = idx % HSP, t = t0 + r;
    if (t < T && c < hs) base[(size_t)t * stride + c] = s[r * ld + c];
  }
}

/* grid (query tiles, H, B). out, ocopy [B,T,HD]; lse [B,H,T] (natural log, of the
 * scaled scores) */
template <typename E, int ROWS, int HSP>
__global__ void __launch_bounds__(ROWS * 2)
    attention_fwd(float *out, float *ocopy, float *lse, const float *qkv, Geo g) {
  using P = Plan<E, ROWS, HSP>;
  using S = typename P::S;
  extern __shared__ __align__(128) unsigned char smem[];
  S *Qs = (S *)smem, *Ks = (S *)(smem + P::TILE), *Vs = (S *)(smem + 2 * P::TILE);
  float *Ss = (float *)(smem + 3 * P::TILE);
  S *Ps = (S *)(smem + 3 * P::TILE + P::SQ);
  float *Os = (float *)(smem + 3 * P::TILE + P::SQ + P::PT);
  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, q0 = qt * ROWS, T = g.T;
  const float *seq = qkv + (size_t)b * T * g.W;
  const float *Qg = seq + h * g.hs, *Kg = seq + g.HD + (h / g.group) * g.hs,
              *Vg = Kg + g.KVH * g.hs;
  const int w = threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  const int row = 16 * w + lane / 2, half = lane % 2, i = q0 + row; /* softmax: 2 lanes a row */
  const float sl2 = g.scale * LOG2E; /* scores in log2 units: exp2 */
  load_tile<E, ROWS, HSP>(Qs, P::LDT, Qg, g.W, q0, T, g.hs);
  for (int idx = threadIdx.x; idx < ROWS * P::LDO; idx += blockDim.x) Os[idx] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  const int last = (q0 + ROWS < T ? q0 + ROWS : T) - 1, nkt = last / ROWS + 1;
  for (int kt = 0; kt < nkt; kt++) {
    const int k0 = kt * ROWS;
    __syncthreads(); /* the previous tile's readers are done */
    load_tile<E, ROWS, HSP>(Ks, P::LDT, Kg, g.W, k0, T, g.hs);
    load_tile<E, ROWS, HSP>(Vs, P::LDT, Vg, g.W, k0, T, g.hs);
    __syncthreads();
    Acc<E, ROWS> s;
    s.zero();
    s.template mma<true>(Qs + 16 * w * P::LDT, P::LDT, Ks, P::LDT, HSP);
    s.store(Ss + 16 * w * P::LDS, P::LDS);
    __syncwarp();
    const float *srow = Ss + row * P::LDS + half * (ROWS / 2);
    float v[ROWS / 2], mt = -INFINITY;
#pragma unroll
    for (int c = 0; c < ROWS / 2; c++) {
      const int j = k0 + half * (ROWS / 2) + c;
      v[c] = j <= i ? srow[c] * sl2 : -INFINITY;
      mt = fmaxf(mt, v[c]);
    }
    mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
    /* finite from the first tile on: key 0 is below every row's diagonal */
    const float mn = fmaxf(m, mt), alpha = exp2f(m - mn);
    S *prow = Ps + row * P::LDP + half * (ROWS / 2);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < ROWS / 2; c++) {
      const float p = exp2f(v[c] - mn);
      prow[c] = Elt<E>::cvt(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum;
    m = mn;
    if (alpha != 1.0f) { /* the running max moved: rescale this row's output so far */
      float *orow = Os + row * P::LDO + half * (HSP / 2);
#pragma unroll 8
      for (int c = 0; c < HSP / 2; c++) orow[c] *= alpha;
    }
    __syncwarp();
    Acc<E, HSP> o;
    o.load(Os + 16 * w * P::LDO, P::LDO);
    o.template mma<false>(Ps + 16 * w * P::LDP, P::LDP, Vs, P::LDT, ROWS);
    o.store(Os + 16 * w * P::LDO, P::LDO);
    __syncwarp();
  }
  const float inv = 1.0f / l;
  float *orow = Os + row * P::LDO + half * (HSP / 2);
  for (int c = 0; c < HSP / 2; c++) orow[c] *= inv;
  if (half == 0 && i < T) lse[((size_t)b * g.H + h) * T + i] = (m + log2f(l)) * LN2;
  __syncthreads();
  const size_t ob = (size_t)b * T * g.HD + (size_t)h * g.hs;
  store_tile<ROWS, HSP>(out + ob, g.HD, Os, P::LDO, q0, T, g.hs);
  store_tile<ROWS, HSP>(ocopy + ob, g.HD, Os, P::LDO, q0, T, g.hs);
}

/* dK, dV: grid (key tiles, KVH, B); the block walks its group's query heads and the
 * query tiles from its own on, in that order. dqkv's k and v columns (written). */
template <typename E, int ROWS, int HSP>
__global__ void __launch_bounds__(ROWS * 2)
    attention_bwd_dkdv(float *dqkv, const float *dout, const float *qkv, const float *lse,
                       const float *Dv, Geo g) {
  using P = Plan<E, ROWS, HSP>;
  using S = typename P::S;
  extern __shared__ __align__(128) unsigned char smem[];
  S *Ks = (S *)smem, *Vs = (S *)(smem + P::TILE), *Qs = (S *)(smem + 2 * P::TILE),
    *dOs = (S *)(smem + 3 * P::TILE);
  float *Ss = (float *)(smem + 4 * P::TILE);
  S *Pt = (S *)(smem + 4 * P::TILE + P::SQ), *dSt = (S *)(smem + 4 * P::TILE + P::SQ + P::PT);
  float *Ls = (float *)(smem + 4 * P::TILE + P::SQ + 2 * P::PT), *Ds = Ls + P::VEC / sizeof(float);
  float *stage = (float *)Qs;
  const int kt = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, k0 = kt * ROWS, T = g.T;
  const float *seq = qkv + (size_t)b * T * g.W;
  const float *Kg = seq + g.HD + kvh * g.hs, *Vg = Kg + g.KVH * g.hs;
  const int w = threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  const int row = 16 * w + lane / 2, half = lane % 2, j = k0 + row; /* row = key */
  const float sl2 = g.scale * LOG2E;
  load_tile<E, ROWS, HSP>(Ks, P::LDT, Kg, g.W, k0, T, g.hs);
  load_tile<E, ROWS, HSP>(Vs, P::LDT, Vg, g.W, k0, T, g.hs);
  Acc<E, HSP> dk, dv;
  dk.zero();
  dv.zero();
  const int nqt = (T + ROWS - 1) / ROWS;
  for (int hh = 0; hh < g.group; hh++) {
    const int h = kvh * g.group + hh;
    const float *Qg = seq + h * g.hs, *dOg = dout + (size_t)b * T * g.HD + h * g.hs;
    const float *lh = lse + ((size_t)b * g.H + h) * T, *dh = Dv + ((size_t)b * g.H + h) * T;
    for (int qt = kt; qt < nqt; qt++) {
      const int q0 = qt * ROWS;
      __syncthreads();
      load_tile<E, ROWS, HSP>(Qs, P::LDT, Qg, g.W, q0, T, g.hs);
      load_tile<E, ROWS, HSP>(dOs, P::LDT, dOg, g.HD, q0, T, g.hs);
      for (int r = threadIdx.x; r < ROWS; r += blockDim.x) {
        Ls[r] = q0 + r < T ? lh[q0 + r] * LOG2E : 0.0f;
        Ds[r] = q0 + r < T ? dh[q0 + r] : 0.0f;
      }
      __syncthreads();
      Acc<E, ROWS> s; /* S^T: keys x queries */
      s.zero();
      s.template mma<true>(Ks + 16 * w * P::LDT, P::LDT, Qs, P::LDT, HSP);
      s.store(Ss + 16 * w * P::LDS, P::LDS);
      __syncwarp();
      const float *srow = Ss + row * P::LDS + half * (ROWS / 2);
      S *prow = Pt + row * P::LDP + half * (ROWS / 2), *dsrow = dSt + row * P::LDP + half * (ROWS / 2);
      float p[ROWS / 2];
#pragma unroll
      for (int c = 0; c < ROWS / 2; c++) {
        const int ii = half * (ROWS / 2) + c, i = q0 + ii;
        p[c] = j <= i && i < T ? exp2f(srow[c] * sl2 - Ls[ii]) : 0.0f;
        prow[c] = Elt<E>::cvt(p[c]);
      }
      __syncwarp();
      s.zero(); /* dP^T = V dO^T */
      s.template mma<true>(Vs + 16 * w * P::LDT, P::LDT, dOs, P::LDT, HSP);
      s.store(Ss + 16 * w * P::LDS, P::LDS);
      __syncwarp();
#pragma unroll
      for (int c = 0; c < ROWS / 2; c++) {
        const int ii = half * (ROWS / 2) + c;
        dsrow[c] = Elt<E>::cvt(p[c] * (srow[c] - Ds[ii]) * g.scale);
      }
      __syncwarp();
      dv.template mma<false>(Pt + 16 * w * P::LDP, P::LDP, dOs, P::LDT, ROWS);
      dk.template mma<false>(dSt + 16 * w * P::LDP, P::LDP, Qs, P::LDT, ROWS);
    }
  }
  float *base = dqkv + (size_t)b * T * g.W + g.HD + kvh * g.hs;
  __syncthreads();
  dk.store(stage + 16 * w * P::LDO, P::LDO);
  __syncthreads();
  store_tile<ROWS, HSP>(base, g.W, stage, P::LDO, k0, T, g.hs);
  __syncthreads();
  dv.store(stage + 16 * w * P::LDO, P::LDO);
  __syncthreads();
  store_tile<ROWS, HSP>(base + g.KVH * g.hs, g.W, stage, P::LDO, k0, T, g.hs);
}

/* dQ: grid (query tiles, H, B); the block walks the key tiles up to its diagonal.
 * dqkv's q columns (written). */
template <typename E, int ROWS, int HSP>
__global__ void __launch_bounds__(ROWS * 2)
    attention_bwd_dq(float *dqkv, const float *dout, const float *qkv, const float *lse,
                     const float *Dv, Geo g) {
  using P = Plan<E, ROWS, HSP>;
  using S = typename P::S;
  extern __shared__ __align__(128) unsigned char smem[];
  S *Qs = (S *)smem, *dOs = (S *)(smem + P::TILE), *Ks = (S *)(smem + 2 * P::TILE),
    *Vs = (S *)(smem + 3 * P::TILE);
  float *Ss = (float *)(smem + 4 * P::TILE);
  S *dSs = (S *)(smem + 4 * P::TILE + P::SQ);
  float *Ls = (float *)(smem + 4 * P::TILE + P::SQ + 2 * P::PT), *Ds = Ls + P::VEC / sizeof(float);
  float *stage = (float *)Ks;
  const int qt = blockIdx.x, h = blockIdx.y, b = blockIdx.z, q0 = qt * ROWS, T = g.T;
  const float *seq = qkv + (size_t)b * T * g.W;
  const float *Qg = seq + h * g.hs, *Kg = seq + g.HD + (h / g.group) * g.hs,
              *Vg = Kg + g.KVH * g.hs, *dOg = dout + (size_t)b * T * g.HD + h * g.hs;
  const float *lh = lse + ((size_t)b * g.H + h) * T, *dh = Dv + ((size_t)b * g.H + h) * T;
  const int w = threadIdx.x / FM_WARP, lane = threadIdx.x % FM_WARP;
  const int row = 16 * w + lane / 2, half = lane % 2, i = q0 + row;
  const float sl2 = g.scale * LOG2E;
  load_tile<E, ROWS, HSP>(Qs, P::LDT, Qg, g.W, q0, T, g.hs);
  load_tile<E, ROWS, HSP>(dOs, P::LDT, dOg, g.HD, q0, T, g.hs);
  for (int r = threadIdx.x; r < ROWS; r += blockDim.x) {
    Ls[r] = q0 + r < T ? lh[q0 + r] * LOG2E : 0.0f;
    Ds[r] = q0 + r < T ? dh[q0 + r] : 0.0f;
  }
  Acc<E, HSP> dq;
  dq.zero();
  const int last = (q0 + ROWS < T ? q0 + ROWS : T) - 1, nkt = last / ROWS + 1;
  for (int kt = 0; kt < nkt; kt++) {
    const int k0 = kt * ROWS;
    __syncthreads();
    load_tile<E, ROWS, HSP>(Ks, P::LDT, Kg, g.W, k0, T, g.hs);
    load_tile<E, ROWS, HSP>(Vs, P::LDT, Vg, g.W, k0, T, g.hs);
    __syncthreads();
    Acc<E, ROWS> s;
    s.zero();
    s.template mma<true>(Qs + 16 * w * P::LDT, P::LDT, Ks, P::LDT, HSP);
    s.store(Ss + 16 * w * P::LDS, P::LDS);
    __syncwarp();
    const float *srow = Ss + row * P::LDS + half * (ROWS / 2);
    const float li = Ls[row], di = Ds[row];
    float p[ROWS / 2];
#pragma unroll
    for (int c = 0; c < ROWS / 2; c++) {
      const int jj = k0 + half * (ROWS / 2) + c;
      p[c] = jj <= i && i < T ? exp2f(srow[c] * sl2 - li) : 0.0f;
    }
    __syncwarp();
    s.zero(); /* dP = dO V^T */
    s.template mma<true>(dOs + 16 * w * P::LDT, P::LDT, Vs, P::LDT, HSP);
    s.store(Ss + 16 * w * P::LDS, P::LDS);
    __syncwarp();
    S *dsrow = dSs + row * P::LDP + half * (ROWS / 2);
#pragma unroll
    for (int c = 0; c < ROWS / 2; c++) dsrow[c] = Elt<E>::cvt(p[c] * (srow[c] - di) * g.scale);
    __syncwarp();
    dq.template mma<false>(dSs + 16 * w * P::LDP, P::LDP, Ks, P::LDT, ROWS);
  }
  __syncthreads();
  dq.store(stage + 16 * w * P::LDO, P::LDO);
  __syncthreads();
  store_tile<ROWS, HSP>(dqkv + (size_t)b * T * g.W + h * g.hs, g.W, stage, P::LDO, q0, T, g.hs);
}

/* D[b,h,i] = dO_i . O_i for head h, one warp a row */
__global__ void attention_rowdot(float *Dv, const float *dout, const float *o, int B, int T, int H,
                                 int hs) {
  const size_t r = (size_t)blockIdx.x * (blockDim.x / FM_WARP) + threadIdx.x / FM_WARP;
  const int lane = threadIdx.x % FM_WARP;
  if (r >= (size_t)B * H * T) return;
  const int i = (int)(r % T), h = (int)(r / T % H), b = (int)(r / ((size_t)T * H));
  const size_t off = ((size_t)b * T + i) * H * hs + (size_t)h * hs;
  float s = 0.0f;
  for (int c = lane; c < hs; c += FM_WARP) s += dout[off + c] * o[off + c];
  s = fm_warp_sum(s);
  if (lane == 0) Dv[r] = s;
}

/* shared memory of each kernel */
template <typename E, int ROWS, int HSP> constexpr size_t fwd_smem() {
  using P = Plan<E, ROWS, HSP>;
  return 3 * P::TILE + P::SQ + P::PT + P::OT;
}
template <typename E, int ROWS, int HSP> constexpr size_t bwd_smem() {
  using P = Plan<E, ROWS, HSP>;
  return 4 * P::TILE + P::SQ + 2 * P::PT + 2 * P::VEC;
}

template <typename K> static cudaError_t prepare(K kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <typename E, int ROWS, int HSP>
static cudaError_t launch_fwd(float *out, float *ocopy, float *lse, const float *qkv, int B, Geo g,
                              cudaStream_t st) {
  const size_t bytes = fwd_smem<E, ROWS, HSP>();
  cudaError_t e = prepare(attention_fwd<E, ROWS, HSP>, bytes);
  if (e != cudaSuccess) return e;
  dim3 grid((g.T + ROWS - 1) / ROWS, g.H, B);
  attention_fwd<E, ROWS, HSP><<<grid, ROWS * 2, bytes, st>>>(out, ocopy, lse, qkv, g);
  return cudaGetLastError();
}

template <typename E, int ROWS, int HSP>
static cudaError_t launch_bwd(float *dqkv, const float *dout, const float *qkv, const float *lse,
                              const float *Dv, int B, Geo g, cudaStream_t st) {
  const size_t bytes = bwd_smem<E, ROWS, HSP>();
  cudaError_t e = prepare(attention_bwd_dkdv<E, ROWS, HSP>, bytes);
  if (e == cudaSuccess) e = prepare(attention_bwd_dq<E, ROWS, HSP>, bytes);
  if (e != cudaSuccess) return e;
  const int tiles = (g.T + ROWS - 1) / ROWS;
  attention_bwd_dkdv<E, ROWS, HSP>
      <<<dim3(tiles, g.KVH, B), ROWS * 2, bytes, st>>>(dqkv, dout, qkv, lse, Dv, g);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  attention_bwd_dq<E, ROWS, HSP><<<dim3(tiles, g.H, B), ROWS * 2, bytes, st>>>(dqkv, dout, qkv, lse, Dv, g);
  return cudaGetLastError();
}

Geo geo(int T, int H, int KVH, int hs) {
  Geo g;
  g.T = T, g.H = H, g.KVH = KVH, g.hs = hs, g.W = (H + 2 * KVH) * hs, g.HD = H * hs;
  g.group = H / KVH, g.scale = 1.0f / sqrtf((float)hs);
  return g;
}

} // namespace

/* mode 0: exact fp32, 1: TF32 tensor cores (WMMA), 2: bf16 tensor cores (mma.sync,
 * register-resident: flash_attention_mma.cu). Tiles of 64 rows, 32 for exact fp32
 * at head size 128 (its registers and shared memory). */
extern "C" int fm_cuk_attention_forward(float *out, float *ocopy, float *lse, const float *qkv,
                                        const void *qkvh, int B, int T, int H, int KVH, int hs,
                                        int mode, void *stream) {
  if (B <= 0 || T <= 0) return 0;
  if (hs > FM_CU_ATTENTION_MAX_HS || KVH <= 0 || H % KVH) return (int)cudaErrorInvalidValue;
  const Geo g = geo(T, H, KVH, hs);
  cudaStream_t st = (cudaStream_t)stream;
  if (mode == 2) return fm_cuk_attention_forward_mma(out, ocopy, lse, qkvh, B, T, H, KVH, hs, stream);
  if (mode == 1) {
    if (hs <= 32) return launch_fwd<tf32, 64, 32>(out, ocopy, lse, qkv, B, g, st);
    if (hs <= 64) return launch_fwd<tf32, 64, 64>(out, ocopy, lse, qkv, B, g, st);
    return launch_fwd<tf32, 64, 128>(out, ocopy, lse, qkv, B, g, st);
  }
  if (hs <= 32) return launch_fwd<float, 64, 32>(out, ocopy, lse, qkv, B, g, st);
  if (hs <= 64) return launch_fwd<float, 64, 64>(out, ocopy, lse, qkv, B, g, st);
  return launch_fwd<float, 32, 128>(out, ocopy, lse, qkv, B, g, st);
}

extern "C" int fm_cuk_attention_backward(float *dqkv, float *Dv, const float *dout,
                                         const float *qkv, const void *douth, const void *qkvh,
                                         const float *o, const float *lse, int B, int T, int H,
                                         int KVH, int hs, int mode, void *stream) {
  if (B <= 0 || T <= 0) return 0;
  if (hs > FM_CU_ATTENTION_MAX_HS || KVH <= 0 || H % KVH) return (int)cudaErrorInvalidValue;
  const Geo g = geo(T, H, KVH, hs);
  cudaStream_t st = (cudaStream_t)stream;
  const size_t rows = (size_t)B * H * T;
  attention_rowdot<<<fm_blocks(rows, 8), 8 * FM_WARP, 0, st>>>(Dv, dout, o, B, T, H, hs);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return (int)e;
  if (mode == 2) return fm_cuk_attention_backward_mma(dqkv, Dv, douth, qkvh, lse, B, T, H, KVH, hs, stream);
  if (mode == 1) {
    if (hs <= 32) return launch_bwd<tf32, 64, 32>(dqkv, dout, qkv, lse, Dv, B, g, st);
    if (hs <= 64) return launch_bwd<tf32, 64, 64>(dqkv, dout, qkv, lse, Dv, B, g, st);
    return launch_bwd<tf32, 64, 128>(dqkv, dout, qkv, lse, Dv, B, g, st);
  }
  if (hs <= 32) return launch_bwd<float, 64, 32>(dqkv, dout, qkv, lse, Dv, B, g, st);
  if (hs <= 64) return launch_bwd<float, 64, 64>(dqkv, dout, qkv, lse, Dv, B, g, st);
  return launch_bwd<float, 32, 128>(dqkv, dout, qkv, lse, Dv, B, g, st);
}
