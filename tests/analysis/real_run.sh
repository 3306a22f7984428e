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

# the plots of the system model, routing and strategies, on real run files: each a
# non-empty PNG; each refuses a run file it has nothing to draw from, naming it
png() { # png FILE...: each exists, is non-empty and is a PNG
  for f; do
    [ -s "$f" ] || fail "$f missing or empty"
    [ "$(head -c 8 "$f" | od -An -c | tr -d ' ')" = '211PNG\r\n032\n' ] || fail "$f is not a PNG"
  done
}
mpi 3 run "$TMP/tiny.ini" -q $small --set fl.strategy=hfedmoe --set run.output="$TMP/hfedmoe.h5" \
  || { cat "$TMP/out"; fail "fedmoe run, strategy hfedmoe"; }
. "$top_srcdir/tests/mpi/base.sh"
make_base "$TMP/base" $small --set data.public_frac=0.3
mpi 3 run "$TMP/tiny.ini" -q $small --set fl.strategy=fedbiot --set model.layers=4 --set data.public_frac=0.3 \
  --set model.init="$TMP/base" --set run.output="$TMP/fedbiot.h5" || { cat "$TMP/out"; fail "fedmoe run, fedbiot"; }
"$AN" cost -o "$TMP/p" $runs "$TMP/hfedmoe.h5" "$TMP/fedbiot.h5" || fail "cost"
"$AN" experts -o "$TMP/p" "$TMP/comigs.h5" "$TMP/hfedmoe.h5" || fail "experts"
"$AN" domains -o "$TMP/p" $runs || fail "domains"
"$AN" selection -o "$TMP/p" "$TMP/hfedmoe.h5" || fail "selection"
"$AN" fedbiot -o "$TMP/p" "$TMP/fedbiot.h5" || fail "fedbiot"
"$AN" curves -o "$TMP/p" "$TMP/fedavg.h5" "$TMP/fedbiot.h5" || fail "curves with fedbiot"
png "$TMP/p/cost.png" "$TMP/p/experts-comigs.png" "$TMP/p/experts-hfedmoe.png" "$TMP/p/domains.png" \
  "$TMP/p/selection-hfedmoe.png" "$TMP/p/fedbiot-fedbiot.png" "$TMP/p/curves.png" "$TMP/o/scaling.png"
for cmd in selection fedbiot; do
  "$AN" $cmd -o "$TMP/p" "$TMP/fedavg.h5" 2>"$TMP/err" && fail "$cmd on a fedavg run succeeded"
  grep -q "$TMP/fedavg.h5: .*strategy is fedavg" "$TMP/err" || { cat "$TMP/err"; fail "$cmd: no message naming the file"; }
done
mpi 3 run "$TMP/tiny.ini" -q $small --set data.partition=iid --set run.output="$TMP/iid.h5" || fail "iid run"
"$AN" domains -o "$TMP/p" "$TMP/iid.h5" 2>"$TMP/err" && fail "domains on an iid partition succeeded"
grep -q "data.partition = iid" "$TMP/err" || { cat "$TMP/err"; fail "domains: no message on the partition"; }
# the time outside the phases is never negative (the phases are each the slowest rank's)
"$PYTHON_H5PY" -c "import csv, sys; r = list(csv.DictReader(open(sys.argv[1])))
assert r and all(float(x['t_other']) >= 0 for x in r), [x['t_other'] for x in r]" "$TMP/o/scaling.csv" \
  || fail "scaling.csv: negative t_other"
echo "ok: cost, experts, domains, selection, fedbiot"
echo "real_run: all passed"
