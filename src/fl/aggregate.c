/* aggregate.c - weighted sums of client contributions in one collective.
 *
 * Fixed point: each contribution w x is rounded once to a multiple of 2^-40 and the
 * integers are summed; integer addition is associative, so the sum is exact and the
 * same whatever the number of ranks or the order of the reduction. With weights
 * normalised to at most 1 and parameters of ordinary size, 2^-40 (~1e-12) is far
 * below float32 resolution, and |w x| < 2^22 leaves room for 2^62 / 2^62 headroom. */
#include "fedmoe/fl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIX_SCALE FM_AGG_SCALE
#define FIX_LIMIT 4194304.0       /* 2^22: |w x| above this could overflow a sum */

fm_err fm_agg_create(fm_agg *a, const size_t *seg_len, int nseg, int fixed) {
  memset(a, 0, sizeof *a);
  a->nseg = nseg;
  a->fixed = fixed;
  FM_CALLOC(a->seg_off, (size_t)nseg + 1, "aggregation segments");
  for (int s = 0; s < nseg; s++) a->seg_off[s + 1] = a->seg_off[s] + seg_len[s];
  a->n = a->seg_off[nseg];
  if (fixed)
    FM_CALLOC(a->q, a->n + (size_t)nseg, "aggregation buffer");
  else
    FM_CALLOC(a->d, a->n + (size_t)nseg, "aggregation buffer");
  return FM_OK;
}

void fm_agg_free(fm_agg *a) {
  free(a->seg_off);
  free(a->q);
  free(a->d);
  memset(a, 0, sizeof *a);
}

void fm_agg_zero(fm_agg *a) {
  if (a->fixed) memset(a->q, 0, (a->n + (size_t)a->nseg) * sizeof *a->q);
  else memset(a->d, 0, (a->n + (size_t)a->nseg) * sizeof *a->d);
}

fm_err fm_agg_add(fm_agg *a, int seg, const float *x, double w) {
  size_t off = a->seg_off[seg], len = a->seg_off[seg + 1] - off;
  if (w == 0) return FM_OK;
  if (a->fixed) {
    int64_t *restrict q = a->q + off;
    for (size_t i = 0; i < len; i++) {
      double v = w * (double)x[i];
      if (!(fabs(v) < FIX_LIMIT))
        FM_ERROR(FM_ERR_DATA, "contribution %g to aggregation segment %d is not finite or too large "
                 "for fixed-point aggregation (training diverged?)", v, seg);
      q[i] = (int64_t)((uint64_t)q[i] + (uint64_t)llrint(v * FIX_SCALE));
    }
    /* unsigned: sums wrap modulo 2^64 (secure aggregation's masks do) */
    a->q[a->n + (size_t)seg] = (int64_t)((uint64_t)a->q[a->n + (size_t)seg] + (uint64_t)llrint(w * FIX_SCALE));
  } else {
    double *restrict d = a->d + off;
    for (size_t i = 0; i < len; i++) d[i] += w * (double)x[i];
    a->d[a->n + (size_t)seg] += w;
  }
  return FM_OK;
}

fm_err fm_agg_reduce(fm_agg *a, int root, MPI_Comm comm) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  size_t total = a->n + (size_t)a->nseg;
  /* chunks below 2^30 elements keep MPI's int counts safe */
  const size_t chunk = (size_t)1 << 30;
  for (size_t off = 0; off < total; off += chunk) {
    int cnt = (int)(total - off < chunk ? total - off : chunk);
    if (a->fixed) {
      void *buf = a->q + off;
      /* as unsigned: the same bits as a signed sum, with wrap-around defined */
      FM_MPI(MPI_Reduce(rank == root ? MPI_IN_PLACE : buf, buf, cnt, MPI_UINT64_T, MPI_SUM, root, comm));
    } else {
      void *buf = a->d + off;
      FM_MPI(MPI_Reduce(rank == root ? MPI_IN_PLACE : buf, buf, cnt, MPI_DOUBLE, MPI_SUM, root, comm));
    }
  }
  if (rank != root) a->bytes_reduced += total * 8;
  return FM_OK;
}

fm_err fm_agg_allreduce(fm_agg *a, MPI_Comm comm) {
  size_t total = a->n + (size_t)a->nseg;
  const size_t chunk = (size_t)1 << 30;
  for (size_t off = 0; off < total; off += chunk) {
    int cnt = (int)(total - off < chunk ? total - off : chunk);
    if (a->fixed) FM_MPI(MPI_Allreduce(MPI_IN_PLACE, a->q + off, cnt, MPI_UINT64_T, MPI_SUM, comm));
    else FM_MPI(MPI_Allreduce(MPI_IN_PLACE, a->d + off, cnt, MPI_DOUBLE, MPI_SUM, comm));
  }
  a->bytes_reduced += total * 8;
  return FM_OK;
}

int fm_agg_result(const fm_agg *a, float *const *seg_out) {
  int updated = 0;
  for (int s = 0; s < a->nseg; s++) {
    size_t off = a->seg_off[s], len = a->seg_off[s + 1] - off;
    float *out = seg_out[s];
    if (a->fixed) {
      int64_t wq = a->q[a->n + (size_t)s];
      if (wq <= 0) continue;
      double inv = 1.0 / (double)wq; /* both sums carry the same 2^40 scale */
      for (size_t i = 0; i < len; i++) out[i] = (float)((double)a->q[off + i] * inv);
    } else {
      double w = a->d[a->n + (size_t)s];
      if (w <= 0) continue;
      double inv = 1.0 / w;
      for (size_t i = 0; i < len; i++) out[i] = (float)(a->d[off + i] * inv);
    }
    updated++;
  }
  return updated;
}
