/* context.h - the CUDA context's insides, shared by the files of src/nn/cuda. */
#ifndef FEDMOE_NN_CUDA_CONTEXT_H
#define FEDMOE_NN_CUDA_CONTEXT_H

#include "cuda_nn.h"
#include "kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

struct fm_cu {
  int device;
  fm_precision prec;
  cudaStream_t stream;
  cublasHandle_t blas;
  void *scratch; /* kernels' scratch (column-sum chunks, score gradients, sort) */
  size_t scratch_bytes;
  void *ce_sum; /* cross-entropy's device sum (double) and count (int) */
  int gemm_copy;  /* bf16 GEMM operands as bf16 copies: 0 for a transposed one whose row stride
                   * is not a multiple of 8 values, 1 always (FEDMOE_CUDA_GEMM=copy), -1 never (=fast) */
  void *gemm_buf; /* those copies */
  size_t gemm_bytes;
  int attn_path;  /* 0 by precision and heads, 1 fused, 2 GEMM (FEDMOE_CUDA_ATTENTION=fused|gemm) */
  int head;       /* 0 GEMM + cross-entropy, 1 fused row chunks, 2 padded logits rows
                   * (FEDMOE_CUDA_HEAD=fused|padded) */
};

fm_err fm_cu_status(cudaError_t rc, const char *what, const char *file, int line, const char *func);
fm_err fm_cublas_status(cublasStatus_t rc, const char *what, const char *file, int line,
                        const char *func);
#define FM_CU(call, what) fm_cu_status((call), (what), __FILE__, __LINE__, __func__)
#define FM_CUBLAS(call, what) fm_cublas_status((call), (what), __FILE__, __LINE__, __func__)
/* a launcher's return code (a cudaError_t as int) */
#define FM_CUK(call, what) FM_CHECK(FM_CU((cudaError_t)(call), (what)))

fm_err fm_cu_grow(fm_cu *cu, void **buf, size_t *have, size_t bytes, const char *what);

#endif
