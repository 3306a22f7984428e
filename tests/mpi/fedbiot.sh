#!/bin/sh
# fedbiot: it starts from a pretrained model (model.init, required); clients get a
# compressed emulator (fewer FLOPs per token, fewer bytes down than fedavg on the
# full model); the aggregated adapter on the full model improves on the full model
# before federated training; bad input is refused.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
. "$top_srcdir/tests/mpi/base.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
make_base "$TMP/base" --set data.public_frac=0.3
common="-q --set model.layers=4 --set fl.rounds=4 --set fl.sample_fraction=1 --set data.public_frac=0.3"
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set model.init="$TMP/base" --set fedbiot.keep=0.5 \
  --set fedbiot.align_steps=5 --set run.output="$TMP/fb.h5" \
  || { cat "$TMP/out"; fail "fedbiot run"; }
cp "$TMP/out" "$TMP/out.fb"
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=fedavg --set model.init="$TMP/base" --set run.output="$TMP/fa.h5" \
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
# the round lines and the final line give the full model's test loss beside the emulator's
grep -q "^round 4/4 .*test [0-9.]* (ppl [0-9.]*, emulator)  full model [0-9.]* (ppl" "$TMP/out.fb" \
  || { cat "$TMP/out.fb"; fail "no full-model figure in the round line"; }
grep -q "^final fedbiot: .*; full model test loss [0-9.]*" "$TMP/out.fb" || fail "no full-model figure in the final line"
# fedmoe info: the configured 4 layers, and the clients' 3
"$FEDMOE" info "$TMP/fb.h5" >"$TMP/info" || fail "fedmoe info"
grep -q "^model      4 layers (the clients' model: 3 layers)" "$TMP/info" || { cat "$TMP/info"; fail "info: layers"; }
grep -q "^full model round 4: test" "$TMP/info" || { cat "$TMP/info"; fail "info: no full-model figure"; }
# fedmoe eval scores the full model stored in the checkpoint (/server), whose top block
# is the aggregated adapter (the clients' block 2), against a reference built by name
"$PYTHON_H5PY" - "$TMP/fb.h5" <<'PY' || fail "the checkpoint's full model"
import sys, h5py, numpy as np
ck = h5py.File(sys.argv[1], "r")["/checkpoints/latest"]
sv, sh = ck["server"], ck["shared"]
assert len([k for k in sv if k.startswith("h.")]) > 0 and "h.3.ln_1.weight" in sv
for k in sh:
    if k.startswith("h.2."):  # the adapter: client block 2 is full block 3
        assert np.array_equal(sh[k][...], sv["h.3." + k[4:]][...]), k
assert np.array_equal(sh["ln_f.weight"][...], sv["ln_f.weight"][...])
print("checkpoint: full model of %d tensors, adapter equal to the shared one" % len(sv))
PY
text="$top_srcdir/tests/fixtures/text/sailing"
mpi 1 eval --checkpoint "$TMP/fb.h5" --text "$text" || { cat "$TMP/out"; fail "eval of a fedbiot run"; }
cat "$TMP/out"
grep -q "strategy fedbiot model: the server's full model (4 blocks" "$TMP/out" || fail "eval does not say what it scores"
ce=$(awk '/^cross_entropy/ {print $2}' "$TMP/out")
FEDMOE_EVAL_RUNFILE="$TMP/fb.h5" FEDMOE_EVAL_TEXT="$text" FEDMOE_EVAL_GROUP=server \
  "${top_builddir:-.}/tests/unit/test_bench_eval" >"$TMP/ref" 2>&1 || { cat "$TMP/ref"; fail "test_bench_eval"; }
ref=$(awk '/^reference_ce/ {print $2}' "$TMP/ref")
awk -v a="$ce" -v b="$ref" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(b > 0 && d <= 2e-5 * b) }' \
  || fail "eval $ce differs from the reference $ref"
echo "ok: eval of fedbiot's full model $ce = reference $ref"
# a run file of an older fedmoe stored fedbiot.pretrain_steps in its configuration:
# it still reads (the retired key is skipped there)
cp "$TMP/fb.h5" "$TMP/old.h5" && cp -r "$TMP/fb.h5.ckpt" "$TMP/old.h5.ckpt"
"$PYTHON_H5PY" - "$TMP/old.h5" <<'PY' || fail "making an old-style run file"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+")
c = f.attrs["config"]; c = c.decode() if isinstance(c, bytes) else c
assert "[fedbiot]\n" in c
f.attrs["config"] = np.bytes_(c.replace("[fedbiot]\n", "[fedbiot]\npretrain_steps   = 200\n").encode())  # fixed-length, as fedmoe writes
PY
mpi 1 eval --checkpoint "$TMP/old.h5" --text "$text" || { cat "$TMP/out"; fail "eval of a run file with the retired key"; }
[ "$(awk '/^cross_entropy/ {print $2}' "$TMP/out")" = "$ce" ] || fail "the old-style run file scores differently"
echo "ok: a stored configuration with fedbiot.pretrain_steps still reads"
# no model.init: refused, naming the key; the retired stand-in pretraining says why it went
expect_fail 3 20 "key 'model.init'.*fedbiot compresses a pretrained model" run "$TMP/tiny.ini" $common \
  --set fl.strategy=fedbiot
expect_fail 1 20 "key 'fedbiot.pretrain_steps' was removed: fedbiot now fine-tunes the pretrained model of model.init" \
  run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set model.init="$TMP/base" --set fedbiot.pretrain_steps=10
printf '[fedbiot]\npretrain_steps = 10\n' >>"$TMP/tiny.ini"
expect_fail 1 20 "tiny.ini:[0-9]*: key 'fedbiot.pretrain_steps' was removed" run "$TMP/tiny.ini" $common \
  --set fl.strategy=fedbiot --set model.init="$TMP/base"
sed -i '/^pretrain_steps/d' "$TMP/tiny.ini"
common="$common --set model.init=$TMP/base"
for np in 1 3; do
  expect_fail $np 20 "key 'fedbiot.keep'" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.keep=0
  expect_fail $np 20 "key 'fedbiot.keep'" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.keep=1.5
  expect_fail $np 20 "fedbiot.adapter_layers" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set fedbiot.adapter_layers=4
  expect_fail $np 20 "data.public_frac" run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set data.public_frac=0
done
echo "fedbiot: all passed"
