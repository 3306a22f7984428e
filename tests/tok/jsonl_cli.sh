#!/bin/sh
# jsonl_cli.sh - JSON Lines under MPI: `fedmoe data` on examples/instruct.ini (records
# of 10 users, fl.clients from data.client_field) prints the same partition on 1 and 3
# ranks; a conflicting fl.clients and bad records fail on every rank naming the file,
# line and field; a short run trains on the instruction records.
. "${top_srcdir:-.}/tests/mpi/common.sh"
EX="$top_srcdir/examples/instruct.ini"
DATA="$top_srcdir/examples/instruct/fortunes.jsonl"
strip() { grep -v -e 'partitioned in' -e 'read and shared' "$1"; }

for np in 1 3; do
  mpi $np data "$EX" -q --set "data.path=$DATA" || { cat "$TMP/out"; fail "np=$np: fedmoe data failed"; }
  grep -q "partition: by data.client_field 'user' (10 values)" "$TMP/out" || { cat "$TMP/out"; fail "np=$np: no natural partition"; }
  grep -q "^       9 .* \[zippy\]" "$TMP/out" || fail "np=$np: client 9 is not the user zippy"
  grep -q "one client per value of data.client_field, disjoint" "$TMP/out" || fail "np=$np: no overlap line"
  strip "$TMP/out" >"$TMP/data.$np"
done
cmp -s "$TMP/data.1" "$TMP/data.3" || fail "fedmoe data differs between 1 and 3 ranks"
echo "ok: the natural partition, the same on 1 and 3 ranks"

head -5 "$DATA" >"$TMP/bad.jsonl"
printf '{"instruction": "Say hi", "input": "", "output": "hi", "user": "x", "lang": "en"\n' >>"$TMP/bad.jsonl"
printf '{"instruction": "Say hi", "input": "", "user": "x", "lang": "en"}\n' >"$TMP/nooutput.jsonl"
printf '{"instruction": "Say hi", "input": "", "output": "h\351", "user": "x", "lang": "en"}\n' >"$TMP/latin1.jsonl"
for np in 1 3; do
  expect_fail $np 20 "key 'fl.clients': is 4, but data.client_field 'user' has 10 distinct values" data "$EX" \
    --set "data.path=$DATA" --set fl.clients=4
  expect_fail $np 20 "bad.jsonl:6: not valid JSON" data "$EX" --set "data.path=$TMP/bad.jsonl"
  expect_fail $np 20 "nooutput.jsonl:1: the record has no field 'output'" data "$EX" --set "data.path=$TMP/nooutput.jsonl"
  expect_fail $np 20 "latin1.jsonl:1: invalid UTF-8 at column" data "$EX" --set "data.path=$TMP/latin1.jsonl"
done

mpi 3 run "$EX" -q --set "data.path=$DATA" --set "run.output=$TMP/run.h5" --set fl.rounds=1 \
  --set fl.local_steps=2 --set model.d_model=16 --set model.layers=1 --set train.seq_len=32 \
  --set model.context=32 --set train.eval_batches=1 || { cat "$TMP/out"; fail "fedmoe run on JSON Lines failed"; }
[ -s "$TMP/run.h5" ] || fail "no run file"
"${PYTHON_H5PY:-python3}" - "$TMP/run.h5" <<'PY' || fail "the run file does not record the partition"
import sys, h5py
a = h5py.File(sys.argv[1], "r").attrs
assert int(a["data_allow_overlap"]) == 0, a["data_allow_overlap"]
assert a["data_tokens_held"] == a["data_tokens_asked"] > 0, (a["data_tokens_held"], a["data_tokens_asked"])
assert int(a["data_vocab"]) == 256 and a["data_corpus_tokens"] > a["data_tokens_held"]
PY
echo "ok: a run on instruction records; the run file records the partition"
