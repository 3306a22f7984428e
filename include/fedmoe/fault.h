/* fault.h - injected failures for testing (debug.fail = RANK:PHASE:ROUND[:MODE]).
 *
 * At each named point of the round loop the runtime calls fm_fault_point; when the
 * configured rank, phase and round match, that rank prints one line naming itself
 * and the phase and then exits (MODE exit, status 3, without MPI_Finalize), aborts
 * (MODE abort, SIGABRT) or stalls (MODE stall: sleeps for ever, as a rank stuck in a
 * dead file system or a lost message would; stall=SECONDS: sleeps that long, then
 * goes on: a slow rank). The launcher ends the other ranks after an exit or abort,
 * the collective watchdog (run.collective_timeout) after a stall: the test of what a
 * real rank failure does to a run. Phases: setup, local_update, aggregate,
 * server_step, evaluate, checkpoint_write, checkpoint_done (after a round's checkpoint,
 * before its metrics row is final), and resume (before --resume cuts what followed the
 * checkpoint; ROUND is the checkpoint's round). */
#ifndef FEDMOE_FAULT_H
#define FEDMOE_FAULT_H

#include "fedmoe/config.h"

/* Check debug.fail's syntax and that its phase and round can occur in a run of
 * fl.rounds rounds (called from configuration validation). */
fm_err fm_fault_validate(const fm_config *c);
/* Check that debug.fail's rank exists in a job of nranks ranks and can reach its
 * phase (local_update: a rank that hosts clients); `fedmoe run` calls it. */
fm_err fm_fault_validate_job(const fm_config *c, int nranks);
/* Fail here if debug.fail names this rank, phase and round. */
void fm_fault_point(const fm_config *c, int rank, const char *phase, int round);

#endif
