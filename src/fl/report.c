/* report.c - the round line of `fedmoe run`. Printed with or without -q (which
 * hides the configuration only): it is the run's progress. */
#include "report.h"

#include "fedmoe/log.h"

#include <math.h>
#include <stdio.h>

void fm_report_bytes(char *out, size_t len, double b) {
  const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int i = 0;
  while (b >= 1024 && i < 4) { b /= 1024; i++; }
  snprintf(out, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* "8/8", or "5/8 (2 late, 1 dropped)": the sampled clients whose update the round
 * kept, and what became of the others (FM_CLIENT_* of include/fedmoe/system.h). */
static void format_clients(char *out, size_t len, const fm_round_row *rr) {
  const struct { int n; const char *why; } left[] = {
    {rr->late, "late"}, {rr->dropped, "dropped"}, {rr->offline, "offline"}, {rr->surplus, "surplus"}};
  int off = snprintf(out, len, "%d/%d", rr->kept, rr->clients);
  const char *sep = " (";
  for (size_t i = 0; i < sizeof left / sizeof left[0] && off > 0 && (size_t)off < len; i++) {
    if (!left[i].n) continue;
    off += snprintf(out + off, len - (size_t)off, "%s%d %s", sep, left[i].n, left[i].why);
    sep = ", ";
  }
  if (sep[0] == ',' && off > 0 && (size_t)off < len) snprintf(out + off, len - (size_t)off, ")");
}

void fm_report_round(const fm_round_row *rr, int R, double wall_s, double eta_s, int full) {
  char who[96], up[32], down[32], test[128];
  format_clients(who, sizeof who, rr);
  fm_report_bytes(up, sizeof up, (double)rr->bytes_up);
  fm_report_bytes(down, sizeof down, (double)rr->bytes_down);
  if (full) /* fedbiot: the clients' figures are the emulator's; the paper's is the full model's */
    snprintf(test, sizeof test, "%.4f (ppl %.2f, emulator)  full model %.4f (ppl %.2f)", rr->mean_test,
             exp(rr->mean_test), rr->test_loss_full, exp(rr->test_loss_full));
  else if (!isnan(rr->test_loss_global)) /* Ditto: the clients' figures are their personal models' */
    snprintf(test, sizeof test, "%.4f (ppl %.2f, personal)  global model %.4f (ppl %.2f)", rr->mean_test,
             exp(rr->mean_test), rr->test_loss_global, exp(rr->test_loss_global));
  else
    snprintf(test, sizeof test, "%.4f (ppl %.2f)", rr->mean_test, exp(rr->mean_test));
  char dp[32] = ""; /* with DP, the privacy spent so far (NaN without) */
  if (!isnan(rr->dp_epsilon)) snprintf(dp, sizeof dp, "  eps %.3g", rr->dp_epsilon);
  fm_say("round %*d/%d  clients %s  loss (nats) train %.4f  val %.4f  test %s  up %s  down %s  "
         "sim %.1f s  wall %.2f s  ETA %.0f s%s\n", (int)log10(R) + 1, rr->round, R, who, rr->mean_train,
         rr->mean_val, test, up, down, rr->sim_time_s, wall_s, eta_s, dp);
}
