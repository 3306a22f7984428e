#!/bin/sh
# The command line: --help, --version, and the resolved configuration printed at start.
. "${top_srcdir:-.}/tests/mpi/common.sh"

"$FEDMOE" --help >"$TMP/help" || fail "--help exited non-zero"
grep -q "usage: fedmoe COMMAND" "$TMP/help" || fail "--help prints no usage"
for c in run data eval info bench; do grep -q "^  $c" "$TMP/help" || fail "--help omits '$c'"; done
"$FEDMOE" --version | grep -Eq '^fedmoe [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
grep -q "^  keys" "$TMP/help" || fail "--help omits 'keys'"

# every command's --help (and -h, and `fedmoe help COMMAND`): its usage, exit 0, no MPI needed
for c in run data eval info bench keys; do
  for h in --help -h; do
    "$FEDMOE" $c $h >"$TMP/h" 2>&1 || { cat "$TMP/h"; fail "fedmoe $c $h exited non-zero"; }
    grep -q "^usage: fedmoe $c" "$TMP/h" || { cat "$TMP/h"; fail "fedmoe $c $h prints no usage"; }
    grep -q -- "-h, --help" "$TMP/h" || fail "fedmoe $c $h lists no options"
  done
  "$FEDMOE" help $c | grep -q "^usage: fedmoe $c" || fail "fedmoe help $c"
done
"$FEDMOE" run --help | grep -q -- "--resume RUNFILE" || fail "run --help omits --resume"
"$FEDMOE" eval --help | grep -q -- "--checkpoint RUNFILE" || fail "eval --help omits --checkpoint"
# --help after other options, but not as the value of one
"$FEDMOE" run x.ini --set fl.rounds=2 --help | grep -q "^usage: fedmoe run" || fail "run ... --help"

# fedmoe keys: every declared key, one line each, grouped by section
mpi 1 keys || { cat "$TMP/out"; fail "fedmoe keys"; }
declared=$(grep -c '^ *{"[a-z_]*\.[a-z_0-9]*", FM_KEY_' "$top_srcdir/src/core/config_keys.c")
listed=$(grep -c '^[a-z_]*\.[a-z_0-9]* ' "$TMP/out")
[ "$declared" -gt 50 ] && [ "$listed" = "$declared" ] || fail "fedmoe keys lists $listed keys, $declared declared"
grep -Eq '^fl\.rounds +integer +10 +1\.\.1e9 +communication rounds$' "$TMP/out" || fail "fl.rounds line"
grep -Eq '^fl\.strategy +choice +fedavg +local\|fedavg\|comigs\|fedbiot\|hfedmoe +federated strategy$' "$TMP/out" \
  || fail "fl.strategy line"
grep -q '^\[hfedmoe\]$' "$TMP/out" || fail "no [hfedmoe] heading"
mpi 3 keys fl || { cat "$TMP/out"; fail "fedmoe keys fl"; }
[ "$(grep -c '^fl\.' "$TMP/out")" -ge 10 ] && ! grep -q '^run\.' "$TMP/out" || fail "keys fl: not just [fl]"
[ "$(grep -c '^\[fl\]$' "$TMP/out")" = 1 ] || fail "keys fl printed more than once on 3 ranks"
mpi 1 keys train.lr || fail "keys train.lr"
[ "$(grep -c . "$TMP/out")" = 2 ] && grep -q '^train\.lr ' "$TMP/out" || { cat "$TMP/out"; fail "keys train.lr"; }
mpi 1 keys --format=man fl.rounds && grep -q '^\.B fl\.rounds$' "$TMP/out" || fail "keys --format=man"
mpi 1 keys --format=markdown fl.rounds && grep -q '^| `fl\.rounds` | integer |' "$TMP/out" || fail "--format=markdown"
expect_fail 1 10 "no configuration key or section 'no_such_key'; the sections are run, model, train" keys no_such_key
expect_fail 3 10 "no configuration key or section 'fl.rouns' (did you mean 'fl.rounds'?)" keys fl.rouns
expect_fail 1 10 "'nope' is not text, markdown or man" keys --format=nope
# did you mean, for commands and options
expect_fail 1 10 "unknown command 'rn' (did you mean 'run'?)" rn x.ini
expect_fail 1 10 "unknown option '--resum' for 'run' (did you mean '--resume'?)" run x.ini --resum y.h5
expect_fail 1 10 "unexpected argument 'extra'" eval --checkpoint a.h5 --text b extra

# the resolved configuration, with the origin of each value, on rank 0 only
mpi 2 run "$top_srcdir/examples/demo.ini" --set fl.rounds=1 --set train.lr=0.002 --set fl.local_steps=1 --set run.output="$TMP/cli.h5" || { cat "$TMP/out"; fail "run"; }
grep -q "# fedmoe resolved configuration" "$TMP/out" || fail "no resolved configuration"
grep -Eq "^rounds += 1 +# --set \(argument [0-9]+\)" "$TMP/out" || fail "override origin not shown"
grep -Eq "^lr += 0.002 " "$TMP/out" || fail "override value not shown"
n=$(grep -c "# fedmoe resolved configuration" "$TMP/out")
[ "$n" -eq 1 ] || fail "configuration printed $n times"
echo "cli: all passed"
