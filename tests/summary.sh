#!/bin/sh
# summary.sh LOG - the last line of `make check`: "N passed, N failed", the counts of
# automake's test-suite.log restated on a line of their own (skipped and expected
# failures on the line before, when there are any). Exits 1 when a test failed
# (FAIL, ERROR or XPASS) or the log is missing, so that `make check` still fails:
# check-TESTS's own failure is ignored (see tests/local.mk) only so that this line
# is printed after a failing run too.
log=${1:-test-suite.log}
if [ ! -r "$log" ]; then
  echo "no $log: the tests did not run"
  echo "0 passed, 1 failed"
  exit 1
fi
count() { sed -n "s/^# $1: *\([0-9][0-9]*\)\$/\1/p" "$log" | head -1; }
pass=$(count PASS) fail=$(count FAIL) error=$(count ERROR) xpass=$(count XPASS) skip=$(count SKIP) xfail=$(count XFAIL)
[ -n "$pass" ] && [ -n "$fail" ] || { echo "$log has no counts"; echo "0 passed, 1 failed"; exit 1; }
failed=$((fail + ${error:-0} + ${xpass:-0}))
[ "${skip:-0}" = 0 ] && [ "${xfail:-0}" = 0 ] || echo "(${skip:-0} skipped, ${xfail:-0} expected failures)"
echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
