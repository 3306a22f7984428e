#!/bin/sh
# The resume case of tests/mpi/resume.sh (hfedmoe failed in round 4 with a checkpoint
# every 2 rounds, resumed on 4 ranks) run RESUME_STRESS_PAIRS times two at a time
# (default 50 pairs), each on its own copy of the failed run: any resume that fails
# or hangs (killed after RESUME_STRESS_LIMIT seconds, default 300) fails the script.
# It prints how many ran and how long they took. Run by `make check-resume-stress`.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
pairs=${RESUME_STRESS_PAIRS:-50}
limit=${RESUME_STRESS_LIMIT:-300}
hf="-q --set fl.rounds=4 --set run.checkpoint_every=2 --set fl.strategy=hfedmoe"
mpi 3 run "$TMP/tiny.ini" $hf --set run.output="$TMP/hf-cut.h5" --set debug.fail=1:local_update:4 \
  && fail "the injected failure did not stop the run"
[ -d "$TMP/hf-cut.h5.ckpt" ] || { cat "$TMP/out"; fail "the failed run left no checkpoint"; }

# one resume of a fresh copy in folder $1; its status in $1/rc
resume() {
  mkdir "$1" && cp -r "$TMP/hf-cut.h5" "$TMP/hf-cut.h5.ckpt" "$1/" || { echo 99 >"$1/rc"; return; }
  timeout -k 5 "$limit" "$MPIEXEC" $MPIEXEC_FLAGS -np 4 "$FEDMOE" run "$TMP/tiny.ini" $hf \
    --resume "$1/hf-cut.h5" >"$1/out" 2>&1
  echo $? >"$1/rc"
}

t0=$(date +%s)
hung=0 failed=0 runs=0
i=0
while [ $i -lt "$pairs" ]; do
  i=$((i + 1))
  resume "$TMP/a$i" & resume "$TMP/b$i" & wait
  for d in "$TMP/a$i" "$TMP/b$i"; do
    runs=$((runs + 1))
    rc=$(cat "$d/rc")
    case $rc in
      0) grep -q "resuming .* after round 2" "$d/out" || { cat "$d/out"; failed=$((failed + 1)); } ;;
      124|137) echo "HANG: $d (killed after $limit s)"; tail -5 "$d/out"; hung=$((hung + 1)) ;;
      *) echo "FAILED: $d (rc $rc)"; cat "$d/out"; failed=$((failed + 1)) ;;
    esac
    rm -rf "$d"
  done
done
s=$(($(date +%s) - t0))
echo "resume stress: $runs resumes in $pairs pairs run two at a time, $hung hung, $failed failed, ${s} s"
[ $hung -eq 0 ] && [ $failed -eq 0 ] || fail "resume stress: $hung hung, $failed failed of $runs"
