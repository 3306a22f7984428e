#!/bin/sh
# fedmoe eval: a tiny fedavg run, then `fedmoe eval` of its latest checkpoint on a
# fixture text, compared with test_bench_eval, which rebuilds the model from the run
# file by tensor name and evaluates the same blocks on its own (a different batching,
# its own cross-entropy). Same figure on 1 and 3 ranks; a local run evaluates client
# 0; bad input fails with a message naming the file or the problem.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
: "${top_builddir:=.}"
text="$top_srcdir/tests/fixtures/text/sailing"
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set run.output="$TMP/fedavg.h5" \
  || { cat "$TMP/out"; fail "the fedavg run"; }

mpi 1 eval --checkpoint "$TMP/fedavg.h5" --text "$text" || { cat "$TMP/out"; fail "eval on 1 rank"; }
cat "$TMP/out"
ce1=$(awk '/^cross_entropy/ {print $2}' "$TMP/out")
[ -n "$ce1" ] || fail "eval printed no cross_entropy line"
grep -q "round 2 strategy fedavg" "$TMP/out" || fail "eval did not name round 2 and fedavg"
mpi 3 eval --checkpoint "$TMP/fedavg.h5" --text "$text" || { cat "$TMP/out"; fail "eval on 3 ranks"; }
ce3=$(awk '/^cross_entropy/ {print $2}' "$TMP/out")
[ "$ce1" = "$ce3" ] || fail "eval gives $ce1 on 1 rank, $ce3 on 3"

FEDMOE_EVAL_RUNFILE="$TMP/fedavg.h5" FEDMOE_EVAL_TEXT="$text" \
  "$top_builddir/tests/unit/test_bench_eval" >"$TMP/ref" 2>&1 9>&1 || { cat "$TMP/ref"; fail "test_bench_eval"; }
ref=$(awk '/^reference_ce/ {print $2}' "$TMP/ref")
[ -n "$ref" ] || { cat "$TMP/ref"; fail "test_bench_eval printed no reference"; }
awk -v a="$ce1" -v b="$ref" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 2e-5 * b) }' \
  || fail "eval $ce1 differs from the reference $ref"
echo "ok: eval $ce1 = reference $ref (1e-5), same on 1 and 3 ranks"

# a model that learnt differs from the initial one: a second text gives another figure
mpi 1 eval --checkpoint "$TMP/fedavg.h5" --text "$top_srcdir/tests/fixtures/text/cooking" \
  || { cat "$TMP/out"; fail "eval on another text"; }
ce_other=$(awk '/^cross_entropy/ {print $2}' "$TMP/out")
[ "$ce_other" != "$ce1" ] || fail "two texts give the same cross-entropy $ce1"

# private classes: local evaluates client 0
mpi 2 run "$TMP/tiny.ini" -q --set fl.strategy=local --set run.output="$TMP/local.h5" \
  || { cat "$TMP/out"; fail "the local run"; }
mpi 1 eval --checkpoint "$TMP/local.h5" --text "$text" || { cat "$TMP/out"; fail "eval of a local run"; }
grep -q "strategy local client 0" "$TMP/out" || { cat "$TMP/out"; fail "eval of a local run: not client 0"; }
echo "ok: eval of a local run evaluates client 0"
# --client picks another client's private model: another figure; out of range is refused
mpi 1 eval --checkpoint "$TMP/local.h5" --text "$text" --client 1 || { cat "$TMP/out"; fail "eval --client 1"; }
grep -q "strategy local client 1" "$TMP/out" || { cat "$TMP/out"; fail "eval --client 1: not client 1"; }
mpi 1 eval --checkpoint "$TMP/local.h5" --text "$text" --client 0 && c0=$(grep cross_entropy "$TMP/out")
mpi 1 eval --checkpoint "$TMP/local.h5" --text "$text" --client 1 && c1=$(grep cross_entropy "$TMP/out")
[ -n "$c0" ] && [ "$c0" != "$c1" ] || fail "clients 0 and 1 should score differently ($c0 / $c1)"
expect_fail 1 20 "--client 6: the run has clients 0..5" eval --checkpoint "$TMP/local.h5" --text "$text" --client 6
echo "ok: eval --client"

# bad input
expect_fail 2 20 "needs --checkpoint" eval --text "$text"
expect_fail 2 20 "needs --text" eval --checkpoint "$TMP/fedavg.h5"
expect_fail 2 20 "nosuch.h5" eval --checkpoint "$TMP/nosuch.h5" --text "$text"
expect_fail 2 20 "not an HDF5 file" eval --checkpoint "$text" --text "$text"
expect_fail 2 20 "nosuch.txt" eval --checkpoint "$TMP/fedavg.h5" --text "$TMP/nosuch.txt"
printf 'too short' >"$TMP/short.txt"
expect_fail 2 20 "shorter than one block" eval --checkpoint "$TMP/fedavg.h5" --text "$TMP/short.txt"
# --device and --precision: unknown values, a precision the CPU does not compute in, and
# options of eval given elsewhere; --device cpu is the default, the same figure
expect_fail 2 20 "devices are cpu and cuda" eval --checkpoint "$TMP/fedavg.h5" --text "$text" --device gpu
expect_fail 2 20 "precisions are fp32, tf32 and bf16" eval --checkpoint "$TMP/fedavg.h5" --text "$text" \
  --device cuda --precision fp16
expect_fail 2 20 "bf16 needs --device cuda" eval --checkpoint "$TMP/fedavg.h5" --text "$text" --precision bf16
expect_fail 2 20 "--precision is an option of 'fedmoe eval'" run "$TMP/tiny.ini" --precision bf16
mpi 1 eval --checkpoint "$TMP/fedavg.h5" --text "$text" && plain=$(grep cross_entropy "$TMP/out")
mpi 1 eval --checkpoint "$TMP/fedavg.h5" --text "$text" --device cpu || { cat "$TMP/out"; fail "eval --device cpu"; }
[ "$(grep cross_entropy "$TMP/out")" = "$plain" ] || fail "eval --device cpu is not the default's figure"
echo "ok: eval --device and --precision checked"
# a run file without a checkpoint, and one missing a tensor (h5py edits copies)
if [ -n "${PYTHON_H5PY:-}" ]; then
  cp "$TMP/fedavg.h5" "$TMP/nockpt.h5"
  $PYTHON_H5PY -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); del f['checkpoints/latest']" \
    "$TMP/nockpt.h5" || fail "h5py could not delete /checkpoints/latest"
  expect_fail 2 20 "nockpt.h5: the run file has no checkpoint" eval --checkpoint "$TMP/nockpt.h5" --text "$text"
  # a copy with its own .ckpt folder; the tensor goes from the copy's checkpoint file
  # (following the link would reach the original's)
  cp "$TMP/fedavg.h5" "$TMP/holed.h5"
  cp -r "$TMP/fedavg.h5.ckpt" "$TMP/holed.h5.ckpt"
  $PYTHON_H5PY -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r')
r = f['checkpoints'].get('latest', getlink=True).path.rsplit('/', 1)[1]
f.close()
del h5py.File(sys.argv[1] + '.ckpt/' + r + '.h5', 'r+')['shared/h.1.attn.c_proj.weight']" \
    "$TMP/holed.h5" || fail "h5py could not delete a tensor"
  expect_fail 2 20 "no tensor 'shared/h.1.attn.c_proj.weight'" eval --checkpoint "$TMP/holed.h5" --text "$text"
else
  echo "skipped: no h5py, no edited run files (no checkpoint, missing tensor)"
fi
# an HDF5 file that is not a run file
if [ -n "${PYTHON_H5PY:-}" ]; then
  $PYTHON_H5PY -c "import h5py,sys; h5py.File(sys.argv[1],'w').create_dataset('x', data=[1.0])" "$TMP/other.h5"
  expect_fail 2 20 "not a fedmoe run file" eval --checkpoint "$TMP/other.h5" --text "$text"
fi
echo "eval: all passed"
