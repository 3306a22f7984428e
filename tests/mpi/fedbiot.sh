#!/bin/sh
# fedbiot: clients get a compressed emulator (fewer FLOPs per token, fewer bytes
# down than fedavg on the full model); the aggregated adapter on the full model
# improves on the full model before federated training; bad input is refused.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
common="-q --set model.layers=4 --set fl.rounds=4 --set fl.sample_fraction=1 --set data.public_frac=0.3"
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.keep=0.5 \
  --set fedbiot.pretrain_steps=60 --set fedbiot.align_steps=5 --set run.output="$TMP/fb.h5" \
  || { cat "$TMP/out"; fail "fedbiot run"; }
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=fedavg --set run.output="$TMP/fa.h5" \
  || { cat "$TMP/out"; fail "fedavg run"; }
"$PYTHON_H5PY" - "$TMP/fb.h5" "$TMP/fa.h5" <<'PY' || fail "fedbiot figures"
import sys, h5py, numpy as np
fb, fa = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
cb, ca = fb["/metrics/clients"][...], fa["/metrics/clients"][...]
t = lambda c: c[c["tokens"] > 0]
fpt_b = (t(cb)["flops"] / t(cb)["tokens"]).max(); fpt_a = (t(ca)["flops"] / t(ca)["tokens"]).max()
down_b, down_a = t(cb)["bytes_down"].max(), t(ca)["bytes_down"].max()
# 4 blocks, 1 adapter, keep 0.5 of 3 bottom blocks -> 2: the client runs 3 of 4 blocks
print("client FLOPs/token fedbiot %.0f fedavg %.0f (%.2f); bytes down %d vs %d (%.2f)"
      % (fpt_b, fpt_a, fpt_b / fpt_a, down_b, down_a, down_b / down_a))
assert 0.6 < fpt_b / fpt_a < 0.95, "FLOPs per token should fall by about a block's share"
assert 0.6 < down_b / down_a < 0.95, "download should fall by about a block's share"
r = fb["/metrics/rounds"][...]
base = fb.attrs["baseline_test_loss_full"]
print("full model test loss: before %.4f, per round %s" % (base, np.round(r["test_loss_full"], 4)))
assert np.isfinite(r["test_loss_full"]).all() and np.isfinite(r["test_loss_emulator"]).all()
assert r["test_loss_full"][-1] < base, "the fine-tuned adapter on the full model must beat it untuned"
assert np.isnan(fa["/metrics/rounds"][...]["test_loss_full"]).all()
PY
for np in 1 3; do
  expect_fail $np 20 "key 'fedbiot.keep'" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.keep=0
  expect_fail $np 20 "key 'fedbiot.keep'" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.keep=1.5
  expect_fail $np 20 "fedbiot.adapter_layers" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.adapter_layers=4
  expect_fail $np 20 "data.public_frac" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set data.public_frac=0
done
echo "fedbiot: all passed"
