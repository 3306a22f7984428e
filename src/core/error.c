/* error.c - the error record, its trace, and ending the job on error. */
#include "fedmoe/error.h"
#include "fedmoe/log.h"
#include "fedmoe/watchdog.h"

#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FM_TRACE_MAX 16

static struct {
  fm_err code;
  char msg[1024];
  int ntrace;
  char trace[FM_TRACE_MAX][160];
  int agreed; /* every rank knows of this error (fm_error_agree) */
} err_state;

static const char *const err_names[FM_ERR_COUNT] = {
  "success", "bad argument", "configuration error", "I/O error", "out of memory",
  "MPI error", "data error", "format error", "HDF5 error", "internal error", "timeout"};

const char *fm_error_name(fm_err code) {
  return (code >= 0 && code < FM_ERR_COUNT) ? err_names[code] : "unknown error";
}

static void add_frame(const char *file, int line, const char *func) {
  if (err_state.ntrace >= FM_TRACE_MAX) return;
  snprintf(err_state.trace[err_state.ntrace++], sizeof err_state.trace[0], "%s:%d (%s)",
           file, line, func);
}

fm_err fm_error_set(const char *file, int line, const char *func, fm_err code,
                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_state.msg, sizeof err_state.msg, fmt, ap);
  va_end(ap);
  err_state.code = code ? code : FM_ERR_INTERNAL;
  err_state.ntrace = 0;
  err_state.agreed = 0;
  add_frame(file, line, func);
  return err_state.code;
}

fm_err fm_error_trace(const char *file, int line, const char *func, fm_err code) {
  if (err_state.code == 0) /* a code returned without FM_ERROR: still say something */
    fm_error_set(file, line, func, code, "%s", fm_error_name(code));
  else
    add_frame(file, line, func);
  return code;
}

fm_err fm_error_mpi(const char *file, int line, const char *func, int rc, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "code %d", rc);
  return fm_error_set(file, line, func, FM_ERR_MPI, "%s failed: %s", what, s);
}

fm_err fm_calloc(void *p, size_t n, size_t size, const char *what) {
  void **pp = (void **)p;
  *pp = NULL;
  if (n == 0) n = 1;
  *pp = calloc(n, size);
  if (!*pp)
    return fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM,
                        "cannot allocate %zu bytes for %s", n * size, what);
  return FM_OK;
}

const char *fm_error_message(void) { return err_state.msg; }

int fm_error_agreed(void) { return err_state.agreed; }

void fm_error_clear(void) {
  err_state.agreed = 0;
  err_state.code = 0;
  err_state.msg[0] = 0;
  err_state.ntrace = 0;
}

void fm_error_format(char *buf, size_t len) {
  size_t off = (size_t)snprintf(buf, len, "%s", err_state.msg[0] ? err_state.msg : "unknown error");
  for (int i = 0; i < err_state.ntrace && off < len; i++)
    off += (size_t)snprintf(buf + off, len - off, "\n    %s %s", i ? "from" : "at", err_state.trace[i]);
}

static void print_error(void) {
  char buf[4096];
  fm_error_format(buf, sizeof buf);
  int rank = fm_log_rank();
  if (rank >= 0)
    fprintf(stderr, "fedmoe: error on rank %d: %s\n", rank, buf);
  else
    fprintf(stderr, "fedmoe: error: %s\n", buf);
  fflush(stderr);
}

static MPI_Comm fatal_comm = MPI_COMM_NULL; /* fm_fatal's own: no pending call of the run on it */

void fm_error_init(const void *comm) {
  if (fatal_comm == MPI_COMM_NULL) MPI_Comm_dup(*(const MPI_Comm *)comm, &fatal_comm);
}

/* Ranks that fail within a moment of each other without an agreement (a write that
 * fails on every rank inside a collective HDF5 call) learn of each other with a
 * non-blocking reduction on fatal_comm, bounded in time since ranks that did not fail
 * never join: when every rank joins, only the lowest prints and every rank aborts
 * with its code. Returns 1 when this rank is not the one to print; *code is the
 * status to end with. */
static int fatal_together(int *code) {
  int init = 0, fin = 0, size = 1, rank = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (!init || fin || fatal_comm == MPI_COMM_NULL) return 0;
  MPI_Comm_size(fatal_comm, &size);
  MPI_Comm_rank(fatal_comm, &rank);
  if (size < 2) return 0;
  int mine = rank * 256 + (*code > 0 && *code < 256 ? *code : FM_ERR_INTERNAL), first = mine, done = 0;
  MPI_Request rq;
  if (MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, fatal_comm, &rq) != MPI_SUCCESS) return 0;
  double t0 = MPI_Wtime();
  while (!done && MPI_Wtime() - t0 < 2.0) {
    if (MPI_Test(&rq, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return 0;
    if (!done) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  if (!done) return 0; /* some rank is elsewhere: say it here */
  *code = first % 256;
  return first / 256 != rank;
}

void fm_fatal(fm_err err) {
  int init = 0, fin = 0;
  if (err_state.agreed) { /* printed already; every rank is here: leave together */
    fm_watchdog_stop();
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Finalize();
    exit(err ? err : 1);
  }
  int code = err ? err : 1;
  if (!fatal_together(&code)) print_error();
  err = code;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  int size = 1;
  if (init && !fin) MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (init && !fin && size > 1) MPI_Abort(MPI_COMM_WORLD, err ? err : 1);
  if (init && !fin) MPI_Finalize();
  exit(err ? err : 1);
}

fm_err fm_error_agree(fm_err err, const void *commp) {
  MPI_Comm comm = *(const MPI_Comm *)commp;
  int rank, size;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  /* one Allreduce (MIN) of a key that orders the errors: new ones (not agreed yet)
   * before those every rank knows already, then by rank; the low byte carries the
   * code, so that every rank leaves with the same one */
  int code = err > 0 && err < 256 ? err : FM_ERR_INTERNAL;
  int known = err && err_state.agreed;
  int mine = err ? ((known ? size : 0) + rank) * 256 + code : INT_MAX, first = INT_MAX;
  fm_watch_enter("error agreement");
  int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  fm_watch_leave();
  if (rc != MPI_SUCCESS) fm_fatal(FM_ERR_MPI);
  if (first == INT_MAX) return FM_OK;
  int who = first / 256 % size, agreed_before = first / 256 >= size;
  code = first % 256;
  if (rank == who && !agreed_before) print_error();
  if (!err) fm_error_set(__FILE__, __LINE__, __func__, code, "rank %d failed", who);
  err_state.agreed = 1;
  return code;
}
