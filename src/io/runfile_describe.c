/* runfile_describe.c - the run file explains itself: every dataset carries string
 * attributes `description` and `units`; a compound dataset also carries
 * `field_names`, `field_descriptions` and `field_units`, string arrays in the order
 * of its fields (h5py: ds.attrs["field_units"][i] belongs to ds.dtype.names[i]);
 * codes are HDF5 enum types, their names in the file. Units: nats for losses, s,
 * bytes, MiB (2^20 bytes) for memory, 1 for counts and dimensionless figures. */
#include "runfile_impl.h"

#include "fedmoe/system.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name, *description, *units;
} field_doc;

static const field_doc client_fields[] = {
  {"round", "round, 1-based", "1"},
  {"client", "client id, 0-based", "1"},
  {"train_loss", "mean training cross-entropy of the client's local steps (NaN: it did not train)", "nats"},
  {"val_loss", "cross-entropy on the client's validation split after the round (fl.ditto: of its personal model)",
   "nats"},
  {"test_loss", "cross-entropy on the client's test split after the round (fedbiot: on the emulator; fl.ditto: of "
                "its personal model)", "nats"},
  {"tokens", "training tokens the client processed", "1"},
  {"flops", "floating-point operations of the client's training (weight gradients of the tensors each step "
            "trains only)", "FLOP"},
  {"sim_time_s", "the client's simulated round time (download, compute, upload)", "s"},
  {"bytes_up", "bytes the client sent the server", "bytes"},
  {"bytes_down", "bytes the server sent the client", "bytes"},
  {"status", "what became of the client: kept, late, dropped, offline, surplus; evaluated_only: not sampled, "
             "evaluated in the final round (enum)", "1"},
};

static const field_doc round_fields[] = {
  {"round", "round, 1-based", "1"},
  {"clients", "clients sampled", "1"},
  {"mean_train", "mean training loss over the clients that trained", "nats"},
  {"mean_val", "mean validation loss over the clients reported (fl.ditto: of their personal models)", "nats"},
  {"mean_test", "mean test loss over the clients reported (fedbiot: on the emulator; fl.ditto: of their personal "
                "models)", "nats"},
  {"min_test", "lowest client test loss", "nats"},
  {"max_test", "highest client test loss", "nats"},
  {"wall_s", "wall-clock time of the round", "s"},
  {"t_local", "local updates: the slowest host's time (NaN: no client trained)", "s"},
  {"t_aggregate", "aggregation (reduction to the server): the slowest rank's time (NaN: the strategy shares "
                  "nothing)", "s"},
  {"t_server", "the server's step (and fedbiot's alignment and evaluation); NaN: none", "s"},
  {"t_broadcast", "broadcast of the global model: the slowest rank's time (NaN: nothing shared)", "s"},
  {"t_evaluate", "evaluation: the slowest host's time (NaN: no client evaluated)", "s"},
  {"t_io", "run-file writes and checkpoint: the slowest rank's time", "s"},
  {"bytes_up", "bytes the clients sent the server", "bytes"},
  {"bytes_down", "bytes the server sent the clients", "bytes"},
  {"bytes_reduced", "bytes the ranks moved in the aggregation", "bytes"},
  {"peak_rss_mb", "largest resident set of any rank so far", "MiB"},
  {"test_loss_full", "fedbiot: mean test loss of the full model (frozen bottom blocks and the aggregated adapter, "
                     "what the paper reports); NaN for other strategies", "nats"},
  {"test_loss_emulator", "fedbiot: mean test loss of the adapter on the clients' emulator; NaN otherwise", "nats"},
  {"sim_time_s", "simulated duration of the round (the server waits for the last kept client, or the deadline)",
   "s"},
  {"kept", "sampled clients whose update the round kept", "1"},
  {"late", "sampled clients past fl.deadline_s", "1"},
  {"dropped", "sampled clients that dropped out (system.dropout)", "1"},
  {"offline", "sampled clients unavailable (system.availability)", "1"},
  {"surplus", "sampled clients beyond what fl.over_select needed", "1"},
  {"t_local_mean", "local updates: the mean time over the hosts that ran clients (t_local / t_local_mean: the "
                   "load imbalance)", "s"},
  {"host_clients_max", "the most sampled clients one host ran", "1"},
  {"dp_epsilon", "DP-FedAvg: epsilon spent so far at privacy.delta (NaN without differential privacy)", "1"},
  {"test_loss_global", "fl.ditto: mean test loss of the global model over the clients reported (mean_test is "
                       "their personal models'); NaN without Ditto", "nats"},
};

static const field_doc index_fields[] = {
  {"round", "round of the statistics row", "1"},
  {"client", "client of the statistics row", "1"},
};

static const field_doc tensor_index_fields[] = {
  {"name", "the model tensor's name", "1"},
  {"where", "0: frozen (not stored), 1: a shared dataset shared/<name>, 2: a private class's rows", "1"},
  {"cls", "the tensor's sharing class (-1: frozen)", "1"},
  {"offset", "floats before the tensor in its class's buffer (a private class's rows)", "1"},
  {"ndim", "dimensions the tensor has in files (1: vector, 2: matrix)", "1"},
  {"rows", "rows of the tensor", "1"},
  {"cols", "columns of the tensor", "1"},
};

/* The strategies' per-expert figures (/fl/<name>) and per-client integers. */
static const field_doc fl_datasets[] = {
  {"selected", "hfedmoe: 1 where the client trained the expert this round, 0 elsewhere; [row][layer][expert], "
               "rows as /routing/index", "1"},
  {"importance", "hfedmoe: the expert's importance for the client, lambda x mean + (1 - lambda) x max of its "
                 "router probability over the scored tokens; [row][layer][expert]", "1"},
  {"kl", "hfedmoe: the information-bottleneck term KL_e = mean G log G - u log u over the scored tokens; "
         "[row][layer][expert]", "nats"},
  {"usage", "hfedmoe: the client's usage u(e) of the expert, its mean router probability over the scored "
            "tokens; [row][layer][expert]", "1"},
  {"budget", "per client: experts per MoE layer it may train (hfedmoe) or its specialists (comigs)", "experts"},
  {"resource_class", "per client: its resource class, the index into the [system] lists", "1"},
};

fm_err fm_runfile_text_attr(fm_runfile *rf, hid_t obj, const char *name, const char *value) {
  if (H5Aexists(obj, name) > 0) return FM_OK; /* a resumed file has it */
  RF_CHECK(fm_attr_text(obj, name, value), "write a description attribute");
  return FM_OK;
}

/* A 1-D array of fixed-length strings (fixed, not variable-length: parallel HDF5). */
static fm_err attr_texts(fm_runfile *rf, hid_t obj, const char *name, const field_doc *f, int n, int which) {
  if (H5Aexists(obj, name) > 0) return FM_OK;
  size_t w = 1;
  for (int i = 0; i < n; i++) {
    const char *s = which == 0 ? f[i].name : which == 1 ? f[i].description : f[i].units;
    if (strlen(s) + 1 > w) w = strlen(s) + 1;
  }
  char *buf;
  FM_CALLOC(buf, (size_t)n * w, "field attribute");
  for (int i = 0; i < n; i++)
    memcpy(buf + (size_t)i * w, which == 0 ? f[i].name : which == 1 ? f[i].description : f[i].units,
           strlen(which == 0 ? f[i].name : which == 1 ? f[i].description : f[i].units));
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, w);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  hsize_t dim = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &dim, NULL);
  hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t e = a < 0 ? -1 : H5Awrite(a, t, buf);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  free(buf);
  RF_CHECK(e, "write a field attribute");
  return FM_OK;
}

fm_err fm_runfile_describe(fm_runfile *rf, hid_t obj, const char *description, const char *units) {
  FM_CHECK(fm_runfile_text_attr(rf, obj, "description", description));
  FM_CHECK(fm_runfile_text_attr(rf, obj, "units", units));
  return FM_OK;
}

static fm_err describe_compound(fm_runfile *rf, hid_t ds, const char *description, const field_doc *f, int n) {
  FM_CHECK(fm_runfile_describe(rf, ds, description, "see field_units"));
  FM_CHECK(attr_texts(rf, ds, "field_names", f, n, 0));
  FM_CHECK(attr_texts(rf, ds, "field_descriptions", f, n, 1));
  FM_CHECK(attr_texts(rf, ds, "field_units", f, n, 2));
  return FM_OK;
}

#define NDOC(a) (int)(sizeof a / sizeof a[0])

fm_err fm_runfile_describe_tensor_index(fm_runfile *rf, hid_t ds) {
  return describe_compound(rf, ds, "where each model tensor is stored in this checkpoint and its shape",
                           tensor_index_fields, NDOC(tensor_index_fields));
}

fm_err fm_runfile_describe_layout(fm_runfile *rf) {
  FM_CHECK(fm_runfile_text_attr(rf, rf->file, "description",
                     "fedmoe run file: per-round and per-client metrics (/metrics), routing statistics "
                     "(/routing), strategy figures (/fl), checkpoints (/checkpoints); every dataset has "
                     "description and units attributes, compound ones field_names, field_descriptions and "
                     "field_units"));
  FM_CHECK(describe_compound(rf, rf->clients_ds, "one row per client and round reported: the sampled clients "
                             "of every round, every client in the final round (fl.final_eval = all)",
                             client_fields, NDOC(client_fields)));
  FM_CHECK(describe_compound(rf, rf->rounds_ds, "one row per round: means over the clients, phase times (the "
                             "slowest rank's unless said), bytes, simulated time, what became of the sampled "
                             "clients", round_fields, NDOC(round_fields)));
  FM_CHECK(describe_compound(rf, rf->index_ds, "the (round, client) of each row of /routing/counts, "
                             "/routing/gate_mass and /fl/<statistic>: one row per client that trained in a round",
                             index_fields, NDOC(index_fields)));
  FM_CHECK(fm_runfile_describe(rf, rf->counts_ds, "top-k expert picks in the client's training, "
                               "[row][layer][expert], rows as /routing/index (a dense layer has zeros)", "1"));
  FM_CHECK(fm_runfile_describe(rf, rf->mass_ds, "router probability summed over the client's training tokens, "
                               "[row][layer][expert], rows as /routing/index", "1"));
  return FM_OK;
}

fm_err fm_runfile_describe_fl(fm_runfile *rf, hid_t ds, const char *name) {
  for (int i = 0; i < NDOC(fl_datasets); i++)
    if (!strcmp(fl_datasets[i].name, name))
      return fm_runfile_describe(rf, ds, fl_datasets[i].description, fl_datasets[i].units);
  return fm_runfile_describe(rf, ds, "a strategy figure", "1");
}

int fm_round_field_doc(const char *field, const char **description, const char **units) {
  for (int i = 0; i < NDOC(round_fields); i++)
    if (!strcmp(round_fields[i].name, field)) {
      *description = round_fields[i].description;
      *units = round_fields[i].units;
      return 1;
    }
  return 0;
}

hid_t fm_runfile_status_type(void) {
  hid_t t = H5Tenum_create(H5T_NATIVE_INT32);
  static const struct { const char *name; int32_t v; } codes[] = {
    {"evaluated_only", -1}, {"kept", FM_CLIENT_KEPT}, {"late", FM_CLIENT_LATE}, {"dropped", FM_CLIENT_DROPPED},
    {"offline", FM_CLIENT_OFFLINE}, {"surplus", FM_CLIENT_SURPLUS}};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) H5Tenum_insert(t, codes[i].name, &codes[i].v);
  return t;
}
