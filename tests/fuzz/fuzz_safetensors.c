/* fuzz_safetensors.c - the safetensors reader (model.init, eval --model).
 *
 * Input: a whole safetensors file. It is written to a scratch file and opened; when
 * the header is accepted, every tensor is read into float32. What must hold: an
 * accepted tensor lies inside the file and its byte count matches its shape, so
 * reading it succeeds; and what the writer makes of the tensors opens again with the
 * same names, shapes and values (bit for bit, NaNs included). */
#include "fuzz.h"

#include "fedmoe/error.h"
#include "fedmoe/hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 1 << 20) return 0;
  char path[256], back[256];
  snprintf(path, sizeof path, "%s/in.safetensors", fuzz_scratch());
  snprintf(back, sizeof back, "%s/back.safetensors", fuzz_scratch());
  if (fuzz_write_file(path, data, size)) abort();
  fm_st *st = NULL;
  if (fm_st_open_file(&st, path)) {
    fm_error_clear();
    return 0;
  }
  int n = fm_st_count(st);
  float **vals = calloc((size_t)n + 1, sizeof *vals);
  fm_st_writer *w = NULL;
  if (!vals || fm_st_writer_create(&w)) abort();
  for (int i = 0; i < n; i++) {
    fm_st_tensor *t = fm_st_get(st, i);
    vals[i] = malloc(t->numel * sizeof(float) + 1);
    if (!vals[i]) abort();
    if (fm_st_read_f32(st, t, vals[i])) {
      fprintf(stderr, "fuzz_safetensors: accepted tensor '%s' cannot be read: %s\n", t->name, fm_error_message());
      abort();
    }
    if (fm_st_writer_add(w, t->name, vals[i], t->ndim, t->shape)) abort();
  }
  if (fm_st_writer_write(w, back)) abort();
  fm_st *st2 = NULL;
  if (fm_st_open_file(&st2, back) || fm_st_count(st2) != n) abort();
  for (int i = 0; i < n; i++) {
    fm_st_tensor *a = fm_st_get(st, i), *b = fm_st_find(st2, a->name);
    if (!b || b->ndim != a->ndim || memcmp(b->shape, a->shape, sizeof a->shape[0] * (size_t)a->ndim)) abort();
    float *v = malloc(b->numel * sizeof(float) + 1);
    if (!v || fm_st_read_f32(st2, b, v) || memcmp(v, vals[i], b->numel * sizeof(float))) abort();
    free(v);
  }
  fm_st_close(st2);
  fm_st_writer_free(w);
  for (int i = 0; i < n; i++) free(vals[i]);
  free(vals);
  fm_st_close(st);
  return 0;
}
