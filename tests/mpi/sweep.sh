#!/bin/sh
# jobs/sweep.sh --local: a 2-point sweep (P = 2 and 3, 6 clients) on the tiny config,
# one run file per point in DIR/p<P>/sweep-n<N>.h5, and its plots where h5py is there;
# the Slurm mode's submissions in --dry-run (one array per rank count); bad options.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
: "${top_builddir:=.}"
export FEDMOE MPIEXEC MPIEXEC_FLAGS MPLCONFIGDIR="$TMP/mpl" FEDMOE_ANALYZE="$top_builddir/analysis/fedmoe-analyze"
S="$top_srcdir/jobs/sweep.sh"
an=
[ -n "${PYTHON_H5PY:-}" ] && [ -x "$FEDMOE_ANALYZE" ] && an=--analyze
timeout -k 5 180 bash "$S" --local --ranks "2 3" --clients 6 --strategy fedavg --rounds 2 --timeout 60 \
  -o "$TMP/sw" $an "$TMP/tiny.ini" --set data.min_domain_bytes=100 >"$TMP/sweep.out" 2>&1 \
  || { cat "$TMP/sweep.out"; fail "jobs/sweep.sh --local"; }
cat "$TMP/sweep.out"
for f in p2/sweep-n6.h5 p3/sweep-n6.h5 p2/sweep-n6.log; do
  [ -s "$TMP/sw/$f" ] || fail "sweep: $f missing or empty"
done
[ "$(grep -c ' ok ' "$TMP/sweep.out")" -eq 2 ] || fail "sweep: expected 2 points ok"
if [ -n "$an" ]; then
  [ -s "$TMP/sw/plots/scaling.png" ] || fail "sweep --analyze: no scaling.png"
  [ "$(wc -l <"$TMP/sw/plots/scaling.csv")" -eq 3 ] || fail "sweep --analyze: scaling.csv is not 2 rows"
  grep -q "^$TMP/sw/p3/sweep-n6.h5,fedavg,6,3," "$TMP/sw/plots/scaling.csv" || fail "sweep: P=3 row"
fi
echo "ok: sweep.sh --local"
# weak scaling and Slurm submissions, printed only
bash "$S" -n --local --ranks "2 5" --per-host 4 -o "$TMP/w" "$TMP/tiny.ini" >"$TMP/dry.out" 2>&1 || fail "dry run"
grep -q -- "-np 5 .*fl.clients=16 .*run.output=$TMP/w/p5/sweep-n16.h5" "$TMP/dry.out" || { cat "$TMP/dry.out"; fail "--per-host"; }
bash "$S" -n --slurm --ranks "2 3" --clients "4 8" -o "$TMP/s" "$TMP/tiny.ini" >"$TMP/dry.out" 2>&1 || fail "slurm dry run"
[ "$(grep -c "submit-sweep.sh" "$TMP/dry.out")" -eq 2 ] || { cat "$TMP/dry.out"; fail "slurm: one array per rank count"; }
grep -q "FEDMOE_CLIENTS='4 8' FEDMOE_SWEEP_DIR='$TMP/s/p3' FEDMOE_SBATCH_FLAGS='--ntasks=3" "$TMP/dry.out" \
  || { cat "$TMP/dry.out"; fail "slurm: P=3 array"; }
echo "ok: sweep.sh --dry-run (local weak scaling, slurm)"
# bad input: an exit status 2 and a message
bash "$S" --local --ranks 1 "$TMP/tiny.ini" >"$TMP/bad.out" 2>&1 && fail "--ranks 1 accepted"
grep -q "need integers >= 2" "$TMP/bad.out" || fail "--ranks 1: no message"
bash "$S" --local "$TMP/nope.ini" >"$TMP/bad.out" 2>&1 && fail "a missing config accepted"
grep -q "cannot read the configuration" "$TMP/bad.out" || fail "missing config: no message"
echo "sweep: all passed"
