#!/usr/bin/python3
"""studies-table.py - the studies' run files into docs/studies/<study>.csv, one row per
run (fedbiot: two rows per aligned run, its full model and its emulator).

    jobs/studies-table.py --manifest OUT/manifest.csv [--docs docs/studies]

The manifest (jobs/studies.sh writes it) names each run: name,study,strategy,variant,
seed,file. Columns of the CSV:
  study, strategy, variant, seed   what ran (variant: see docs/studies.md)
  final_test_loss    the mean test loss over every client after the last round, nats per
                     token (fedbiot full-* and offsite-*: the full model with the
                     aggregated adapter, /metrics/rounds test_loss_full; emulator-*: the
                     clients' emulator, mean_test)
  rounds_to_target   the first round whose figure is at most target_loss (empty: never)
  target_loss        the study's target: the mean over seeds of its reference run's
                     figure after half of the rounds (comigs and fedbiot: fedavg; hfedmoe:
                     unrestricted fedavg), a rule fixed before any run was looked at
  client_flops, client_bytes_down, client_bytes_up   per client and round that trained,
                     the mean (FLOPs of the local update; bytes of the model down and
                     of the update up)
  rounds, file       rounds run, the run file
Beside each CSV, <study>.md: per variant the mean and sample sd over seeds of the final
test loss, the rounds to the target (mean over the seeds that reached it) and the client
cost, and a comparison paired by seed against the study's reference variant (PAIRED_WITH).
Exit status 1, with the file named, when a run file is missing or unreadable.
"""
import argparse
import csv
import math
import os
import sys

import h5py
import numpy as np

REFERENCE = {"comigs": ("fedavg", "baseline"), "fedbiot": ("fedavg", "baseline"),
             "hfedmoe": ("fedavg", "unrestricted")}


# the variant every other one is paired with, seed by seed, in <study>.md
PAIRED_WITH = {"comigs": ("comigs", "val-router"), "fedbiot": ("fedavg", "baseline"),
               "hfedmoe": ("hfedmoe", "ib")}


def mean_sd(v):
    v = np.array([x for x in v if x is not None and np.isfinite(x)], np.float64)
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def f4(x, spec="%.4f"):
    return "-" if not np.isfinite(x) else spec % x


def summary(study, table, target):
    """<study>.md: the tables of docs/studies.md, from the CSV's rows."""
    keys = []
    for r in table:
        if (r["strategy"], r["variant"]) not in keys:
            keys.append((r["strategy"], r["variant"]))
    ref = PAIRED_WITH[study]
    refloss = {r["seed"]: r["loss"] for r in table if (r["strategy"], r["variant"]) == ref}
    out = ["Target loss %.4f (the reference's mean figure after half of the rounds)." % target, "",
           "| strategy | variant | seeds | final test loss mean | sd | rounds to target (reached) | "
           "client GFLOP per round | client MiB down per round |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for k in keys:
        rs = [r for r in table if (r["strategy"], r["variant"]) == k]
        m, sd = mean_sd([r["loss"] for r in rs])
        hits = [r["hit"] for r in rs if r["hit"] is not None]
        out.append("| %s | %s | %d | %s | %s | %s (%d of %d) | %.3f | %.3f |" % (
            k[0], k[1], len(rs), f4(m), f4(sd), f4(np.mean(hits), "%.1f") if hits else "-", len(hits), len(rs),
            np.mean([r["client_flops"] for r in rs]) / 1e9, np.mean([r["client_bytes_down"] for r in rs]) / 2**20))
    out += ["", "Paired by seed: final test loss minus that of %s %s in the same seed (below 0: lower)." % ref, "",
            "| strategy | variant | seeds paired | mean difference | sd | lower in |", "|---|---|---:|---:|---:|---:|"]
    for k in keys:
        if k == ref:
            continue
        d = [r["loss"] - refloss[r["seed"]] for r in table if (r["strategy"], r["variant"]) == k and r["seed"] in refloss]
        m, sd = mean_sd(d)
        out.append("| %s | %s | %d | %s | %s | %d of %d |" % (k[0], k[1], len(d), f4(m, "%+.4f"), f4(sd),
                                                              sum(1 for x in d if x < 0), len(d)))
    return "\n".join(out) + "\n"


def curve(f, field):
    """(rounds, values) of a /metrics/rounds field, in round order."""
    r = f["metrics/rounds"][()]
    r = r[np.argsort(r["round"], kind="stable")]
    return r["round"].astype(int), r[field].astype(np.float64)


def read_run(m):
    path = m["file"]
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise SystemExit("studies-table.py: %s: cannot read the run file of %s (%s)" % (path, m["name"], e))
    with f:
        rounds, mean_test = curve(f, "mean_test")
        names = f["metrics/rounds"].dtype.names
        full = curve(f, "test_loss_full")[1] if "test_loss_full" in names else np.full(len(rounds), np.nan)
        c = f["metrics/clients"][()]
        t = c[c["tokens"] > 0]
        cost = {"client_flops": float(t["flops"].mean()) if len(t) else float("nan"),
                "client_bytes_down": float(t["bytes_down"].mean()) if len(t) else float("nan"),
                "client_bytes_up": float(t["bytes_up"].mean()) if len(t) else float("nan")}
    out = []
    if m["strategy"] == "fedbiot":
        beta = m["variant"].split("-", 1)[1]  # full-beta0.2 / offsite-beta0.2
        out.append((m["variant"], full))  # the plugged-in full model (offsite: never re-aligned)
        if m["variant"].startswith("full-"):
            out.append(("emulator-" + beta, mean_test))
    else:
        out.append((m["variant"], mean_test))
    return [dict(m, variant=v, rounds=rounds, loss=y, **cost) for v, y in out]


def first_at_most(rounds, y, target):
    hit = np.nonzero(np.isfinite(y) & (y <= target))[0]
    return int(rounds[hit[0]]) if len(hit) else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--manifest", required=True)
    p.add_argument("--docs", default="docs/studies")
    a = p.parse_args()
    try:
        with open(a.manifest) as fh:
            manifest = list(csv.DictReader(fh))
    except OSError as e:
        raise SystemExit("studies-table.py: %s: %s" % (a.manifest, e.strerror))
    os.makedirs(a.docs, exist_ok=True)
    for study in sorted(set(m["study"] for m in manifest)):
        runs = [m for m in manifest if m["study"] == study]
        missing = [m["file"] for m in runs if not os.path.exists(m["file"])]
        if missing:
            sys.stderr.write("studies-table.py: note: %s: %d run file(s) missing (failed or not run), left "
                             "out: %s\n" % (study, len(missing), ", ".join(missing[:3])))
        rows = [r for m in runs if m["file"] not in missing for r in read_run(m)]
        ref_s, ref_v = REFERENCE[study]
        refs = [r for r in rows if r["strategy"] == ref_s and r["variant"] == ref_v]
        target = float("nan")
        if refs:  # the reference's figure after half of the rounds, averaged over seeds
            half = int(math.ceil(max(len(r["rounds"]) for r in refs) / 2))
            target = float(np.mean([r["loss"][half - 1] for r in refs]))
        order = sorted(rows, key=lambda r: (r["strategy"] != study, r["strategy"], r["variant"], int(r["seed"])))
        for r in order:
            r["hit"] = first_at_most(r["rounds"], r["loss"], target) if np.isfinite(target) else None
            r["loss"] = float(r["loss"][-1]) if len(r["rounds"]) else float("nan")
        path = os.path.join(a.docs, "%s.csv" % study)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["study", "strategy", "variant", "seed", "final_test_loss", "rounds_to_target", "target_loss",
                        "client_flops", "client_bytes_down", "client_bytes_up", "rounds", "file"])
            for r in order:
                w.writerow([study, r["strategy"], r["variant"], r["seed"], "%.6f" % r["loss"],
                            "" if r["hit"] is None else r["hit"], "%.6f" % target, "%.6g" % r["client_flops"],
                            "%.0f" % r["client_bytes_down"], "%.0f" % r["client_bytes_up"], len(r["rounds"]),
                            r["file"]])
        with open(os.path.join(a.docs, "%s.md" % study), "w") as fh:
            fh.write(summary(study, order, target))
        print("wrote %s and %s.md (%d rows, target loss %.4f)" % (path, study, len(rows), target))


if __name__ == "__main__":
    main()
