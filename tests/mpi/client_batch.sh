#!/bin/sh
# run.client_batch: clients that share a frozen base (model.train = lora) trained
# several at once in the slots of one model. Checks, for fedavg on gpt2 and local on
# the llama family (private state), each dense with attention LoRA pairs and with MoE
# blocks of LoRA experts (each slot's router routing its own client's tokens):
#  - client_batch 4 and 3 (a group size that leaves idle slots) give the tensors and
#    losses (and routing counts) of client_batch 1 to a relative 1e-5: each slot computes exactly its
#    client's loss, gradient, clipping and AdamW step, so only the rounding of taller
#    GEMMs may differ (BLIS computes a row of a GEMM alike for any row count, so the
#    files are in fact equal here; 1e-5 leaves room for a BLIS whose kernels differ
#    with M, as float32 noise of 1e-7 grows over 2 rounds x 2 Adam steps);
#  - bit-identical run files on 2 and 3 ranks with the same client_batch (hosts of 8
#    and of 4 clients: different groups, idle slots on one side);
#  - on the stand-in device (debug.device_mirror: host mirrors, transfers, the backend's
#    grouped operation), client_batch 3 equals client_batch 1 on the same device, and
#    is rank-identical too (the device's MoE rounds apart from the CPU's, which
#    tests/mpi/device_mirror.sh bounds);
#  - a run stopped and resumed equals the uninterrupted one;
#  - client_batch = 1 is the run without the key, bit for bit;
#  - what it does not support is refused naming the key, nothing written.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}
PY=/usr/bin/python3
lora="-q --set model.attn_lora_rank=2 --set model.train=lora --set fl.clients=8"
lora="$lora --set fl.sample_fraction=1 --set train.grad_clip=0.05"
dense="--set model.moe_layers=none"
moe="--set model.expert_type=lora --set model.lora_rank=2" # the tiny model's MoE blocks, LoRA experts

# compare A B [moe]: the checkpoint's tensors and the clients' losses agree to 1e-5
# relative; with moe, the routing counts and gate mass too (and something was routed)
compare() {
  "$PY" - "$1" "$2" "${3:-}" <<'EOF2'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def tensors(f):
    out = {}
    f["checkpoints/latest"].visititems(
        lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    return out
def rel(x, y):  # NaN (a row without that figure) must be NaN on both sides
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if not x.size: return 0.0
    if (np.isnan(x) != np.isnan(y)).any(): return float("inf")
    return float(np.nanmax(np.abs(x - y)) / max(np.nanmax(np.abs(x)), 1e-30))
ta, tb = tensors(a), tensors(b)
assert ta and ta.keys() == tb.keys(), "different tensors: %s / %s" % (sorted(ta)[:3], sorted(tb)[:3])
assert any(np.abs(v).max() > 0 for k, v in ta.items() if "lora_B" in k or "params" in k), "nothing trained"
worst = max((rel(ta[k], tb[k]), k) for k in ta)
ma, mb = a["metrics/clients"][()], b["metrics/clients"][()]
for f in ("round", "client", "tokens", "status"):
    assert (ma[f] == mb[f]).all(), "metrics field %s differs" % f
loss = max(rel(ma[f], mb[f]) for f in ("train_loss", "val_loss", "test_loss"))
routing = 0.0
if sys.argv[3] == "moe":  # MoE blocks: each client's routing of its own tokens
    assert (a["routing/index"][()] == b["routing/index"][()]).all(), "routing rows differ"
    assert a["routing/counts"][()].sum() > 0, "no routing counted"
    routing = max(rel(a["routing/" + f][()], b["routing/" + f][()]) for f in ("counts", "gate_mass"))
print("  %d tensors, worst relative difference %.3g (%s); losses %.3g; routing %.3g"
      % (len(ta), worst[0], worst[1], loss, routing))
assert worst[0] <= 1e-5 and loss <= 1e-5 and routing <= 1e-5, "beyond 1e-5"
EOF2
}
# same A B: bit-identical checkpoint and client metrics
same() {
  objs="/checkpoints/r000002 /metrics/clients"
  "$H5DIFF" "$1" "$1" /routing/counts /routing/counts >/dev/null 2>&1 && objs="$objs /routing/counts /routing/gate_mass"
  for obj in $objs; do
    "$H5DIFF" --follow-symlinks "$1" "$2" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$3: $obj differs between $1 and $2"; }
  done
}

for case in "fedavg gpt2 dense" "local llama dense" "fedavg gpt2 moe" "local llama moe"; do
  set -- $case
  eval "blocks=\$$3"
  run="$lora $blocks --set fl.strategy=$1 --set model.family=$2"
  [ $2 = llama ] && run="$run --set model.kv_heads=1"
  for cb in 1 4 3; do
    for np in 2 3; do
      # shellcheck disable=SC2086
      mpi $np run "$TMP/tiny.ini" $run --set run.client_batch=$cb --set run.output="$TMP/$1$3-$cb-$np.h5" \
        || { cat "$TMP/out"; fail "$1 $2 client_batch $cb on $np ranks"; }
    done
    same "$TMP/$1$3-$cb-2.h5" "$TMP/$1$3-$cb-3.h5" "$1 $3 client_batch $cb"
  done
  for cb in 4 3; do
    compare "$TMP/$1$3-1-2.h5" "$TMP/$1$3-$cb-2.h5" $3 || fail "$1 $2 $3: client_batch $cb is not client_batch 1's run"
  done
  echo "ok: $1 on $2 ($3): client_batch 4 and 3 equal 1 (to 1e-5), each identical on 2 and 3 ranks"
  for np in 2 3; do
    # shellcheck disable=SC2086
    mpi $np run "$TMP/tiny.ini" $run --set run.client_batch=3 --set debug.device_mirror=true \
      --set run.output="$TMP/$1$3-dev-$np.h5" || { cat "$TMP/out"; fail "$1 client_batch 3 on the stand-in device"; }
  done
  same "$TMP/$1$3-dev-2.h5" "$TMP/$1$3-dev-3.h5" "$1 $3 client_batch 3 on the stand-in device"
  # shellcheck disable=SC2086
  mpi 2 run "$TMP/tiny.ini" $run --set run.client_batch=1 --set debug.device_mirror=true \
    --set run.output="$TMP/$1$3-dev1.h5" || { cat "$TMP/out"; fail "$1 client_batch 1 on the stand-in device"; }
  compare "$TMP/$1$3-dev1.h5" "$TMP/$1$3-dev-2.h5" $3 \
    || fail "$1 $3: the stand-in device's client_batch 3 is not its client_batch 1"
  echo "ok: $1 on $2 ($3) on the stand-in device: client_batch 3 equals 1 there, identical on 2 and 3 ranks"
done

# client_batch = 1 is today's run
# shellcheck disable=SC2086
mpi 2 run "$TMP/tiny.ini" $lora $dense --set fl.strategy=fedavg --set run.output="$TMP/nokey.h5" \
  || { cat "$TMP/out"; fail "the run without run.client_batch"; }
same "$TMP/fedavgdense-1-2.h5" "$TMP/nokey.h5" "client_batch 1 against no key"
echo "ok: client_batch = 1 is the run without the key, bit for bit"

# resume: stopped after 2 of 4 rounds, resumed on another rank count
set_run="$lora $moe --set fl.strategy=local --set run.client_batch=3 --set fl.rounds=4 --set run.checkpoint_every=1"
# shellcheck disable=SC2086
resume_equals "client_batch 3" $set_run
echo "ok: client_batch 3 (MoE, LoRA experts) stopped at 2 of 4 and resumed on 3 ranks equals the uninterrupted run"

# refusals: a clear message naming the key, on every rank, nothing written
bad() {
  # shellcheck disable=SC2086
  expect_fail 2 20 "$1" run "$TMP/tiny.ini" $lora $dense --set run.client_batch=4 --set run.output="$TMP/bad.h5" $2
  [ ! -e "$TMP/bad.h5" ] || fail "a refused run wrote $TMP/bad.h5"
}
bad "key 'run.client_batch'.*model.train = lora" "--set fl.strategy=fedavg --set model.train=all"
bad "key 'run.client_batch'.*fedavg or local, not comigs" "--set fl.strategy=comigs"
bad "key 'run.client_batch'.*fl.prox_mu" "--set fl.strategy=fedavg --set fl.prox_mu=0.1"
bad "key 'run.client_batch'.*fl.scaffold" "--set fl.strategy=fedavg --set fl.scaffold=true"
bad "key 'run.client_batch'.*fl.ditto" "--set fl.strategy=fedavg --set fl.ditto=true"
# 256 slots of 64 x 16 tokens over a vocabulary of 2^20: terabytes of logits, refused
# on every rank before any allocates
bad "key 'run.client_batch'.*client slots need about" "--set fl.strategy=fedavg --set run.client_batch=256 \
  --set train.batch=64 --set model.vocab=1048576"
echo "client_batch: all passed"
