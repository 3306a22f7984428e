/* backend_cuda.h - the CUDA backend (backend_cuda.c): the model's passes on one GPU.
 * Callable without the CUDA headers (the fedmoe program's run.device code). */
#ifndef FEDMOE_NN_CUDA_BACKEND_CUDA_H
#define FEDMOE_NN_CUDA_BACKEND_CUDA_H

#include "fedmoe/error.h"

typedef struct fm_backend fm_backend;
typedef struct fm_cu fm_cu;

/* Open the GPU local_rank mod (visible GPUs) with GEMMs in precision prec (0 fp32,
 * 1 tf32, 2 bf16: cuda_nn.h's fm_precision); errors say what is missing. */
fm_err fm_cuda_backend_open(fm_backend **out, int local_rank, int prec);
void fm_cuda_backend_close(fm_backend *be);
/* its context (precision, stream) */
fm_cu *fm_cuda_backend_context(fm_backend *be);
/* the index of the GPU it drives, among those this process sees */
int fm_cuda_backend_gpu(fm_backend *be);

#endif
