/* runfile_gen.c - an HDF5 file built from fuzz input, for the run-file readers.
 *
 * Mutating the bytes of an HDF5 file mostly exercises HDF5's own decoder (whose bugs
 * are not ours to fix, and which hide ours); what our readers parse is the file's
 * CONTENT: which attributes exist, their types, sizes and values, the shapes and
 * types of the metric datasets, the links of /checkpoints and their names. So the
 * input is a small program of operations that build a well-formed HDF5 file with
 * the HDF5 API, choosing among the names our readers look for and among the
 * values and shapes they expect and many they do not. */
#include "runfile_gen.h"

#include "fedmoe/io.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const uint8_t *p; size_t n, i; } cursor;

static unsigned next(cursor *c) { return c->i < c->n ? c->p[c->i++] : 0; }
static int more(const cursor *c) { return c->i < c->n; }

static const char *const attr_names[] = {"fedmoe_version", "strategy", "start_time", "seed", "ranks",
                                         "clients", "layers", "experts", "config", "complete", "format"};
static const char *const ds_names[] = {"/metrics/rounds", "/metrics/clients", "/routing/counts",
                                       "/routing/gate_mass", "/checkpoints", "/routing/index"};
/* the last: a stored configuration that fuzz_resume's (defaults, seed 42) matches, so
 * that --resume's configuration check lets files through to the checkpoint reads */
static const char *const strings[] = {"0.1.0", "fedavg", "comigs", "local", "", "hfedmoe", "x",
                                      "[run]\nseed = 42\n"};
/* values our readers compare with: the defaults of a configuration and the fixture's */
static const int64_t ints[] = {0, 1, 2, 3, 4, 6, 7, 8, 42, -1, 1000000, INT64_MAX, INT64_MIN, 0x7fffffff};

#define NA(a) (sizeof(a) / sizeof((a)[0]))

static hid_t int_type(unsigned k) {
  switch (k % 6) {
  case 0: return H5T_NATIVE_INT64;
  case 1: return H5T_NATIVE_INT32;
  case 2: return H5T_NATIVE_UINT8;
  case 3: return H5T_NATIVE_DOUBLE;
  case 4: return H5T_NATIVE_FLOAT;
  default: return H5T_NATIVE_UINT64;
  }
}

/* An attribute on obj: a string (fixed, of any length, or variable) or a number (one
 * value or an array), named from attr_names. */
static void add_attr(cursor *c, hid_t obj) {
  const char *name = attr_names[next(c) % NA(attr_names)];
  unsigned kind = next(c);
  if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
  if (kind & 1) { /* a string */
    char buf[1 << 12];
    size_t len = next(c);
    if (kind & 2) len = len * 16 + next(c);
    if (len >= sizeof buf) len = sizeof buf - 1;
    if (kind & 4) { /* one of the strings our readers compare with */
      snprintf(buf, sizeof buf, "%s", strings[next(c) % NA(strings)]);
      len = strlen(buf);
    } else {
      for (size_t j = 0; j < len; j++) buf[j] = (char)next(c);
      buf[len] = 0;
    }
    /* kind & 32: an array of 3 strings where readers expect one */
    hsize_t three = 3;
    hid_t t = H5Tcopy(H5T_C_S1), sp = (kind & 32) ? H5Screate_simple(1, &three, NULL) : H5Screate(H5S_SCALAR);
    size_t size = len ? len : 1;
    if (kind & 8) H5Tset_size(t, H5T_VARIABLE);
    else H5Tset_size(t, size);
    if (kind & 16) H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    char *many = malloc(3 * size);
    if (a >= 0 && many) {
      const char *vp[3] = {buf, buf, buf};
      for (int j = 0; j < 3; j++) memcpy(many + j * size, buf, size);
      H5Awrite(a, t, (kind & 8) ? (const void *)vp : (const void *)many);
    }
    free(many);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
  } else { /* a number, or several */
    hid_t t = int_type(kind >> 1);
    hsize_t dims[2] = {1 + (kind >> 5) % 3, 2};
    int rank = (kind & 0x80) ? 2 : 1;
    hid_t sp = (kind >> 5) % 3 == 0 && rank == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    int64_t v[6];
    for (int j = 0; j < 6; j++) v[j] = ints[next(c) % NA(ints)];
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
      H5Awrite(a, H5T_NATIVE_INT64, v);
      H5Aclose(a);
    }
    H5Sclose(sp);
  }
}

/* A dataset of the metric and routing paths (or /checkpoints itself) with a chosen
 * rank, shape and type: the compound rows our readers expect, other compounds,
 * numbers, strings. */
static void add_dataset(cursor *c, hid_t file) {
  const char *path = ds_names[next(c) % NA(ds_names)];
  unsigned kind = next(c);
  int rank = (int)(next(c) % 6); /* 0: scalar */
  hsize_t dims[5], maxd[5], chunk[5];
  hsize_t total = 1;
  for (int j = 0; j < rank; j++) {
    dims[j] = next(c) % 5;
    maxd[j] = j == 0 ? H5S_UNLIMITED : dims[j];
    chunk[j] = dims[j] ? dims[j] : 1;
    total *= dims[j];
  }
  hid_t t;
  switch (kind % 5) {
  case 0: /* a round row as fedmoe writes it */
    t = H5Tcreate(H5T_COMPOUND, sizeof(fm_round_row));
    H5Tinsert(t, "round", HOFFSET(fm_round_row, round), H5T_NATIVE_INT32);
    H5Tinsert(t, "mean_train", HOFFSET(fm_round_row, mean_train), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "mean_val", HOFFSET(fm_round_row, mean_val), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "mean_test", HOFFSET(fm_round_row, mean_test), H5T_NATIVE_DOUBLE);
    H5Tinsert(t, "wall_s", HOFFSET(fm_round_row, wall_s), H5T_NATIVE_DOUBLE);
    break;
  case 1: /* a row with a round and nothing else */
    t = H5Tcreate(H5T_COMPOUND, 8);
    H5Tinsert(t, "round", 0, H5T_NATIVE_INT32);
    break;
  case 2: /* a row without a round */
    t = H5Tcreate(H5T_COMPOUND, 8);
    H5Tinsert(t, "loss", 0, H5T_NATIVE_DOUBLE);
    break;
  case 3: t = H5Tcopy(int_type(kind >> 3)); break;
  default: t = H5Tcopy(H5T_C_S1); H5Tset_size(t, 3); break;
  }
  if (H5Lexists(file, path, H5P_DEFAULT) > 0) H5Ldelete(file, path, H5P_DEFAULT);
  hid_t sp = rank ? H5Screate_simple(rank, dims, (kind & 0x40) ? maxd : NULL) : H5Screate(H5S_SCALAR);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  if (rank && (kind & 0x40)) H5Pset_chunk(dcpl, rank, chunk);
  hid_t d = H5Dcreate2(file, path, t, sp, lcpl, dcpl, H5P_DEFAULT);
  if (d >= 0) {
    size_t bytes = (size_t)total * H5Tget_size(t);
    uint8_t *buf = calloc(bytes ? bytes : 1, 1);
    if (buf) {
      /* the values: a pattern from one input byte (0: all zero); rounds 1, 2, ... in
       * the first field of the row types */
      unsigned fill = next(c);
      for (size_t j = 0; j < bytes; j++) buf[j] = (uint8_t)(fill * (j + 1));
      if (kind % 5 <= 1)
        for (hsize_t r = 0; r < total; r++) *(int32_t *)(buf + r * H5Tget_size(t)) = (int32_t)r + 1;
      H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      free(buf);
    }
    H5Dclose(d);
  }
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(sp);
  H5Tclose(t);
}

static hid_t open_or_create_group(hid_t loc, const char *name) {
  if (H5Lexists(loc, name, H5P_DEFAULT) > 0) return H5Gopen2(loc, name, H5P_DEFAULT);
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t g = H5Gcreate2(loc, name, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  H5Pclose(lcpl);
  return g;
}

/* A float32 dataset of n values, or [rows][n] when rows > 0. */
static void add_floats(cursor *c, hid_t g, const char *name, hsize_t rows, hsize_t n, hid_t t) {
  hsize_t dims[2] = {rows ? rows : n, n};
  hid_t sp = H5Screate_simple(rows ? 2 : 1, dims, NULL);
  hid_t d = H5Dcreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0) {
    size_t bytes = (size_t)(rows ? rows * n : n) * H5Tget_size(t);
    uint8_t *buf = calloc(bytes ? bytes : 1, 1);
    if (buf) {
      unsigned fill = next(c); /* the values: a pattern from one input byte (0: all zero) */
      for (size_t j = 0; j < bytes; j++) buf[j] = (uint8_t)(fill * (j + 1));
      H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      free(buf);
    }
    H5Dclose(d);
  }
  H5Sclose(sp);
}

/* A link in /checkpoints: a checkpoint group (name r%06d or another), its attributes,
 * shared tensors and client classes; or a soft, hard or external link. */
static void add_checkpoint(cursor *c, hid_t file) {
  hid_t cp = open_or_create_group(file, "/checkpoints");
  if (cp < 0) return;
  unsigned kind = next(c);
  char name[300];
  switch ((kind >> 4) % 4) {
  case 0: case 1: snprintf(name, sizeof name, "r%06u", next(c) % 8); break;
  case 2: snprintf(name, sizeof name, "r%d", (int)(int8_t)next(c) * 1000003); break;
  default: {
    size_t len = 1 + next(c);
    for (size_t j = 0; j < len && j < sizeof name - 1; j++) {
      unsigned ch = next(c);
      name[j] = (char)(ch == 0 || ch == '/' || ch == '.' ? 'r' : ch); /* legal link names */
    }
    name[len < sizeof name ? len : sizeof name - 1] = 0;
  }
  }
  if (H5Lexists(cp, name, H5P_DEFAULT) > 0) H5Ldelete(cp, name, H5P_DEFAULT);
  switch (kind % 4) {
  case 0: case 1: { /* a checkpoint group */
    hid_t g = H5Gcreate2(cp, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) break;
    int nops = (int)(next(c) % 8);
    for (int k = 0; k < nops && more(c); k++) {
      unsigned op = next(c);
      if (op % 3 == 0) add_attr(c, g);
      else if (op % 3 == 1) {
        hid_t s = open_or_create_group(g, "shared");
        if (s >= 0) {
          char tn[32];
          snprintf(tn, sizeof tn, "%s", (op >> 2) & 1 ? "wte" : "t0");
          if (H5Lexists(s, tn, H5P_DEFAULT) <= 0) add_floats(c, s, tn, 0, next(c) % 40, H5T_NATIVE_FLOAT);
          H5Gclose(s);
        }
      } else {
        hid_t cl = open_or_create_group(g, "clients/class0");
        if (cl >= 0) {
          static const char *const rows[] = {"params", "adam_m", "adam_v", "adam_step", "allocated"};
          const char *rn = rows[next(c) % 5];
          hsize_t nr = next(c) % 8, nc = next(c) % 8;
          if (H5Lexists(cl, rn, H5P_DEFAULT) <= 0)
            add_floats(c, cl, rn, (op & 4) ? 0 : nr, (op & 4) ? nr : nc, int_type(op >> 3));
          H5Gclose(cl);
        }
      }
    }
    H5Gclose(g);
    break;
  }
  case 2: { /* a soft link, its target of any length */
    char target[3 * 255 + 1];
    size_t len = next(c) * 3;
    for (size_t j = 0; j < len; j++) target[j] = (char)('a' + next(c) % 26);
    target[len] = 0;
    if (len == 0) snprintf(target, sizeof target, "r000001");
    H5Lcreate_soft(target, cp, name, H5P_DEFAULT, H5P_DEFAULT);
    break;
  }
  default: /* an external link into a file that does not exist, or a hard link to a dataset */
    if (kind & 0x40)
      H5Lcreate_external("/nonexistent/fedmoe-fuzz.h5", "/x", cp, name, H5P_DEFAULT, H5P_DEFAULT);
    else {
      hsize_t one = 1;
      hid_t sp = H5Screate_simple(1, &one, NULL);
      hid_t d = H5Dcreate2(cp, name, H5T_NATIVE_INT32, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (d >= 0) H5Dclose(d);
      H5Sclose(sp);
    }
  }
  H5Gclose(cp);
}

int fuzz_make_runfile(const char *path, const uint8_t *data, size_t size) {
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) return 1;
  cursor c = {data, size, 0};
  for (int ops = 0; more(&c) && ops < 64; ops++) {
    switch (next(&c) % 4) {
    case 0: add_attr(&c, f); break;
    case 1: add_dataset(&c, f); break;
    default: add_checkpoint(&c, f); break;
    }
  }
  return H5Fclose(f) < 0;
}
