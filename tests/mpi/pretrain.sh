#!/bin/sh
# pretrain.sh - `fedmoe pretrain`: the base's weights are byte-identical on 1, 2 and 3
# ranks; an interrupted and resumed pretraining (on another rank count) writes the
# same bytes as an uninterrupted one; the base folder is a model folder; bad input
# fails on every rank, naming the key or path, and writes nothing.
. "$(dirname "$0")/common.sh"

cat >"$TMP/pre.ini" <<INI
[run]
seed = 11
output = $TMP/pre.h5
[model]
family = llama
d_model = 16
heads = 2
layers = 2
context = 16
moe_layers = none
[train]
batch = 6
seq_len = 16
lr = 0.01
warmup_steps = 2
eval_batches = 3
[data]
path = $top_srcdir/tests/fixtures/text
min_domain_bytes = 1024
[pretrain]
steps = 24
micro_batch = 2
eval_every = 4
output = $TMP/base
INI

# the same weights for any rank count (3 micro-batches a step: P = 2 deals them unevenly)
for np in 1 2 3; do
  mpi "$np" pretrain "$TMP/pre.ini" -q --set run.output="$TMP/p$np.h5" --set pretrain.output="$TMP/b$np" ||
    { cat "$TMP/out"; fail "pretrain np=$np"; }
  [ -f "$TMP/b$np/model.safetensors" ] && [ -f "$TMP/b$np/config.json" ] || fail "np=$np: no base folder"
done
cmp "$TMP/b1/model.safetensors" "$TMP/b2/model.safetensors" || fail "weights differ between 1 and 2 ranks"
cmp "$TMP/b1/model.safetensors" "$TMP/b3/model.safetensors" || fail "weights differ between 1 and 3 ranks"
grep -q "final pretrain: step 24 of 24" "$TMP/out" || fail "no final line: $(cat "$TMP/out")"
# and it learned: the last validation loss is below the first step's training loss
first=$(sed -n 's/^step 1\/24: train loss \([0-9.]*\).*/\1/p' "$TMP/out")
last=$(sed -n 's/^final pretrain: .* val loss \([0-9.]*\) nats.*/\1/p' "$TMP/out")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a - 0.5) }' || fail "no learning: step 1 $first, final val $last"
echo "ok: identical weights on 1, 2, 3 ranks; loss $first -> $last"
# an MoE base too (Mixtral, top-2, load balancing): 1 and 3 ranks, the same bytes
moe="--set model.family=mixtral --set model.moe_layers=all --set model.experts=4 --set model.top_k=2 --set pretrain.steps=6"
for np in 1 3; do
  # shellcheck disable=SC2086
  mpi "$np" pretrain "$TMP/pre.ini" -q $moe --set run.output="$TMP/m$np.h5" --set pretrain.output="$TMP/mb$np" ||
    { cat "$TMP/out"; fail "MoE pretrain np=$np"; }
done
cmp "$TMP/mb1/model.safetensors" "$TMP/mb3/model.safetensors" || fail "MoE weights differ between 1 and 3 ranks"
grep -q '"model_type": "mixtral"' "$TMP/mb1/config.json" || fail "the MoE base is not a Mixtral folder"
echo "ok: identical MoE weights on 1 and 3 ranks"
mpi 1 info "$TMP/p3.h5" || { cat "$TMP/out"; fail "fedmoe info of a pretrain run file"; }
grep -q "(fedmoe pretrain)" "$TMP/out" && grep -q "^ranks  *3$" "$TMP/out" &&
  grep -q "^steps  *24 recorded, the last 24: train loss" "$TMP/out" && grep -q "latest: step 24" "$TMP/out" ||
  fail "fedmoe info: $(cat "$TMP/out")"

# interrupted after 10 steps on 2 ranks, resumed on 3: the same bytes
mpi 2 pretrain "$TMP/pre.ini" -q --set run.output="$TMP/r.h5" --set pretrain.output="$TMP/br" --set run.stop_after=10 ||
  { cat "$TMP/out"; fail "interrupted pretrain"; }
[ ! -e "$TMP/br" ] || fail "an interrupted pretraining wrote the base folder"
[ -f "$TMP/r.h5.ckpt/s00000010.h5" ] || fail "no checkpoint at the stop: $(ls "$TMP/r.h5.ckpt")"
mpi 3 pretrain "$TMP/pre.ini" -q --resume --set run.output="$TMP/r.h5" --set pretrain.output="$TMP/br" ||
  { cat "$TMP/out"; fail "resumed pretrain"; }
grep -q "resuming .*r.h5 after step 10" "$TMP/out" || fail "no resume message: $(cat "$TMP/out")"
cmp "$TMP/b1/model.safetensors" "$TMP/br/model.safetensors" || fail "resumed weights differ from uninterrupted"
if [ -n "${H5DIFF:-}" ]; then
  "$H5DIFF" -q "$TMP/p2.h5.ckpt/s00000024.h5" "$TMP/r.h5.ckpt/s00000024.h5" params ||
    fail "resumed checkpoint params differ"
  "$H5DIFF" -q "$TMP/p2.h5.ckpt/s00000024.h5" "$TMP/r.h5.ckpt/s00000024.h5" adam_v ||
    fail "resumed AdamW state differs"
fi
if [ -n "${PYTHON_H5PY:-}" ]; then # the metrics rows too, but for the times
  $PYTHON_H5PY - "$TMP/p2.h5" "$TMP/r.h5" <<'PY' || fail "resumed metrics differ"
import sys, h5py, numpy as np
a, b = (h5py.File(p, "r")["metrics/steps"][:] for p in sys.argv[1:3])
assert len(a) == len(b) == 24, (len(a), len(b))
for f in ("step", "train_loss", "val_loss", "lr", "grad_norm", "tokens"):
    assert np.array_equal(a[f], b[f], equal_nan=True), f
PY
fi
echo "ok: interrupted (2 ranks) + resumed (3 ranks) == uninterrupted, byte for byte"

# a resume that changes what is computed is refused, naming the key
expect_fail 2 60 "model.d_model" pretrain "$TMP/pre.ini" -q --resume --set run.output="$TMP/r.h5" \
  --set pretrain.output="$TMP/br2" --set model.d_model=32 --set pretrain.steps=20 --set train.schedule=constant

# bad input: every rank fails, the message names the key or path, nothing is written
nothing_written() { [ ! -e "$TMP/bad.h5" ] && [ ! -e "$TMP/badbase" ] || fail "bad input wrote output"; }
BAD="--set run.output=$TMP/bad.h5 --set pretrain.output=$TMP/badbase"
grep -v '^path' "$TMP/pre.ini" >"$TMP/nocorpus.ini"
# shellcheck disable=SC2086
expect_fail 2 60 "data.path.*needs a corpus" pretrain "$TMP/nocorpus.ini" -q $BAD; nothing_written
# shellcheck disable=SC2086
expect_fail 2 60 "data.path.*is empty" pretrain "$TMP/pre.ini" -q $BAD --set data.path=; nothing_written
# shellcheck disable=SC2086
expect_fail 2 60 "$TMP/no-such-corpus" pretrain "$TMP/pre.ini" -q $BAD --set data.path="$TMP/no-such-corpus"
[ ! -e "$TMP/badbase" ] || fail "a missing corpus wrote the base folder"
mkdir -p "$TMP/empty-corpus"
# shellcheck disable=SC2086
expect_fail 2 60 "empty-corpus" pretrain "$TMP/pre.ini" -q $BAD --set data.path="$TMP/empty-corpus"
[ ! -e "$TMP/badbase" ] || fail "an empty corpus wrote the base folder"
# shellcheck disable=SC2086
expect_fail 2 60 "micro_batch" pretrain "$TMP/pre.ini" -q $BAD --set pretrain.micro_batch=4; nothing_written
# an existing base folder or run file is kept unless --overwrite
mkdir -p "$TMP/full"; echo keep >"$TMP/full/notes.txt"
expect_fail 2 60 "$TMP/full.*--overwrite" pretrain "$TMP/pre.ini" -q --set run.output="$TMP/bad.h5" \
  --set pretrain.output="$TMP/full"
[ ! -e "$TMP/bad.h5" ] || fail "a refused base folder let the run file be written"
expect_fail 2 60 "holds no config.json" pretrain "$TMP/pre.ini" -q --overwrite --set run.output="$TMP/bad.h5" \
  --set pretrain.output="$TMP/full"
[ "$(cat "$TMP/full/notes.txt")" = keep ] || fail "a folder that is not a model was touched"
cp "$TMP/p1.h5" "$TMP/keep.h5"
expect_fail 2 60 "$TMP/p1.h5.*exists" pretrain "$TMP/pre.ini" -q --set run.output="$TMP/p1.h5" \
  --set pretrain.output="$TMP/newbase"
cmp "$TMP/p1.h5" "$TMP/keep.h5" || fail "a refused pretraining changed the run file"
[ ! -e "$TMP/newbase" ] || fail "a refused pretraining wrote the base folder"
# shellcheck disable=SC2086
expect_fail 2 60 "bad.h5.*does not exist" pretrain "$TMP/pre.ini" -q --resume $BAD; nothing_written
# a finished run has nothing to resume
expect_fail 2 60 "already holds 24 steps" pretrain "$TMP/pre.ini" -q --resume --set run.output="$TMP/p1.h5" \
  --set pretrain.output="$TMP/b1x"
# --overwrite replaces fedmoe's own run file and base folder
mpi 2 pretrain "$TMP/pre.ini" -q --overwrite --set run.output="$TMP/p1.h5" --set pretrain.output="$TMP/b2" ||
  { cat "$TMP/out"; fail "--overwrite"; }
cmp "$TMP/b1/model.safetensors" "$TMP/b2/model.safetensors" || fail "overwritten base differs"
echo "ok: pretrain"
