"""check_seeds.py OUTPUT.md COMPARE.csv GROUP=RUNFILE[,RUNFILE...]... - check fedmoe-analyze
compare's aggregation over seeds against the run files, read here with h5py: per group
the mean and sample standard deviation over its runs of the last round's mean client
test loss and of its exponential, and, paired by seed against the first group, the
mean and sd of the differences. GROUP is the group's label as compare prints it."""
import csv
import math
import re
import sys

import h5py
import numpy as np


def final(path):
    with h5py.File(path, "r") as f:
        rows = f["metrics/clients"][()]
        cfg = f.attrs["config"]
    cfg = cfg.decode() if isinstance(cfg, bytes) else str(cfg)
    seed = re.search(r"^seed\s*=\s*(\S+)", cfg, re.M).group(1)
    fin = rows[rows["round"] == rows["round"].max()]
    return seed, float(np.mean(fin["test_loss"]))


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(b), 1e-12)


def main():
    md, csvpath = sys.argv[1], sys.argv[2]
    groups = []
    for arg in sys.argv[3:]:
        label, files = arg.rsplit("=", 1)  # a label may hold "=" (key=value), a path not
        groups.append((label, dict(final(p) for p in files.split(","))))
    with open(csvpath) as f:
        table = {r["group"]: r for r in csv.DictReader(f)}
    assert sorted(table) == sorted(g[0] for g in groups), "CSV groups %s" % sorted(table)
    text = open(md).read()
    ref = groups[0][1]
    n = 0
    for label, runs in groups:
        loss = np.array(list(runs.values()))
        want = {"test_loss_mean": loss.mean(), "test_loss_sd": loss.std(ddof=1),
                "ppl_mean": np.exp(loss).mean(), "ppl_sd": np.exp(loss).std(ddof=1)}
        row = table[label]
        assert int(row["n"]) == len(loss), (label, row["n"])
        assert sorted(row["seeds"].split()) == sorted(runs), (label, row["seeds"], sorted(runs))
        for k, v in want.items():
            assert close(float(row[k]), v, 1e-9), "%s %s: CSV %s, expected %r" % (label, k, row[k], v)
            n += 1
        # the Markdown row: | label | seeds | n | mean | sd | ppl mean | sd | ...
        line = [l for l in text.splitlines() if l.startswith("| %s |" % label)][0]
        cells = [c.strip() for c in line.strip("|").split("|")]
        # printed to 4 decimals
        assert abs(float(cells[3]) - want["test_loss_mean"]) <= 6e-5, (cells, want)
        assert abs(float(cells[4]) - want["test_loss_sd"]) <= 6e-5, (cells, want)
        if label != groups[0][0]:
            common = sorted(set(runs) & set(ref))
            d = np.array([runs[s] - ref[s] for s in common])
            assert int(row["paired_n"]) == len(common), (label, row["paired_n"])
            assert close(float(row["paired_diff_mean"]), d.mean(), 1e-9), (label, row["paired_diff_mean"], d.mean())
            assert close(float(row["paired_diff_sd"]), d.std(ddof=1), 1e-9), (label, row["paired_diff_sd"])
            n += 2
    print("ok: compare over seeds: %d groups, %d values checked" % (len(groups), n))


if __name__ == "__main__":
    main()
