#!/bin/sh
# fedmoe-analyze on synthetic run files (tests/analysis/make_runfile.py writes the
# layout of include/fedmoe/io.h): every subcommand draws non-empty PNGs, compare's
# table matches the HDF5 data, and bad inputs fail naming the file.
. "${top_srcdir:-.}/tests/mpi/common.sh"
: "${top_builddir:=.}" "${PYTHON_H5PY:=/usr/bin/python3}"
AN=$top_builddir/analysis/fedmoe-analyze
GEN="$PYTHON_H5PY $top_srcdir/tests/analysis/make_runfile.py"
[ -x "$AN" ] || fail "$AN not built"
export FEDMOE MPLCONFIGDIR="$TMP/mpl"

png() { # png FILE...: each exists, is non-empty and is a PNG
  for f; do
    [ -s "$f" ] || fail "$f missing or empty"
    [ "$(head -c 8 "$f" | od -An -c | tr -d ' ')" = '211PNG\r\n032\n' ] || fail "$f is not a PNG"
  done
}
run() { # run ARGS...: fedmoe-analyze must succeed; output in $TMP/out, $TMP/err
  "$AN" "$@" >"$TMP/out" 2>"$TMP/err" || { cat "$TMP/out" "$TMP/err"; fail "fedmoe-analyze $*"; }
}
bad() { # bad PATTERN ARGS...: must fail (status 1) with a message matching PATTERN
  pat=$1; shift
  "$AN" "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
  cat "$TMP/err"
  [ $rc -eq 1 ] || fail "fedmoe-analyze $*: exit status $rc, expected 1"
  grep -q -- "$pat" "$TMP/err" || fail "fedmoe-analyze $*: no message matching '$pat'"
  echo "ok: fails as it should: $*"
}

text=$top_srcdir/tests/fixtures/text
for s in local fedavg comigs; do
  $GEN "$TMP/$s.h5" --strategy $s --clients 6 --rounds 4 --layers 3 --dense-layers 1 \
    --data-path "$text" || fail "make_runfile.py $s"
done

# curves: several runs overlaid
run curves -o "$TMP/o" "$TMP/local.h5" "$TMP/fedavg.h5" "$TMP/comigs.h5"
png "$TMP/o/curves.png"
echo "ok: curves"

# routing: last round by default, per client and per domain (domains from fedmoe data)
run routing -o "$TMP/o" "$TMP/comigs.h5" "$TMP/fedavg.h5"
png "$TMP/o/routing-clients-comigs-r4.png" "$TMP/o/routing-clients-fedavg-r4.png"
# the default domain lookup runs `fedmoe data` on the stored config: checked where that works
printf '[data]\npath = %s\nmin_domain_bytes = 100\n' "$text" >"$TMP/probe.ini"
if [ -x "$FEDMOE" ] && "$FEDMOE" data "$TMP/probe.ini" -q 2>&1 | grep -q "': 4 domains"; then
  png "$TMP/o/routing-domains-comigs-r4.png" "$TMP/o/routing-domains-fedavg-r4.png"
else
  echo "note: 'fedmoe data' does not list the fixture's domains here; default lookup not checked"
fi
run routing -o "$TMP/o" --round 2 --domains 4 "$TMP/comigs.h5"
png "$TMP/o/routing-clients-comigs-r2.png" "$TMP/o/routing-domains-comigs-r2.png"
run routing -o "$TMP/o" --round 3 --cumulative --metric gate_mass --domains 4 "$TMP/comigs.h5"
png "$TMP/o/routing-clients-comigs-r3-cum.png" "$TMP/o/routing-domains-comigs-r3-cum.png"
$GEN "$TMP/dir.h5" --partition dirichlet --data-path "$text" || fail "make_runfile.py dirichlet"
run routing -o "$TMP/o" "$TMP/dir.h5"
png "$TMP/o/routing-clients-dir-r4.png"
[ ! -e "$TMP/o/routing-domains-dir-r4.png" ] || fail "per-domain heatmap drawn for partition=dirichlet"
grep -q "partition = dirichlet" "$TMP/err" || fail "no note on the skipped per-domain heatmap"
echo "ok: routing"

# run files of format 1 (dense routing statistics, fedmoe 0.1.0): the same figures as
# format 2 from the same data; fedmoe info names the format, --resume refuses it
$GEN "$TMP/old.h5" --strategy comigs --format 1 --data-path "$text" || fail "make_runfile.py --format 1"
$GEN "$TMP/new.h5" --strategy comigs --data-path "$text" || fail "make_runfile.py"
"$PYTHON_H5PY" - "$AN" "$TMP/old.h5" "$TMP/new.h5" <<'PY' || fail "format 1 and 2 routing differ"
import sys, importlib.machinery, importlib.util, numpy as np
loader = importlib.machinery.SourceFileLoader("fedmoe_analyze", sys.argv[1])
an = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
loader.exec_module(an)
def dense(path):
    run = an.RunFile(path)
    rounds, clients, rows = run.routing("counts")
    out = np.zeros((run.rounds_done(), run.clients, run.layers, run.experts))
    np.add.at(out, (rounds - 1, clients), rows.astype(np.float64))
    return out
a, b = dense(sys.argv[2]), dense(sys.argv[3])
assert a.shape == b.shape and np.array_equal(a, b) and a.sum() > 0
print("format 1 and 2: the same routing counts, %d rounds" % a.shape[0])
PY
run routing -o "$TMP/o" --domains 4 "$TMP/old.h5"
png "$TMP/o/routing-clients-old-r4.png"
if [ -x "$FEDMOE" ]; then
  "$FEDMOE" info "$TMP/old.h5" | grep -q "^format     1 (dense" || fail "fedmoe info: no format 1 line"
  "$FEDMOE" info "$TMP/new.h5" >"$TMP/info2" || fail "fedmoe info on a format 2 file"
  grep -q "^format     2$" "$TMP/info2" && grep -q "^rounds     4 done" "$TMP/info2" || fail "fedmoe info: format 2"
  . "$top_srcdir/tests/mpi/tiny.sh"
  expect_fail 3 20 "has layout format 1 (dense per-client statistics" \
    run "$TMP/tiny.ini" -q --resume "$TMP/old.h5"
fi
echo "ok: format 1 run files"

# compare: table rows and values against the HDF5 data
run compare -o "$TMP/o" "$TMP/local.h5" "$TMP/fedavg.h5" "$TMP/comigs.h5"
cat "$TMP/out"
[ -s "$TMP/o/compare.csv" ] || fail "compare.csv missing"
"$PYTHON_H5PY" "$top_srcdir/tests/analysis/check_compare.py" "$TMP/out" "$TMP/o/compare.csv" \
  "$TMP/local.h5" "$TMP/fedavg.h5" "$TMP/comigs.h5" || fail "compare table"
# runs with different client counts: missing cells stay empty
$GEN "$TMP/big.h5" --clients 9 --layers 3 --dense-layers 1 --data-path "$text" || fail "make_runfile.py 9 clients"
run compare -o "$TMP/o2" "$TMP/local.h5" "$TMP/big.h5"
"$PYTHON_H5PY" "$top_srcdir/tests/analysis/check_compare.py" "$TMP/out" "$TMP/o2/compare.csv" \
  "$TMP/local.h5" "$TMP/big.h5" || fail "compare table with different client counts"
# compare names what differs beyond the strategy: here the client count
grep -q "^  fl.clients: 6 (local), 9 (fedavg)$" "$TMP/out" || { cat "$TMP/out"; fail "compare: fl.clients not named"; }
run compare -o "$TMP/o2" "$TMP/local.h5" "$TMP/fedavg.h5"
grep -q "differ in their strategy only" "$TMP/out" || { cat "$TMP/out"; fail "compare: runs differing in the strategy only"; }
! grep -q "^  comigs\." "$TMP/out" || fail "compare: another strategy's section listed"
# and refuses what is no comparison: another layout format, another model
bad "cannot compare runs of different models: model.layers = 3 ($TMP/local.h5), 2 ($TMP/dir.h5)" \
  compare -o "$TMP/o2" "$TMP/local.h5" "$TMP/dir.h5"
bad "cannot compare run files of different layout formats: $TMP/old.h5 is format 1, $TMP/new.h5 is format 2" \
  compare -o "$TMP/o2" "$TMP/old.h5" "$TMP/new.h5"

# scaling: a client-count sweep; memory panel skipped with a note, then drawn
for n in 8 16 32 64; do
  $GEN "$TMP/sweep-n$n.h5" --clients $n --ranks 5 --data-path "$text" || fail "make_runfile.py n=$n"
  $GEN "$TMP/mem-n$n.h5" --clients $n --ranks 5 --memory --data-path "$text" || fail "make_runfile.py mem"
done
run scaling -o "$TMP/s1" "$TMP"/sweep-n*.h5
png "$TMP/s1/scaling.png"
grep -q "memory panel skipped" "$TMP/err" || fail "no note on the skipped memory panel"
[ "$(wc -l <"$TMP/s1/scaling.csv")" -eq 5 ] || fail "scaling.csv: expected a header and 4 rows"
run scaling -o "$TMP/s2" --x ranks --skip-first "$TMP"/mem-n*.h5
png "$TMP/s2/scaling.png"
grep -q peak_rss_bytes "$TMP/s2/scaling.csv" || fail "memory field not in scaling.csv"
echo "ok: scaling"

# bad inputs: non-zero exit, message naming the file
bad "$TMP/nope.h5: no such file" curves -o "$TMP/o" "$TMP/nope.h5"
$GEN "$TMP/bogus.h5" --bogus || fail "make_runfile.py --bogus"
bad "$TMP/bogus.h5: not a fedmoe run file" compare -o "$TMP/o" "$TMP/local.h5" "$TMP/bogus.h5"
echo "hello" >"$TMP/text.h5"
bad "$TMP/text.h5: not a fedmoe run file" routing -o "$TMP/o" "$TMP/text.h5"
bad "$TMP/fedavg.h5: --round 9 is out of range" routing -o "$TMP/o" --round 9 "$TMP/fedavg.h5"
"$AN" curves >/dev/null 2>&1 && fail "curves without a run file succeeded"
echo "analyze: all passed"
