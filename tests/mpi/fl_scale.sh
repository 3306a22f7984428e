#!/bin/sh
# Traffic and scale: bytes per round are the shared bytes times the participants,
# the reduction moves one buffer per host; with many clients and few sampled, only
# the clients that trained hold (and checkpoint) private state, and memory follows.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set fl.rounds=3 --set run.output="$TMP/fa.h5" \
  || { cat "$TMP/out"; fail "fedavg"; }
# 1000 clients share the small fixture corpus: their regions overlap (data.allow_overlap)
mpi 2 run "$TMP/tiny.ini" -q --set fl.strategy=local --set fl.clients=1000 --set fl.sample_count=5 \
  --set fl.rounds=4 --set fl.final_eval=sampled --set run.output="$TMP/many.h5" --set data.allow_overlap=true \
  || { cat "$TMP/out"; fail "1000 clients"; }
"$PYTHON_H5PY" - "$TMP/fa.h5" "$TMP/many.h5" <<'PY' || fail "traffic and scale figures"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
shared = f["/checkpoints/latest/shared"]
n_values = sum(d.size for d in shared.values()); n_seg = len(shared)
P = int(f.attrs["ranks"])
for row in f["/metrics/rounds"][...]:
    assert row["bytes_up"] == row["clients"] * n_values * 4, (row["bytes_up"], row["clients"], n_values)
    assert row["bytes_down"] == row["clients"] * n_values * 4
    # one reduction buffer (values and segment weights, 8 bytes each) from each host
    assert row["bytes_reduced"] == (P - 1) * (n_values + n_seg) * 8, row["bytes_reduced"]
print("fedavg: %d shared values in %d tensors; bytes per round = participants x shared bytes" % (n_values, n_seg))
g = h5py.File(sys.argv[2], "r")
c = g["/metrics/clients"][...]
trained = np.unique(c["client"][c["tokens"] > 0])
ids = g["/checkpoints/latest/clients/class0/client"][...]
assert np.array_equal(np.sort(ids), trained), "checkpoint rows must be exactly the clients that trained"
assert g["/checkpoints/latest/clients/class0/params"].shape[0] == len(trained)
rss = g["/metrics/rounds"][...]["peak_rss_mb"]
per_client = g["/checkpoints/latest/clients/class0/params"].shape[1] * 12 / 1e6   # params + Adam m, v
print("1000 clients, %d trained: private state %.2f MB per client; peak RSS by round %s MB"
      % (len(trained), per_client, np.round(rss, 1)))
# memory grows by about the trained clients' private state, not by the 1000 clients
assert rss[-1] - rss[0] < (len(trained) * per_client) * 2 + 64, "memory grew beyond the trained clients' state"
PY
echo "fl_scale: all passed"
