#!/bin/sh
# The system model: simulated round times follow the device formula (its FLOPs those
# the clients report: a frozen base's weights get no gradient share); clients past
# the deadline, offline or surplus to over-selection are not aggregated; memory
# limits are errors, or drive hfedmoe budgets with system.auto_budget; a trace file
# gives the devices.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
sys="--set system.share=1,1 --set system.flops=2e7,1e10 --set system.up_mbps=0.5,50 --set system.down_mbps=2,100
     --set system.latency_ms=50,5 --set system.memory_mb=4096"
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set fl.clients=8 --set fl.sample_fraction=1 \
  --set fl.rounds=2 $sys --set fl.deadline_s=1.0 --set run.output="$TMP/deadline.h5" || { cat "$TMP/out"; fail "deadline"; }
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set fl.clients=8 --set fl.sample_count=3 \
  --set fl.over_select=3 --set fl.rounds=3 $sys --set system.availability=0.7 --set run.output="$TMP/over.h5" \
  || { cat "$TMP/out"; fail "over-selection"; }
# LoRA on a frozen base (model.train = lora): a step's FLOPs give the frozen tensors no
# weight-gradient share, in the clients' figures and in the simulated time alike
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set fl.clients=8 --set fl.sample_fraction=1 \
  --set fl.rounds=2 $sys --set fl.deadline_s=1.0 --set model.attn_lora_rank=2 --set model.train=lora \
  --set run.output="$TMP/lora.h5" || { cat "$TMP/out"; fail "LoRA"; }
"$PYTHON_H5PY" - "$TMP/deadline.h5" "$TMP/over.h5" "$TMP/lora.h5" <<'PY' || fail "system model figures"
import sys, h5py, numpy as np
KEPT, LATE, DROPPED, OFFLINE, SURPLUS = range(5)
flops, up, down, lat = [2e7, 1e10], [0.5e6, 50e6], [2e6, 100e6], [0.05, 0.005]
f = h5py.File(sys.argv[1], "r")
cls = f["/fl/resource_class"][...]
assert set(cls.tolist()) == {0, 1}, "both classes should be drawn for 8 clients"
c = f["/metrics/clients"][...]
trained = c[c["status"] >= 0]
for row in trained:
    k = cls[row["client"]]
    expect = 2 * lat[k] + 8 * row["bytes_down"] / down[k] + row["flops"] / flops[k] + 8 * row["bytes_down"] / up[k]
    assert abs(row["sim_time_s"] - expect) <= 1e-9 * expect, (row["client"], row["sim_time_s"], expect)
    want = LATE if expect > 1.0 else KEPT
    assert row["status"] == want, (row["client"], row["status"], want)
    assert (row["bytes_up"] > 0) == (want == KEPT), "only kept clients upload"
fl = h5py.File(sys.argv[3], "r")
cl = fl["/metrics/clients"][...]
lora = cl[cl["status"] >= 0]
for row in lora:  # the simulated time follows the same FLOPs the client reports
    k = fl["/fl/resource_class"][row["client"]]
    expect = 2 * lat[k] + 8 * row["bytes_down"] / down[k] + row["flops"] / flops[k] + 8 * row["bytes_down"] / up[k]
    assert abs(row["sim_time_s"] - expect) <= 1e-9 * expect, (row["client"], row["sim_time_s"], expect)
fpt_all, fpt_lora = (trained["flops"] / trained["tokens"]).max(), (lora["flops"] / lora["tokens"]).max()
print("FLOPs per token: every tensor trained %.0f, attention LoRA on a frozen base %.0f" % (fpt_all, fpt_lora))
# the forward and the input gradients (4 N of 6 N) remain, the frozen weights' gradients go
assert 0.66 * fpt_all < fpt_lora < 0.8 * fpt_all, (fpt_all, fpt_lora)
r = f["/metrics/rounds"][...]
assert (r["late"] > 0).all() and (r["kept"] > 0).all()
assert np.allclose(r["sim_time_s"], 1.0), "with late clients the round lasts until the deadline"
print("deadline: %d kept, %d late per round; slow-class round time would be %.1f s"
      % (r["kept"][0], r["late"][0], trained["sim_time_s"].max()))
g = h5py.File(sys.argv[2], "r")
c = g["/metrics/clients"][...]
for rnd in np.unique(c["round"]):
    x = c[(c["round"] == rnd) & (c["status"] >= 0)]
    assert len(x) == 6, "3 asked + 3 over-selected"
    kept = x[x["status"] == KEPT]
    assert len(kept) <= 3
    online = x[(x["status"] == KEPT) | (x["status"] == SURPLUS)]
    if len(online) > 3:
        assert len(kept) == 3 and kept["sim_time_s"].max() <= online[online["status"] == SURPLUS]["sim_time_s"].min()
    off = x[x["status"] == OFFLINE]
    assert (off["tokens"] == 0).all(), "offline clients do not train"
r = g["/metrics/rounds"][...]
print("over-selection: kept %s, surplus %s, offline %s" % (r["kept"], r["surplus"], r["offline"]))
assert (r["kept"] + r["surplus"] + r["offline"] + r["dropped"] + r["late"] == 6).all()
PY
# memory: too little is an error naming the key and the need; auto_budget fits
# hfedmoe budgets to it (a memory between the needs of budgets 1 and 4)
hf="-q --set fl.strategy=hfedmoe --set hfedmoe.budgets=4"
expect_fail 3 20 "system.memory_mb" run "$TMP/tiny.ini" $hf --set system.memory_mb=0.001
need4=$(sed -n 's/.*need \([0-9.]*\) MiB.*/\1/p' "$TMP/out" | head -1)
expect_fail 3 20 "system.memory_mb" run "$TMP/tiny.ini" $hf --set system.memory_mb=0.001 --set system.auto_budget=true
need1=$(sed -n 's/.*need \([0-9.]*\) MiB.*/\1/p' "$TMP/out" | head -1)
[ -n "$need1" ] && [ -n "$need4" ] || fail "the memory error should give the need"
mid=$(awk "BEGIN { print ($need1 + $need4) / 2 }")
echo "need: budget 1 $need1 MiB, budget 4 $need4 MiB; small class gets $mid MiB"
mpi 3 run "$TMP/tiny.ini" $hf --set system.share=1,1 --set system.memory_mb=$mid,64 \
  --set system.auto_budget=true --set run.output="$TMP/auto.h5" || { cat "$TMP/out"; fail "auto budget"; }
"$PYTHON_H5PY" - "$TMP/auto.h5" <<'PY' || fail "auto budgets"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
b, cls = f["/fl/budget"][...], f["/fl/resource_class"][...]
print("auto budgets by class:", {int(k): sorted(set(b[cls == k].tolist())) for k in set(cls.tolist())})
assert (b[cls == 1] == 4).all(), "the roomy class keeps its budget"
assert ((b[cls == 0] >= 1) & (b[cls == 0] < 4)).all(), "the small class gets a smaller budget"
sel, who = f["/fl/selected"][...], f["/routing/index"]["client"]  # [row][layer][expert], rows as the index
for row, c in enumerate(who):
    assert (sel[row].sum(axis=1) <= b[c]).all()
PY
# a trace gives the devices
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set system.trace="$top_srcdir/tests/fixtures/devices.csv" \
  --set run.output="$TMP/trace.h5" || { cat "$TMP/out"; fail "trace"; }
printf 'client,flops\n0,x\n' >"$TMP/bad.csv"
expect_fail 3 20 "bad.csv:2" run "$TMP/tiny.ini" -q --set system.trace="$TMP/bad.csv"
expect_fail 3 20 "system.flops" run "$TMP/tiny.ini" -q --set system.share=1,1,1 --set system.flops=1e9,2e9
echo "system: all passed"
