#!/bin/sh
# Rank failures (debug.fail = RANK:PHASE:ROUND[:exit|abort]) at every phase of a run,
# on a host rank and on the server rank:
#  - every rank ends, non-zero, in bounded time (no process of the run is left), and the
#    output holds exactly one message naming the failing rank and phase;
#  - the run file holds its last complete checkpoint: `fedmoe info` lists it complete
#    and `latest` names it (a failure inside checkpoint_write leaves that round's group
#    INCOMPLETE, or not on disk at all, beside the previous complete one); a failure in setup happens before the run file exists, so
#    there is none, and the run is simply started again;
#  - --resume (or, after setup, a new start) finishes the run with the final checkpoint
#    and the per-client metrics bit-identical to an uninterrupted run.
# The local_update fault point is on hosts only (the server trains no client): it is
# tested on host ranks.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}
NP=3
R=3
set_common="-q --set fl.rounds=$R --set run.checkpoint_every=1 --set fl.sample_fraction=1 --set fl.strategy=fedavg"

mpi $NP run "$TMP/tiny.ini" $set_common --set run.output="$TMP/ref.h5" || { cat "$TMP/out"; fail "the unfailed run"; }

# same: compare the final checkpoint and the per-client metrics with the unfailed run
same() {
  for obj in /checkpoints/r00000$R /metrics/clients /routing/counts /routing/gate_mass /routing/index; do
    "$H5DIFF" --follow-symlinks "$TMP/ref.h5" "$1" $obj $obj >"$TMP/diff" 2>&1 || { cat "$TMP/diff"; fail "$2: $obj differs"; }
  done
}

# left: processes of this run still there (the output path is unique per case)
left() { pgrep -f -- "run.output=$1" >/dev/null 2>&1; }

n=0
for spec in 1:setup:0 0:setup:0 1:local_update:2 2:local_update:2 1:aggregate:2 0:aggregate:2 \
            1:server_step:2 0:server_step:2 1:evaluate:2 0:evaluate:2 1:checkpoint_write:2 \
            0:checkpoint_write:2 1:checkpoint_write:2:abort 0:evaluate:3:abort; do
  n=$((n + 1))
  rank=${spec%%:*}; rest=${spec#*:}; phase=${rest%%:*}; rest=${rest#*:}; round=${rest%%:*}
  out="$TMP/f$n.h5"
  expect_fail $NP 10 "injected failure (debug.fail): rank $rank [a-z]* in phase $phase of round $round" \
    run "$TMP/tiny.ini" $set_common --set run.output="$out" --set debug.fail=$spec
  cp "$TMP/out" "$TMP/failed-$n.out"
  c=$(grep -c "injected failure" "$TMP/failed-$n.out")
  [ "$c" = 1 ] || fail "$spec: $c messages about the injected failure (want 1)"
  sleep 0.5
  left "$out" && fail "$spec: processes of the run are still there after mpirun ended"
  if [ "$phase" = setup ]; then
    [ ! -e "$out" ] || fail "$spec: a run file exists after a failure in setup (created before setup?)"
    mpi $NP run "$TMP/tiny.ini" $set_common --set run.output="$out" || { cat "$TMP/out"; fail "$spec: restart"; }
    same "$out" "$spec (restarted)"
    echo "ok: $spec: no run file; started again, equal to the unfailed run"
    continue
  fi
  "$FEDMOE" info "$out" >"$TMP/info" 2>&1 || { cat "$TMP/info"; fail "$spec: fedmoe info cannot read the run file"; }
  prev=$((round - 1))
  grep -q "r00000$prev *complete" "$TMP/info" || { cat "$TMP/info"; fail "$spec: checkpoint r00000$prev not complete"; }
  # the checkpoint being written (checkpoint_write) is INCOMPLETE or not in the file;
  # `latest` still names the previous one
  grep -q "r00000$round *complete" "$TMP/info" && { cat "$TMP/info"; fail "$spec: round $round's checkpoint is complete"; }
  grep -q "latest *-> /checkpoints/r00000$prev" "$TMP/info" || { cat "$TMP/info"; fail "$spec: latest should name r00000$prev"; }
  mpi $NP run "$TMP/tiny.ini" $set_common --resume "$out" || { cat "$TMP/out"; fail "$spec: resume"; }
  grep -q "resuming .* after round $prev" "$TMP/out" || { cat "$TMP/out"; fail "$spec: should resume after round $prev"; }
  same "$out" "$spec (resumed)"
  "$FEDMOE" info "$out" | grep -q "rounds     $R done" || fail "$spec: the resumed run should hold $R rounds"
  echo "ok: $spec: checkpoint r00000$prev intact, resumed equal to the unfailed run"
done
echo "faults: all passed"
