"""make_runfile.py - write a synthetic fedmoe run file (the layout of include/fedmoe/io.h)
with h5py, without MPI, so that fedmoe-analyze can be tested before and apart from
the C runtime.

    python3 make_runfile.py OUT.h5 [--strategy S] [--clients N] [--rounds R] [--layers L]
        [--experts E] [--ranks P] [--seed S] [--generalists G] [--dense-layers 0,2]
        [--partition by_domain] [--data-path DIR] [--memory] [--bogus] [--format 1|2]
        [--set SECTION.KEY=VALUE]... [--skill X] [--full-loss]

Clients: a fraction 0.5 of them is sampled each round (train_loss NaN for the others);
every client is reported in the last round. --bogus writes an HDF5 file that is not a
run file. --memory adds a peak_rss_bytes field to /metrics/rounds. --format 1 writes the
routing statistics of fedmoe 0.1.0, dense [round][client][layer][expert], and no format
attribute; format 2 (the default) has rows of the sampled clients, indexed by
/routing/index. --set adds or replaces a key of the stored configuration; --skill sets
how fast the losses fall (default: by strategy); --full-loss adds fedbiot's
test_loss_full (mean_test - 0.1) to /metrics/rounds.
"""
import argparse
import math

import h5py
import numpy as np

CLIENT_DT = np.dtype([("round", "<i4"), ("client", "<i4"), ("train_loss", "<f8"), ("val_loss", "<f8"),
                      ("test_loss", "<f8"), ("tokens", "<u8"), ("flops", "<f8"), ("sim_time_s", "<f8"),
                      ("bytes_up", "<u8"), ("bytes_down", "<u8")])
ROUND_FIELDS = [("round", "<i4"), ("clients", "<i4"), ("mean_train", "<f8"), ("mean_val", "<f8"),
                ("mean_test", "<f8"), ("min_test", "<f8"), ("max_test", "<f8"), ("wall_s", "<f8"),
                ("t_local", "<f8"), ("t_aggregate", "<f8"), ("t_server", "<f8"), ("t_broadcast", "<f8"),
                ("t_evaluate", "<f8"), ("t_io", "<f8"), ("bytes_up", "<u8"), ("bytes_down", "<u8"),
                ("bytes_reduced", "<u8")]


def config_text(a):
    # the same shape as fedmoe's resolved configuration (aligned keys, "# origin" comments)
    rows = [("run", [("name", "synthetic"), ("output", a.out), ("seed", a.seed), ("threads", 1)]),
            ("model", [("d_model", 16), ("layers", a.layers), ("experts", a.experts), ("top_k", 2),
                       ("moe_layers", "all" if not a.dense_layers else "synthetic")]),
            ("data", [("path", a.data_path), ("partition", a.partition), ("min_domain_bytes", 100),
                      ("client_bytes", 4096)]),
            ("fl", [("strategy", a.strategy), ("clients", a.clients), ("rounds", a.rounds),
                    ("sample_fraction", 0.5)]),
            ("comigs", [("generalists", a.generalists), ("specialists", "1,2")])]
    for item in a.set:  # section.key=value: replace the key or add it (its section too)
        k, v = item.split("=", 1)
        sec, key = k.split(".", 1)
        kv = dict(rows).setdefault(sec, None)
        if kv is None:
            rows.append((sec, []))
            kv = rows[-1][1]
        for i, (name, _) in enumerate(kv):
            if name == key:
                kv[i] = (key, v)
                break
        else:
            kv.append((key, v))
    out = []
    for sec, kv in rows:
        out.append("[%s]" % sec)
        out += ["%-16s = %-30s # make_runfile.py" % (k, v) for k, v in kv]
        out.append("")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--strategy", default="fedavg")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--ranks", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--generalists", type=int, default=2)
    p.add_argument("--dense-layers", default="")
    p.add_argument("--partition", default="by_domain")
    p.add_argument("--data-path", default="tests/fixtures/text")
    p.add_argument("--memory", action="store_true")
    p.add_argument("--bogus", action="store_true")
    p.add_argument("--format", type=int, choices=(1, 2), default=2)
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--skill", type=float, default=None)
    p.add_argument("--full-loss", action="store_true")
    a = p.parse_args()
    if a.bogus:
        with h5py.File(a.out, "w") as f:
            f.attrs["title"] = "not a fedmoe run file"
            f["data"] = np.arange(10)
        return
    rng = np.random.default_rng(a.seed)
    N, R, L, E = a.clients, a.rounds, a.layers, a.experts
    dense = [int(x) for x in a.dense_layers.split(",") if x]
    ndom = 4
    skill = {"local": 0.2, "fedavg": 0.35, "comigs": 0.5}.get(a.strategy, 0.3) if a.skill is None else a.skill
    crow, rrows = [], []
    counts = np.zeros((R, N, L, E), np.uint64)
    mass = np.zeros((R, N, L, E), np.float64)
    index = []  # (round, client) of the sampled clients, the rows of format 2
    for r in range(1, R + 1):
        m = max(1, int(math.ceil(0.5 * N)))
        sampled = sorted(rng.choice(N, m, replace=False).tolist())
        report = list(range(N)) if r == R else sampled
        rows = []
        for c in report:
            base = 5.5 - skill * math.log1p(r) - 0.05 * (c % ndom)
            trained = c in sampled
            tok = 2048 + 64 * c if trained else 0
            rows.append((r, c, base + rng.normal(0, 0.02) if trained else np.nan,
                         base + 0.1 + rng.normal(0, 0.02), base + 0.12 + rng.normal(0, 0.02), tok,
                         6.0 * 5e4 * tok, 1e-3 * tok, 4096 if trained else 0, 4096))
        crow += rows
        t = np.array(rows, dtype=CLIENT_DT)
        tr = t["train_loss"][np.isfinite(t["train_loss"])]
        wall = 0.01 * N / (a.ranks - 1) + 0.05
        ph = [0.6 * wall, 0.1 * wall, 0.05 * wall, 0.1 * wall, 0.1 * wall, 0.05 * wall]
        rr = [r, m, float(tr.mean()), float(t["val_loss"].mean()), float(t["test_loss"].mean()),
              float(t["test_loss"].min()), float(t["test_loss"].max()), wall] + ph + [
              4096 * m, 4096 * len(report), 4096 * (a.ranks - 1)]
        if a.memory:
            rr.append(2**20 * (30 + N // 8))
        if a.full_loss:
            rr.append(float(t["test_loss"].mean()) - 0.1)
        rrows.append(tuple(rr))
        index += [(r, c) for c in sampled]
        for c in sampled:  # each domain prefers one specialist, everyone the generalists
            for l in range(L):
                if l in dense:
                    continue
                pref = np.ones(E)
                pref[min(E - 1, a.generalists + (c % ndom) % max(1, E - a.generalists))] += 4
                pref[:a.generalists] += 2
                pr = pref / pref.sum()
                counts[r - 1, c, l] = rng.multinomial(2 * 64 * 4, pr)
                mass[r - 1, c, l] = pr * 64 * 4
    rdt = np.dtype(ROUND_FIELDS + ([("peak_rss_bytes", "<u8")] if a.memory else [])
                   + ([("test_loss_full", "<f8")] if a.full_loss else []))
    with h5py.File(a.out, "w") as f:
        def s(name, v):  # fixed-length ASCII string attribute, as the C runtime writes
            f.attrs.create(name, np.bytes_(v.encode()))
        s("fedmoe_version", "0.1-synthetic")
        s("strategy", a.strategy)
        s("config", config_text(a))
        s("start_time", "2025-01-01T00:00:00Z")
        for k, v in (("seed", a.seed), ("ranks", a.ranks), ("clients", N), ("layers", L), ("experts", E)):
            f.attrs.create(k, v, dtype="<i8")
        g = f.create_group("metrics")
        g.create_dataset("clients", data=np.array(crow, CLIENT_DT), maxshape=(None,), chunks=(1024,))
        g.create_dataset("rounds", data=np.array(rrows, rdt), maxshape=(None,), chunks=(64,))
        g = f.create_group("routing")
        if a.format == 1:
            g.create_dataset("counts", data=counts, maxshape=(None, N, L, E), chunks=(1, N, L, E))
            g.create_dataset("gate_mass", data=mass, maxshape=(None, N, L, E), chunks=(1, N, L, E))
        else:
            f.attrs.create("format", 2, dtype="<i8")
            ix = np.array(index, np.dtype([("round", "<i4"), ("client", "<i4")]))
            g.create_dataset("index", data=ix, maxshape=(None,), chunks=(1024,))
            for name, full in (("counts", counts), ("gate_mass", mass)):
                g.create_dataset(name, data=full[ix["round"] - 1, ix["client"]], maxshape=(None, L, E),
                                 chunks=(256, L, E))
        ck = f.create_group("checkpoints/r%06d" % R)
        ck.attrs["round"] = np.int64(R)
        ck.attrs["complete"] = np.int64(1)
        ck.create_group("shared")["wte"] = np.zeros((256, 16), np.float32)
        ck.create_group("clients")
        f["checkpoints/latest"] = h5py.SoftLink("/checkpoints/r%06d" % R)


if __name__ == "__main__":
    main()
