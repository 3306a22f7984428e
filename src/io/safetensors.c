/* safetensors.c - reading and writing safetensors files (the Hugging Face weight
 * format): an 8-byte little-endian header length N, a JSON header of N bytes
 * (jansson parses it), then the raw tensor bytes. Reading checks the whole header
 * up front, so a damaged file is refused before anything is loaded; values are read
 * with pread and converted to float32 (F16 and BF16 too). */
#include "fedmoe/hf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads and writes little-endian data in place: port it for a big-endian host"
#endif

#define MAX_HEADER ((uint64_t)1 << 30) /* far beyond any real header; guards the allocation */

struct fm_st {
  int nfiles;
  char **paths;
  int *fds;
  uint64_t *data_off; /* 8 + N: where each file's tensor bytes start */
  uint64_t *size;
  int n, cap;
  fm_st_tensor *t;
};

static const char *const dtype_names[] = {"F32", "F16", "BF16"};
static const size_t dtype_bytes[] = {4, 2, 2};

int fm_st_count(const fm_st *st) { return st->n; }
fm_st_tensor *fm_st_get(fm_st *st, int i) { return i >= 0 && i < st->n ? &st->t[i] : NULL; }
const char *fm_st_file_of(const fm_st *st, const fm_st_tensor *t) { return st->paths[t->file]; }

fm_st_tensor *fm_st_find(fm_st *st, const char *name) {
  for (int i = 0; i < st->n; i++)
    if (!strcmp(st->t[i].name, name)) return &st->t[i];
  return NULL;
}

void fm_st_close(fm_st *st) {
  if (!st) return;
  for (int i = 0; i < st->nfiles; i++) {
    if (st->fds[i] >= 0) close(st->fds[i]);
    free(st->paths[i]);
  }
  for (int i = 0; i < st->n; i++) free(st->t[i].name);
  free(st->paths);
  free(st->fds);
  free(st->data_off);
  free(st->size);
  free(st->t);
  free(st);
}

/* Read exactly n bytes at off; 0 on success. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off) {
  char *p = buf;
  while (n) {
    ssize_t r = pread(fd, p, n, (off_t)off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static fm_err add_file(fm_st *st, const char *path, int *idx) {
  int k = st->nfiles;
  char **np = realloc(st->paths, (size_t)(k + 1) * sizeof *np);
  if (np) st->paths = np;
  int *nf = realloc(st->fds, (size_t)(k + 1) * sizeof *nf);
  if (nf) st->fds = nf;
  uint64_t *no = realloc(st->data_off, (size_t)(k + 1) * sizeof *no);
  if (no) st->data_off = no;
  uint64_t *ns = realloc(st->size, (size_t)(k + 1) * sizeof *ns);
  if (ns) st->size = ns;
  if (!np || !nf || !no || !ns) FM_ERROR(FM_ERR_MEM, "out of memory opening '%s'", path);
  st->paths[k] = strdup(path);
  st->fds[k] = -1;
  st->nfiles = k + 1;
  if (!st->paths[k]) FM_ERROR(FM_ERR_MEM, "out of memory opening '%s'", path);
  *idx = k;
  return FM_OK;
}

static fm_err json_int(json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return FM_OK;
  }
  return FM_ERR_FORMAT;
}

/* One header entry: name -> {dtype, shape, data_offsets}. */
static fm_err parse_entry(fm_st *st, int file, const char *name, json_t *v) {
  const char *path = st->paths[file];
  if (!json_is_object(v)) FM_ERROR(FM_ERR_FORMAT, "%s: header entry '%s' is not an object", path, name);
  json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"),
         *jo = json_object_get(v, "data_offsets");
  if (!json_is_string(jd)) FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s' has no string field 'dtype'", path, name);
  int dt = -1;
  for (int i = 0; i < 3; i++)
    if (!strcmp(json_string_value(jd), dtype_names[i])) dt = i;
  if (dt < 0)
    FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s' has dtype %s, which fedmoe does not read (F32, F16, BF16)", path,
             name, json_string_value(jd));
  if (!json_is_array(js) || json_array_size(js) > 8)
    FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s': field 'shape' is not an array of at most 8 sizes", path, name);
  if (!json_is_array(jo) || json_array_size(jo) != 2)
    FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets' is not [begin, end]", path, name);
  if (st->n == st->cap) {
    int cap = st->cap ? 2 * st->cap : 64;
    fm_st_tensor *nt = realloc(st->t, (size_t)cap * sizeof *nt);
    if (!nt) FM_ERROR(FM_ERR_MEM, "out of memory reading the header of '%s'", path);
    st->t = nt;
    st->cap = cap;
  }
  fm_st_tensor *t = &st->t[st->n];
  memset(t, 0, sizeof *t);
  t->dtype = dt;
  t->file = file;
  t->ndim = (int)json_array_size(js);
  t->numel = 1;
  for (int i = 0; i < t->ndim; i++) {
    int64_t d;
    if (json_int(json_array_get(js, (size_t)i), &d) || d < 0 || d > ((int64_t)1 << 40))
      FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a size", path, name, i);
    t->shape[i] = d;
    t->numel *= (size_t)d;
  }
  int64_t b, e;
  if (json_int(json_array_get(jo, 0), &b) || json_int(json_array_get(jo, 1), &e) || b < 0 || e < b)
    FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s': data_offsets are not 0 <= begin <= end", path, name);
  t->begin = (uint64_t)b;
  t->end = (uint64_t)e;
  if (t->end - t->begin != t->numel * dtype_bytes[dt])
    FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s': %zu values of %s need %zu bytes, data_offsets give %llu", path,
             name, t->numel, dtype_names[dt], t->numel * dtype_bytes[dt], (unsigned long long)(t->end - t->begin));
  if (st->data_off[file] + t->end > st->size[file])
    FM_ERROR(FM_ERR_FORMAT, "%s: truncated: tensor '%s' ends at byte %llu, the file has %llu bytes", path, name,
             (unsigned long long)(st->data_off[file] + t->end), (unsigned long long)st->size[file]);
  if (fm_st_find(st, name)) FM_ERROR(FM_ERR_FORMAT, "%s: tensor '%s' appears twice", path, name);
  t->name = strdup(name);
  if (!t->name) FM_ERROR(FM_ERR_MEM, "out of memory reading the header of '%s'", path);
  st->n++;
  return FM_OK;
}

/* Open path, read and check its header, add its tensors. */
static fm_err read_header(fm_st *st, const char *path) {
  int k = 0;
  FM_CHECK(add_file(st, path, &k));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) FM_ERROR(FM_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  st->fds[k] = fd;
  struct stat sb;
  if (fstat(fd, &sb) < 0) FM_ERROR(FM_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
  st->size[k] = (uint64_t)sb.st_size;
  unsigned char len8[8];
  if (st->size[k] < 8 || pread_all(fd, len8, 8, 0))
    FM_ERROR(FM_ERR_FORMAT, "%s: truncated: %llu bytes, shorter than the 8-byte header length of a safetensors "
             "file", path, (unsigned long long)st->size[k]);
  uint64_t N = 0;
  for (int i = 7; i >= 0; i--) N = N << 8 | len8[i];
  if (N > st->size[k] - 8 || N > MAX_HEADER)
    FM_ERROR(FM_ERR_FORMAT, "%s: truncated or not safetensors: the header length says %llu bytes, the file has "
             "%llu after it", path, (unsigned long long)N, (unsigned long long)(st->size[k] - 8));
  st->data_off[k] = 8 + N;
  char *hdr = malloc(N ? N : 1);
  if (!hdr) FM_ERROR(FM_ERR_MEM, "out of memory for the %llu-byte header of '%s'", (unsigned long long)N, path);
  if (pread_all(fd, hdr, N, 8)) {
    free(hdr);
    FM_ERROR(FM_ERR_IO, "%s: cannot read its header", path);
  }
  json_error_t je;
  json_t *root = json_loadb(hdr, N, JSON_REJECT_DUPLICATES, &je);
  free(hdr);
  if (!root)
    FM_ERROR(FM_ERR_FORMAT, "%s: the header is not JSON (%s, at byte %d of the header)", path, je.text, je.position);
  fm_err err = FM_OK;
  if (!json_is_object(root))
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: the header is not a JSON object", path);
  const char *name;
  json_t *v;
  json_object_foreach(root, name, v) {
    if (err) break;
    if (!strcmp(name, "__metadata__")) continue; /* free-form strings: nothing fedmoe needs */
    err = parse_entry(st, k, name, v);
  }
  json_decref(root);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

fm_err fm_st_open_file(fm_st **stp, const char *path) {
  fm_st *st;
  FM_CALLOC(st, 1, "safetensors reader");
  fm_err err = read_header(st, path);
  if (err) {
    fm_st_close(st);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  *stp = st;
  return FM_OK;
}

/* The shards of an index: weight_map's files, each opened once; then every name the
 * map gives must be in the shard it names. */
static fm_err open_index(fm_st *st, const char *dir, const char *index) {
  json_error_t je;
  json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &je);
  if (!root) FM_ERROR(FM_ERR_FORMAT, "%s: not JSON (%s, line %d)", index, je.text, je.line);
  json_t *map = json_object_get(root, "weight_map");
  fm_err err = FM_OK;
  if (!json_is_object(map))
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT, "%s: no object field 'weight_map'", index);
  const char *name;
  json_t *v;
  char path[FM_PATH_MAX + 256];
  json_object_foreach(map, name, v) {
    if (err) break;
    const char *shard = json_string_value(v);
    if (!shard || strchr(shard, '/')) {
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                         "%s: weight_map entry '%s' is not a file name in the folder", index, name);
      break;
    }
    snprintf(path, sizeof path, "%s/%s", dir, shard);
    int have = 0;
    for (int i = 0; i < st->nfiles; i++) have |= !strcmp(st->paths[i], path);
    if (!have) err = read_header(st, path);
  }
  json_object_foreach(map, name, v) {
    if (err) break;
    snprintf(path, sizeof path, "%s/%s", dir, json_string_value(v));
    fm_st_tensor *t = fm_st_find(st, name);
    if (!t || strcmp(st->paths[t->file], path))
      err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_FORMAT,
                         "%s: weight_map puts tensor '%s' in %s, which does not hold it", index, name, path);
  }
  json_decref(root);
  return err ? fm_error_trace(__FILE__, __LINE__, __func__, err) : FM_OK;
}

fm_err fm_st_open_dir(fm_st **stp, const char *dir) {
  char single[FM_PATH_MAX + 64], index[FM_PATH_MAX + 64];
  snprintf(single, sizeof single, "%s/model.safetensors", dir);
  snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
  if (access(single, F_OK) == 0) return fm_st_open_file(stp, single);
  if (access(index, F_OK) != 0)
    FM_ERROR(FM_ERR_IO, "%s: the model folder has neither model.safetensors nor model.safetensors.index.json "
             "(fedmoe reads safetensors weights, not pytorch_model.bin)", dir);
  fm_st *st;
  FM_CALLOC(st, 1, "safetensors reader");
  fm_err err = open_index(st, dir, index);
  if (err) {
    fm_st_close(st);
    return fm_error_trace(__FILE__, __LINE__, __func__, err);
  }
  *stp = st;
  return FM_OK;
}

/* IEEE half to float, subnormals, infinities and NaN included. */
static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;
  } else if (exp) {
    bits = sign | (exp + 112) << 23 | man << 13;
  } else if (man) { /* subnormal: normalise */
    int e = 113;
    while (!(man & 0x400)) { man <<= 1; e--; }
    bits = sign | (uint32_t)e << 23 | (man & 0x3ff) << 13;
  } else {
    bits = sign;
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

fm_err fm_st_read_f32(fm_st *st, const fm_st_tensor *t, float *out) {
  const int fd = st->fds[t->file];
  const uint64_t off = st->data_off[t->file] + t->begin;
  const char *path = st->paths[t->file];
  if (t->dtype == FM_ST_F32) {
    if (pread_all(fd, out, t->numel * 4, off))
      FM_ERROR(FM_ERR_IO, "%s: cannot read tensor '%s' (%zu bytes at %llu)", path, t->name, t->numel * 4,
               (unsigned long long)off);
    return FM_OK;
  }
  enum { CHUNK = 1 << 16 };
  uint16_t *buf = malloc(CHUNK * sizeof *buf);
  if (!buf) FM_ERROR(FM_ERR_MEM, "out of memory converting tensor '%s'", t->name);
  for (size_t i = 0; i < t->numel; i += CHUNK) {
    size_t n = t->numel - i < CHUNK ? t->numel - i : CHUNK;
    if (pread_all(fd, buf, n * 2, off + i * 2)) {
      free(buf);
      FM_ERROR(FM_ERR_IO, "%s: cannot read tensor '%s'", path, t->name);
    }
    for (size_t j = 0; j < n; j++) {
      if (t->dtype == FM_ST_BF16) {
        uint32_t bits = (uint32_t)buf[j] << 16;
        memcpy(&out[i + j], &bits, sizeof bits);
      } else {
        out[i + j] = half_to_float(buf[j]);
      }
    }
  }
  free(buf);
  return FM_OK;
}

/* ---- writing ---- */
typedef struct {
  char *name;
  const float *data;
  int ndim;
  int64_t shape[8];
  size_t numel;
} wentry;

struct fm_st_writer {
  int n, cap;
  wentry *e;
};

fm_err fm_st_writer_create(fm_st_writer **w) {
  FM_CALLOC(*w, 1, "safetensors writer");
  return FM_OK;
}

void fm_st_writer_free(fm_st_writer *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) free(w->e[i].name);
  free(w->e);
  free(w);
}

fm_err fm_st_writer_add(fm_st_writer *w, const char *name, const float *data, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > 8) FM_ERROR(FM_ERR_ARG, "tensor '%s': %d dimensions", name, ndim);
  if (w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 64;
    wentry *ne = realloc(w->e, (size_t)cap * sizeof *ne);
    if (!ne) FM_ERROR(FM_ERR_MEM, "out of memory listing tensors to write");
    w->e = ne;
    w->cap = cap;
  }
  wentry *e = &w->e[w->n];
  e->name = strdup(name);
  if (!e->name) FM_ERROR(FM_ERR_MEM, "out of memory listing tensors to write");
  e->data = data;
  e->ndim = ndim;
  e->numel = 1;
  for (int i = 0; i < ndim; i++) {
    e->shape[i] = shape[i];
    e->numel *= (size_t)shape[i];
  }
  w->n++;
  return FM_OK;
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const wentry *)a)->name, ((const wentry *)b)->name);
}

/* The header: every tensor with its byte range (tensors in name order, back to
 * back), padded with spaces so the data starts 8-byte aligned. */
static fm_err build_header(fm_st_writer *w, char **text, size_t *len) {
  json_t *root = json_object(), *meta = json_object();
  int bad = !root || !meta || json_object_set_new(meta, "format", json_string("pt")) ||
            json_object_set_new(root, "__metadata__", meta);
  uint64_t off = 0;
  for (int i = 0; !bad && i < w->n; i++) {
    const wentry *e = &w->e[i];
    json_t *shape = json_array(), *offs = json_array(), *ent = json_object();
    bad = !shape || !offs || !ent;
    for (int d = 0; !bad && d < e->ndim; d++) bad = json_array_append_new(shape, json_integer(e->shape[d]));
    bad = bad || json_array_append_new(offs, json_integer((json_int_t)off)) ||
          json_array_append_new(offs, json_integer((json_int_t)(off + e->numel * 4)));
    bad = bad || json_object_set_new(ent, "dtype", json_string("F32")) || json_object_set_new(ent, "shape", shape) ||
          json_object_set_new(ent, "data_offsets", offs) || json_object_set_new(root, e->name, ent);
    off += e->numel * 4;
  }
  char *s = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(root);
  if (!s) FM_ERROR(FM_ERR_MEM, "out of memory building a safetensors header");
  size_t n = strlen(s), padded = (n + 7) / 8 * 8;
  char *p = realloc(s, padded + 1);
  if (!p) {
    free(s);
    FM_ERROR(FM_ERR_MEM, "out of memory building a safetensors header");
  }
  memset(p + n, ' ', padded - n);
  p[padded] = 0;
  *text = p;
  *len = padded;
  return FM_OK;
}

fm_err fm_st_writer_write(fm_st_writer *w, const char *path) {
  if (w->n > 1) qsort(w->e, (size_t)w->n, sizeof *w->e, by_name);
  for (int i = 1; i < w->n; i++)
    if (!strcmp(w->e[i].name, w->e[i - 1].name)) FM_ERROR(FM_ERR_ARG, "tensor '%s' added twice", w->e[i].name);
  char *hdr = NULL;
  size_t hlen = 0;
  FM_CHECK(build_header(w, &hdr, &hlen));
  char tmp[FM_PATH_MAX + 80];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) {
    free(hdr);
    FM_ERROR(FM_ERR_IO, "cannot create '%s': %s", tmp, strerror(errno));
  }
  unsigned char len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  int bad = fwrite(len8, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen;
  free(hdr);
  for (int i = 0; !bad && i < w->n; i++)
    bad = w->e[i].numel && fwrite(w->e[i].data, 4, w->e[i].numel, f) != w->e[i].numel;
  bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
  bad |= fclose(f) != 0;
  if (bad) {
    unlink(tmp);
    FM_ERROR(FM_ERR_IO, "cannot write '%s' (disk full?)", tmp);
  }
  if (rename(tmp, path)) {
    unlink(tmp);
    FM_ERROR(FM_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
  }
  return FM_OK;
}
