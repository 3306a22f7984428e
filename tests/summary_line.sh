#!/bin/sh
# tests/summary.sh, the closing "N passed, N failed" line of make check: the counts
# of a test-suite.log restated, exit 1 on any failure (so make check still fails)
# and on a missing log.
set -u
: "${top_srcdir:=.}"
T=$(mktemp -d "${TMPDIR:-/tmp}/fedmoe-summary.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { printf '==========\nfedmoe 0.1.0: ./test-suite.log\n==========\n\n# TOTAL: %s\n# PASS:  %s\n# SKIP:  %s\n# XFAIL: 0\n# FAIL:  %s\n# XPASS: 0\n# ERROR: %s\n' "$@" >"$T/log"; }
s="$top_srcdir/tests/summary.sh"

log 40 40 0 0 0
sh "$s" "$T/log" >"$T/out" || fail "all passed: exit non-zero"
[ "$(tail -1 "$T/out")" = "40 passed, 0 failed" ] || { cat "$T/out"; fail "all passed: last line"; }
log 40 37 0 2 1
sh "$s" "$T/log" >"$T/out" && fail "failures: exit 0"
[ "$(tail -1 "$T/out")" = "37 passed, 3 failed" ] || { cat "$T/out"; fail "failures: last line (FAIL + ERROR)"; }
log 40 38 2 0 0
sh "$s" "$T/log" >"$T/out" || fail "skips only: exit non-zero"
grep -q "^(2 skipped" "$T/out" && [ "$(tail -1 "$T/out")" = "38 passed, 0 failed" ] || { cat "$T/out"; fail "skips"; }
sh "$s" "$T/none" >"$T/out" && fail "missing log: exit 0"
[ "$(tail -1 "$T/out")" = "0 passed, 1 failed" ] || fail "missing log: last line"
echo "summary_line: all passed"
