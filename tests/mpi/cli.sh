#!/bin/sh
# The command line: --help, --version, and the resolved configuration printed at start.
. "${top_srcdir:-.}/tests/mpi/common.sh"

"$FEDMOE" --help >"$TMP/help" || fail "--help exited non-zero"
grep -q "usage: fedmoe COMMAND" "$TMP/help" || fail "--help prints no usage"
for c in run data eval info bench; do grep -q "^  $c" "$TMP/help" || fail "--help omits '$c'"; done
"$FEDMOE" --version | grep -Eq '^fedmoe [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"

# the resolved configuration, with the origin of each value, on rank 0 only
mpi 2 run "$top_srcdir/examples/demo.ini" --set fl.rounds=1 --set train.lr=0.002 --set fl.local_steps=1 --set run.output="$TMP/cli.h5" || { cat "$TMP/out"; fail "run"; }
grep -q "# fedmoe resolved configuration" "$TMP/out" || fail "no resolved configuration"
grep -Eq "^rounds += 1 +# --set \(argument [0-9]+\)" "$TMP/out" || fail "override origin not shown"
grep -Eq "^lr += 0.002 " "$TMP/out" || fail "override value not shown"
n=$(grep -c "# fedmoe resolved configuration" "$TMP/out")
[ "$n" -eq 1 ] || fail "configuration printed $n times"
echo "cli: all passed"
