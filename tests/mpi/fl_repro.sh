#!/bin/sh
# Reproducible mode: the same configuration on 2, 3 and 5 ranks gives bit-identical
# final checkpoints, per-client metrics and routing counts, for every strategy.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}
for s in fedavg comigs local; do
  for np in 2 3 5; do
    mpi $np run "$TMP/tiny.ini" -q --set fl.strategy=$s --set run.output="$TMP/$s-$np.h5" \
      || { cat "$TMP/out"; fail "$s on $np ranks"; }
    grep "^final $s" "$TMP/out"
  done
  for np in 3 5; do
    for obj in /checkpoints/r000002 /metrics/clients /routing/counts /routing/gate_mass; do
      "$H5DIFF" --follow-symlinks "$TMP/$s-2.h5" "$TMP/$s-$np.h5" $obj $obj >"$TMP/diff" 2>&1 \
        || { cat "$TMP/diff"; fail "$s: $obj differs between 2 and $np ranks"; }
    done
    echo "ok: $s on 2 and $np ranks: identical checkpoint, metrics and routing"
  done
done
# the float mode is allowed to differ in the last bits, but must run
mpi 3 run "$TMP/tiny.ini" -q --set fl.aggregation=float --set run.output="$TMP/float.h5" \
  || { cat "$TMP/out"; fail "float aggregation"; }
echo "fl_repro: all passed"
