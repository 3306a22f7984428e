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
# a NUL byte would end the text early: the keys after it were silently ignored
printf '[fl]\nrounds = 2\n\000clients = 3\n' >"$TMP/nul.ini"
cat >"$TMP/dup.ini" <<INI
[fl]
rounds = 2
[model]
layers = 2
[fl]
rounds = 3
INI
cat >"$TMP/typo.ini" <<INI
[fl]
rouns = 2
INI
printf 'client,flops,up_mbps,down_mbps,availability\n0,1e9,1,10,1\n1,nan,5,50,1\n' >"$TMP/nan.csv"
printf 'client,flops,up_mbps,down_mbps,availability\n0,1e9,1,10,1\n\n1,inf,5,50,1\n' >"$TMP/inf.csv"
printf 'client,flops,up_mbps,down_mbps,availability\n0,1e9,1,10,1,7\n' >"$TMP/extra.csv"
printf 'client,flops,up_mbps,down_mbps,availability\n0,1e9,1,10,1\n1,0x10,5,50,1\n' >"$TMP/hex.csv"
printf 'client,flops,up_mbps,down_mbps,availability\n0,1e9,1,10,1\n1,2e9\0005,50,1\n' >"$TMP/nul.csv"
demo="$top_srcdir/examples/demo.ini"
for np in 1 3; do
  expect_fail $np 10 "nul.ini:3: NUL byte" run "$TMP/nul.ini"
  expect_fail $np 10 "key 'fl.rounds' is set twice in this file, at $TMP/dup.ini:2 and $TMP/dup.ini:6" run "$TMP/dup.ini"
  expect_fail $np 10 "typo.ini:2: unknown key 'rouns' in section \[fl\] (did you mean 'fl.rounds'?)" run "$TMP/typo.ini"
  expect_fail $np 10 "unknown key 'fl.rouns' (did you mean 'fl.rounds'?)" run "$demo" --set fl.rouns=3
  expect_fail $np 10 "key 'fl.clients': expected an integer" run "$demo" --set fl.clients=0x10
  expect_fail $np 10 "key 'system.share': entry 2 of the list is empty" run "$demo" --set system.share=1,,1
  expect_fail $np 10 "key 'debug.fail': '1:local_update:9' can never fire: round 9" run "$demo" --set fl.rounds=2 \
    --set debug.fail=1:local_update:9
  expect_fail $np 10 "key 'debug.fail': '1:setup:2' can never fire" run "$demo" --set debug.fail=1:setup:2
  expect_fail $np 10 "key 'debug.fail': expected RANK:PHASE:ROUND" run "$demo" --set debug.fail=1:lunch:1
done
# run.device and run.precision: refused on every rank before anything is written
for np in 1 3; do
  if grep -q "define FEDMOE_HAVE_CUDA 1" config.h 2>/dev/null; then
    # a CUDA build: this demo's MoE blocks, a node without a GPU, or one rank
    expect_fail $np 20 "MoE blocks (model.moe_layers\|no usable GPU\|at least 2 MPI ranks" run "$demo" --set run.device=cuda \
      --set run.output="$TMP/dev.h5"
  else
    expect_fail $np 10 "key 'run.device': run.device = cuda, but this fedmoe was built without CUDA" run "$demo" \
      --set run.device=cuda --set run.output="$TMP/dev.h5"
  fi
  [ ! -e "$TMP/dev.h5" ] || fail "np=$np: a refused run.device wrote its run file"
  expect_fail $np 10 "key 'run.precision': run.precision = bf16 needs run.device = cuda" run "$demo" \
    --set run.precision=bf16
  expect_fail $np 10 "key 'run.precision': expected one of fp32|tf32|bf16 (got 'fp16')" run "$demo" \
    --set run.precision=fp16
done
# ranks exist only in the job: checked by run, on the ranks it has
expect_fail 3 10 "key 'debug.fail': '5:aggregate:1' can never fire: rank 5 is outside this job's ranks 0..2" \
  run "$demo" --set debug.fail=5:aggregate:1
expect_fail 3 10 "'0:local_update:1' can never fire: rank 0 trains no client" run "$demo" --set debug.fail=0:local_update:1
# the device trace: every field a finite decimal number, exactly five fields, the line named
for t in nan:3:flops inf:4:flops hex:3:flops extra:2:more; do
  name=${t%%:*}; rest=${t#*:}; line=${rest%%:*}; what=${rest#*:}
  expect_fail 3 20 "$name.csv:$line: $what" run "$demo" -q --set system.trace="$TMP/$name.csv" --set fl.rounds=1
done
expect_fail 3 20 "nul.csv:3: NUL byte" run "$demo" -q --set system.trace="$TMP/nul.csv" --set fl.rounds=1
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
