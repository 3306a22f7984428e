/* deal.c - which host runs each sampled client of a round, by predicted work.
 *
 * Longest processing time first: the largest items go out first, each to the host
 * with the least work so far. The busiest host then ends at most one item above the
 * mean (the last item it got went to the least loaded host, which held at most the
 * mean). A heap of hosts keyed by (load, host) finds the least loaded one in log(H),
 * so dealing 10^5 clients to 10^4 hosts costs milliseconds. */
#include "fedmoe/fl.h"

#include <stdlib.h>

typedef struct { double w; int j; } item_t;
typedef struct { double load; int h; } bin_t;

/* Larger work first; equal work in item order, so the order is total and every rank
 * sorts the same way. */
static int by_work(const void *a, const void *b) {
  const item_t *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return (x->j > y->j) - (x->j < y->j);
}

/* Whether bin a should come out of the heap before bin b: less load, then lower host. */
static int before(const bin_t *a, const bin_t *b) { return a->load < b->load || (a->load == b->load && a->h < b->h); }

/* Move heap[0] down to its place after its load grew. */
static void sift_down(bin_t *heap, int n) {
  int i = 0;
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && before(&heap[l], &heap[m])) m = l;
    if (r < n && before(&heap[r], &heap[m])) m = r;
    if (m == i) return;
    bin_t t = heap[i];
    heap[i] = heap[m];
    heap[m] = t;
    i = m;
  }
}

fm_err fm_deal_clients(const double *work, int m, int hosts, int *host) {
  if (hosts < 1) FM_ERROR(FM_ERR_ARG, "dealing clients to %d hosts", hosts);
  item_t *items;
  bin_t *heap;
  FM_CALLOC(items, (size_t)m, "dealing order");
  fm_err err = fm_calloc(&heap, (size_t)hosts, sizeof *heap, "dealing heap");
  if (err) { free(items); return err; }
  for (int j = 0; j < m; j++) items[j] = (item_t){work[j], j};
  qsort(items, (size_t)m, sizeof *items, by_work);
  /* all loads 0, hosts ascending: already a heap */
  for (int h = 0; h < hosts; h++) heap[h] = (bin_t){0, h};
  for (int k = 0; k < m; k++) {
    host[items[k].j] = heap[0].h;
    heap[0].load += items[k].w;
    sift_down(heap, hosts);
  }
  free(items);
  free(heap);
  return FM_OK;
}
