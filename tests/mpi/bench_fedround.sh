#!/bin/sh
# bench/fedround.sh, the federated-round benchmark, checked as a script (its figures
# are not tested): with --small on the CPU it writes its 50257-id tokenizer and text,
# runs fedmoe, and reads the round times back from the run file (fedmoe info
# --rounds) into seconds per round and tokens/s; --set reaches the run (the tokens a
# round trains follow fl.local_steps); bad options are refused.
. "${top_srcdir:-.}/tests/mpi/common.sh"
script="$top_srcdir/bench/fedround.sh"
sh "$script" --small --layouts 2 --rounds 1 --fedmoe "$FEDMOE" --mpirun "$MPIEXEC" --out "$TMP/fr" --timeout 240 \
  --set fl.local_steps=1 >"$TMP/log" 2>&1 || { cat "$TMP/log"; fail "fedround.sh --small"; }
grep -q '"<filler50256>": 50256}' "$TMP/fr/vocab.json" || fail "the tokenizer does not end at id 50256"
grep -q "^round 2/2 " "$TMP/fr/run-2.log" || { cat "$TMP/log"; fail "the run did not do its warm-up and timed round"; }
# 16 clients x 1 step x 2 x 32 tokens a round
line=$(grep "^  fedmoe 2 ranks: " "$TMP/log") || { cat "$TMP/log"; fail "no summary line"; }
echo "$line"
echo "$line" | awk '{ s = $4; tps = $0; sub(/.* s\/round .*\) /, "", tps); split(tps, f, " ")
                      exit !(s > 0 && f[2] ~ /^tokens\/s/ && (f[1] * s > 1024 * 0.97) && (f[1] * s < 1024 * 1.03)) }' \
  || fail "seconds per round times tokens/s is not the 1024 tokens of a round"
sh "$script" --rounds 0 >"$TMP/bad" 2>&1 && fail "--rounds 0 accepted"
grep -q -- "--rounds must be a positive integer" "$TMP/bad" || { cat "$TMP/bad"; fail "no message for --rounds 0"; }
sh "$script" --layouts 1 >"$TMP/bad" 2>&1 && fail "--layouts 1 accepted"
grep -q "needs the server and at least one host" "$TMP/bad" || { cat "$TMP/bad"; fail "no message for --layouts 1"; }
sh "$script" --frobnicate >"$TMP/bad" 2>&1 && fail "an unknown option accepted"
grep -q "unknown argument '--frobnicate'" "$TMP/bad" || { cat "$TMP/bad"; fail "no message for an unknown option"; }
echo "bench_fedround: all passed"
