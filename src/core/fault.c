/* fault.c - failures injected on purpose, for the fault-tolerance tests. */
#include "fedmoe/fault.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const phases[] = {"setup", "local_update", "aggregate", "server_step", "evaluate",
                                     "checkpoint_write", "checkpoint_done", "resume"};

enum { MODE_EXIT, MODE_ABORT, MODE_STALL };

typedef struct { int rank, round, mode; double stall_s; char phase[32]; } fault_t;

/* Parse "RANK:PHASE:ROUND[:exit|abort|stall|stall=SECONDS]"; returns 0 when well
 * formed. stall_s 0 with MODE_STALL: for ever. */
static int parse(const char *s, fault_t *f) {
  char mode[32] = "exit", end;
  memset(f, 0, sizeof *f);
  int n = sscanf(s, "%d:%31[a-z_]:%d:%31s", &f->rank, f->phase, &f->round, mode);
  if (n < 3 || f->rank < 0 || f->round < 0) return 1;
  int known = 0;
  for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) known |= !strcmp(f->phase, phases[i]);
  if (!known) return 1;
  if (!strcmp(mode, "abort")) f->mode = MODE_ABORT;
  else if (!strcmp(mode, "stall")) f->mode = MODE_STALL;
  else if (!strncmp(mode, "stall=", 6)) {
    f->mode = MODE_STALL;
    if (sscanf(mode + 6, "%lf%c", &f->stall_s, &end) != 1 || !(f->stall_s > 0) || f->stall_s > 1e6) return 1;
  } else if (strcmp(mode, "exit")) return 1;
  return 0;
}

fm_err fm_fault_validate(const fm_config *c) {
  fault_t f;
  if (c->debug.fail[0] && parse(c->debug.fail, &f))
    FM_CONFIG_ERROR(c, "debug.fail", "expected RANK:PHASE:ROUND[:exit|abort|stall|stall=SECONDS] with PHASE one "
                    "of setup, local_update, aggregate, server_step, evaluate, checkpoint_write, checkpoint_done, "
                    "resume; got '%s'", c->debug.fail);
  /* a failure that can never fire would let a fault-tolerance test pass untested */
  if (c->debug.fail[0] && !strcmp(f.phase, "setup") && f.round != 0)
    FM_CONFIG_ERROR(c, "debug.fail", "'%s' can never fire: setup runs once, before round 1 (use round 0)",
                    c->debug.fail);
  if (c->debug.fail[0] && strcmp(f.phase, "setup") && (f.round < 1 || f.round > c->fl.rounds))
    FM_CONFIG_ERROR(c, "debug.fail", "'%s' can never fire: round %d is outside the run's rounds 1..%d "
                    "(fl.rounds)", c->debug.fail, f.round, c->fl.rounds);
  return FM_OK;
}

fm_err fm_fault_validate_job(const fm_config *c, int nranks) {
  fault_t f;
  if (!c->debug.fail[0] || parse(c->debug.fail, &f)) return FM_OK; /* syntax: fm_fault_validate */
  if (f.rank >= nranks)
    FM_CONFIG_ERROR(c, "debug.fail", "'%s' can never fire: rank %d is outside this job's ranks 0..%d",
                    c->debug.fail, f.rank, nranks - 1);
  /* clients train on ranks 1..P-1 only, and rank r hosts one only when r <= fl.clients */
  if (!strcmp(f.phase, "local_update") && (f.rank == 0 || f.rank > c->fl.clients))
    FM_CONFIG_ERROR(c, "debug.fail", "'%s' can never fire: rank %d trains no client (%s)", c->debug.fail,
                    f.rank, f.rank == 0 ? "rank 0 is the server" : "there are fewer clients (fl.clients)");
  return FM_OK;
}

/* Sleep s seconds (for ever when s is 0), through signals' interruptions. */
static void stall(double s) {
  struct timespec ts = {s > 0 ? (time_t)s : 3600, s > 0 ? (long)((s - (double)(time_t)s) * 1e9) : 0};
  do {
    while (nanosleep(&ts, &ts)) {}
    ts.tv_sec = 3600;
  } while (s <= 0);
}

void fm_fault_point(const fm_config *c, int rank, const char *phase, int round) {
  fault_t f;
  if (!c->debug.fail[0] || parse(c->debug.fail, &f)) return;
  if (f.rank != rank || f.round != round || strcmp(f.phase, phase)) return;
  const char *what = f.mode == MODE_ABORT ? "aborts" : f.mode == MODE_STALL ? "stalls" : "exits";
  if (f.mode == MODE_STALL && f.stall_s > 0)
    fprintf(stderr, "fedmoe: injected failure (debug.fail): rank %d stalls for %g s in phase %s of round %d\n",
            rank, f.stall_s, phase, round);
  else
    fprintf(stderr, "fedmoe: injected failure (debug.fail): rank %d %s in phase %s of round %d\n", rank, what,
            phase, round);
  fflush(stderr);
  if (f.mode == MODE_STALL) { stall(f.stall_s); return; }
  if (f.mode == MODE_ABORT) abort();
  _exit(3);
}
