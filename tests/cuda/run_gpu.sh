#!/bin/sh
# fedmoe run with run.device = cuda (needs a GPU: make check-cuda). Every rank drives
# the GPU (local rank modulo the GPUs it sees). On 2 and 3 ranks a run gives
# bit-identical final checkpoints and per-client metrics, for fedavg (clients dealt
# to the hosts by work) and local (private state: parameters and AdamW moments go
# between the GPU and the host at each client switch); a run stopped half way and
# resumed equals the uninterrupted one; the GPU's metrics agree with the CPU's to
# tolerance; bf16 is reproducible too; MoE blocks and the llama family run and are
# rank-identical; run.client_batch 4 gives client_batch 1's results to tolerance and
# is rank-identical (fp32, bf16; dense and MoE blocks); the transformers fixtures'
# losses on the GPU (1e-5 fp32, 1e-2 bf16). Bad input: heads wider than 128 values, an unknown precision, a
# model too large.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
. "$top_srcdir/tests/mpi/base.sh"
H5DIFF=${H5DIFF:-h5diff}
gpu="-q --set model.moe_layers=none --set run.device=cuda"
objs="/checkpoints/r000002 /metrics/clients"
make_base "$TMP/base" --set model.layers=2 # fedbiot's pretrained model (on the CPU)
for s in fedavg local fedbiot; do
  init=""
  [ $s = fedbiot ] && init="--set model.init=$TMP/base"
  for np in 2 3; do
    # shellcheck disable=SC2086
    mpi $np run "$TMP/tiny.ini" $gpu $init --set fl.strategy=$s --set run.output="$TMP/$s-$np.h5" \
      || { cat "$TMP/out"; fail "$s on the GPU, $np ranks"; }
    grep "^final $s" "$TMP/out"
  done
  for obj in $objs; do
    "$H5DIFF" --follow-symlinks "$TMP/$s-2.h5" "$TMP/$s-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$s on the GPU: $obj differs between 2 and 3 ranks"; }
  done
  echo "ok: $s on the GPU on 2 and 3 ranks: identical checkpoint and metrics"
  # the CPU's run of the same configuration: the same losses to tolerance
  # shellcheck disable=SC2086
  mpi 2 run "$TMP/tiny.ini" -q --set model.moe_layers=none $init --set fl.strategy=$s --set run.output="$TMP/$s-cpu.h5" \
    || { cat "$TMP/out"; fail "$s on the CPU"; }
  "$H5DIFF" -p 1e-3 "$TMP/$s-cpu.h5" "$TMP/$s-2.h5" /metrics/clients /metrics/clients >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "$s: the GPU's metrics differ from the CPU's by more than 1e-3 relative"; }
  echo "ok: $s on the GPU agrees with the CPU to 1e-3"
done
# resume: 4 rounds, or 2 then 2 more (on another rank count), bit-identical
set_run="$gpu --set fl.strategy=local --set fl.rounds=4 --set run.checkpoint_every=1"
resume_equals "GPU" $set_run
grep -q "resuming" "$TMP/out" || fail "no resume message"
echo "ok: a GPU run stopped at 2 of 4 and resumed equals the uninterrupted run"
# the hosted clients' private state in GPU memory (run.device_state_mb -1: all of it
# fits), in host memory (0) or some of each (3 MiB of d 64 local clients on one host):
# bit-identical, local (every class private) and comigs (private experts, routing)
state_places "local on the GPU" 2 3 -q --set run.device=cuda --set model.moe_layers=none --set model.d_model=64 \
  --set fl.strategy=local
echo "ok: local on the GPU: private state in GPU memory, host memory or mixed: identical"
state_places "comigs on the GPU" 3 1 -q --set run.device=cuda --set model.d_model=32 --set fl.strategy=comigs
echo "ok: comigs on the GPU: private state in GPU memory, host memory or mixed: identical"
# bf16: reproducible across rank counts as well
for np in 2 3; do
  mpi $np run "$TMP/tiny.ini" $gpu --set run.precision=bf16 --set run.output="$TMP/bf16-$np.h5" \
    || { cat "$TMP/out"; fail "bf16 on $np ranks"; }
done
for obj in $objs; do
  "$H5DIFF" --follow-symlinks "$TMP/bf16-2.h5" "$TMP/bf16-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "bf16: $obj differs between 2 and 3 ranks"; }
done
echo "ok: bf16 on 2 and 3 ranks: identical"
# MoE blocks and the llama family on the GPU: identical on 2 and 3 ranks
for case in "gpt2 comigs" "mixtral fedavg" "qwen2_moe comigs"; do
  set -- $case
  extra="-q --set run.device=cuda --set model.family=$1"
  [ $1 = mixtral ] && extra="$extra --set model.kv_heads=1" # grouped-query attention
  [ $1 = qwen2_moe ] && extra="$extra --set model.expert_type=lora --set model.attn_lora_rank=2"
  for np in 2 3; do
    mpi $np run "$TMP/tiny.ini" $extra --set fl.strategy=$2 --set run.output="$TMP/$1-$np.h5" \
      || { cat "$TMP/out"; fail "$1 $2 on the GPU, $np ranks"; }
    grep "^final $2" "$TMP/out"
  done
  for obj in /checkpoints/r000002 /metrics/clients /routing/counts /routing/gate_mass; do
    "$H5DIFF" --follow-symlinks "$TMP/$1-2.h5" "$TMP/$1-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$1 $2 on the GPU: $obj differs between 2 and 3 ranks"; }
  done
  echo "ok: $1 with $2 on the GPU on 2 and 3 ranks: identical"
done
# run.client_batch: 8 clients trained 4 at once (grouped LoRA GEMMs over a shared
# frozen base) against one at a time, fp32 and bf16: the clients' losses to 1e-3
# (fp32) and 1e-2 (bf16) relative, the trained LoRA tensors to 1e-3 / 5e-2 in
# relative L2 norm (cuBLAS may pick other kernels for taller GEMMs and the strided
# batch; Adam's first steps turn a near-zero gradient's rounding into a step of +-lr,
# so single entries may differ by more: their worst is printed, not bounded); and
# rank-identical on 2 and 3 ranks (2: one host, two groups of 4; 3: two hosts, one
# group each). Prints the worst differences, the tensor, the index and the sizes.
# Dense blocks, and MoE blocks of LoRA experts (each slot's router, its part's
# routing and expert GEMMs on the slot's own device layer).
cb="-q --set run.device=cuda --set model.attn_lora_rank=4 --set model.train=lora"
cb="$cb --set fl.strategy=fedavg --set fl.clients=8 --set fl.sample_fraction=1 --set train.grad_clip=1"
for case in dense-fp32 dense-bf16 moe-fp32 moe-bf16; do
  prec=${case#*-} blocks="--set model.moe_layers=none"
  [ "${case%-*}" = moe ] && blocks="--set model.expert_type=lora --set model.lora_rank=2"
  cmp_objs=$objs
  [ "${case%-*}" = moe ] && cmp_objs="$objs /routing/counts /routing/gate_mass"
  for n in 1 4; do
    for np in 2 3; do
      # shellcheck disable=SC2086
      mpi $np run "$TMP/tiny.ini" $cb $blocks --set run.precision=$prec --set run.client_batch=$n \
        --set run.output="$TMP/cb-$case-$n-$np.h5" || { cat "$TMP/out"; fail "client_batch $n, $case, $np ranks"; }
    done
    for obj in $cmp_objs; do
      "$H5DIFF" --follow-symlinks "$TMP/cb-$case-$n-2.h5" "$TMP/cb-$case-$n-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
        || { cat "$TMP/diff"; fail "client_batch $n, $case: $obj differs between 2 and 3 ranks"; }
    done
  done
  tol_loss=1e-3 tol_w=1e-3
  [ $prec = bf16 ] && tol_loss=1e-2 tol_w=5e-2
  "${PYTHON:-/usr/bin/python3}" - "$TMP/cb-$case-1-2.h5" "$TMP/cb-$case-4-2.h5" $tol_loss $tol_w <<'EOF2' \
    || fail "client_batch 4 against 1 on the GPU, $case"
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
tl, tw = float(sys.argv[3]), float(sys.argv[4])
def tensors(f):
    out = {}
    f["checkpoints/latest"].visititems(
        lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    return out
ta, tb = tensors(a), tensors(b)
assert ta and ta.keys() == tb.keys(), "different tensors: %s / %s" % (sorted(ta)[:3], sorted(tb)[:3])
worst = (-1.0, "", 0, ())  # relative L2 of a tensor's difference
peak = (-1.0, "", 0, 0.0, 0.0)  # largest single difference, against the tensor's largest value
for k in ta:
    x, y = np.asarray(ta[k], np.float64).ravel(), np.asarray(tb[k], np.float64).ravel()
    if not x.size: continue
    d = np.abs(x - y)
    r = float(np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30))
    if r > worst[0]: worst = (r, k, x.size, np.asarray(ta[k]).shape)
    i = int(d.argmax())
    p = float(d[i] / max(np.abs(x).max(), 1e-30))
    if p > peak[0]: peak = (p, k, i, x[i], y[i])
ma, mb = a["metrics/clients"][()], b["metrics/clients"][()]
assert (ma["client"] == mb["client"]).all() and (ma["round"] == mb["round"]).all(), "different client rows"
loss = (-1.0, "", 0)
for f in ("train_loss", "val_loss", "test_loss"):
    x, y = np.asarray(ma[f], np.float64), np.asarray(mb[f], np.float64)
    r = np.abs(x - y) / np.maximum(np.abs(x), 1e-30)
    if r.max() > loss[0]: loss = (float(r.max()), f, int(r.argmax()))
print("client_batch 4 vs 1: %d tensors; worst relative L2 %.3g (%s, %d values, shape %s); largest single "
      "difference %.3g of the tensor's largest value (%s[%d]: %.8g vs %.8g); losses worst %.3g relative (%s, "
      "row %d of %d)" % (len(ta), worst[0], worst[1], worst[2], worst[3], peak[0], peak[1], peak[2], peak[3],
                         peak[4], loss[0], loss[1], loss[2], len(ma)))
assert loss[0] <= tl, "losses beyond %g" % tl
assert worst[0] <= tw, "tensors beyond %g" % tw
EOF2
  echo "ok: client_batch 4 on the GPU ($case): client_batch 1's results to tolerance, identical on 2 and 3 ranks"
done
# the transformers oracle on the GPU: `fedmoe eval --model` of each family's fixture
# folder (tests/fixtures/hf, made by transformers) on the GPU gives transformers' loss
# to 1e-5 relative in fp32 and 1e-2 in bf16 (the CPU's check is tests/mpi/hf_fixtures.sh)
FIX="$top_srcdir/tests/fixtures/hf"
field() { "${PYTHON:-/usr/bin/python3}" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
for f in gpt2 llama qwen2 mixtral mixtral_top1 olmoe olmoe_top1 qwen2_moe; do
  d="$FIX/$f"
  [ -s "$d/expected.json" ] || fail "$f: no $d/expected.json"
  want=$(field "$d/expected.json" loss) ctx=$(field "$d/expected.json" context)
  text="$top_srcdir/$(field "$d/expected.json" text)"
  for pt in fp32:1e-5 bf16:1e-2; do
    prec=${pt%:*} tol=${pt#*:}
    mpi 1 eval --model "$d" --text "$text" --context "$ctx" --device cuda --precision $prec \
      || { cat "$TMP/out"; fail "$f: eval --model on the GPU ($prec)"; }
    got=$(awk '/^cross_entropy/ {print $2}' "$TMP/out")
    awk -v a="$got" -v b="$want" -v t="$tol" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t * b) }' \
      || fail "$f on the GPU ($prec): fedmoe $got, transformers $want (tolerance $tol relative)"
    echo "ok: $f on the GPU ($prec): fedmoe $got, transformers $want"
  done
done
expect_fail 1 30 "precisions are fp32, tf32 and bf16" eval --model "$FIX/gpt2" --text "$top_srcdir/tests/fixtures/text/sailing" \
  --device cuda --precision fp16
# refused on every rank, nothing written
expect_fail 2 30 "attention heads of more than 128 values" run "$TMP/tiny.ini" -q --set run.device=cuda \
  --set model.family=llama --set model.moe_layers=none --set model.d_model=512 --set model.heads=2 \
  --set run.output="$TMP/wide.h5"
[ ! -e "$TMP/wide.h5" ] || fail "a refused GPU run wrote its run file"
expect_fail 2 30 "key 'run.precision'" run "$TMP/tiny.ini" $gpu --set run.precision=fp16
expect_fail 2 30 "needs about .* MiB of GPU memory" run "$TMP/tiny.ini" $gpu --set model.d_model=8192 \
  --set model.heads=64 --set model.layers=64 --set model.context=4096 --set train.seq_len=4096 \
  --set train.batch=64 --set run.output="$TMP/big.h5"
[ ! -e "$TMP/big.h5" ] || fail "a refused GPU run wrote its run file"
# an engine switch with an unknown value is refused on every rank, not read as the default
(
  export FEDMOE_CUDA_GEMM=bogus
  expect_fail 2 30 "FEDMOE_CUDA_GEMM = 'bogus'" run "$TMP/tiny.ini" $gpu --set run.output="$TMP/switch.h5"
) || exit 1
[ ! -e "$TMP/switch.h5" ] || fail "a refused GPU run wrote its run file"
echo "run_gpu: all passed"
