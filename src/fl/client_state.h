/* client_state.h - what a host keeps for each client it hosts between rounds. */
#ifndef FEDMOE_FL_CLIENT_STATE_H
#define FEDMOE_FL_CLIENT_STATE_H

#include "fedmoe/fl.h"
#include "fedmoe/io.h"

/* A client's private classes (parameters and optimizer state), allocated the first
 * time the client is sampled: memory grows with the clients that have trained, by
 * their private state only. On a device model the state is resident - in device
 * memory, one stash per class (fm_model_stash_*), opt[c] holding only n and step -
 * while the host's budget for it lasts (run.device_state_mb), in host memory (params,
 * opt's arrays) otherwise: a client is one or the other for the whole run. */
typedef struct {
  int allocated;
  float *params[FM_MAX_CLASSES];
  fm_adamw opt[FM_MAX_CLASSES];
  fm_stash *stash[FM_MAX_CLASSES]; /* resident: its classes on the device (else NULL) */
  fm_model *model;                 /* resident: the model the stashes belong to */
} fm_client_state;

typedef struct {
  const fm_strategy *st;
  fm_model *model;
  int nclass;
  float *init_private[FM_MAX_CLASSES]; /* the initial private values: new clients start here */
  float *global[FM_MAX_CLASSES];       /* the latest aggregated shared values */
  fm_adamw shared_opt[FM_MAX_CLASSES]; /* reset for every client and round */
  int cap_mb;                          /* run.device_state_mb */
  int budget_set;                      /* room is known (set at the first client with state) */
  size_t room;                         /* bytes of device memory left for resident clients */
  int resident, spilled;               /* clients whose state is on the device / in host memory */
} fm_host;

/* device_state_mb: run.device_state_mb (-1: what the device has room for; 0: none) */
fm_err fm_host_create(fm_host *h, const fm_strategy *st, fm_model *model, int device_state_mb);
void fm_host_free(fm_host *h);
/* Put client cs's state and the global shared values into the model. A client that
 * has never trained gets the initial private values; its state is allocated only
 * when keep is set (it is about to train), so evaluating it costs no memory. */
fm_err fm_host_load(fm_host *h, fm_client_state *cs, fm_adamw *opts, int keep);
/* Keep the model's private classes (and their optimizer states) in cs. */
void fm_host_save(fm_host *h, fm_client_state *cs, const fm_adamw *opts);
void fm_client_state_free(fm_client_state *cs, int nclass);
/* Set private class cls of a client from a checkpoint. */
fm_err fm_host_restore(fm_host *h, fm_client_state *cs, int cls, const float *params, const float *m,
                       const float *v, long step);
/* Private class cls of a client into host arrays of the class's numel (a checkpoint). */
fm_err fm_host_state_get(fm_host *h, const fm_client_state *cs, int cls, float *params, float *m, float *v,
                         int64_t *step);
/* Says on rank 0 how many of the clients with state are resident on the devices and how
 * many in host memory, with their bytes (a line of the run's log). Collective. */
fm_err fm_host_report(const fm_host *h, MPI_Comm comm);
/* Bytes of private state held for one client. */
size_t fm_host_private_bytes(const fm_host *h);

/* server_model.c: the strategy's own server model (st->server_model) into the
 * checkpoint being written, as /server/{tensor}; rank 0 passes its state and model
 * (whose shared classes get host's global values first), the others NULL. Collective. */
fm_err fm_save_server_model(fm_runfile *rf, const fm_strategy *st, void *state, fm_model *model,
                            const fm_host *host, int rank, MPI_Comm comm);
/* Its size in bytes on rank 0 (0 without one), for the free-space check. */
double fm_server_model_bytes(const fm_strategy *st, void *state, fm_model *model);

#endif
