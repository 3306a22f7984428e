#!/bin/sh
# Bad input on 1 and 3 ranks: a clear message, a non-zero exit on every rank,
# within seconds, never a hang.
. "${top_srcdir:-.}/tests/mpi/common.sh"

cat >"$TMP/unknown.ini" <<INI
[fl]
rounds = 2
roundz = 3
INI
cat >"$TMP/badvalue.ini" <<INI
[model]
heads = four
INI
cat >"$TMP/range.ini" <<INI
[fl]
sample_fraction = 1.5
INI
cat >"$TMP/heads.ini" <<INI
[model]
d_model = 30
heads = 4
INI
for np in 1 3; do
  expect_fail $np 10 "cannot open '$TMP/missing.ini'" run "$TMP/missing.ini"
  expect_fail $np 10 "unknown.ini:3: unknown key 'roundz'" run "$TMP/unknown.ini"
  expect_fail $np 10 "badvalue.ini:2: key 'model.heads': expected an integer" run "$TMP/badvalue.ini"
  expect_fail $np 10 "range.ini:2: key 'fl.sample_fraction'" run "$TMP/range.ini"
  expect_fail $np 10 "key 'model.heads'" run "$TMP/heads.ini"
  expect_fail $np 10 "unknown command 'frobnicate'" frobnicate
  expect_fail $np 10 "unknown key 'fl.nope'" run "$top_srcdir/examples/demo.ini" --set fl.nope=1
  expect_fail $np 10 "key 'fl.rounds': expected an integer" run "$top_srcdir/examples/demo.ini" --set fl.rounds=x
  # the message is printed once, not once per rank
  expect_fail $np 10 "unknown key" run "$TMP/unknown.ini"
  n=$(grep -c "unknown key 'roundz'" "$TMP/out")
  [ "$n" -eq 1 ] || fail "np=$np: message printed $n times"
done
echo "bad_input: all passed"
