#!/bin/sh
# Bad runtime input: clear errors on every rank, never a hang.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
for np in 1 3; do
  if [ $np = 1 ]; then
    expect_fail 1 20 "at least 2 MPI ranks" run "$TMP/tiny.ini" -q
  fi
  expect_fail $np 20 "key 'fl.clients'" run "$TMP/tiny.ini" -q --set fl.clients=0
  expect_fail $np 20 "key 'fl.sample_fraction'" run "$TMP/tiny.ini" -q --set fl.sample_fraction=0
  expect_fail $np 20 "key 'fl.sample_fraction'" run "$TMP/tiny.ini" -q --set fl.sample_fraction=1.01
  expect_fail $np 20 "comigs.specialists" run "$TMP/tiny.ini" -q --set fl.strategy=comigs --set comigs.specialists=1,3
done
expect_fail 3 20 "run.output: cannot create" run "$TMP/tiny.ini" -q --set run.output=/proc/nope/x.h5
echo "fl_bad_input: all passed"
