"""check_compare.py OUTPUT.md COMPARE.csv RUNFILE... - check fedmoe-analyze compare's
table against the run files, read here independently with h5py: one row per client of
the last round, perplexity = exp(test_loss), and a last row exp(mean test loss)."""
import csv
import math
import sys

import h5py
import numpy as np


def expected(path):
    with h5py.File(path, "r") as f:
        rows = f["metrics/clients"][()]
    last = rows["round"].max()
    fin = rows[rows["round"] == last]
    return ({int(r["client"]): math.exp(float(r["test_loss"])) for r in fin},
            math.exp(float(np.mean(fin["test_loss"]))))


def close(a, b, rel):
    return abs(a - b) <= rel * abs(b)


def main():
    md, csvpath, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
    exp = [expected(p) for p in runs]
    clients = sorted(set(c for e in exp for c in e[0]))
    with open(csvpath) as f:
        table = list(csv.reader(f))
    assert len(table[0]) == 1 + len(runs), "CSV header %s: expected %d run columns" % (table[0], len(runs))
    body = table[1:]
    assert [r[0] for r in body] == [str(c) for c in clients] + ["exp_mean_loss"], \
        "CSV rows %s" % [r[0] for r in body]
    mdrows = [l for l in open(md).read().splitlines() if l.startswith("| ") and not l.startswith("| client")]
    mdcells = [[c.strip() for c in l.strip("|").split("|")] for l in mdrows]
    assert [r[0] for r in mdcells] == [r[0] for r in body], "Markdown rows %s" % [r[0] for r in mdcells]
    n = 0
    for i, c in enumerate(clients + [None]):
        for j, (ppl, meanppl) in enumerate(exp):
            want = meanppl if c is None else ppl.get(c)
            got_csv, got_md = body[i][1 + j], mdcells[i][1 + j]
            if want is None:
                assert got_csv == "" and got_md == "", "client %s run %d: expected an empty cell" % (c, j)
                continue
            assert close(float(got_csv), want, 1e-12), "CSV %s/%s: %s != %r" % (c, runs[j], got_csv, want)
            assert close(float(got_md), want, 1e-4), "Markdown %s/%s: %s != %r" % (c, runs[j], got_md, want)
            n += 1
    print("ok: compare table: %d rows x %d runs, %d values checked" % (len(body), len(runs), n))


if __name__ == "__main__":
    main()
