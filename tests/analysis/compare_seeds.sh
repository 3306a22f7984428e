#!/bin/sh
# fedmoe-analyze compare over seeds (synthetic run files): runs that differ in their
# seed only are grouped, the table and CSV give the mean and sd over seeds and the
# paired differences (checked against the HDF5 data by check_seeds.py), compare.png
# draws the mean curves with a band; runs that differ in more than the strategy, the
# seed and --vary draw a warning on stderr naming the key and values.
. "${top_srcdir:-.}/tests/mpi/common.sh"
: "${top_builddir:=.}" "${PYTHON_H5PY:=/usr/bin/python3}"
AN=$top_builddir/analysis/fedmoe-analyze
GEN="$PYTHON_H5PY $top_srcdir/tests/analysis/make_runfile.py"
[ -x "$AN" ] || fail "$AN not built"
export MPLCONFIGDIR="$TMP/mpl"
text=$top_srcdir/tests/fixtures/text
run() { # run ARGS...: must succeed; output in $TMP/out, $TMP/err
  "$AN" "$@" >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/out" "$TMP/err"; fail "fedmoe-analyze $*"; }
}
for seed in 1 2 3; do
  for s in local fedavg; do
    $GEN "$TMP/$s-$seed.h5" --strategy $s --seed $seed --data-path "$text" || fail "make_runfile.py"
  done
  for r in val train; do
    $GEN "$TMP/cm-$r-$seed.h5" --strategy comigs --seed $seed --data-path "$text" --set comigs.router_data=$r \
      --skill $([ $r = val ] && echo 0.5 || echo 0.4) || fail "make_runfile.py"
  done
done
$GEN "$TMP/fedavg-4.h5" --strategy fedavg --seed 4 --data-path "$text" || fail "make_runfile.py"
# 1. two strategies over seeds (fedavg has one seed more: 3 pairs)
run compare -o "$TMP/o" --target 5.0 "$TMP"/local-*.h5 "$TMP"/fedavg-*.h5
cat "$TMP/out"
grep -q "2 groups of 3/4 runs" "$TMP/out" || fail "not grouped by seed"
[ ! -s "$TMP/err" ] || ! grep -q warning "$TMP/err" || { cat "$TMP/err"; fail "a warning for runs differing in strategy and seed"; }
"$PYTHON_H5PY" "$top_srcdir/tests/analysis/check_seeds.py" "$TMP/out" "$TMP/o/compare.csv" \
  "local=$(ls "$TMP"/local-*.h5 | paste -sd,)" "fedavg=$(ls "$TMP"/fedavg-*.h5 | paste -sd,)" || fail "seed table"
grep -q "^| fedavg | 3 | " "$TMP/out" || fail "fedavg: 3 seeds paired with local"
grep -q "rounds to 5 mean" "$TMP/out" || fail "no rounds-to-target column"
[ "$(head -c 8 "$TMP/o/compare.png" | od -An -c | tr -d ' ')" = '211PNG\r\n032\n' ] || fail "compare.png"
echo "ok: two strategies, 3 and 4 seeds"
# 2. a key the comparison is about (--vary): groups set apart by it, no warning
run compare -o "$TMP/o2" --vary comigs.router_data "$TMP"/cm-val-*.h5 "$TMP"/cm-train-*.h5 "$TMP"/fedavg-[123].h5
cat "$TMP/out"
! grep -q warning "$TMP/err" || { cat "$TMP/err"; fail "a warning for a --vary key"; }
"$PYTHON_H5PY" "$top_srcdir/tests/analysis/check_seeds.py" "$TMP/out" "$TMP/o2/compare.csv" \
  "comigs comigs.router_data=val=$(ls "$TMP"/cm-val-*.h5 | paste -sd,)" \
  "comigs comigs.router_data=train=$(ls "$TMP"/cm-train-*.h5 | paste -sd,)" \
  "fedavg=$(ls "$TMP"/fedavg-[123].h5 | paste -sd,)" || fail "seed table with --vary"
echo "ok: --vary comigs.router_data"
# 3. without --vary the same runs are warned about, naming the key and the values
run compare -o "$TMP/o3" "$TMP"/cm-val-*.h5 "$TMP"/cm-train-*.h5
cat "$TMP/err"
grep -q "warning: the runs differ in comigs.router_data beyond the strategy, the seed and --vary: val (comigs (cm-val-1), comigs (cm-val-2), comigs (cm-val-3)), train (comigs (cm-train-1), " "$TMP/err" \
  || fail "no warning naming comigs.router_data and its values"
$GEN "$TMP/fedavg-n9.h5" --strategy fedavg --clients 9 --seed 5 --data-path "$text" || fail "make_runfile.py"
run compare -o "$TMP/o3" "$TMP"/fedavg-[123].h5 "$TMP/fedavg-n9.h5"
grep -q "warning: the runs differ in fl.clients .*: 6 (.*), 9 (" "$TMP/err" || { cat "$TMP/err"; fail "no warning for fl.clients"; }
grep -q "fedavg fl.clients=9" "$TMP/out" || { cat "$TMP/out"; fail "the odd run is not a group of its own"; }
run compare -o "$TMP/o3" --vary fl.clients "$TMP"/fedavg-[123].h5 "$TMP/fedavg-n9.h5"
! grep -q warning "$TMP/err" || { cat "$TMP/err"; fail "warned about a --vary key"; }
echo "ok: warnings name what else differs"
# 4. a model key differs: refused, unless it is what is varied
$GEN "$TMP/l3.h5" --strategy fedavg --layers 3 --seed 1 --data-path "$text" || fail "make_runfile.py"
"$AN" compare -o "$TMP/o4" "$TMP/fedavg-1.h5" "$TMP/l3.h5" >"$TMP/out" 2>"$TMP/err" && fail "different models compared"
grep -q "cannot compare runs of different models: model.layers" "$TMP/err" || { cat "$TMP/err"; fail "no reason"; }
run compare -o "$TMP/o4" --vary model.layers "$TMP/fedavg-1.h5" "$TMP/fedavg-2.h5" "$TMP/l3.h5"
grep -q "fedavg model.layers=3" "$TMP/out" || { cat "$TMP/out"; fail "model.layers group"; }
"$AN" compare -o "$TMP/o4" --vary comigs.router_dta "$TMP/fedavg-1.h5" "$TMP/cm-val-1.h5" >"$TMP/out" 2>"$TMP/err" \
  && fail "a misspelt --vary key was taken"
grep -q "vary: no run's configuration has the key 'comigs.router_dta'" "$TMP/err" || { cat "$TMP/err"; fail "--vary typo"; }
echo "compare_seeds: all passed"
