/* test_bench_eval.c - the reference for `fedmoe eval`, run by tests/mpi/eval.sh.
 *
 * With FEDMOE_EVAL_RUNFILE (a run of a fully shared strategy, fedavg) and
 * FEDMOE_EVAL_TEXT set, it rebuilds the checkpointed model on its own: the shape from
 * the run's stored configuration, one class, every tensor read by name from
 * /checkpoints/latest/shared/{name} with plain HDF5 calls (none of checkpoint_read.c),
 * then cuts the text into blocks of context + 1 bytes itself, runs them one at a time
 * and takes the cross-entropy from the logits in double precision (not through the
 * engine's cross-entropy kernel). It prints "reference_ce X" for the script to compare
 * with what `fedmoe eval` printed. Without the variables it has nothing to check.
 * FEDMOE_EVAL_GROUP=server reads /checkpoints/latest/server/{name} instead: fedbiot's
 * full model, of the configured shape. */
#include "cunit_main.h"

#include "fedmoe/config.h"
#include "fedmoe/model.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_config_attr(hid_t f) {
  hid_t a = H5Aopen(f, "config", H5P_DEFAULT);
  if (a < 0) return NULL;
  hid_t t = H5Aget_type(a);
  size_t n = H5Tget_size(t);
  char *s = calloc(n + 1, 1);
  hid_t mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, n);
  if (s && H5Aread(a, mt, s) < 0) {
    free(s);
    s = NULL;
  }
  H5Tclose(mt);
  H5Tclose(t);
  H5Aclose(a);
  return s;
}

static void test_reference(void) {
  const char *run = getenv("FEDMOE_EVAL_RUNFILE"), *textpath = getenv("FEDMOE_EVAL_TEXT");
  if (!run || !textpath) {
    printf("no FEDMOE_EVAL_RUNFILE / FEDMOE_EVAL_TEXT: nothing to check\n");
    return;
  }
  hid_t f = H5Fopen(run, H5F_ACC_RDONLY, H5P_DEFAULT);
  CU_ASSERT_FATAL(f >= 0);
  char *cfg_text = read_config_attr(f);
  CU_ASSERT_FATAL(cfg_text != NULL);
  fm_config cfg;
  CU_ASSERT_FATAL(fm_config_init(&cfg) == FM_OK);
  CU_ASSERT_FATAL(fm_config_parse(&cfg, cfg_text, "run config") == FM_OK);
  fm_model_shape s;
  CU_ASSERT_FATAL(fm_model_shape_from_config(&cfg, &s) == FM_OK);
  const int T = s.context, V = s.vocab;
  fm_model *m;
  CU_ASSERT_FATAL(fm_model_create(&m, &s, 1, T, 1, NULL, NULL) == FM_OK);
  for (int i = 0; i < fm_model_ntensors(m); i++) {
    fm_tensor *t = fm_model_tensor(m, i);
    char path[200];
    const char *group = getenv("FEDMOE_EVAL_GROUP");
    snprintf(path, sizeof path, "/checkpoints/latest/%s/%s", group ? group : "shared", t->name);
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    CU_ASSERT_FATAL(H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->w) >= 0);
    H5Dclose(d);
  }
  H5Fclose(f);
  FILE *fp = fopen(textpath, "rb");
  CU_ASSERT_FATAL(fp != NULL);
  unsigned char *buf = malloc(1 << 22);
  size_t len = fread(buf, 1, 1 << 22, fp);
  fclose(fp);
  const size_t nb = len / (size_t)(T + 1);
  CU_ASSERT_FATAL(nb > 0);
  int32_t *tok = malloc((size_t)T * sizeof *tok), *tgt = malloc((size_t)T * sizeof *tgt);
  double sum = 0;
  for (size_t b = 0; b < nb; b++) {
    const unsigned char *p = buf + b * (size_t)(T + 1);
    for (int t = 0; t < T; t++) {
      tok[t] = p[t];
      tgt[t] = p[t + 1];
    }
    float ce;
    CU_ASSERT_FATAL(fm_model_forward(m, tok, tgt, 1, T, &ce, NULL) == FM_OK);
    const float *z = fm_model_logits(m);
    for (int t = 0; t < T; t++) {
      const float *row = z + (size_t)t * V;
      double mx = row[0], se = 0;
      for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
      for (int j = 0; j < V; j++) se += exp((double)row[j] - mx);
      sum += mx + log(se) - row[tgt[t]];
    }
  }
  printf("\nreference_ce %.6f over %zu blocks\n", sum / ((double)nb * T), nb);
  free(tok);
  free(tgt);
  free(buf);
  free(cfg_text);
  fm_model_free(m);
  fm_config_free(&cfg);
}

int fm_test_register(void) {
  static const fm_test tests[] = {{"eval reference from the run file", test_reference}, {NULL, NULL}};
  return fm_test_suite("bench_eval", tests);
}
