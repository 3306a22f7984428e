/* io.h - the run file: one HDF5 file written collectively by every rank (MPI-IO).
 *
 *   /                       attrs: fedmoe_version, format (FM_RUNFILE_FORMAT), strategy, seed,
 *                           config (resolved text), start_time, ranks (P), clients (N), layers, experts,
 *                           data_allow_overlap, data_tokens_asked, data_tokens_held (the clients'
 *                           tokens, fewer than asked when shrunk to be disjoint), data_corpus_tokens,
 *                           data_vocab (the tokenizer's ids)
 *   /metrics/clients        compound, extendible: one row per (round, client) reported
 *   /metrics/rounds         compound, extendible: one row per round
 *   /routing/index          compound {round, client}, extendible: one row per client that trained
 *                           in a round; rounds ascending, clients ascending within a round
 *   /routing/counts         uint64 [row][layer][expert] top-k picks in training, rows as /routing/index
 *   /routing/gate_mass      float64 [row][layer][expert] summed router probability, rows as /routing/index
 *   /checkpoints/r{round:06d}  external link to the checkpoint file "<run file>.ckpt/r{round:06d}.h5":
 *                           its /shared/{tensor} hold the global shared tensors (matrices
 *                           [rows][cols] in the model's layout, vectors [n]), its
 *                           /clients/class{c}/{params,adam_m,adam_v} [K][n], adam_step [K], client [K]
 *                           the K clients holding that private class, by id; /tensors
 *                           {name, where, cls, offset, ndim, rows, cols}: where each tensor is
 *                           (shared dataset, or offset in a class's rows) and its shape
 *                           (runfile_index.c); attrs round, complete;
 *                           format 3: a checksum per tensor (see fm_hash64). Readers find the file
 *                           by the run file's own name, not the folder the link names, so that a
 *                           run file copied or renamed with its folder uses its own checkpoints
 *                           fedbiot: /server/{tensor}, the server's full model (frozen bottom blocks
 *                           and the aggregated adapter), what `fedmoe eval` scores
 *                           its /server_opt/{m,v}/{tensor} (float64) the server optimizer's moments
 *   /checkpoints/latest     soft link to the newest complete checkpoint
 *   /fl/<name>              strategy figures: float64 [row][layer][expert], rows as /routing/index
 *                           (hfedmoe: selected, importance, kl, usage); int32 [client] (budget,
 *                           resource_class)
 * The per-client statistics of a round hold rows for the clients that trained in it
 * only: format 1 stored them dense, [round][client][layer][expert], N rows every round
 * and mostly zeros when few are sampled (1 MB per round at 10000 clients). Their rows
 * are in client-id order whatever P, each host writing its own.
 * Client state is one 2-D dataset per private class holding only the clients that
 * have trained (the others are at the initial values), each host writing its rows,
 * instead of one group per client as DESIGN.md first sketched: the number of HDF5
 * objects does not grow with N, and the bytes grow with the clients that trained.
 * A checkpoint is a file of its own, written as .tmp and renamed into place before the
 * run file links to it, so a rank killed or a disk filled while it is written never
 * damages the run file or an earlier checkpoint; before a round's writes rank 0 checks
 * the free space, so a parallel HDF5 write never fails on some ranks only. Every random
 * stream is addressed by (seed, client, round, purpose), so a checkpoint needs no
 * RNG state beyond its round. */
#ifndef FEDMOE_IO_H
#define FEDMOE_IO_H

#include "fedmoe/config.h"
#include "fedmoe/error.h"
#include "fedmoe/model.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  int32_t round, client;
  double train_loss, val_loss, test_loss;
  uint64_t tokens;
  double flops, sim_time_s; /* sim_time_s: the client's simulated round time */
  uint64_t bytes_up, bytes_down;
  int32_t status;           /* FM_CLIENT_* of include/fedmoe/system.h; -1: evaluated only */
} fm_client_row;

typedef struct {
  int32_t round, clients;
  double mean_train, mean_val, mean_test, min_test, max_test;
  double wall_s, t_local, t_aggregate, t_server, t_broadcast, t_evaluate, t_io; /* s; phases: the slowest rank's */
  uint64_t bytes_up, bytes_down, bytes_reduced;
  double peak_rss_mb; /* largest resident set of any rank so far (MiB) */
  double test_loss_full, test_loss_emulator; /* fedbiot: adapter on the full model / on the emulator */
  double sim_time_s;                      /* simulated duration of the round */
  int32_t kept, late, dropped, offline, surplus; /* what became of the sampled clients */
  double t_local_mean; /* s; the hosts' mean local-work time (t_local is the slowest's) */
  int32_t host_clients_max; /* the most sampled clients one host ran */
  double dp_epsilon; /* DP-FedAvg: epsilon at privacy.delta after this round (NaN without DP) */
  double test_loss_global; /* Ditto: the global model's mean test loss (the clients' are the personal models'); NaN without */
} fm_round_row;

typedef struct fm_runfile fm_runfile;

/* The layout version in the root attribute `format`: 3 describes itself (every
 * dataset has description and units attributes, compound ones field_names,
 * field_descriptions and field_units; status is an HDF5 enum), stores each shared
 * tensor of a checkpoint with its shape ([rows][cols] for matrices, [n] for vectors)
 * and with a checksum (a damaged one is refused), and stores fedbiot's full model in
 * its checkpoints (/server); 2 has sparse per-client statistics (/routing/index) and
 * flat [numel] tensors, is read by fedmoe info, eval and fedmoe-analyze (the values
 * are the same in row-major order) and resumed without checksums (with a note); 1, or
 * no attribute, the dense statistics of fedmoe 0.1.0. */
#define FM_RUNFILE_FORMAT 3

/* The rows a round adds to the per-client statistics: one per client that trained,
 * n in all, in client-id order. Every rank knows the round's plan, so each host
 * computes where its rows go without asking the others, and the file is the same for
 * any P. This rank's k clients client[0..k) go to rows row[0..k) of the round
 * (0-based, ascending); rank 0 has k = 0. */
typedef struct {
  int round, n, k;
  const int32_t *row, *client;
} fm_round_rows;

/* The 64-bit checksum of n bytes that checkpoints store per tensor (checksum.c). Part
 * of the file format: a different function would fail every stored checkpoint. */
uint64_t fm_hash64(const void *data, size_t n);

/* Create (truncate) the run file; collective over comm. config_text is stored. */
fm_err fm_runfile_create(fm_runfile **rf, const char *path, const fm_config *cfg, const char *config_text,
                         int layers, int experts, MPI_Comm comm);
/* Append rows; collective; only rank 0's rows are written (others pass 0). */
fm_err fm_runfile_append_clients(fm_runfile *rf, const fm_client_row *rows, int n);
fm_err fm_runfile_append_round(fm_runfile *rf, const fm_round_row *row);
/* Rewrite the last round row (its final times, after the round's checkpoint);
 * collective, rank 0's row is written. The row itself goes in before the checkpoint. */
fm_err fm_runfile_update_round(fm_runfile *rf, const fm_round_row *row);
/* Routing of one round: appends rr->n rows to /routing/index, counts and gate_mass,
 * each host its rr->k clients' [k][L][E] blocks. Collective. */
fm_err fm_runfile_write_routing(fm_runfile *rf, const fm_round_rows *rr, const uint64_t *counts,
                                const double *mass);
/* A strategy's per-expert figures of one round, /fl/<name> float64 [row][layer][expert]
 * with the rows of that round's fm_runfile_write_routing, which comes first. */
fm_err fm_runfile_write_client_stat(fm_runfile *rf, const char *name, const fm_round_rows *rr,
                                    const double *data);
/* A per-client integer, /fl/<name> int32 [client]; rank 0 passes all N values. */
fm_err fm_runfile_write_client_ints(fm_runfile *rf, const char *name, const int32_t *values);
/* A number attribute of the root group (rank 0's value); collective. */
fm_err fm_runfile_set_attr(fm_runfile *rf, const char *name, double value);

/* A checkpoint of round `round`. Begin creates the group (collective); then every rank
 * calls write_shared (rank 0's data is written; rows 0: a vector of cols values) for
 * each shared tensor and
 * write_class for each private class; end marks it complete, moves `latest` and
 * prunes beyond run.keep_last. */
fm_err fm_runfile_checkpoint_begin(fm_runfile *rf, int round);
fm_err fm_runfile_write_shared(fm_runfile *rf, const char *name, const float *w, size_t rows, size_t cols);
/* Private class cls of the clients that have one (a client that never trained has
 * none): one row each, in client-id order whatever P, their ids in `client`. have [N]
 * marks those clients, the same on every rank; this rank's k of them, ids ascending,
 * have their rows in params, m, v [k][n] and adam steps in step [k]. */
fm_err fm_runfile_write_class(fm_runfile *rf, int cls, size_t n, const uint8_t *have, int k, const int32_t *ids,
                              const float *params, const float *m, const float *v, const int64_t *step);
/* A tensor of the server's own model (fm_strategy.server_model), /server/{name} of the
 * checkpoint (rank 0's data is written); collective, between begin and end. */
fm_err fm_runfile_write_server(fm_runfile *rf, const char *name, const float *w, size_t rows, size_t cols);
/* The checkpoint's /tensors table: where each tensor of m is stored and its shape
 * (runfile_index.c); shared[c] as the strategy's. Collective. */
fm_err fm_runfile_write_tensor_index(fm_runfile *rf, fm_model *m, const int *shared);
fm_err fm_runfile_checkpoint_end(fm_runfile *rf);
/* The server's float64 state of n values at path (e.g. "server_opt/m/wte") of the
 * checkpoint being written (rank 0's values; collective), and read back from the one
 * being resumed (collective; into rank 0's v, the others' may point at one double); a missing path is an error naming key, the
 * configuration key whose value decides that the state exists. */
fm_err fm_runfile_write_state(fm_runfile *rf, const char *path, const double *v, size_t n);
fm_err fm_runfile_read_state(fm_runfile *rf, const char *path, const char *key, double *v, size_t n);
fm_err fm_runfile_close(fm_runfile *rf);

/* Per-client float vectors of n values kept by the toolkit (SCAFFOLD's control
 * variates) under group in the checkpoint being written: group/values [K][n] and
 * group/client [K], rows in client-id order for the K clients marked in have [N]
 * (the same on every rank); this rank's k of them, ids ascending, in data [k][n]. */
fm_err fm_runfile_write_client_rows(fm_runfile *rf, const char *group, size_t n, const uint8_t *have, int k,
                                    const int32_t *ids, const float *data);
/* Read them back from the checkpoint being resumed (collective): the rows of the
 * clients for which mine(client, arg) holds, *ids [*k] ascending and *data [*k][n]
 * (caller frees both). A missing group is an error naming key. */
fm_err fm_runfile_read_client_rows(fm_runfile *rf, const char *group, const char *key, size_t n,
                                   int (*mine)(int client, void *arg), void *arg, int32_t **ids, int *k,
                                   float **data);

/* ---- resuming ---- */
/* Open an existing run file to continue it (collective). Checks that it is a fedmoe
 * run file of this format, strategy, client count and model (layers, experts) and finds
 * its latest complete checkpoint, whose round goes to *round. Nothing is changed yet. */
fm_err fm_runfile_open_resume(fm_runfile **rf, const char *path, const fm_config *cfg, int layers, int experts,
                              MPI_Comm comm, int *round);
/* Read a shared tensor of the latest checkpoint on every rank; its size must be n. */
fm_err fm_runfile_read_shared(fm_runfile *rf, const char *name, float *w, size_t n);
/* The clients with rows of private class cls in the checkpoint being resumed:
 * *ids [*K] ascending (caller frees); the same on every rank. */
fm_err fm_runfile_class_clients(fm_runfile *rf, int cls, int32_t **ids, int *K);
/* Read the rows of k of those clients (ids ascending) into params, m, v [k][n] and
 * step [k]; all_ids [K] is what fm_runfile_class_clients gave. Collective. */
fm_err fm_runfile_read_class(fm_runfile *rf, int cls, size_t n, int k, const int32_t *ids, const int32_t *all_ids,
                             int K, float *params, float *m, float *v, int64_t *step);
/* Drop metrics, routing and checkpoints of rounds after `round` (a crash may have
 * left some), so the continued run appends where the checkpoint stands. */
fm_err fm_runfile_truncate(fm_runfile *rf, int round);

/* ---- NetCDF export (PnetCDF, CDF-5) of the per-round metrics ---- */
/* Write rows [n] (significant on rank 0) as one variable per field along dimension
 * `round`, each with long_name and units (those of the run file's field_descriptions
 * and field_units), and the strategy, seed and resolved configuration as global
 * attributes; collective over comm. Readable by ncdump, netCDF4-python, xarray. */
fm_err fm_netcdf_write_rounds(const char *path, const fm_round_row *rows, int n, const char *strategy,
                              long long seed, const char *config_text, MPI_Comm comm);
/* The description and units of a /metrics/rounds field (runfile_describe.c); 0 if
 * there is no such field. */
int fm_round_field_doc(const char *field, const char **description, const char **units);



/* ---- guarding the outputs (output_guard.c) ---- */
typedef struct fm_output_lock fm_output_lock;
/* Take the exclusive lock of run file `runfile` (and so of its .ckpt folder) for the
 * run's life: rank 0 locks "<runfile>.lock" and writes its pid, host and start time
 * there; a run that finds it held refuses, naming the holder. Collective, agreed.
 * The lock dies with the process, so a crash never blocks the resume. */
fm_err fm_output_lock_take(fm_output_lock **lk, const char *runfile, MPI_Comm comm);
void fm_output_lock_release(fm_output_lock *lk);
/* Before anything is written: with create, an existing run file is refused unless
 * overwrite, and even then when it is not a fedmoe run file; the NetCDF file (NULL:
 * none) likewise unless it is a NetCDF file, and never the run file itself (compared
 * by inode). Rank 0 looks; the answer is agreed. */
fm_err fm_output_check(const char *runfile, int create, const char *netcdf, int overwrite, MPI_Comm comm);

/* ---- reading run files ---- */
/* Print a summary of a run file (attributes, rounds done, final round metrics,
 * checkpoints) to out. Not collective: call on one rank. Errors name the file. */
fm_err fm_runfile_info(const char *path, FILE *out);
/* One line per round of the run file's round table: round, wall_s and the phase
 * times t_local .. t_io (s), mean_train; a header line first. Serial, as above. */
fm_err fm_runfile_rounds(const char *path, FILE *out);

/* ---- a model out of a checkpoint (checkpoint_read.c; serial, call on one rank) ---- */
/* The resolved configuration text stored in run file path (root attribute config);
 * *text is allocated (free it). Errors name the file: missing, not HDF5, not a run file. */
fm_err fm_runfile_read_config(const char *path, char **text);
/* Load the latest checkpoint of run file path into m, a model of the run's shape made
 * with the run's strategy classifier (and initialised with the run's seed, which frozen
 * tensors keep): every tensor of a class c with shared[c] != 0 from shared/{name},
 * and client's row of each other class (client < 0: none). *round: the checkpoint's
 * round; *allocated (may be NULL): 0 when the client had no state saved (never
 * sampled), so its private classes keep their initial values. */
fm_err fm_checkpoint_load(const char *path, fm_model *m, const int *shared, int client, int *round,
                          int *allocated);
/* Load every tensor of m (one class) from /server/{name} of the latest checkpoint: the
 * server's own model (fm_strategy.server_model; fedbiot's full model). */
fm_err fm_checkpoint_load_server(const char *path, fm_model *m, int *round);

#endif
