/* device.c - run.device and run.precision: where this rank's models live, chosen
 * before any model is made. With cuda each rank opens one GPU, its local rank (the
 * launcher's OMPI_COMM_WORLD_LOCAL_RANK, else its rank among the ranks sharing its
 * node) modulo the GPUs it sees, so several ranks may share one; the backend learns
 * how many do (budgets of GPU memory are shares of it). Collective: every rank opens
 * or fails, and a failure on one is everyone's. */
#include "config.h"

#include "cli.h"

#include "nn/backend.h"
#ifdef FEDMOE_HAVE_CUDA
#include "nn/cuda/backend_cuda.h"
#endif

#include <stdlib.h>

static fm_err local_rank(MPI_Comm comm, int *lr) {
  const char *env = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (env && *env) {
    *lr = atoi(env);
    return FM_OK;
  }
  MPI_Comm node;
  FM_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  MPI_Comm_rank(node, lr);
  MPI_Comm_free(&node);
  return FM_OK;
}

#ifdef FEDMOE_HAVE_CUDA
/* how many ranks of this node drive GPU `gpu`, this one included */
static fm_err gpu_sharers(MPI_Comm comm, int gpu, int *n) {
  MPI_Comm node, same;
  FM_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  const int rc = MPI_Comm_split(node, gpu, 0, &same);
  MPI_Comm_free(&node);
  FM_MPI(rc);
  MPI_Comm_size(same, n);
  MPI_Comm_free(&same);
  return FM_OK;
}
#endif

/* the checks every rank makes alike, from the configuration alone */
static fm_err check_config(const fm_config *c) {
  if (c->debug.device_mirror && c->run.device != FM_DEVICE_CPU)
    FM_CONFIG_ERROR(c, "debug.device_mirror", "debug.device_mirror stands in for a GPU: set run.device = cpu");
  if (c->run.device == FM_DEVICE_CPU && c->run.precision != FM_PRECISION_FP32)
    FM_CONFIG_ERROR(c, "run.precision", "run.precision = %s needs run.device = cuda (the CPU computes in fp32)",
                    fm_config_enum_name(c, "run.precision"));
#ifndef FEDMOE_HAVE_CUDA
  if (c->run.device == FM_DEVICE_CUDA)
    FM_CONFIG_ERROR(c, "run.device", "run.device = cuda, but this fedmoe was built without CUDA "
                    "(configure it --with-cuda on a machine with the CUDA toolkit)");
#endif
  /* SCAFFOLD changes the gradients through tensor pointers it keeps from before the
   * passes, which the host mirrors of a GPU model do not follow */
  if ((c->run.device == FM_DEVICE_CUDA || c->debug.device_mirror) && c->fltk.scaffold)
    FM_CONFIG_ERROR(c, "fl.scaffold", "fl.scaffold does not run on the GPU yet; use run.device = cpu");
  return FM_OK;
}

fm_err fm_cli_open_device(const fm_config *c, MPI_Comm comm, fm_backend **be) {
  *be = NULL;
  FM_CHECK(fm_error_agree(check_config(c), &comm));
  if (c->debug.device_mirror) /* the host mirrors of a GPU model, on the CPU (tests) */
    fm_model_set_default_backend(fm_backend_mirror());
  if (c->run.device != FM_DEVICE_CUDA) return FM_OK;
#ifdef FEDMOE_HAVE_CUDA
  int lr = 0;
  fm_err err = local_rank(comm, &lr);
  if (!err) err = fm_cuda_backend_open(be, lr, c->run.precision);
  FM_CHECK(fm_error_agree(err, &comm));
  FM_CHECK(gpu_sharers(comm, fm_cuda_backend_gpu(*be), &(*be)->sharers));
  fm_model_set_default_backend(*be);
#else
  (void)local_rank;
#endif
  return FM_OK;
}

void fm_cli_close_device(fm_backend *be) {
  fm_model_set_default_backend(NULL);
#ifdef FEDMOE_HAVE_CUDA
  if (be) fm_cuda_backend_close(be);
#else
  (void)be;
#endif
}
