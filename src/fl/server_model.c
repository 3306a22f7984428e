/* server_model.c - a checkpoint's copy of the model the server keeps for itself
 * (fm_strategy.server_model: fedbiot's full model), as /server/{tensor}. */
#include "client_state.h"

#include "fedmoe/hf.h"
#include "fedmoe/io.h"

#include <stdint.h>
#include <string.h>

/* A tensor's name, size and stored shape (rows 0: a vector), as rank 0 sends them. */
typedef struct {
  char name[64];
  uint64_t numel, rows, cols;
} tensor_head;

fm_err fm_save_server_model(fm_runfile *rf, const fm_strategy *st, void *state, fm_model *model,
                            const fm_host *host, int rank, MPI_Comm comm) {
  fm_model *full = NULL;
  fm_err err = FM_OK;
  if (rank == 0) {
    /* the model's shared classes get the global values (they hold them already after
     * the server step; this keeps that from being an assumption) */
    for (int c = 0; c < host->nclass; c++)
      if (st->shared[c])
        memcpy(fm_model_class_params(model, c), host->global[c], fm_model_class_numel(model, c) * sizeof(float));
    err = st->server_model(state, model, &full);
  }
  int n = err || !full ? -1 : fm_model_ntensors(full);
  FM_MPI(MPI_Bcast(&n, 1, MPI_INT, 0, comm));
  if (n < 0) {
    if (rank == 0) return err ? err : fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_INTERNAL, "no server model");
    FM_ERROR(FM_ERR_INTERNAL, "rank 0 could not give its server model for the checkpoint");
  }
  for (int i = 0; i < n; i++) {
    tensor_head h = {{0}, 0, 0, 0};
    const float *w = NULL;
    if (rank == 0) {
      fm_tensor *t = fm_model_tensor(full, i);
      snprintf(h.name, sizeof h.name, "%s", t->name);
      h.numel = t->numel;
      h.rows = fm_tensor_ndim(t) == 1 ? 0 : t->rows;
      h.cols = t->cols;
      w = t->w;
    }
    FM_MPI(MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, comm));
    FM_CHECK(fm_runfile_write_server(rf, h.name, w, (size_t)h.rows, (size_t)h.cols));
  }
  return FM_OK;
}

double fm_server_model_bytes(const fm_strategy *st, void *state, fm_model *model) {
  fm_model *full = NULL;
  if (!st->server_model || !state || st->server_model(state, model, &full) || !full) return 0;
  double b = 0;
  for (int i = 0; i < fm_model_ntensors(full); i++) b += (double)fm_model_tensor(full, i)->numel * sizeof(float);
  return b;
}
