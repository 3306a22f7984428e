# common.sh - helpers for the MPI integration tests (sourced).
# make check sets FEDMOE, MPIEXEC, MPIEXEC_FLAGS, top_srcdir and the Open MPI
# variables that allow root and oversubscription.
set -u
: "${FEDMOE:=./fedmoe}" "${MPIEXEC:=mpirun}" "${MPIEXEC_FLAGS:=--oversubscribe}" "${top_srcdir:=.}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
# one scratch folder per test, removed at exit
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fedmoe-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# mpi NP ARGS...: run fedmoe on NP ranks with a hard time limit; output in $TMP/out
mpi() {
  local np=$1; shift
  timeout -k 5 "${FM_TEST_TIMEOUT:-300}" "$MPIEXEC" $MPIEXEC_FLAGS -np "$np" "$FEDMOE" "$@" >"$TMP/out" 2>&1
}

# expect_fail NP SECONDS PATTERN ARGS...: fails non-zero, saying PATTERN, within 6 x
# SECONDS (times FM_TEST_TIME_SCALE, set for sanitizer builds). SECONDS is about what
# the failing run takes on an idle machine; the factor 6 is for a loaded one (every
# test script at once on 2 cores, where a healthy run took over 10 s): the limit
# catches a run that hangs instead of failing, not one that is slow.
expect_fail() {
  local np=$1 limit=$(($2 * 6 * ${FM_TEST_TIME_SCALE:-1})) pattern=$3; shift 3
  local t0 rc ms
  t0=$(date +%s%N)
  FM_TEST_TIMEOUT=$((limit + 20)) mpi "$np" "$@"; rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  cat "$TMP/out"
  [ "$rc" -ne 0 ] || fail "np=$np '$*' exited 0"
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || fail "np=$np '$*' hung (killed by timeout)"
  grep -q -- "$pattern" "$TMP/out" || fail "np=$np '$*': no message matching '$pattern'"
  [ "$ms" -lt $((limit * 1000)) ] || fail "np=$np '$*' took ${ms} ms (limit ${limit}s)"
  echo "ok: np=$np rc=$rc in ${ms} ms: $*"
}

# state_places LABEL NP MIXED_MB ARGS...: `run $TMP/tiny.ini ARGS` (the device and the
# strategy among them; 6 clients with private state) on NP ranks for 3 rounds with
# run.device_state_mb -1 (every hosted client's private state in device memory), 0
# (all of it in host memory) and MIXED_MB (some of each): each log says where the
# state went, and the last checkpoint, the client metrics and the routing statistics
# (where the run has them) are bit-identical across the three.
state_places() {
  local label=$1 np=$2 mixed=$3 mb obj objs; shift 3
  rm -rf "$TMP"/state*.h5 "$TMP"/state*.h5.ckpt # a previous call's run files
  for mb in -1 0 $mixed; do
    mpi "$np" run "$TMP/tiny.ini" "$@" --set fl.rounds=3 --set run.device_state_mb=$mb \
      --set run.output="$TMP/state$mb.h5" || { cat "$TMP/out"; fail "$label with run.device_state_mb = $mb"; }
    grep "^fedmoe: private state" "$TMP/out" >"$TMP/where$mb" || { cat "$TMP/out"; fail "$label: no line on the private state"; }
    cat "$TMP/where$mb"
  done
  grep -q ": 6 resident in device memory .*, 0 in host" "$TMP/where-1" || fail "$label: not every client resident with -1"
  grep -q ": 0 resident in device memory .*, 6 in host" "$TMP/where0" || fail "$label: a client resident with 0 MiB"
  grep -Eq ": [1-5] resident in device memory .*, [1-5] in host" "$TMP/where$mixed" || fail "$label: $mixed MiB should mix"
  objs="/checkpoints/r000003 /metrics/clients"
  "${H5DIFF:-h5diff}" "$TMP/state-1.h5" "$TMP/state-1.h5" /routing/counts /routing/counts >/dev/null 2>&1 \
    && objs="$objs /routing/counts /routing/gate_mass"
  for mb in 0 $mixed; do
    for obj in $objs; do
      "${H5DIFF:-h5diff}" --follow-symlinks "$TMP/state-1.h5" "$TMP/state$mb.h5" $obj $obj >"$TMP/diff" 2>&1 \
        || { cat "$TMP/diff"; fail "$label: $obj differs between all clients resident and run.device_state_mb = $mb"; }
    done
  done
}

# resume_equals LABEL ARGS...: `run $TMP/tiny.ini ARGS` (ARGS give 4 rounds and a
# checkpoint every round) on 2 ranks, against the same run stopped after round 2 and
# resumed on 3 ranks: the last checkpoint and the client metrics are bit-identical.
# $TMP/out holds the resume's output afterwards.
resume_equals() {
  local label=$1 obj; shift
  mpi 2 run "$TMP/tiny.ini" "$@" --set run.output="$TMP/full.h5" || { cat "$TMP/out"; fail "$label: full run"; }
  mpi 2 run "$TMP/tiny.ini" "$@" --set run.output="$TMP/half.h5" --set run.stop_after=2 \
    || { cat "$TMP/out"; fail "$label: first half"; }
  mpi 3 run "$TMP/tiny.ini" "$@" --resume "$TMP/half.h5" || { cat "$TMP/out"; fail "$label: resume"; }
  for obj in /checkpoints/r000004 /metrics/clients; do
    "${H5DIFF:-h5diff}" --follow-symlinks "$TMP/full.h5" "$TMP/half.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$label: $obj differs after resume"; }
  done
}
