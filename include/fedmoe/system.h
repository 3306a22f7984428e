/* system.h - the simulated devices and network, and the round's simulated clock.
 *
 * Every client belongs to a resource class (system.share, drawn from the seed and
 * the client id) with a compute speed (spread log-normally per client), memory,
 * uplink, downlink, latency, availability and dropout probability; a trace file can
 * give per-client devices instead. A client's simulated round time is
 *   download (latency + bytes down / downlink) + compute (FLOPs / speed)
 *   + upload (latency + bytes up / uplink).
 * Each round the plan decides, identically on every rank, which sampled clients
 * are offline, drop out, miss the deadline (fl.deadline_s) or are the surplus of
 * over-selection (fl.over_select: the first to finish are kept); only the kept
 * clients' updates are aggregated. */
#ifndef FEDMOE_SYSTEM_H
#define FEDMOE_SYSTEM_H

#include "fedmoe/config.h"

#include <stdint.h>

typedef struct {
  int cls;             /* resource class */
  double flops;        /* FLOP/s */
  double up_bps, down_bps, latency_s, availability, dropout, memory_bytes;
} fm_device;

typedef struct {
  int n;
  fm_device *dev;      /* [N] */
  int nclass;
  double extra_round_trips; /* protocol round trips beyond download and upload (secure aggregation) */
} fm_system;

/* What became of a sampled client in a round. */
enum { FM_CLIENT_KEPT = 0, FM_CLIENT_LATE, FM_CLIENT_DROPPED, FM_CLIENT_OFFLINE, FM_CLIENT_SURPLUS };

fm_err fm_system_create(fm_system *s, const fm_config *c);
void fm_system_free(fm_system *s);
/* Resource class of a client: the system's when it has several classes, else
 * client mod n (the length of the strategy's per-class list). */
int fm_resource_class(const fm_system *s, int client, int n);

/* Simulated seconds of one client's round. */
double fm_device_time(const fm_device *d, double flops, double bytes_down, double bytes_up);

/* The round's plan for the m sampled clients: status[j] and time[j] per client,
 * from the predicted work (flops[j]) and bytes; returns the round's simulated time
 * (the last kept client, or the deadline). Deterministic from the seed and round. */
double fm_system_plan(const fm_system *s, const fm_config *c, int round, const int *clients, int m,
                      const double *flops, double bytes_down, double bytes_up, int *status, double *time);

#endif
