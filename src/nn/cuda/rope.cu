/* rope.cu - rotary position embeddings in the rotate-half layout (src/nn/rope.c): pair
 * i of a head, (x_i, x_{i+hs/2}), is turned by the angle of position t, whose cos and
 * sin come from the tables [ctx, hs/2] the host computed once (fm_rope_table) and
 * uploaded. One thread per pair; the backward is the rotation by minus the angle. */
#include "common.cuh"
#include "kernels_llama.h"

__global__ void rope_rotate(float *x, const float *cos_t, const float *sin_t, int T, int nh,
                            int h2, int hs, int ld, float dir, size_t total) {
  size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= total) return;
  const int i = (int)(idx % h2);
  const size_t rest = idx / h2;
  const int h = (int)(rest % nh);
  const size_t row = rest / nh;
  const int t = (int)(row % T);
  float *x1 = x + row * ld + (size_t)h * hs + i, *x2 = x1 + h2;
  const float c = cos_t[(size_t)t * h2 + i], si = dir * sin_t[(size_t)t * h2 + i];
  const float a = *x1, z = *x2;
  *x1 = a * c - z * si;
  *x2 = z * c + a * si;
}

extern "C" int fm_cuk_rope(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh,
                           int hs, int ld, float dir, void *stream) {
  const int h2 = hs / 2;
  const size_t total = (size_t)B * T * nh * h2;
  if (!total) return 0;
  rope_rotate<<<fm_blocks(total, 256), 256, 0, (cudaStream_t)stream>>>(x, cos_t, sin_t, T, nh, h2,
                                                                        hs, ld, dir, total);
  return (int)cudaGetLastError();
}
