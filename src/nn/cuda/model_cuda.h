/* model_cuda.h - a model's training passes on the GPU (private to src/nn).
 *
 * An fm_cu_model mirrors one fm_model on the device: every class buffer (parameters
 * and gradients), the frozen buffer, the activations and each class's AdamW state live
 * in GPU memory, laid out as on the host, so a class moves between host and device in
 * one copy (aggregation, checkpoints). The passes are model_pass.c's, kernel for kernel
 * (model_cuda.c reads against it line by line), and honour the host tensors' classes
 * and freeze flags as they are when the pass runs. Today's scope: the GPT-2 family's
 * dense blocks; a model with MoE blocks is refused with a message. */
#ifndef FEDMOE_NN_CUDA_MODEL_CUDA_H
#define FEDMOE_NN_CUDA_MODEL_CUDA_H

#include "cuda_nn.h"
#include "fedmoe/model.h"

typedef struct fm_cu_model fm_cu_model;

/* For batches of up to B sequences of up to T tokens (as fm_model_create). */
fm_err fm_cu_model_create(fm_cu_model **out, fm_cu *cu, fm_model *m, int B, int T);
void fm_cu_model_free(fm_cu_model *g);
/* Bytes of GPU memory the mirror holds. */
size_t fm_cu_model_bytes(const fm_cu_model *g);

/* Host -> device: every class's parameters and the frozen ones. */
fm_err fm_cu_model_upload(fm_cu_model *g);
/* Device -> host: the parameters (and, for tests, the gradients) of class cls. */
fm_err fm_cu_model_download_params(fm_cu_model *g, int cls);
fm_err fm_cu_model_download_grads(fm_cu_model *g, int cls);

/* As fm_model_forward / fm_model_backward / fm_model_zero_grads (tokens and targets
 * on the host; *ce the mean cross-entropy). */
fm_err fm_cu_model_forward(fm_cu_model *g, const int32_t *tokens, const int32_t *targets, int B,
                           int T, float *ce);
fm_err fm_cu_model_backward(fm_cu_model *g);
fm_err fm_cu_model_zero_grads(fm_cu_model *g);
/* One AdamW step on class cls with the device state of that class (as fm_adamw_step). */
fm_err fm_cu_model_adamw(fm_cu_model *g, int cls, const fm_adamw_hparams *h);

/* With FEDMOE_CUDA_PROFILE=1: print (and reset) the time per part of the passes so far,
 * per step over `steps` steps. */
void fm_cu_model_profile_print(int steps);

#endif
