/* watchdog.c - a thread per rank that ends a run whose collective does not complete.
 *
 * The main thread records where it is (fm_watch_*: a few stores under a mutex). The
 * thread wakes a few times per timeout; when its own rank has waited in a section
 * longer than the timeout it tells rank 0 (TAG_EXPIRED), or, on rank 0, acts at once:
 * rank 0's thread asks every rank's thread for its state (TAG_ASK / TAG_STATE), says
 * which ranks wait in the section and which are elsewhere, and calls MPI_Abort. A rank
 * that reported and is still alive a while later (rank 0 unreachable) aborts itself. */
#include "fedmoe/watchdog.h"

#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WD_DEPTH 8

enum { TAG_EXPIRED = 1, TAG_ASK, TAG_STATE };

/* One rank's answer; sent as bytes between ranks of one program (same layout). */
typedef struct {
  int in_section, round;
  long long seq;  /* sections entered so far: the same collective has the same number everywhere */
  double seconds; /* since the rank last entered or left a section */
  char what[48];  /* innermost section, "" outside one */
  char phase[40];
} wd_state;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t wake;
  pthread_t thread;
  int running, stop, multiple, rank, size;
  MPI_Comm comm;
  double timeout, poll;
  /* where the main thread is */
  int depth, round;
  long long seq;
  double since;
  const char *what[WD_DEPTH];
  const char *phase;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fm_watch_enter(const char *what) {
  if (!wd.running) return;
  pthread_mutex_lock(&wd.mu);
  if (wd.depth < WD_DEPTH) wd.what[wd.depth] = what;
  wd.depth++;
  wd.seq++;
  wd.since = now();
  pthread_mutex_unlock(&wd.mu);
}

void fm_watch_leave(void) {
  if (!wd.running) return;
  pthread_mutex_lock(&wd.mu);
  if (wd.depth > 0) wd.depth--;
  wd.since = now(); /* an enclosing section's wait starts again: its inner step completed */
  pthread_mutex_unlock(&wd.mu);
}

void fm_watch_phase(const char *phase, int round) {
  if (!wd.running) return;
  pthread_mutex_lock(&wd.mu);
  wd.phase = phase;
  wd.round = round;
  pthread_mutex_unlock(&wd.mu);
}

static wd_state snapshot(void) {
  wd_state s;
  memset(&s, 0, sizeof s);
  pthread_mutex_lock(&wd.mu);
  s.in_section = wd.depth > 0;
  s.round = wd.round;
  s.seq = wd.seq;
  s.seconds = now() - wd.since;
  if (wd.depth > 0) snprintf(s.what, sizeof s.what, "%s", wd.what[(wd.depth < WD_DEPTH ? wd.depth : WD_DEPTH) - 1]);
  snprintf(s.phase, sizeof s.phase, "%s", wd.phase ? wd.phase : "start");
  pthread_mutex_unlock(&wd.mu);
  return s;
}

static int expired(const wd_state *s) { return s->in_section && s->seconds > wd.timeout; }

/* "phase P of round R" into buf. */
static void phase_text(char *buf, size_t len, const wd_state *s) {
  if (s->round > 0) snprintf(buf, len, "phase %s of round %d", s->phase, s->round);
  else snprintf(buf, len, "phase %s", s->phase);
}

/* Where a rank is, for the message. */
static void where(char *buf, size_t len, const wd_state *s) {
  char ph[80];
  phase_text(ph, sizeof ph, s);
  if (s->in_section)
    snprintf(buf, len, "waiting in '%s' (at collective #%lld, %s) for %.1f s", s->what, s->seq, ph, s->seconds);
  else
    snprintf(buf, len, "in %s, not in a collective (for %.1f s)", ph, s->seconds);
}

static void die(const char *msg) {
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, FM_ERR_TIMEOUT);
  _Exit(FM_ERR_TIMEOUT);
}

/* This rank's section expired and no rank 0 can name the others: say what is known. */
static void die_alone(const wd_state *s, const char *why) {
  char msg[512], ph[80];
  phase_text(ph, sizeof ph, s);
  snprintf(msg, sizeof msg, "fedmoe: error on rank %d: collective '%s' (%s) has not completed within %g s "
           "(run.collective_timeout); %s: ending the job", wd.rank, s->what, ph, wd.timeout, why);
  die(msg);
}

/* Rank 0: ask every rank where it is, name the missing ones, end the job. first is
 * the expired state that set this off (rank `from`'s). */
static void report(const wd_state *first, int from) {
  const wd_state *ref = first;
  int P = wd.size;
  wd_state *st = calloc((size_t)P, sizeof *st);
  int *got = calloc((size_t)P, sizeof *got);
  MPI_Request *rq = calloc(2 * (size_t)P, sizeof *rq);
  if (!st || !got || !rq) die_alone(ref, "out of memory naming the missing ranks");
  st[0] = snapshot();
  got[0] = 1;
  int ask = 1;
  for (int p = 1; p < P; p++) {
    MPI_Isend(&ask, 1, MPI_INT, p, TAG_ASK, wd.comm, &rq[2 * (p - 1)]);
    MPI_Irecv(&st[p], (int)sizeof st[p], MPI_BYTE, p, TAG_STATE, wd.comm, &rq[2 * (p - 1) + 1]);
  }
  /* the threads answer within a poll period; a rank that does not is named as such */
  double deadline = now() + 2 + 3 * wd.poll;
  int left = P - 1;
  while (left > 0 && now() < deadline) {
    for (int p = 1; p < P; p++) {
      int done = 0;
      if (got[p]) continue;
      MPI_Test(&rq[2 * (p - 1) + 1], &done, MPI_STATUS_IGNORE);
      if (done) { got[p] = 1; left--; }
    }
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  /* the collective that did not complete: the furthest one a rank waits in (ranks
   * behind it, or elsewhere, are the missing ones; the message says where each is) */
  for (int p = 0; p < P; p++)
    if (got[p] && st[p].in_section && st[p].seq > ref->seq) ref = &st[p];
  size_t cap = 1024 + (size_t)P * 160;
  char *msg = malloc(cap), one[256], ph[80];
  if (!msg) die_alone(ref, "out of memory naming the missing ranks");
  phase_text(ph, sizeof ph, ref);
  /* the ranks waiting in the same collective (same section, same number) */
  char *waiting = calloc((size_t)P, 12);
  if (!waiting) die_alone(ref, "out of memory naming the missing ranks");
  int nwait = 0, nmiss = 0;
  size_t w = 0;
  for (int p = 0; p < P; p++)
    if (got[p] && st[p].in_section && st[p].seq == ref->seq && !strcmp(st[p].what, ref->what))
      w += (size_t)snprintf(waiting + w, (size_t)P * 12 - w, "%s%d", nwait++ ? ", " : "", p);
  size_t off = (size_t)snprintf(msg, cap, "fedmoe: error: collective '%s' (#%lld, %s) has not completed within "
                                "%g s (run.collective_timeout, seen first on rank %d); waiting in it: %s %s; "
                                "missing:", ref->what, ref->seq, ph, wd.timeout, from, nwait == 1 ? "rank" : "ranks",
                                nwait ? waiting : "none");
  for (int p = 0; p < P && off < cap; p++) {
    if (got[p] && st[p].in_section && st[p].seq == ref->seq && !strcmp(st[p].what, ref->what)) continue;
    if (got[p]) where(one, sizeof one, &st[p]);
    else snprintf(one, sizeof one, "no answer (its process or its MPI is stuck)");
    off += (size_t)snprintf(msg + off, cap - off, "%s rank %d %s", nmiss++ ? ";" : "", p, one);
  }
  if (!nmiss && off < cap) snprintf(msg + off, cap - off, " none (every rank waits in it: an MPI or file system stall)");
  die(msg);
}

static void *watch(void *arg) {
  (void)arg;
  int reported = 0;
  double reported_at = 0;
  pthread_mutex_lock(&wd.mu);
  while (!wd.stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + wd.poll;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    pthread_cond_timedwait(&wd.wake, &wd.mu, &ts);
    if (wd.stop) break;
    pthread_mutex_unlock(&wd.mu);
    wd_state s = snapshot();
    if (!wd.multiple) {
      if (expired(&s)) die_alone(&s, "this MPI gives no MPI_THREAD_MULTIPLE, so the missing ranks cannot be named");
    } else if (wd.rank == 0) {
      int flag = 0;
      MPI_Status stt;
      if (expired(&s)) report(&s, 0);
      MPI_Iprobe(MPI_ANY_SOURCE, TAG_EXPIRED, wd.comm, &flag, &stt);
      if (flag) {
        wd_state r;
        MPI_Recv(&r, (int)sizeof r, MPI_BYTE, stt.MPI_SOURCE, TAG_EXPIRED, wd.comm, MPI_STATUS_IGNORE);
        report(&r, stt.MPI_SOURCE);
      }
    } else {
      int flag = 0;
      MPI_Iprobe(0, TAG_ASK, wd.comm, &flag, MPI_STATUS_IGNORE);
      if (flag) {
        int ask;
        MPI_Recv(&ask, 1, MPI_INT, 0, TAG_ASK, wd.comm, MPI_STATUS_IGNORE);
        MPI_Send(&s, (int)sizeof s, MPI_BYTE, 0, TAG_STATE, wd.comm);
      }
      if (expired(&s) && !reported) {
        MPI_Send(&s, (int)sizeof s, MPI_BYTE, 0, TAG_EXPIRED, wd.comm);
        reported = 1;
        reported_at = now();
      }
      if (reported && now() - reported_at > 10 + 5 * wd.poll)
        die_alone(&s, "rank 0 did not end the job after this rank reported it");
    }
    pthread_mutex_lock(&wd.mu);
  }
  pthread_mutex_unlock(&wd.mu);
  return NULL;
}

fm_err fm_watchdog_start(double timeout_s, const void *commp) {
  if (wd.running || timeout_s <= 0) return FM_OK;
  MPI_Comm comm = *(const MPI_Comm *)commp;
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  wd.multiple = level >= MPI_THREAD_MULTIPLE;
  MPI_Comm_rank(comm, &wd.rank);
  MPI_Comm_size(comm, &wd.size);
  if (MPI_Comm_dup(comm, &wd.comm) != MPI_SUCCESS)
    FM_ERROR(FM_ERR_MPI, "run.collective_timeout: cannot create the watchdog's communicator");
  wd.timeout = timeout_s;
  wd.poll = timeout_s / 10 < 0.05 ? 0.05 : timeout_s / 10 > 1 ? 1 : timeout_s / 10;
  wd.stop = 0;
  wd.depth = 0;
  wd.seq = 0;
  wd.since = now();
  wd.phase = NULL;
  wd.round = 0;
  if (pthread_create(&wd.thread, NULL, watch, NULL)) {
    MPI_Comm_free(&wd.comm);
    FM_ERROR(FM_ERR_INTERNAL, "run.collective_timeout: cannot start the watchdog thread");
  }
  wd.running = 1;
  return FM_OK;
}

void fm_watchdog_stop(void) {
  if (!wd.running) return;
  pthread_mutex_lock(&wd.mu);
  wd.stop = 1;
  pthread_cond_signal(&wd.wake);
  pthread_mutex_unlock(&wd.mu);
  pthread_join(wd.thread, NULL);
  wd.running = 0;
  MPI_Comm_free(&wd.comm);
}
