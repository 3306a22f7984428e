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
        path = os.path.join(a.docs, "%s.csv" % study)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["study", "strategy", "variant", "seed", "final_test_loss", "rounds_to_target", "target_loss",
                        "client_flops", "client_bytes_down", "client_bytes_up", "rounds", "file"])
            for r in sorted(rows, key=lambda r: (r["strategy"] != study, r["strategy"], r["variant"], int(r["seed"]))):
                hit = first_at_most(r["rounds"], r["loss"], target) if np.isfinite(target) else None
                w.writerow([study, r["strategy"], r["variant"], r["seed"], "%.6f" % r["loss"][-1],
                            "" if hit is None else hit, "%.6f" % target, "%.6g" % r["client_flops"],
                            "%.0f" % r["client_bytes_down"], "%.0f" % r["client_bytes_up"], len(r["rounds"]),
                            r["file"]])
        print("wrote %s (%d rows, target loss %.4f)" % (path, len(rows), target))


if __name__ == "__main__":
    main()
