/* moe_swiglu_lora.c - LoRA experts on the shared SwiGLU FFN of an MoE block (the
 * llama family with model.expert_type = lora). With s = alpha / r and, for each of
 * expert e's adapters on a base matrix W [out,in], A [r,in], B [out,r] (PEFT's
 * nn.Linear layout):  x W^T + s (x A^T) B^T.
 *   gate|up:  h = [x Wg^T | x Wu^T] (the base part once per token, then gathered)
 *             + s [(xg A1^T) B1^T | (xg A3^T) B3^T]          (each pick's expert)
 *   y = swiglu(h) Wd^T + s (swiglu(h) A2^T) B2^T               (base in one GEMM)
 * Rows are dispatched by expert as in moe.c: expert e's rows are start[e]..start[e+1). */
#include "nn.h"

#include <string.h>

/* the adapters in PEFT's layout (lora.c) */
static void lora_fwd(int n, int in, int out, int R, float s, const float *x, int ldx, fm_param A,
                     fm_param B, float *z, float *y, int ldy) {
  fm_lora_forward(FM_LORA_LINEAR, n, in, out, R, s, x, ldx, A.w, B.w, z, y, ldy);
}

static void lora_bwd(int n, int in, int out, int R, float s, const float *x, int ldx, const float *z,
                     const float *dy, int ldy, fm_param A, fm_param B, float *dz, float *dx, float beta) {
  fm_lora_backward(FM_LORA_LINEAR, n, in, out, R, s, x, ldx, z, dy, ldy, A, B, dz, dx, beta);
}

void fm_moe_swiglu_lora_forward(fm_moe *L, const fm_moe_params *p, const float *x) {
  const int D = L->D, E = L->E, F = L->F, R = L->r, N = L->N, npos = L->npos, F2 = 2 * F;
  const float sc = L->scale;
  fm_gemm(0, 1, N, F, D, 1.0f, x, D, p->fc_w.w, D, 0.0f, L->hb, F2);
  fm_gemm(0, 1, N, F, D, 1.0f, x, D, p->fup_w.w, D, 0.0f, L->hb + F, F2);
  for (int pos = 0; pos < npos; pos++)
    memcpy(L->h + (size_t)pos * F2, L->hb + (size_t)L->tok[pos] * F2, (size_t)F2 * sizeof(float));
  for (int e = 0; e < E; e++) {
    const int n = L->count[e];
    if (!n) continue;
    const size_t s = (size_t)L->start[e];
    lora_fwd(n, D, F, R, sc, L->xg + s * D, D, p->a1[e], p->b1[e], L->u + s * R, L->h + s * F2, F2);
    lora_fwd(n, D, F, R, sc, L->xg + s * D, D, p->a3[e], p->b3[e], L->u3 + s * R, L->h + s * F2 + F, F2);
  }
  fm_swiglu_forward(L->g, L->h, npos, F);
  fm_gemm(0, 1, npos, D, F, 1.0f, L->g, F, p->pj_w.w, F, 0.0f, L->y, D);
  for (int e = 0; e < E; e++) {
    const int n = L->count[e];
    if (!n) continue;
    const size_t s = (size_t)L->start[e];
    lora_fwd(n, F, D, R, sc, L->g + s * F, F, p->a2[e], p->b2[e], L->v + s * R, L->y + s * D, D);
  }
}

void fm_moe_swiglu_lora_backward(fm_moe *L, const fm_moe_params *p, float *dx, const float *x) {
  const int D = L->D, E = L->E, F = L->F, R = L->r, N = L->N, npos = L->npos, F2 = 2 * F;
  const float sc = L->scale;
  /* down: the base over all rows, then each expert's adapter; da = d swiglu(h) */
  if (p->pj_w.g) fm_gemm(1, 0, D, F, npos, 1.0f, L->dy, D, L->g, F, 1.0f, p->pj_w.g, F);
  fm_gemm(0, 0, npos, F, D, 1.0f, L->dy, D, p->pj_w.w, F, 0.0f, L->da, F);
  for (int e = 0; e < E; e++) {
    const int n = L->count[e];
    if (!n) continue;
    const size_t s = (size_t)L->start[e];
    lora_bwd(n, F, D, R, sc, L->g + s * F, F, L->v + s * R, L->dy + s * D, D, p->a2[e], p->b2[e],
             L->dv + s * R, L->da + s * F, 1.0f);
  }
  fm_swiglu_backward(L->dg, L->h, L->da, npos, F); /* dg: d(gate | up) [npos,2F] */
  /* gate and up: each expert's adapters (their dx parts into dxg), then the base,
   * summed over a token's picks */
  for (int e = 0; e < E; e++) {
    const int n = L->count[e];
    if (!n) continue;
    const size_t s = (size_t)L->start[e];
    float *dxg = dx ? L->dxg + s * D : NULL;
    lora_bwd(n, D, F, R, sc, L->xg + s * D, D, L->u + s * R, L->dg + s * F2, F2, p->a1[e], p->b1[e],
             L->du + s * R, dxg, 0.0f);
    lora_bwd(n, D, F, R, sc, L->xg + s * D, D, L->u3 + s * R, L->dg + s * F2 + F, F2, p->a3[e],
             p->b3[e], L->du3 + s * R, dxg, 1.0f);
  }
  memset(L->dhb, 0, (size_t)N * F2 * sizeof(float));
  for (int pos = 0; pos < npos; pos++) {
    const float *restrict dh = L->dg + (size_t)pos * F2;
    float *restrict acc = L->dhb + (size_t)L->tok[pos] * F2;
    for (int i = 0; i < F2; i++) acc[i] += dh[i];
  }
  if (p->fc_w.g) fm_gemm(1, 0, F, D, N, 1.0f, L->dhb, F2, x, D, 1.0f, p->fc_w.g, D);
  if (p->fup_w.g) fm_gemm(1, 0, F, D, N, 1.0f, L->dhb + F, F2, x, D, 1.0f, p->fup_w.g, D);
  if (dx) {
    fm_gemm(0, 0, N, D, F, 1.0f, L->dhb, F2, p->fc_w.w, D, 1.0f, dx, D);
    fm_gemm(0, 0, N, D, F, 1.0f, L->dhb + F, F2, p->fup_w.w, D, 1.0f, dx, D);
  }
}
