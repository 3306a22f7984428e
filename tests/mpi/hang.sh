#!/bin/sh
# No run may hang, and an error ends every rank with one message and one status:
#  - a rank slow to reach --resume's truncation (debug.fail=R:resume:ROUND:stall=S)
#    no longer reads rows the others have already cut: the resumed run completes,
#    equal to one that did not fail (fedmoe 0.1.0 hung in most of these cases, not in
#    all: whether the other ranks wait for the slow one before cutting depends on
#    HDF5's metadata cache; `make check-resume-stress` is the load test);
#  - fl.rounds = 1e9 with run.stop_after = 1 runs one round and stops (no buffer sized
#    by fl.rounds on one rank only);
#  - a stalled rank (debug.fail=R:PHASE:ROUND:stall) ends the job through the
#    collective watchdog within run.collective_timeout: one message naming the
#    collective, the phase, and the stalled rank as missing; exit status 10
#    (timeout); no process of the run left;
#  - an error found on one rank only exits with the same status on every rank, and
#    is printed once.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}

# ---- a slow rank while resuming ----
hf="-q --set fl.rounds=4 --set run.checkpoint_every=2 --set fl.strategy=hfedmoe"
mpi 3 run "$TMP/tiny.ini" $hf --set run.output="$TMP/hf-full.h5" || { cat "$TMP/out"; fail "hfedmoe: full run"; }
mpi 3 run "$TMP/tiny.ini" $hf --set run.output="$TMP/hf-cut.h5" --set debug.fail=1:local_update:4 \
  && fail "hfedmoe: the injected failure did not stop the run"
for slow in 0 1 0 1; do
  n=$((${n:-0} + 1)); d="$TMP/slow$n"
  mkdir "$d" && cp -r "$TMP/hf-cut.h5" "$TMP/hf-cut.h5.ckpt" "$d/" || fail "copying the failed run"
  mpi 4 run "$TMP/tiny.ini" $hf --resume "$d/hf-cut.h5" --set debug.fail=$slow:resume:2:stall=3
  rc=$?
  [ $rc -eq 0 ] || { cat "$TMP/out"; fail "resume with rank $slow slow: exit status $rc (124: hung)"; }
  grep -q "rank $slow stalls for 3 s in phase resume" "$TMP/out" || { cat "$TMP/out"; fail "rank $slow was not slowed"; }
  for obj in /checkpoints/r000004 /metrics/clients /routing/index /routing/counts /fl/selected /fl/importance; do
    "$H5DIFF" --follow-symlinks "$TMP/hf-full.h5" "$d/hf-cut.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "resume with rank $slow slow: $obj differs from the unfailed run"; }
  done
  echo "ok: resume with rank $slow 3 s late into the truncation: completes, equal to the unfailed run"
done

# ---- fl.rounds in its range, far more than memory would hold rows for ----
mpi 3 run "$TMP/tiny.ini" -q --set fl.rounds=1000000000 --set run.stop_after=1 --set run.output="$TMP/big.h5" \
  --metrics-netcdf "$TMP/big.nc"
rc=$?
[ $rc -eq 0 ] || { cat "$TMP/out"; fail "fl.rounds=1e9, run.stop_after=1: exit status $rc (124: hung)"; }
"$FEDMOE" info "$TMP/big.h5" | grep -q "rounds     1 done" || fail "fl.rounds=1e9, run.stop_after=1: not 1 round"
echo "ok: fl.rounds=1000000000 with run.stop_after=1 runs one round"

# ---- the collective watchdog ----
# left: processes of this run still there (the output path is unique per case)
left() { pgrep -f -- "run.output=$1" >/dev/null 2>&1; }
set_wd="-q --set fl.rounds=3 --set run.checkpoint_every=1 --set fl.strategy=fedavg --set run.collective_timeout=2"
n=0
for spec in 1:local_update:2 0:server_step:2 2:checkpoint_write:2 2:evaluate:1; do
  n=$((n + 1))
  rank=${spec%%:*}; rest=${spec#*:}; phase=${rest%%:*}
  out="$TMP/wd$n.h5"
  t0=$(date +%s)
  FM_TEST_TIMEOUT=$((60 * ${FM_TEST_TIME_SCALE:-1})) mpi 3 run "$TMP/tiny.ini" $set_wd \
    --set run.output="$out" --set debug.fail=$spec:stall
  rc=$?
  s=$(($(date +%s) - t0))
  cat "$TMP/out"
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "$spec:stall: hung (killed by the test's time limit after ${s} s)"
  [ "$rc" -eq 10 ] || fail "$spec:stall: exit status $rc, expected 10 (timeout)"
  c=$(grep -c "has not completed within 2 s (run.collective_timeout" "$TMP/out")
  [ "$c" = 1 ] || fail "$spec:stall: $c watchdog messages (want 1)"
  grep "has not completed within" "$TMP/out" | grep -q "missing: .*rank $rank [a-z]* [^;]*$phase" \
    || fail "$spec:stall: the message does not name rank $rank (in $phase) as missing"
  sleep 0.5
  left "$out" && fail "$spec:stall: processes of the run are still there after mpirun ended"
  echo "ok: $spec:stall: ended by the watchdog in ${s} s, rank $rank named missing in $phase"
done

# ---- one status and one message for an error found on one rank ----
# each rank's own exit status, through a wrapper that always exits 0 (so that mpirun
# does not end the other ranks when the first exits)
rm -f "$TMP"/rc.*
timeout -k 5 60 "$MPIEXEC" $MPIEXEC_FLAGS -np 3 sh -c \
  '"$0" "$@"; echo $? >"'"$TMP"'/rc.$OMPI_COMM_WORLD_RANK"' "$FEDMOE" run "$TMP/tiny.ini" -q \
  --set run.output=/proc/fedmoe-no-such/dir/x.h5 >"$TMP/out" 2>&1
cat "$TMP/out"
codes=$(cat "$TMP"/rc.0 "$TMP"/rc.1 "$TMP"/rc.2 2>/dev/null | sort -u | tr '\n' ' ')
[ "$(ls "$TMP"/rc.* 2>/dev/null | wc -l)" = 3 ] || fail "not every rank reported its exit status"
[ "$codes" = "3 " ] || fail "an uncreatable run.output folder (rank 0's error): exit statuses '$codes', expected 3 on every rank"
c=$(grep -c "cannot create folder" "$TMP/out")
[ "$c" = 1 ] || fail "the error was printed $c times (want 1)"
echo "ok: rank 0's error: status 3 on every rank, printed once"
echo "hang: all passed"
