#!/bin/sh
# fedmoe-analyze on run files written by `fedmoe run` (the tiny configuration of the
# runtime tests): every subcommand, and compare's table against the HDF5 data.
# Skipped (77) while `fedmoe run` exits 0 without writing a run file (runtime not there).
. "${top_srcdir:-.}/tests/mpi/common.sh"
[ -f "$top_srcdir/tests/mpi/tiny.sh" ] || { echo "SKIP: no tests/mpi/tiny.sh yet"; exit 77; }
. "$top_srcdir/tests/mpi/tiny.sh"
: "${top_builddir:=.}" "${PYTHON_H5PY:=/usr/bin/python3}"
AN=$top_builddir/analysis/fedmoe-analyze
[ -x "$AN" ] || fail "$AN not built"
export FEDMOE MPLCONFIGDIR="$TMP/mpl"
small="--set data.min_domain_bytes=100"

for s in local fedavg comigs; do
  mpi 3 run "$TMP/tiny.ini" -q $small --set fl.strategy=$s --set run.output="$TMP/$s.h5" \
    || { cat "$TMP/out"; fail "fedmoe run, strategy $s"; }
  if [ ! -f "$TMP/$s.h5" ]; then
    echo "SKIP: fedmoe run wrote no run file yet (runtime not wired)"; exit 77
  fi
done
mpi 3 run "$TMP/tiny.ini" -q $small --set fl.clients=9 --set run.output="$TMP/n9.h5" \
  || { cat "$TMP/out"; fail "fedmoe run, 9 clients"; }

runs="$TMP/local.h5 $TMP/fedavg.h5 $TMP/comigs.h5"
"$AN" curves -o "$TMP/o" $runs || fail "curves"
"$AN" routing -o "$TMP/o" $runs 2>"$TMP/err" || { cat "$TMP/err"; fail "routing"; }
cat "$TMP/err"
"$AN" routing -o "$TMP/o" --round 1 --domains 4 "$TMP/comigs.h5" || fail "routing --round 1"
"$AN" compare -o "$TMP/o" $runs >"$TMP/md" || fail "compare"
cat "$TMP/md"
"$AN" scaling -o "$TMP/o" "$TMP/fedavg.h5" "$TMP/n9.h5" || fail "scaling"
for f in curves.png routing-clients-comigs-r2.png routing-domains-comigs-r2.png \
         routing-clients-local-r2.png routing-domains-fedavg-r2.png routing-clients-comigs-r1.png \
         compare.csv scaling.png scaling.csv; do
  [ -s "$TMP/o/$f" ] || fail "$f missing or empty"
done
"$PYTHON_H5PY" "$top_srcdir/tests/analysis/check_compare.py" "$TMP/md" "$TMP/o/compare.csv" $runs \
  || fail "compare table"
# the load balance: 3 of 6 clients sampled, dealt to 2 hosts: at most 2 on one
"$PYTHON_H5PY" - "$TMP/o/scaling.csv" <<'PY' || fail "scaling.csv: load balance columns"
import csv, sys
rows = {r["file"].rsplit("/", 1)[-1]: r for r in csv.DictReader(open(sys.argv[1]))}
assert float(rows["fedavg.h5"]["host_clients_max"]) == 2, rows["fedavg.h5"]
assert float(rows["fedavg.h5"]["imbalance"]) >= 1, rows["fedavg.h5"]
PY
echo "real_run: all passed"
