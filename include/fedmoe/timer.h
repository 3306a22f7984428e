/* timer.h - wall-clock timers by phase, reported at the end like PETSc's -log_view.
 *
 * Phases are registered by name once; fm_phase_begin/end nest freely (a phase's time
 * includes the phases inside it). fm_timer_report reduces over ranks and prints
 * count, max/min time, max/min ratio and share of the total per phase, over the
 * ranks that did each phase. */
#ifndef FEDMOE_TIMER_H
#define FEDMOE_TIMER_H

#include <stdio.h>

#define FM_PHASE_MAX 64

double fm_wtime(void); /* seconds, monotonic */
/* Id of a phase by name, registered on first use. Names up to 31 characters. */
int fm_phase(const char *name);
void fm_phase_begin(int id);
void fm_phase_end(int id);
/* End a phase; worked = 0: this rank had none of the phase's work (it only waited or
 * passed through), so the time is not counted and the table leaves this rank out of
 * the phase's ranks, min and ratio. */
void fm_phase_end_as(int id, int worked);
double fm_phase_seconds(int id);
long fm_phase_count(int id);
int fm_phase_n(void);
const char *fm_phase_name(int id);
void fm_timer_reset(void);
/* Collective over comm (MPI_Comm passed as void*): rank 0 prints the table to out. */
void fm_timer_report(const void *comm, FILE *out, double total_seconds);

#endif
