/* flash_attention_mma.cu - the fused causal attention core in bf16 on tensor cores
 * (mma.sync m16n8k16, fp32 accumulation): run.precision = bf16's default path. The
 * maths, the layouts and the atomic-free two-kernel backward are flash_attention.cu's
 * (read its header); these kernels differ in how they feed the tensor cores:
 *
 * - a warp's score tile, its softmax, P (or dS) and the output accumulators stay in
 *   registers, in the PTX layout of m16n8k16: with g = lane/4 and t = lane%4 an
 *   accumulator holds rows g and g+8, columns 2t and 2t+1 of each 8-wide n-tile, and
 *   two accumulator n-tiles are one A operand (rows g, g+8; columns 2t.., 2t+8..) as
 *   they are, so P V and dS K need no shared-memory round trip;
 * - every operand tile is stored once, row-major, and read with ldmatrix: plainly
 *   where the product runs along a row, transposed (.trans) where it runs down a
 *   column; no transposed copies;
 * - tiles arrive by 16-byte cp.async, zero-filled beyond T and the head size, into two
 *   stages: the next tile pair is in flight while the tensor cores work on this one
 *   (element loads instead where the head size is not a multiple of 8);
 * - blocks with the longest causal walk are started first.
 * 64-row tiles, 4 warps of 16 rows each, head sizes padded to HSP = 32, 64 or 128. */
#include "common.cuh"
#include "kernels.h"

#include <cuda_bf16.h>

namespace {

using bf16 = __nv_bfloat16;
constexpr float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;
constexpr int MR = 64, THREADS = 128; /* rows a tile; 4 warps of 16 rows */

struct Geo {
  int T, H, KVH, hs, W, HD, group;
  float scale;
  bool vec; /* 16-byte tile loads: hs a multiple of 8 and 16-byte aligned inputs */
};

/* a tile [MR][LDT] of bf16: the row stride's 8 extra values put the 8 rows of an
 * ldmatrix in distinct banks and keep rows 16-byte aligned */
template <int HSP> struct Tile {
  static constexpr int LDT = HSP + 8;
  static constexpr size_t ELEMS = (size_t)MR * LDT;
};

__device__ __forceinline__ unsigned smem_addr(const void *p) {
  return (unsigned)__cvta_generic_to_shared(p);
}
/* 16 (4) bytes global -> shared, asynchronous; bytes = 0 writes zeros */
__device__ __forceinline__ void cp_async16(void *dst, const void *src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async4(void *dst, const void *src, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* wait until at most N committed groups are still in flight */
template <int N> __device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* four 8 x 8 bf16 matrices from shared memory, lanes 8i..8i+7 giving matrix i's rows;
 * lane l gets row l/4, columns 2(l%4).. of each (ldsm4), or transposed (ldsm4t) */
__device__ __forceinline__ void ldsm4(uint32_t r[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm4t(uint32_t r[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *(uint32_t *)&v;
}
/* d += a b, one m16n8k16 bf16 product with fp32 accumulation */
__device__ __forceinline__ void mma16816(float d[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
               "{%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <int N> __device__ __forceinline__ void zero4(float (*acc)[4]) {
#pragma unroll
  for (int n = 0; n < N; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
}

/* acc[NT][4] += A B over K = 16 KS: A the warp's 16 rows r0.. of the row-major tile As,
 * B(k, n) = Bs[n ld + k] (n-tile nt is Bs's rows 8nt..) */
template <int NT, int KS>
__device__ __forceinline__ void mma_rows(float (*acc)[4], const bf16 *As, int r0, const bf16 *Bs, int ld) {
  const int l = threadIdx.x % FM_WARP;
#pragma unroll
  for (int ks = 0; ks < KS; ks++) {
    uint32_t a[4];
    ldsm4(a, As + (r0 + l % 16) * ld + ks * 16 + l / 16 * 8);
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) { /* b: n-tiles nt and nt + 1, both k halves */
      uint32_t b[4];
      ldsm4(b, Bs + (nt * 8 + l % 8 + l / 16 * 8) * ld + ks * 16 + l / 8 % 2 * 8);
      mma16816(acc[nt], a, b[0], b[1]);
      mma16816(acc[nt + 1], a, b[2], b[3]);
    }
  }
}
/* acc[NT][4] += P B: P the warp's 16 x MR accumulator-layout tile p[MR/8][4], rounded
 * to bf16; B(k, n) = Bs[k ld + n], a row-major tile read transposed */
template <int NT>
__device__ __forceinline__ void mma_p(float (*acc)[4], const float (*p)[4], const bf16 *Bs, int ld) {
  const int l = threadIdx.x % FM_WARP;
#pragma unroll
  for (int ks = 0; ks < MR / 16; ks++) {
    const uint32_t a[4] = {pack2(p[2 * ks][0], p[2 * ks][1]), pack2(p[2 * ks][2], p[2 * ks][3]),
                           pack2(p[2 * ks + 1][0], p[2 * ks + 1][1]),
                           pack2(p[2 * ks + 1][2], p[2 * ks + 1][3])};
#pragma unroll
    for (int nt = 0; nt < NT; nt += 2) {
      uint32_t b[4];
      ldsm4t(b, Bs + (ks * 16 + l % 8 + l / 8 % 2 * 8) * ld + nt * 8 + l / 16 * 8);
      mma16816(acc[nt], a, b[0], b[1]);
      mma16816(acc[nt + 1], a, b[2], b[3]);
    }
  }
}

/* rows t0.. of a bf16 [T, stride] slice (hs columns) into the tile s, zero beyond T and
 * hs (to HSP): cp.async (complete at the next cp_wait) or element loads (complete now) */
template <int HSP>
__device__ __forceinline__ void load_tile(bf16 *s, const bf16 *base, int stride, int t0, int T,
                                          int hs, bool vec) {
  constexpr int LDT = Tile<HSP>::LDT, CH = HSP / 8;
  if (vec) {
    static_assert(MR * CH % THREADS == 0, "whole rounds of chunks");
#pragma unroll
    for (int k = 0; k < MR * CH / THREADS; k++) {
      const int idx = threadIdx.x + k * THREADS, r = idx / CH, c = idx % CH * 8, t = t0 + r;
      const bool in = t < T && c < hs;
      cp_async16(s + r * LDT + c, in ? base + (size_t)t * stride + c : base, in ? 16 : 0);
    }
  } else {
    const bf16 zero = __float2bfloat16_rn(0.0f);
#pragma unroll 4
    for (int idx = threadIdx.x; idx < MR * HSP; idx += THREADS) {
      const int r = idx / HSP, c = idx % HSP, t = t0 + r;
      s[r * LDT + c] = t < T && c < hs ? base[(size_t)t * stride + c] : zero;
    }
  }
}
/* v[r] = src[t0 + r] below T, else 0, r < MR; asynchronous */
__device__ __forceinline__ void load_vec(float *v, const float *src, int t0, int T) {
  for (int r = threadIdx.x; r < MR; r += THREADS) {
    const bool in = t0 + r < T;
    cp_async4(v + r, in ? src + t0 + r : src, in ? 4 : 0);
  }
}

/* key/value tile kt (rows kt MR..) into stage kt & 1 of KV (K, then V): one cp.async
 * group, with whatever was issued before it */
template <int HSP>
__device__ __forceinline__ void load_kv(bf16 *KV, const bf16 *Kg, const bf16 *Vg, int kt, const Geo &g) {
  bf16 *k = KV + 2 * (kt & 1) * Tile<HSP>::ELEMS;
  load_tile<HSP>(k, Kg, g.W, kt * MR, g.T, g.hs, g.vec);
  load_tile<HSP>(k + Tile<HSP>::ELEMS, Vg, g.W, kt * MR, g.T, g.hs, g.vec);
  cp_commit();
}
/* step kt of a walk over key tiles: tile kt + 1's loads go out before tile kt's
 * products, then tile kt is waited for */
template <int HSP>
__device__ __forceinline__ void next_kv(bf16 *KV, const bf16 *Kg, const bf16 *Vg, int kt, int nkt,
                                        const Geo &g) {
  if (kt + 1 < nkt) {
    load_kv<HSP>(KV, Kg, Vg, kt + 1, g);
    cp_wait<1>();
  } else {
    cp_wait<0>();
  }
  __syncthreads();
}

/* a warp's accumulator rows (16 rows from tile row r0, columns 8 nt + 2t..) to a
 * [T, stride] slice, rows t0 + r0.. below T and columns below hs, scaled */
template <int NT>
__device__ __forceinline__ void store_acc(float *base, int stride, const float (*acc)[4], int t0,
                                          int r0, int T, int hs, float s0, float s1) {
  const int g = threadIdx.x % FM_WARP / 4, t = threadIdx.x % 4;
#pragma unroll
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const int r = t0 + r0 + g + (e >= 2 ? 8 : 0), c = nt * 8 + 2 * t + (e & 1);
      if (r < T && c < hs) base[(size_t)r * stride + c] = acc[nt][e] * (e >= 2 ? s1 : s0);
    }
}

/* shared memory: the forward Q + two stages of (K, V); dK/dV K, V + two stages of
 * (Q, dO) and two of (lse, D); dQ Q, dO + two stages of (K, V) */
template <int HSP> constexpr size_t fwd_bytes() { return 5 * Tile<HSP>::ELEMS * sizeof(bf16); }
template <int HSP> constexpr size_t dkdv_bytes() {
  return 6 * Tile<HSP>::ELEMS * sizeof(bf16) + 4 * MR * sizeof(float);
}
template <int HSP> constexpr size_t dq_bytes() { return 6 * Tile<HSP>::ELEMS * sizeof(bf16); }

/* grid (query tiles, H, B), the last query tile (the longest walk) first */
template <int HSP>
__global__ void __launch_bounds__(THREADS)
    attention_fwd(float *out, float *ocopy, float *lse, const bf16 *qkv, Geo g) {
  constexpr int LDT = Tile<HSP>::LDT, NO = HSP / 8, KS = HSP / 16, NS = MR / 8;
  constexpr size_t TE = Tile<HSP>::ELEMS;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *Qs = (bf16 *)smem, *KV = Qs + TE; /* stage s: K at KV + 2 s TE, V after it */
  const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, q0 = qt * MR, T = g.T;
  const bf16 *seq = qkv + (size_t)b * T * g.W;
  const bf16 *Qg = seq + h * g.hs, *Kg = seq + g.HD + (h / g.group) * g.hs, *Vg = Kg + g.KVH * g.hs;
  const int w = threadIdx.x / FM_WARP, gi = threadIdx.x % FM_WARP / 4, t4 = threadIdx.x % 4;
  const int r0 = 16 * w, i0 = q0 + r0 + gi, i1 = i0 + 8; /* this thread's two query rows */
  const float sl2 = g.scale * LOG2E;
  const int last = (q0 + MR < T ? q0 + MR : T) - 1, nkt = last / MR + 1;
  load_tile<HSP>(Qs, Qg, g.W, q0, T, g.hs, g.vec);
  load_kv<HSP>(KV, Kg, Vg, 0, g);
  float o[NO][4], m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
  zero4<NO>(o);
  for (int kt = 0; kt < nkt; kt++) {
    next_kv<HSP>(KV, Kg, Vg, kt, nkt, g);
    const bf16 *Ks = KV + 2 * (kt & 1) * TE, *Vs = Ks + TE;
    const int k0 = kt * MR;
    float s[NS][4];
    zero4<NS>(s);
    mma_rows<NS, KS>(s, Qs, r0, Ks, LDT);
    float mt0 = -INFINITY, mt1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NS; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int j = k0 + nt * 8 + 2 * t4 + (e & 1);
        const float v = j <= (e >= 2 ? i1 : i0) ? s[nt][e] * sl2 : -INFINITY;
        s[nt][e] = v;
        if (e >= 2) mt1 = fmaxf(mt1, v); else mt0 = fmaxf(mt0, v);
      }
#pragma unroll
    for (int o2 = 1; o2 <= 2; o2 *= 2) {
      mt0 = fmaxf(mt0, __shfl_xor_sync(0xffffffffu, mt0, o2));
      mt1 = fmaxf(mt1, __shfl_xor_sync(0xffffffffu, mt1, o2));
    }
    /* finite from the first tile on: key 0 is below every row's diagonal */
    const float n0 = fmaxf(m0, mt0), n1 = fmaxf(m1, mt1);
    const float a0 = exp2f(m0 - n0), a1 = exp2f(m1 - n1);
    float s0 = 0.0f, s1 = 0.0f; /* this thread's part of the row sums */
#pragma unroll
    for (int nt = 0; nt < NS; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float p = exp2f(s[nt][e] - (e >= 2 ? n1 : n0));
        s[nt][e] = p;
        if (e >= 2) s1 += p; else s0 += p;
      }
    l0 = l0 * a0 + s0, l1 = l1 * a1 + s1, m0 = n0, m1 = n1;
#pragma unroll
    for (int nt = 0; nt < NO; nt++) o[nt][0] *= a0, o[nt][1] *= a0, o[nt][2] *= a1, o[nt][3] *= a1;
    mma_p<NO>(o, s, Vs, LDT);
    __syncthreads(); /* this stage is read: the next iteration may refill it */
  }
#pragma unroll
  for (int o2 = 1; o2 <= 2; o2 *= 2) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, o2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, o2);
  }
  const size_t ob = (size_t)b * T * g.HD + (size_t)h * g.hs;
  store_acc<NO>(out + ob, g.HD, o, q0, r0, T, g.hs, 1.0f / l0, 1.0f / l1);
  store_acc<NO>(ocopy + ob, g.HD, o, q0, r0, T, g.hs, 1.0f / l0, 1.0f / l1);
  if (t4 == 0) {
    float *lh = lse + ((size_t)b * g.H + h) * T;
    if (i0 < T) lh[i0] = (m0 + log2f(l0)) * LN2;
    if (i1 < T) lh[i1] = (m1 + log2f(l1)) * LN2;
  }
}

/* dK, dV: grid (key tiles, KVH, B); warp w owns keys 16w.. of the tile. The block
 * walks its group's query heads and, for each, the query tiles from its own on: a
 * fixed order of (head, query tile) steps, one in flight while the previous one runs. */
template <int HSP>
__global__ void __launch_bounds__(THREADS)
    attention_bwd_dkdv(float *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *Dv, Geo g) {
  constexpr int LDT = Tile<HSP>::LDT, NO = HSP / 8, KS = HSP / 16, NS = MR / 8;
  constexpr size_t TE = Tile<HSP>::ELEMS;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *Ks = (bf16 *)smem, *Vs = Ks + TE, *QD = Vs + TE; /* stage s: Q at QD + 2 s TE, dO after */
  float *LD = (float *)(QD + 4 * TE);                     /* stage s: lse at LD + 2 s MR, D after */
  const int kt = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z, k0 = kt * MR, T = g.T;
  const bf16 *seq = qkv + (size_t)b * T * g.W;
  const bf16 *Kg = seq + g.HD + kvh * g.hs, *Vg = Kg + g.KVH * g.hs;
  const int w = threadIdx.x / FM_WARP, gi = threadIdx.x % FM_WARP / 4, t4 = threadIdx.x % 4;
  const int r0 = 16 * w, j0 = k0 + r0 + gi, j1 = j0 + 8; /* this thread's two keys */
  const float sl2 = g.scale * LOG2E;
  const int nqt = (T + MR - 1) / MR, per = nqt - kt, steps = g.group * per;
  /* step n: query head kvh group + n / per, query tile kt + n % per, into stage n & 1 */
  auto issue = [&](int n) {
    const int h = kvh * g.group + n / per, q0 = (kt + n % per) * MR;
    bf16 *qs = QD + 2 * (n & 1) * TE;
    float *lv = LD + 2 * (n & 1) * MR;
    load_tile<HSP>(qs, seq + h * g.hs, g.W, q0, T, g.hs, g.vec);
    load_tile<HSP>(qs + TE, dout + (size_t)b * T * g.HD + h * g.hs, g.HD, q0, T, g.hs, g.vec);
    load_vec(lv, lse + ((size_t)b * g.H + h) * T, q0, T);
    load_vec(lv + MR, Dv + ((size_t)b * g.H + h) * T, q0, T);
    cp_commit();
  };
  load_tile<HSP>(Ks, Kg, g.W, k0, T, g.hs, g.vec);
  load_tile<HSP>(Vs, Vg, g.W, k0, T, g.hs, g.vec);
  issue(0);
  float dk[NO][4], dv[NO][4];
  zero4<NO>(dk);
  zero4<NO>(dv);
  for (int n = 0; n < steps; n++) {
    if (n + 1 < steps) {
      issue(n + 1);
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    const bf16 *Qs = QD + 2 * (n & 1) * TE, *dOs = Qs + TE;
    const float *Ls = LD + 2 * (n & 1) * MR, *Ds = Ls + MR;
    const int q0 = (kt + n % per) * MR;
    float s[NS][4], dp[NS][4]; /* S^T and dP^T: keys x queries */
    zero4<NS>(s);
    zero4<NS>(dp);
    mma_rows<NS, KS>(s, Ks, r0, Qs, LDT);
    mma_rows<NS, KS>(dp, Vs, r0, dOs, LDT);
#pragma unroll
    for (int nt = 0; nt < NS; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int ii = nt * 8 + 2 * t4 + (e & 1), i = q0 + ii, j = e >= 2 ? j1 : j0;
        const float p = j <= i && i < T ? exp2f(s[nt][e] * sl2 - Ls[ii] * LOG2E) : 0.0f;
        s[nt][e] = p;
        dp[nt][e] = p * (dp[nt][e] - Ds[ii]) * g.scale;
      }
    mma_p<NO>(dv, s, dOs, LDT);
    mma_p<NO>(dk, dp, Qs, LDT);
    __syncthreads();
  }
  float *base = dqkv + (size_t)b * T * g.W + g.HD + kvh * g.hs;
  store_acc<NO>(base, g.W, dk, k0, r0, T, g.hs, 1.0f, 1.0f);
  store_acc<NO>(base + g.KVH * g.hs, g.W, dv, k0, r0, T, g.hs, 1.0f, 1.0f);
}

/* dQ: grid (query tiles, H, B), the last query tile first; warp w owns queries 16w.. */
template <int HSP>
__global__ void __launch_bounds__(THREADS)
    attention_bwd_dq(float *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                     const float *Dv, Geo g) {
  constexpr int LDT = Tile<HSP>::LDT, NO = HSP / 8, KS = HSP / 16, NS = MR / 8;
  constexpr size_t TE = Tile<HSP>::ELEMS;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *Qs = (bf16 *)smem, *dOs = Qs + TE, *KV = dOs + TE; /* stage s: K at KV + 2 s TE, V after */
  const int qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, b = blockIdx.z, q0 = qt * MR, T = g.T;
  const bf16 *seq = qkv + (size_t)b * T * g.W;
  const bf16 *Qg = seq + h * g.hs, *Kg = seq + g.HD + (h / g.group) * g.hs,
             *Vg = Kg + g.KVH * g.hs, *dOg = dout + (size_t)b * T * g.HD + h * g.hs;
  const float *lh = lse + ((size_t)b * g.H + h) * T, *dh = Dv + ((size_t)b * g.H + h) * T;
  const int w = threadIdx.x / FM_WARP, gi = threadIdx.x % FM_WARP / 4, t4 = threadIdx.x % 4;
  const int r0 = 16 * w, i0 = q0 + r0 + gi, i1 = i0 + 8;
  const float sl2 = g.scale * LOG2E;
  const float L0 = i0 < T ? lh[i0] * LOG2E : 0.0f, L1 = i1 < T ? lh[i1] * LOG2E : 0.0f;
  const float D0 = i0 < T ? dh[i0] : 0.0f, D1 = i1 < T ? dh[i1] : 0.0f;
  const int last = (q0 + MR < T ? q0 + MR : T) - 1, nkt = last / MR + 1;
  load_tile<HSP>(Qs, Qg, g.W, q0, T, g.hs, g.vec);
  load_tile<HSP>(dOs, dOg, g.HD, q0, T, g.hs, g.vec);
  load_kv<HSP>(KV, Kg, Vg, 0, g);
  float dq[NO][4];
  zero4<NO>(dq);
  for (int kt = 0; kt < nkt; kt++) {
    next_kv<HSP>(KV, Kg, Vg, kt, nkt, g);
    const bf16 *Ks = KV + 2 * (kt & 1) * TE, *Vs = Ks + TE;
    const int k0 = kt * MR;
    float s[NS][4], dp[NS][4];
    zero4<NS>(s);
    zero4<NS>(dp);
    mma_rows<NS, KS>(s, Qs, r0, Ks, LDT);
    mma_rows<NS, KS>(dp, dOs, r0, Vs, LDT);
#pragma unroll
    for (int nt = 0; nt < NS; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int j = k0 + nt * 8 + 2 * t4 + (e & 1), i = e >= 2 ? i1 : i0;
        const float p = j <= i && i < T ? exp2f(s[nt][e] * sl2 - (e >= 2 ? L1 : L0)) : 0.0f;
        dp[nt][e] = p * (dp[nt][e] - (e >= 2 ? D1 : D0)) * g.scale;
      }
    mma_p<NO>(dq, dp, Ks, LDT);
    __syncthreads();
  }
  store_acc<NO>(dqkv + (size_t)b * T * g.W + h * g.hs, g.W, dq, q0, r0, T, g.hs, 1.0f, 1.0f);
}

template <typename K> cudaError_t prepare(K kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

template <int HSP>
cudaError_t launch_fwd(float *out, float *ocopy, float *lse, const bf16 *qkv, int B, Geo g,
                       cudaStream_t st) {
  const size_t bytes = fwd_bytes<HSP>();
  cudaError_t e = prepare(attention_fwd<HSP>, bytes);
  if (e != cudaSuccess) return e;
  attention_fwd<HSP><<<dim3((g.T + MR - 1) / MR, g.H, B), THREADS, bytes, st>>>(out, ocopy, lse, qkv, g);
  return cudaGetLastError();
}

template <int HSP>
cudaError_t launch_bwd(float *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *Dv, int B, Geo g, cudaStream_t st) {
  cudaError_t e = prepare(attention_bwd_dkdv<HSP>, dkdv_bytes<HSP>());
  if (e == cudaSuccess) e = prepare(attention_bwd_dq<HSP>, dq_bytes<HSP>());
  if (e != cudaSuccess) return e;
  const int tiles = (g.T + MR - 1) / MR;
  attention_bwd_dkdv<HSP><<<dim3(tiles, g.KVH, B), THREADS, dkdv_bytes<HSP>(), st>>>(dqkv, dout, qkv,
                                                                                    lse, Dv, g);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  attention_bwd_dq<HSP><<<dim3(tiles, g.H, B), THREADS, dq_bytes<HSP>(), st>>>(dqkv, dout, qkv, lse, Dv, g);
  return cudaGetLastError();
}

Geo geo(int T, int H, int KVH, int hs, const void *a, const void *b) {
  Geo g;
  g.T = T, g.H = H, g.KVH = KVH, g.hs = hs, g.W = (H + 2 * KVH) * hs, g.HD = H * hs;
  g.group = H / KVH, g.scale = 1.0f / sqrtf((float)hs);
  g.vec = hs % 8 == 0 && (uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0;
  return g;
}

} // namespace

extern "C" int fm_cuk_attention_forward_mma(float *out, float *ocopy, float *lse, const void *qkvh,
                                            int B, int T, int H, int KVH, int hs, void *stream) {
  const Geo g = geo(T, H, KVH, hs, qkvh, qkvh);
  const bf16 *q = (const bf16 *)qkvh;
  cudaStream_t st = (cudaStream_t)stream;
  if (hs <= 32) return launch_fwd<32>(out, ocopy, lse, q, B, g, st);
  if (hs <= 64) return launch_fwd<64>(out, ocopy, lse, q, B, g, st);
  return launch_fwd<128>(out, ocopy, lse, q, B, g, st);
}

extern "C" int fm_cuk_attention_backward_mma(float *dqkv, const float *Dv, const void *douth,
                                             const void *qkvh, const float *lse, int B, int T,
                                             int H, int KVH, int hs, void *stream) {
  const Geo g = geo(T, H, KVH, hs, qkvh, douth);
  const bf16 *d = (const bf16 *)douth, *q = (const bf16 *)qkvh;
  cudaStream_t st = (cudaStream_t)stream;
  if (hs <= 32) return launch_bwd<32>(dqkv, d, q, lse, Dv, B, g, st);
  if (hs <= 64) return launch_bwd<64>(dqkv, d, q, lse, Dv, B, g, st);
  return launch_bwd<128>(dqkv, d, q, lse, Dv, B, g, st);
}
