/* runfile_info.c - `fedmoe info`: what a run file holds, read serially. */
#include "runfile_impl.h"

#include "fedmoe/pretrain.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether attribute a holds exactly one value (a file may hold an array there: reading
 * it into one value would overrun the buffer). */
static int one_value(hid_t a) {
  hid_t sp = H5Aget_space(a);
  int one = sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1;
  if (sp >= 0) H5Sclose(sp);
  return one;
}

static int read_str_attr(hid_t obj, const char *name, char *buf, size_t len) {
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t t = H5Aget_type(a);
  size_t n = H5Tget_size(t);
  int ok = 0;
  if (H5Tget_class(t) == H5T_STRING && n > 0 && one_value(a)) {
    char *tmp = malloc(n + 1);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    if (tmp && H5Aread(a, mt, tmp) >= 0) {
      tmp[n] = 0;
      snprintf(buf, len, "%s", tmp);
      ok = 1;
    }
    H5Tclose(mt);
    free(tmp);
  }
  H5Tclose(t);
  H5Aclose(a);
  return ok;
}

static int read_i64_attr(hid_t obj, const char *name, long long *v) {
  if (H5Aexists(obj, name) <= 0) return 0;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  int64_t x = 0;
  int ok = one_value(a) && H5Aread(a, H5T_NATIVE_INT64, &x) >= 0;
  H5Aclose(a);
  *v = x;
  return ok;
}

typedef struct { FILE *out; hid_t file; int n; const char *path; } ckpt_walk;

static herr_t list_checkpoint(hid_t g, const char *name, const H5L_info_t *info, void *data) {
  ckpt_walk *w = data;
  if (info->type == H5L_TYPE_SOFT) {
    char target[128] = "";
    H5Lget_val(g, name, target, sizeof target, H5P_DEFAULT);
    target[sizeof target - 1] = 0; /* a longer target is cut, not terminated */
    fprintf(w->out, "  %-10s -> %s\n", name, target);
    return 0;
  }
  char file[FM_PATH_MAX + 80] = "", lfile[FM_PATH_MAX + 64], full[FM_PATH_MAX + 64];
  hid_t cf = -1, c;
  if (fm_elink_file(g, name, lfile, sizeof lfile)) { /* a checkpoint in a file of its own, by the run file's name */
    fm_ckpt_path_by_name(w->path, lfile, full, sizeof full);
    snprintf(file, sizeof file, " in %s", full);
    cf = H5Fopen(full, H5F_ACC_RDONLY, H5P_DEFAULT);
    c = cf >= 0 ? H5Gopen2(cf, "/", H5P_DEFAULT) : -1;
  } else {
    c = H5Gopen2(g, name, H5P_DEFAULT);
  }
  if (c < 0) {
    if (cf >= 0) H5Fclose(cf);
    fprintf(w->out, "  %-10s MISSING%s\n", name, file);
    w->n++;
    return 0;
  }
  long long complete = 0;
  int has = read_i64_attr(c, "complete", &complete);
  hid_t shared = H5Gopen2(c, "shared", H5P_DEFAULT);
  H5G_info_t gi = {0};
  if (shared >= 0) { H5Gget_info(shared, &gi); H5Gclose(shared); }
  fprintf(w->out, "  %-10s %s, %llu shared tensors%s\n", name, has && complete ? "complete" : "INCOMPLETE",
          (unsigned long long)gi.nlinks, file);
  H5Gclose(c);
  if (cf >= 0) H5Fclose(cf);
  w->n++;
  return 0;
}

/* How many client-rounds of training the per-client statistics hold (format 2). */
static void print_trained(hid_t f, FILE *out) {
  if (H5Lexists(f, "/routing", H5P_DEFAULT) <= 0 || H5Lexists(f, "/routing/index", H5P_DEFAULT) <= 0) return;
  hid_t d = H5Dopen2(f, "/routing/index", H5P_DEFAULT);
  if (d < 0) return;
  hid_t sp = H5Dget_space(d);
  hsize_t n = 0;
  if (H5Sget_simple_extent_ndims(sp) == 1) {
    H5Sget_simple_extent_dims(sp, &n, NULL);
    fprintf(out, "trained    %llu client-rounds (rows of the per-client statistics)\n", (unsigned long long)n);
  }
  H5Sclose(sp);
  H5Dclose(d);
}

/* The configured model.layers of the stored configuration, or -1. The `layers`
 * attribute counts the clients' model, which fedbiot makes smaller (its emulator and
 * adapter), and sizes the per-client statistics. */
static long long configured_layers(const char *config) {
  fm_config cfg;
  long long layers = -1;
  if (fm_config_init(&cfg) == FM_OK && fm_config_parse(&cfg, config, "run file config") == FM_OK)
    layers = cfg.model.layers;
  fm_error_clear();
  fm_config_free(&cfg);
  return layers;
}

/* path opened read-only into *f, or the error saying why it cannot be (HDF5's own
 * messages silenced: ours name the file) */
static fm_err open_hdf5(const char *path, hid_t *f) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  if (H5Fis_hdf5(path) <= 0)
    FM_ERROR(FM_ERR_FORMAT, "'%s' is not an HDF5 file (or cannot be read)", path);
  *f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (*f < 0)
    FM_ERROR(FM_ERR_FORMAT, "'%s' is truncated or damaged: HDF5 finds its signature but cannot open it", path);
  return FM_OK;
}

fm_err fm_runfile_info(const char *path, FILE *out) {
  hid_t f;
  FM_CHECK(open_hdf5(path, &f));
  char version[64], strategy[64] = "?", start[64] = "?", kind[32] = "";
  if (!read_str_attr(f, "fedmoe_version", version, sizeof version)) {
    H5Fclose(f);
    FM_ERROR(FM_ERR_FORMAT, "'%s' is an HDF5 file but not a fedmoe run file (no fedmoe_version attribute)", path);
  }
  if (read_str_attr(f, "kind", kind, sizeof kind) && !strcmp(kind, "pretrain")) { /* fedmoe pretrain's */
    H5Fclose(f);
    FM_CHECK(fm_pretrain_file_info(path, out));
    return FM_OK;
  }
  read_str_attr(f, "strategy", strategy, sizeof strategy);
  read_str_attr(f, "start_time", start, sizeof start);
  long long seed = 0, ranks = 0, clients = 0, layers = 0, experts = 0, format = 1;
  read_i64_attr(f, "seed", &seed);
  read_i64_attr(f, "ranks", &ranks);
  read_i64_attr(f, "clients", &clients);
  read_i64_attr(f, "layers", &layers);
  read_i64_attr(f, "experts", &experts);
  read_i64_attr(f, "format", &format); /* files without it are format 1 */
  char *config = malloc(1 << 20);
  int have_config = config && read_str_attr(f, "config", config, 1 << 20);
  long long model_layers = have_config ? configured_layers(config) : -1;
  char client_layers[96] = "";
  if (model_layers < 0) model_layers = layers;
  else if (model_layers != layers)
    snprintf(client_layers, sizeof client_layers, " (the clients' model: %lld layers)", layers);
  fprintf(out, "run file   %s\nfedmoe     %s\nformat     %lld%s\nstrategy   %s\nstarted    %s\nseed       %lld\n"
               "ranks      %lld\nclients    %lld\nmodel      %lld layers%s, %lld experts per MoE layer\n",
          path, version, format, format == 1 ? " (dense per-client statistics; --resume needs the fedmoe that wrote it)" : "",
          strategy, start, seed, ranks, clients, model_layers, client_layers, experts);
  hid_t d = H5Dopen2(f, "/metrics/rounds", H5P_DEFAULT);
  if (d >= 0) {
    hid_t sp = H5Dget_space(d);
    hsize_t n = 0;
    if (H5Sget_simple_extent_ndims(sp) == 1) H5Sget_simple_extent_dims(sp, &n, NULL); /* else not our table */
    fprintf(out, "rounds     %llu done\n", (unsigned long long)n);
    if (n > 0) {
      hid_t t = fm_runfile_round_type();
      hsize_t last = n - 1, one = 1;
      H5Sselect_hyperslab(sp, H5S_SELECT_SET, &last, NULL, &one, NULL);
      hid_t ms = H5Screate_simple(1, &one, NULL);
      fm_round_row row = {0};
      row.test_loss_full = NAN; /* files of fedmoe 0.1.0 may lack the field */
      row.test_loss_global = NAN; /* and files from before Ditto this one */
      if (H5Dread(d, t, ms, sp, H5P_DEFAULT, &row) >= 0) {
        fprintf(out, "final      round %d: mean train %.4f  val %.4f  test %.4f nats (perplexity %.3f)%s\n",
                row.round, row.mean_train, row.mean_val, row.mean_test, exp(row.mean_test),
                !isnan(row.test_loss_full) ? " on the clients' emulator"
                : !isnan(row.test_loss_global) ? " of the clients' personal models (Ditto)" : "");
        if (!isnan(row.test_loss_full))
          fprintf(out, "full model round %d: test %.4f nats (perplexity %.3f), the frozen bottom blocks with the "
                  "aggregated adapter\n", row.round, row.test_loss_full, exp(row.test_loss_full));
        if (!isnan(row.test_loss_global))
          fprintf(out, "global model round %d: test %.4f nats (perplexity %.3f)\n", row.round, row.test_loss_global,
                  exp(row.test_loss_global));
      }
      H5Sclose(ms);
      H5Tclose(t);
    }
    H5Sclose(sp);
    H5Dclose(d);
  } else {
    fprintf(out, "rounds     none recorded\n");
  }
  print_trained(f, out);
  fprintf(out, "checkpoints\n");
  hid_t g = H5Gopen2(f, "/checkpoints", H5P_DEFAULT);
  ckpt_walk w = {out, f, 0, path};
  if (g >= 0) {
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, list_checkpoint, &w);
    H5Gclose(g);
  }
  if (w.n == 0) fprintf(out, "  none\n");
  if (have_config) fprintf(out, "configuration\n%s", config);
  free(config);
  H5Fclose(f);
  return FM_OK;
}

/* `fedmoe info RUNFILE --rounds`: one line per round of /metrics/rounds with its wall
 * time and phase times (the slowest rank's; nan: no rank did that phase), for
 * scripts that time rounds (bench/fedround.sh) without an HDF5 reader of their own. */
fm_err fm_runfile_rounds(const char *path, FILE *out) {
  hid_t f;
  FM_CHECK(open_hdf5(path, &f));
  hid_t d = H5Dopen2(f, "/metrics/rounds", H5P_DEFAULT);
  if (d < 0) {
    H5Fclose(f);
    FM_ERROR(FM_ERR_FORMAT, "'%s' has no /metrics/rounds table (not a fedmoe run file, or no round done)", path);
  }
  hid_t sp = H5Dget_space(d);
  hsize_t n = 0;
  if (H5Sget_simple_extent_ndims(sp) == 1) H5Sget_simple_extent_dims(sp, &n, NULL);
  hid_t t = fm_runfile_round_type();
  fm_round_row *rows = n ? calloc(n, sizeof *rows) : NULL;
  herr_t rc = rows ? H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows) : 0;
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  if (n && (!rows || rc < 0)) {
    free(rows);
    FM_ERROR(FM_ERR_FORMAT, "'%s': /metrics/rounds cannot be read as fedmoe's round table", path);
  }
  fprintf(out, "round   wall_s  t_local  t_aggregate  t_server  t_broadcast  t_evaluate  t_io  mean_train\n");
  for (hsize_t i = 0; i < n; i++) {
    const fm_round_row *r = &rows[i];
    fprintf(out, "%d %.6f %.6f %.6f %.6f %.6f %.6f %.6f %.6f\n", r->round, r->wall_s, r->t_local, r->t_aggregate,
            r->t_server, r->t_broadcast, r->t_evaluate, r->t_io, r->mean_train);
  }
  free(rows);
  return FM_OK;
}
