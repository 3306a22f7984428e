/* watchdog.h - no collective may wait forever (run.collective_timeout).
 *
 * Code that waits for the other ranks (an MPI collective, a collective HDF5 call, an
 * error agreement) runs between fm_watch_enter and fm_watch_leave. A thread on every
 * rank watches the clock: when a rank has been inside such a section longer than the
 * timeout, rank 0 asks every rank where it is (the threads answer even when the main
 * thread is stuck), prints one message naming the section, the ranks waiting in it and
 * the ranks missing from it with where they are, and ends the job with MPI_Abort
 * (exit status FM_ERR_TIMEOUT). The hot path is a mutex-protected store of a few
 * fields; only the watchdog threads communicate, on a communicator of their own
 * (MPI_THREAD_MULTIPLE; with less, a rank that times out names only itself). */
#ifndef FEDMOE_WATCHDOG_H
#define FEDMOE_WATCHDOG_H

#include "fedmoe/error.h"

/* Start watching (collective over comm, an MPI_Comm passed as void*); timeout_s <= 0
 * leaves the watchdog off, and every other call below does nothing. */
fm_err fm_watchdog_start(double timeout_s, const void *comm);
/* Stop the thread and free its communicator (every rank, before MPI_Finalize). */
void fm_watchdog_stop(void);
/* This rank starts waiting for the others in a section named what (a string that
 * lives as long as the program); sections nest. */
void fm_watch_enter(const char *what);
void fm_watch_leave(void);
/* What this rank is doing, for the message (not a deadline): a phase name that lives
 * as long as the program, and the round (0: none). */
void fm_watch_phase(const char *phase, int round);

#endif
