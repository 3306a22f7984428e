#!/bin/sh
# pretrain_base.sh - a base folder from `fedmoe pretrain` (tests/make_tiny_base.sh) is
# a model.init with its tokenizer: `fedmoe run` from it needs no tokenizer key and
# starts below random initialisation; a missing folder, or a model.tokenizer other
# than the folder's, fails on every rank naming the path.
. "$(dirname "$0")/common.sh"

FEDMOE_NP=2 sh "$top_srcdir/tests/make_tiny_base.sh" "$FEDMOE" "$TMP/tiny" >"$TMP/base.log" 2>&1 ||
  { cat "$TMP/base.log"; fail "make_tiny_base.sh"; }
base=$TMP/tiny/base
for f in config.json model.safetensors tokenizer.model; do [ -f "$base/$f" ] || fail "no $f in $base"; done
cmp "$TMP/tiny/tokenizer.model" "$base/tokenizer.model" || fail "the base's tokenizer is not the one it was trained with"
echo "ok: tiny base in $base: $(tail -1 "$TMP/base.log")"

# the clients: English fortunes the base never saw (computers), one round of one step
cat >"$TMP/ft.ini" <<INI
[run]
seed = 9
output = $TMP/ft.h5
[train]
batch = 4
seq_len = 32
lr = 0.0001
eval_batches = 4
[data]
domains = computers
max_domain_bytes = 30000
client_bytes = 8192
[fl]
strategy = fedavg
clients = 2
rounds = 1
local_steps = 1
INI
mpi 2 data "$TMP/ft.ini" -q --set model.init="$base" || { cat "$TMP/out"; fail "fedmoe data from the base"; }
grep -q "sentencepiece $base/tokenizer.model\|$base/tokenizer.model" "$TMP/out" ||
  fail "model.init did not bring its tokenizer: $(grep -i tokenizer "$TMP/out")"
mpi 2 run "$TMP/ft.ini" -q --set model.init="$base" || { cat "$TMP/out"; fail "run from the base"; }
from_base=$(sed -n 's/^final fedavg: mean test loss \([0-9.]*\) .*/\1/p' "$TMP/out")
# the same model from random weights: the shape and tokenizer the base has
mpi 2 run "$TMP/ft.ini" -q --overwrite --set model.family=llama --set model.vocab=640 \
  --set model.tokenizer="$TMP/tiny/tokenizer.model" --set model.d_model=32 --set model.heads=2 --set model.layers=2 \
  --set model.context=32 --set model.moe_layers=none || { cat "$TMP/out"; fail "run from random weights"; }
from_random=$(sed -n 's/^final fedavg: mean test loss \([0-9.]*\) .*/\1/p' "$TMP/out")
[ -n "$from_base" ] && [ -n "$from_random" ] || fail "no final losses ($from_base, $from_random)"
awk -v b="$from_base" -v r="$from_random" 'BEGIN { exit !(b < r - 0.3) }' ||
  fail "the base does not start lower: test loss $from_base from the base, $from_random from random weights"
echo "ok: test loss after one step: $from_base from the base, $from_random from random weights"

# a missing base folder, and a tokenizer other than the base's, fail naming the path
expect_fail 2 60 "$TMP/no-base" run "$TMP/ft.ini" -q --overwrite --set model.init="$TMP/no-base"
head -n 300 /usr/share/games/fortunes/people >"$TMP/other.txt"
spm_train --input="$TMP/other.txt" --model_prefix="$TMP/other" --vocab_size=640 --random_seed=1 --num_threads=1 \
  --minloglevel=2 >/dev/null 2>&1 || fail "spm_train"
expect_fail 2 60 "$TMP/other.model' is not the tokenizer of model.init '$base'" run "$TMP/ft.ini" -q --overwrite \
  --set model.init="$base" --set model.tokenizer="$TMP/other.model"
# the base's own tokenizer named explicitly is fine
mpi 2 run "$TMP/ft.ini" -q --overwrite --set model.init="$base" --set model.tokenizer="$TMP/tiny/tokenizer.model" ||
  { cat "$TMP/out"; fail "run naming the base's own tokenizer"; }
# the demo's base (examples/bases/demo.ini, a few steps) fits the demo (demo-finetune.ini
# upcycles it into demo.ini's MoE): one short round of comigs from it
mpi 2 pretrain "$top_srcdir/examples/bases/demo.ini" -q --set data.path="$TMP/tiny/corpus" \
  --set pretrain.steps=2 --set train.eval_batches=1 --set run.output="$TMP/demo-base.h5" \
  --set pretrain.output="$TMP/demo-base" || { cat "$TMP/out"; fail "pretrain examples/bases/demo.ini"; }
mpi 2 run "$top_srcdir/examples/demo-finetune.ini" -q --set model.init="$TMP/demo-base" --set fl.rounds=1 \
  --set fl.local_steps=1 --set train.eval_batches=1 --set run.output="$TMP/demo.h5" ||
  { cat "$TMP/out"; fail "examples/demo-finetune.ini from the demo's base"; }
grep -q "^final comigs:" "$TMP/out" || fail "demo-finetune.ini: no final line"
echo "ok: pretrain_base"
