/* system.c - simulated devices, their round times, and which clients make a round. */
#include "fedmoe/system.h"

#include "fedmoe/rng.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double pick(const fm_floatlist *l, int cls) { return l->v[l->n == 1 ? 0 : cls]; }

/* One data row of the trace: exactly five comma-separated fields, the client id a
 * decimal integer and the rates finite decimal numbers (no NaN, inf, hex, nothing
 * after the fifth field). row[0..3]: flops, up_mbps, down_mbps, availability. */
static fm_err trace_row(char *l, const char *path, int line, double row[4]) {
  static const char *const cols[5] = {"client", "flops", "up_mbps", "down_mbps", "availability"};
  char *field[5];
  int n = 0;
  for (char *f = l, *comma; f; f = comma ? comma + 1 : NULL) {
    comma = strchr(f, ',');
    if (comma) *comma = 0;
    if (n == 5) FM_ERROR(FM_ERR_DATA, "%s:%d: more than 5 fields; expected client,flops,up_mbps,down_mbps,"
                         "availability", path, line);
    while (*f == ' ' || *f == '\t') f++;
    field[n++] = f;
  }
  if (n < 5) FM_ERROR(FM_ERR_DATA, "%s:%d: %d field%s; expected 5: client,flops,up_mbps,down_mbps,availability",
                      path, line, n, n == 1 ? "" : "s");
  int64_t id;
  if (!fm_parse_int64(field[0], &id) || id < 0)
    FM_ERROR(FM_ERR_DATA, "%s:%d: client '%s' is not a client number (decimal, >= 0)", path, line, field[0]);
  for (int j = 1; j < 5; j++)
    if (!fm_parse_real(field[j], &row[j - 1]))
      FM_ERROR(FM_ERR_DATA, "%s:%d: %s '%s' is not a finite decimal number", path, line, cols[j], field[j]);
  if (row[0] <= 0 || row[1] <= 0 || row[2] <= 0 || row[3] < 0 || row[3] > 1)
    FM_ERROR(FM_ERR_DATA, "%s:%d: expected client,flops,up_mbps,down_mbps,availability with positive rates "
             "and availability in [0,1]", path, line);
  return FM_OK;
}

/* Read system.trace: rows "client,flops,up_mbps,down_mbps,availability" (a header
 * line allowed, '#' comments, blank lines); client i takes row i mod rows. */
static fm_err read_trace(fm_system *s, const fm_config *c) {
  char *text = NULL;
  size_t len = 0;
  FM_CHECK(fm_read_file(c->system.trace, &text, &len));
  int rows = 0, cap = 0, line = 0;
  double (*v)[4] = NULL;
  fm_err err = fm_text_refuse_nul(text, len, c->system.trace);
  /* line by line (strtok would merge blank lines and put the numbers off) */
  for (char *l = text, *nl; !err && l; l = nl ? nl + 1 : NULL) {
    nl = strchr(l, '\n');
    if (nl) *nl = 0;
    line++;
    char *e = l + strlen(l);
    while (e > l && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
    while (*l == ' ' || *l == '\t') l++;
    if (!*l || *l == '#' || (line == 1 && strstr(l, "client"))) continue;
    double row[4];
    if ((err = trace_row(l, c->system.trace, line, row))) break;
    if (rows == cap) {
      cap = cap ? 2 * cap : 64;
      double (*nv)[4] = realloc(v, (size_t)cap * sizeof *v);
      if (!nv) { err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_MEM, "out of memory (trace)"); break; }
      v = nv;
    }
    memcpy(v[rows++], row, sizeof row);
  }
  free(text);
  if (!err && rows == 0)
    err = fm_error_set(__FILE__, __LINE__, __func__, FM_ERR_DATA, "%s: no device rows", c->system.trace);
  for (int i = 0; !err && i < s->n; i++) {
    double *r = v[i % rows];
    s->dev[i].flops = r[0];
    s->dev[i].up_bps = r[1] * 1e6;
    s->dev[i].down_bps = r[2] * 1e6;
    s->dev[i].availability = r[3];
  }
  free(v);
  return err;
}

fm_err fm_system_create(fm_system *s, const fm_config *c) {
  memset(s, 0, sizeof *s);
  s->n = c->fl.clients;
  s->nclass = c->system.share.n;
  FM_CALLOC(s->dev, (size_t)s->n, "devices");
  double tot = 0;
  for (int k = 0; k < s->nclass; k++) tot += c->system.share.v[k];
  for (int i = 0; i < s->n; i++) {
    fm_rng r;
    fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)i, 0, FM_RNG_SYSTEM);
    double u = fm_rng_uniform(&r) * tot, acc = 0;
    int k = 0;
    while (k < s->nclass - 1 && u >= (acc += c->system.share.v[k])) k++;
    fm_device *d = &s->dev[i];
    d->cls = k;
    double sig = c->system.flops_spread;
    d->flops = pick(&c->system.flops, k) * exp(sig * fm_rng_normal(&r) - sig * sig / 2);
    d->memory_bytes = pick(&c->system.memory_mb, k) * 1048576.0;
    d->up_bps = pick(&c->system.up_mbps, k) * 1e6;
    d->down_bps = pick(&c->system.down_mbps, k) * 1e6;
    d->latency_s = pick(&c->system.latency_ms, k) * 1e-3;
    d->availability = pick(&c->system.availability, k);
    d->dropout = pick(&c->system.dropout, k);
  }
  if (c->system.trace[0]) {
    fm_err err = read_trace(s, c);
    if (err) { fm_system_free(s); return fm_error_trace(__FILE__, __LINE__, __func__, err); }
  }
  return FM_OK;
}

void fm_system_free(fm_system *s) {
  free(s->dev);
  memset(s, 0, sizeof *s);
}

int fm_resource_class(const fm_system *s, int client, int n) {
  int k = s && s->nclass > 1 ? s->dev[client].cls : client;
  return n > 0 ? k % n : 0;
}

double fm_device_time(const fm_device *d, double flops, double bytes_down, double bytes_up) {
  return d->latency_s + 8 * bytes_down / d->down_bps + flops / d->flops + d->latency_s + 8 * bytes_up / d->up_bps;
}

double fm_system_plan(const fm_system *s, const fm_config *c, int round, const int *clients, int m,
                      const double *flops, double bytes_down, double bytes_up, int *status, double *time) {
  int want = m - c->fl.over_select; /* over-selection: keep this many of the first to finish */
  if (want < 1) want = 1;
  for (int j = 0; j < m; j++) {
    const fm_device *d = &s->dev[clients[j]];
    fm_rng r;
    fm_rng_init(&r, (uint64_t)c->run.seed, (uint32_t)clients[j], (uint32_t)round, FM_RNG_SYSTEM);
    double online = fm_rng_uniform(&r), drop = fm_rng_uniform(&r);
    time[j] = fm_device_time(d, flops[j], bytes_down, bytes_up) + 2 * s->extra_round_trips * d->latency_s;
    status[j] = online >= d->availability ? FM_CLIENT_OFFLINE
                : drop < d->dropout       ? FM_CLIENT_DROPPED
                : c->fl.deadline_s > 0 && time[j] > c->fl.deadline_s ? FM_CLIENT_LATE
                                                                      : FM_CLIENT_KEPT;
  }
  if (c->fl.over_select > 0) { /* keep the `want` fastest of those still in (ties: lower id) */
    int *order = malloc((size_t)m * sizeof *order), n = 0;
    if (order) {
      for (int j = 0; j < m; j++) {
        if (status[j] != FM_CLIENT_KEPT) continue;
        int p = n++;
        while (p > 0 && time[order[p - 1]] > time[j]) { order[p] = order[p - 1]; p--; }
        order[p] = j;
      }
      for (int q = want; q < n; q++) status[order[q]] = FM_CLIENT_SURPLUS;
      free(order);
    }
  }
  double t = 0;
  for (int j = 0; j < m; j++)
    if (status[j] == FM_CLIENT_KEPT && time[j] > t) t = time[j];
  if (c->fl.deadline_s > 0) {
    int late = 0;
    for (int j = 0; j < m; j++) late |= status[j] == FM_CLIENT_LATE;
    if (late) t = c->fl.deadline_s; /* the server waited until the deadline */
  }
  return t;
}
