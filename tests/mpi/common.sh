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
