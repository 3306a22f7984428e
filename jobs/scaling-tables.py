#!/usr/bin/env python3
"""scaling-tables.py - Markdown tables of a scaling sweep (docs/scaling.md), from run files.

    python3 jobs/scaling-tables.py [--skip-first] [--skip-last] [--private-kb KB] RUNFILE...

One row per run file, sorted by ranks then clients: ranks P, clients N, sampled clients
per round, the most sampled clients on one host (the round's critical path: a host runs
its clients one after the other), mean round wall time and its phases (the slowest
rank's seconds, /metrics/rounds), aggregation + run-file write as a share of the round,
bytes per round, the peak resident set of any rank, and the most clients holding private
state on one host by the last round (clients that trained at least once), with the
private-state memory that predicts (--private-kb: the "private state X KB per client"
that `fedmoe run` prints; default: the run file's private_values_per_client attr x 12
bytes, when present). Needs h5py and numpy.
"""
import argparse
import sys

import h5py
import numpy as np


def row_of(path, skip_first, skip_last, private_kb):
    with h5py.File(path, "r") as f:
        P = int(f.attrs["ranks"])
        N = int(f.attrs["clients"])
        strat = f.attrs["strategy"]
        strat = strat.decode() if isinstance(strat, bytes) else str(strat)
        rr = f["/metrics/rounds"][...]
        rr = rr[np.argsort(rr["round"], kind="stable")]
        cl = f["/metrics/clients"][...]
        if private_kb is None and "private_values_per_client" in f.attrs:
            private_kb = float(f.attrs["private_values_per_client"]) * 12 / 1e3
    rounds_all = rr["round"]
    sel = rr
    if skip_first and len(sel) > 1:
        sel = sel[1:]
    if skip_last and len(sel) > 1:
        sel = sel[:-1]
    hosts = P - 1
    trained = cl[(cl["tokens"] > 0)]
    per_round_max = []
    for r in sel["round"]:
        ids = cl["client"][(cl["round"] == r) & (cl["status"] >= 0)]
        per_round_max.append(np.bincount(ids % hosts, minlength=hosts).max() if len(ids) else 0)
    if "host_clients_max" in sel.dtype.names:  # recorded since clients are dealt by work
        per_round_max = sel["host_clients_max"]
    ids = np.unique(trained["client"][trained["round"] <= rounds_all[-1]])
    holders = np.bincount(ids % hosts, minlength=hosts) if len(ids) else np.zeros(hosts, int)
    # a phase time is NaN in rounds where the phase did not run (local: no aggregation): 0 s here
    ph = {k: float(np.mean(np.nan_to_num(sel[k].astype(np.float64)))) for k in (
        "wall_s", "t_local", "t_aggregate", "t_server", "t_broadcast", "t_evaluate", "t_io")}
    return {
        "file": path, "strategy": strat, "P": P, "N": N, "rounds": len(sel),
        "sampled": float(np.mean(sel["clients"])), "max_per_host": float(np.mean(per_round_max)),
        **ph, "agg_io_pct": 100 * (ph["t_aggregate"] + ph["t_io"]) / ph["wall_s"],
        "bytes_up": float(np.mean(sel["bytes_up"])), "bytes_reduced": float(np.mean(sel["bytes_reduced"])),
        "rss_mb": float(rr["peak_rss_mb"][-1]), "holders_max": int(holders.max()),
        "trained": int(len(ids)), "private_kb": private_kb,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runfiles", nargs="+")
    ap.add_argument("--skip-first", action="store_true")
    ap.add_argument("--skip-last", action="store_true")
    ap.add_argument("--private-kb", type=float, default=None)
    a = ap.parse_args()
    rows = sorted((row_of(p, a.skip_first, a.skip_last, a.private_kb) for p in a.runfiles),
                  key=lambda r: (r["P"], r["N"]))
    base = rows[0]
    print("| P | clients | sampled/round | most on a host | round s | local | aggregate | server | "
          "broadcast | evaluate | run file | agg+io % | speed-up | efficiency | MB up/round | "
          "MB reduced/round | peak RSS MB | clients with state (most on a host) | predicted state MB |")
    print("|" + "---|" * 19)
    for r in rows:
        # against the first row: strong scaling's speed-up, weak scaling's efficiency
        sp = base["wall_s"] / r["wall_s"]
        eff = sp * (base["P"] - 1) / (r["P"] - 1) if r["N"] == base["N"] else sp
        pred = "%.1f" % (r["holders_max"] * r["private_kb"] / 1e3) if r["private_kb"] else "-"
        spe = ("%.2f | %.0f%%" % (sp, 100 * eff)) if len(set(x["P"] for x in rows)) > 1 else "- | -"
        print("| %d | %d | %.0f | %.1f | %.3f | %.3f | %.4f | %.4f | %.4f | %.3f | %.4f | %.2f | %s |"
              " %.1f | %.1f | %.1f | %d (%d) | %s |" % (
                  r["P"], r["N"], r["sampled"], r["max_per_host"], r["wall_s"], r["t_local"], r["t_aggregate"],
                  r["t_server"], r["t_broadcast"], r["t_evaluate"], r["t_io"], r["agg_io_pct"], spe,
                  r["bytes_up"] / 1e6, r["bytes_reduced"] / 1e6, r["rss_mb"], r["trained"], r["holders_max"],
                  pred))
    return 0


if __name__ == "__main__":
    sys.exit(main())
