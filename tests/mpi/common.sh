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
