/* report.h - what `fedmoe run` prints while it runs: the round line. */
#ifndef FEDMOE_FL_REPORT_H
#define FEDMOE_FL_REPORT_H

#include "fedmoe/io.h"

#include <stddef.h>

/* b bytes as "12.3 KiB" (binary prefixes: B, KiB, MiB, GiB, TiB; the run file's
 * memory figures are MiB too). */
void fm_report_bytes(char *out, size_t len, double b);
/* One line for round rr->round of R on stdout (rank 0): losses in nats, the sampled
 * clients kept and why the others were left out, bytes, simulated and wall seconds,
 * ETA. full: the strategy has a full model beside the clients' (fedbiot), whose test
 * loss rr->test_loss_full is printed too. */
void fm_report_round(const fm_round_row *rr, int R, double wall_s, double eta_s, int full);

#endif
