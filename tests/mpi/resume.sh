#!/bin/sh
# Exact restart: a run of R rounds, and the same run stopped after R/2 rounds and
# resumed from its run file, end with bit-identical checkpoints, per-client metrics
# and routing statistics. Resuming from a bad file changes nothing and says why.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}
set_common="-q --set fl.rounds=4 --set run.checkpoint_every=1"
# (qwen2_moe: a llama-family model, GQA, shared expert, q/k/v biases)
for case in comigs fedavg "fedavg qwen2_moe"; do
  set -- $case
  s=$1
  fam=${2:-gpt2}
  set_run="$set_common --set model.family=$fam"
  [ $fam = gpt2 ] || { set_run="$set_run --set model.kv_heads=1"; s="$s-$fam"; }
  mpi 3 run "$TMP/tiny.ini" $set_run --set fl.strategy=$1 --set run.output="$TMP/full-$s.h5" \
    || { cat "$TMP/out"; fail "$s: full run"; }
  mpi 3 run "$TMP/tiny.ini" $set_run --set fl.strategy=$1 --set run.output="$TMP/half-$s.h5" \
    --set run.stop_after=2 || { cat "$TMP/out"; fail "$s: first half"; }
  "$FEDMOE" info "$TMP/half-$s.h5" | grep -q "rounds     2 done" || fail "$s: the stopped run should hold 2 rounds"
  # the second half may run on another rank count: results do not depend on it
  mpi 4 run "$TMP/tiny.ini" $set_run --set fl.strategy=$1 --resume "$TMP/half-$s.h5" \
    || { cat "$TMP/out"; fail "$s: resume"; }
  grep -q "resuming" "$TMP/out" || fail "$s: no resume message"
  for obj in /checkpoints/r000004 /metrics/clients /routing/counts /routing/gate_mass /routing/index; do
    "$H5DIFF" --follow-symlinks "$TMP/full-$s.h5" "$TMP/half-$s.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$s: $obj differs after resume"; }
  done
  "$FEDMOE" info "$TMP/half-$s.h5" | grep -q "rounds     4 done" || fail "$s: resumed run should hold 4 rounds"
  echo "ok: $s stopped at 2 of 4 and resumed equals the uninterrupted run"
done

# fedbiot: the server keeps the full model (/server), the emulator (shared) and the
# AdamW state of the emulator's alignment (/fedbiot): resumed on another rank count,
# the run ends equal to the uninterrupted one, the full model's figures included
. "$top_srcdir/tests/mpi/base.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
make_base "$TMP/base" --set data.public_frac=0.3
fb="$set_common --set fl.strategy=fedbiot --set model.init=$TMP/base --set model.layers=4 --set data.public_frac=0.3"
fb="$fb --set fedbiot.align_steps=3"
mpi 3 run "$TMP/tiny.ini" $fb --set run.output="$TMP/full-fb.h5" || { cat "$TMP/out"; fail "fedbiot: full run"; }
mpi 3 run "$TMP/tiny.ini" $fb --set run.output="$TMP/half-fb.h5" --set run.stop_after=2 \
  || { cat "$TMP/out"; fail "fedbiot: first half"; }
mpi 2 run "$TMP/tiny.ini" $fb --resume "$TMP/half-fb.h5" || { cat "$TMP/out"; fail "fedbiot: resume"; }
grep -q "resuming .* after round 2" "$TMP/out" || { cat "$TMP/out"; fail "fedbiot: no resume message"; }
for obj in /checkpoints/r000004 /metrics/clients; do
  "$H5DIFF" --follow-symlinks "$TMP/full-fb.h5" "$TMP/half-fb.h5" $obj $obj >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "fedbiot: $obj differs after resume"; }
done
"$PYTHON_H5PY" - "$TMP/full-fb.h5" "$TMP/half-fb.h5" <<'PY' || fail "fedbiot: resumed figures"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for f in ("test_loss_full", "test_loss_emulator", "mean_test"):
    x, y = a["/metrics/rounds"][f], b["/metrics/rounds"][f]
    assert len(x) == 4 and np.array_equal(x, y), (f, x, y)
ck = b["/checkpoints/latest"]
assert "server" in ck and "fedbiot" in ck, list(ck)
# one alignment before round 1 and after each of 4 rounds, 3 steps each
assert ck["fedbiot/emulator_adam/step"][0] == 15, ck["fedbiot/emulator_adam/step"][...]
assert np.abs(ck["fedbiot/emulator_adam/v"][...]).max() > 0
print("fedbiot resumed: full-model test loss per round", np.round(b["/metrics/rounds"]["test_loss_full"], 5))
PY
echo "ok: fedbiot stopped at 2 of 4 and resumed on 2 ranks equals the uninterrupted run"

# with a checkpoint every 2 rounds, a failure in round 4 leaves round 3's per-client
# statistics (/routing and hfedmoe's /fl) after checkpoint 2: resuming cuts them, and
# the run ends equal to one that did not fail
hf="-q --set fl.rounds=4 --set run.checkpoint_every=2 --set fl.strategy=hfedmoe"
mpi 3 run "$TMP/tiny.ini" $hf --set run.output="$TMP/hf-full.h5" || { cat "$TMP/out"; fail "hfedmoe: full run"; }
mpi 3 run "$TMP/tiny.ini" $hf --set run.output="$TMP/hf-cut.h5" --set debug.fail=1:local_update:4 \
  && fail "hfedmoe: the injected failure did not stop the run"
"$FEDMOE" info "$TMP/hf-cut.h5" | grep -q "trained    9 client-rounds" || fail "hfedmoe: round 3's rows should be there"
mpi 4 run "$TMP/tiny.ini" $hf --resume "$TMP/hf-cut.h5" || { cat "$TMP/out"; fail "hfedmoe: resume"; }
grep -q "resuming .* after round 2" "$TMP/out" || fail "hfedmoe: should resume after round 2"
for obj in /checkpoints/r000004 /metrics/clients /routing/index /routing/counts /fl/selected /fl/importance; do
  "$H5DIFF" --follow-symlinks "$TMP/hf-full.h5" "$TMP/hf-cut.h5" $obj $obj >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "hfedmoe: $obj differs after resume"; }
done
echo "ok: hfedmoe failed in round 4, resumed from round 2 (round 3's rows cut): equal to the unfailed run"

# bad resumes: clear errors, the file untouched
sum0=$(cksum <"$TMP/full-fedavg.h5")
expect_fail 3 20 "already holds 4 rounds" run "$TMP/tiny.ini" $set_common --resume "$TMP/full-fedavg.h5"
expect_fail 3 20 "model.d_model is '16' in the run file, '32' now" run "$TMP/tiny.ini" $set_common --set fl.rounds=6 \
  --set model.d_model=32 --resume "$TMP/full-fedavg.h5"
expect_fail 3 20 "strategy is 'fedavg'" run "$TMP/tiny.ini" $set_common --set fl.rounds=6 \
  --set fl.strategy=local --resume "$TMP/full-fedavg.h5"
[ "$(cksum <"$TMP/full-fedavg.h5")" = "$sum0" ] || fail "a refused resume modified the run file"
echo "not a run file" >"$TMP/junk.h5"
expect_fail 3 20 "not an HDF5 file" run "$TMP/tiny.ini" $set_common --resume "$TMP/junk.h5"
expect_fail 1 20 "not an HDF5 file" info "$TMP/junk.h5"
echo "resume: all passed"
