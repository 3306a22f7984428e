/* context.c - the CUDA device context: which GPU, its stream, cuBLAS, scratch, and the
 * translation of CUDA and cuBLAS failures into fedmoe errors that say what failed. */
#include "context.h"

#include <stdlib.h>
#include <string.h>

fm_err fm_cu_status(cudaError_t rc, const char *what, const char *file, int line,
                    const char *func) {
  if (rc == cudaSuccess) return FM_OK;
  cudaGetLastError(); /* clear a sticky launch error so the message is this one */
  return fm_error_set(file, line, func, rc == cudaErrorMemoryAllocation ? FM_ERR_MEM : FM_ERR_INTERNAL,
                      "CUDA: %s: %s (%s)", what, cudaGetErrorString(rc), cudaGetErrorName(rc));
}

fm_err fm_cublas_status(cublasStatus_t rc, const char *what, const char *file, int line,
                        const char *func) {
  if (rc == CUBLAS_STATUS_SUCCESS) return FM_OK;
  return fm_error_set(file, line, func, rc == CUBLAS_STATUS_ALLOC_FAILED ? FM_ERR_MEM : FM_ERR_INTERNAL,
                      "cuBLAS: %s: %s", what, cublasGetStatusString(rc));
}

/* An engine switch (docs/gpu.md): the environment variable unset or empty gives 0, its
 * first value 1, its second 2; anything else is refused, naming the variable, so that a
 * typo never times or tests the default in its place. */
static fm_err engine_switch(const char *var, const char *v1, const char *v2, int *out) {
  const char *e = getenv(var);
  *out = !e || !*e ? 0 : !strcmp(e, v1) ? 1 : !strcmp(e, v2) ? 2 : -1;
  if (*out < 0)
    FM_ERROR(FM_ERR_CONFIG, "%s = '%s': it takes %s or %s (unset it for the default)", var, e, v1, v2);
  return FM_OK;
}

fm_err fm_cu_open(fm_cu **out, int local_rank, fm_precision prec) {
  int gemm, attn, head;
  FM_CHECK(engine_switch("FEDMOE_CUDA_GEMM", "copy", "fast", &gemm));
  FM_CHECK(engine_switch("FEDMOE_CUDA_ATTENTION", "fused", "gemm", &attn));
  FM_CHECK(engine_switch("FEDMOE_CUDA_HEAD", "fused", "padded", &head));
  int n = 0;
  cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess || n == 0)
    FM_ERROR(FM_ERR_CONFIG, "run.device = cuda, but this node has no usable GPU (%s)",
             rc != cudaSuccess ? cudaGetErrorString(rc) : "no device visible");
  fm_cu *cu;
  FM_CALLOC(cu, 1, "CUDA context");
  cu->device = (local_rank < 0 ? 0 : local_rank) % n;
  cu->prec = prec;
  cu->gemm_copy = gemm == 1 ? 1 : gemm == 2 ? -1 : 0;
  cu->attn_path = attn, cu->head = head;
  fm_err e = FM_OK;
  if ((e = FM_CU(cudaSetDevice(cu->device), "select the GPU")) ||
      (e = FM_CU(cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking), "create a stream")) ||
      (e = FM_CUBLAS(cublasCreate(&cu->blas), "create the handle")) ||
      (e = FM_CUBLAS(cublasSetStream(cu->blas, cu->stream), "set the stream")) ||
      (e = FM_CUBLAS(cublasSetAtomicsMode(cu->blas, CUBLAS_ATOMICS_NOT_ALLOWED), "forbid atomics"))) {
    fm_cu_close(cu);
    return fm_error_trace(__FILE__, __LINE__, __func__, e);
  }
  *out = cu;
  return FM_OK;
}

void fm_cu_close(fm_cu *cu) {
  if (!cu) return;
  if (cu->stream) cudaStreamSynchronize(cu->stream);
  cudaFree(cu->scratch);
  cudaFree(cu->ce_sum);
  cudaFree(cu->gemm_buf);
  if (cu->blas) cublasDestroy(cu->blas);
  if (cu->stream) cudaStreamDestroy(cu->stream);
  free(cu);
}

int fm_cu_device(const fm_cu *cu) { return cu->device; }
fm_precision fm_cu_precision(const fm_cu *cu) { return cu->prec; }
void fm_cu_set_precision(fm_cu *cu, fm_precision prec) { cu->prec = prec; }
void *fm_cu_stream(const fm_cu *cu) { return cu->stream; }

fm_err fm_cu_alloc(fm_cu *cu, void *p, size_t bytes, const char *what) {
  void *q = NULL;
  cudaError_t rc = cudaMalloc(&q, bytes ? bytes : 1);
  if (rc != cudaSuccess) {
    size_t freeb = 0, total = 0;
    cudaGetLastError();
    cudaMemGetInfo(&freeb, &total);
    FM_ERROR(FM_ERR_MEM, "GPU %d: %s needs %.1f MiB, %.1f MiB of %.1f MiB are free", cu->device,
             what, bytes / 1048576.0, freeb / 1048576.0, total / 1048576.0);
  }
  FM_CHECK(FM_CU(cudaMemsetAsync(q, 0, bytes ? bytes : 1, cu->stream), what));
  memcpy(p, &q, sizeof q);
  return FM_OK;
}

void fm_cu_free(void *p) { cudaFree(p); }

fm_err fm_cu_upload(fm_cu *cu, void *dst, const void *src, size_t bytes) {
  return FM_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream), "upload");
}

fm_err fm_cu_download(fm_cu *cu, void *dst, const void *src, size_t bytes) {
  FM_CHECK(FM_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream), "download"));
  return FM_CU(cudaStreamSynchronize(cu->stream), "download");
}

fm_err fm_cu_sync(fm_cu *cu, const char *what) {
  FM_CHECK(FM_CU(cudaGetLastError(), what));
  return FM_CU(cudaStreamSynchronize(cu->stream), what);
}

/* a buffer of the context that grows: freed (cudaFree waits for the device) and made anew */
fm_err fm_cu_grow(fm_cu *cu, void **buf, size_t *have, size_t bytes, const char *what) {
  if (bytes <= *have) return FM_OK;
  cudaFree(*buf);
  *buf = NULL;
  *have = 0;
  FM_CHECK(fm_cu_alloc(cu, buf, bytes, what));
  *have = bytes;
  return FM_OK;
}

fm_err fm_cu_scratch(fm_cu *cu, void *p, size_t bytes) {
  FM_CHECK(fm_cu_grow(cu, &cu->scratch, &cu->scratch_bytes, bytes, "kernel scratch"));
  memcpy(p, &cu->scratch, sizeof cu->scratch);
  return FM_OK;
}
