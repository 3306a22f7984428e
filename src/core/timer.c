/* timer.c - wall-clock phase timers and the end-of-run table. */
#include "fedmoe/timer.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  char name[32];
  double total, started;
  long count;
  int depth;
} phase_t;

static phase_t phases[FM_PHASE_MAX];
static int nphases;

double fm_wtime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fm_phase(const char *name) {
  for (int i = 0; i < nphases; i++)
    if (strncmp(phases[i].name, name, sizeof phases[i].name - 1) == 0) return i;
  if (nphases == FM_PHASE_MAX) return FM_PHASE_MAX - 1; /* full: last slot collects */
  phase_t *p = &phases[nphases];
  memset(p, 0, sizeof *p);
  strncpy(p->name, name, sizeof p->name - 1);
  return nphases++;
}

void fm_phase_begin(int id) {
  phase_t *p = &phases[id];
  if (p->depth++ == 0) p->started = fm_wtime(); /* recursion counts once */
}

void fm_phase_end(int id) { fm_phase_end_as(id, 1); }

void fm_phase_end_as(int id, int worked) {
  phase_t *p = &phases[id];
  if (p->depth <= 0) return;
  if (--p->depth == 0 && worked) {
    p->total += fm_wtime() - p->started;
    p->count++;
  }
}

double fm_phase_seconds(int id) { return phases[id].total; }
long fm_phase_count(int id) { return phases[id].count; }
int fm_phase_n(void) { return nphases; }
const char *fm_phase_name(int id) { return phases[id].name; }
void fm_timer_reset(void) { nphases = 0; }

/* Each rank sends its (name, seconds, count) rows; rank 0 merges by name, since
 * the server and the client hosts time different phases. */
typedef struct {
  char name[32];
  double seconds;
  double count;
} row_t;

void fm_timer_report(const void *commp, FILE *out, double total) {
  MPI_Comm comm = *(const MPI_Comm *)commp;
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  row_t mine[FM_PHASE_MAX];
  memset(mine, 0, sizeof mine);
  for (int i = 0; i < nphases; i++) {
    memcpy(mine[i].name, phases[i].name, sizeof mine[i].name);
    mine[i].seconds = phases[i].total;
    mine[i].count = (double)phases[i].count;
  }
  row_t *recv = NULL;
  if (rank == 0) recv = malloc((size_t)size * sizeof mine);
  int ok = rank != 0 || recv != NULL;
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
  if (!ok) { /* no room to merge: report rank 0 alone */
    if (rank != 0) return;
    recv = mine;
    size = 1;
  } else {
    MPI_Gather(mine, (int)sizeof mine, MPI_BYTE, recv, (int)sizeof mine, MPI_BYTE, 0, comm);
  }
  if (rank != 0) return;
  /* merge: for each distinct name, max/min/sum over the ranks that did it (count > 0:
   * a rank that only waited, as the server in local_update, is left out, or its ~0
   * s would make max/min meaningless); a phase no rank did is left out */
  char names[FM_PHASE_MAX][32];
  double tmax[FM_PHASE_MAX], tmin[FM_PHASE_MAX], tsum[FM_PHASE_MAX], cnt[FM_PHASE_MAX];
  int nr[FM_PHASE_MAX], nn = 0;
  for (int r = 0; r < size; r++)
    for (int i = 0; i < FM_PHASE_MAX; i++) {
      row_t *x = &recv[r * FM_PHASE_MAX + i];
      if (!x->name[0]) continue;
      int j = 0;
      while (j < nn && strcmp(names[j], x->name) != 0) j++;
      if (j == nn) {
        if (nn == FM_PHASE_MAX) continue;
        memcpy(names[nn], x->name, 32);
        tmax[nn] = tsum[nn] = cnt[nn] = 0; tmin[nn] = 1e300; nr[nn] = 0;
        nn++;
      }
      if (x->count <= 0) continue; /* registered, in the table's order, but not done here */
      if (x->seconds > tmax[j]) tmax[j] = x->seconds;
      if (x->seconds < tmin[j]) tmin[j] = x->seconds;
      tsum[j] += x->seconds;
      if (x->count > cnt[j]) cnt[j] = x->count;
      nr[j]++;
    }
  fprintf(out, "\n---------------------------------------------- fedmoe phase timing (wall clock, s) --\n");
  fprintf(out, "%-24s %8s %6s %10s %10s %10s %6s %6s\n", "phase", "count", "ranks", "max", "min",
          "avg", "ratio", "%total");
  /* ranks: those that did the phase; ratio: max/min over them (load imbalance) */
  for (int j = 0; j < nn; j++) {
    if (nr[j] == 0) continue;
    double ratio = tmin[j] > 0 ? tmax[j] / tmin[j] : 0;
    fprintf(out, "%-24s %8.0f %6d %10.4f %10.4f %10.4f %6.2f %6.1f\n", names[j], cnt[j], nr[j],
            tmax[j], tmin[j], tsum[j] / nr[j], ratio, total > 0 ? 100.0 * tmax[j] / total : 0.0);
  }
  fprintf(out, "%-24s %8s %6d %10.4f\n", "total", "", size, total);
  fprintf(out, "-------------------------------------------------------------------------------------\n");
  fflush(out);
  if (recv != mine) free(recv);
}
