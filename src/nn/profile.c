/* profile.c - the model engine's per-kernel timers (fedmoe bench --profile).
 *
 * One global flag, tested once per kernel call (never per element): while it is off
 * a timed region costs a predictable branch. While on, each region reads the
 * monotonic clock (a vDSO call, ~20 ns) at its ends, negligible next to kernels
 * of 10 us and more. */
#include "model_impl.h"

#include "fedmoe/nn_threads.h"

#include <stdio.h>
#include <time.h>

int fm_prof_on;
static double prof_t[FM_PROF_NKINDS][FM_PROF_NPASS];
static fm_backend *prof_dev; /* a device whose queue each timer read waits for */

static const char *const prof_names[FM_PROF_NKINDS] = {
  "embedding", "layernorm", "attn c_attn/c_proj", "attn core", "ffn / experts",
  "moe dispatch+combine", "router", "head + cross-entropy", "residual copies", "optimizer",
};

double fm_prof_now(void) {
  if (prof_dev && prof_dev->sync(prof_dev, "a profiled region")) fm_error_clear(); /* the pass reports it */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fm_prof_add(int kind, int pass, double t0) { prof_t[kind][pass] += fm_prof_now() - t0; }

void fm_nn_profile(int on) { fm_prof_on = on ? 1 : 0; }
int fm_nn_profiling(void) { return fm_prof_on; }

void fm_nn_profile_reset(void) {
  for (int k = 0; k < FM_PROF_NKINDS; k++)
    for (int p = 0; p < FM_PROF_NPASS; p++) prof_t[k][p] = 0.0;
}

double fm_nn_profile_seconds(int kind, int pass) {
  if (kind < 0 || kind >= FM_PROF_NKINDS || pass < 0 || pass >= FM_PROF_NPASS) return 0.0;
  return prof_t[kind][pass];
}

const char *fm_nn_profile_name(int kind) {
  return kind >= 0 && kind < FM_PROF_NKINDS ? prof_names[kind] : "?";
}

void fm_nn_profile_device(fm_backend *be) { prof_dev = be && be->device ? be : NULL; }

void fm_nn_profile_print(int steps, double step) {
  printf("  %-22s %9s %9s %9s %7s\n", "part", "forward", "backward", "total", "share");
  double sum = 0;
  for (int k = 0; k < FM_PROF_NKINDS; k++) {
    double f = prof_t[k][FM_PROF_FWD] / steps, b = prof_t[k][FM_PROF_BWD] / steps;
    sum += f + b;
    printf("  %-22s %9.2f %9.2f %9.2f %6.1f%%\n", prof_names[k], 1e3 * f, 1e3 * b, 1e3 * (f + b),
           100.0 * (f + b) / step);
  }
  printf("  %-22s %9s %9s %9.2f %6.1f%%\n", "unattributed", "", "", 1e3 * (step - sum), 100.0 * (step - sum) / step);
  fflush(stdout);
}
