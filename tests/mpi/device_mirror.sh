#!/bin/sh
# The runtime on a model with host mirrors, without a GPU: debug.device_mirror puts
# every model on a stand-in device (the CPU's kernels on memory of their own, behind
# the mirrors and owner flags of a GPU model). fl/, io/ and the strategies reach the
# model only through its accessors, so the runs must be what the GPU's are: for
# fedavg, local (private state and AdamW moments go to the host at each client
# switch) and fedbiot (hidden states, an injected gradient, a second model), the
# same results on 2 and 3 ranks, close to the plain CPU run, and an exact resume.
# fl.scaffold, which keeps tensor pointers across passes, is refused. The hosted
# clients' private state in device memory, in host memory or some of each
# (run.device_state_mb) gives bit-identical runs and resumes.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
. "$top_srcdir/tests/mpi/base.sh"
H5DIFF=${H5DIFF:-h5diff}
dense="-q --set model.moe_layers=none"
dev="$dense --set debug.device_mirror=true"
make_base "$TMP/base" --set model.layers=2 # fedbiot's pretrained model
for s in fedavg local fedbiot; do
  init=""
  [ $s = fedbiot ] && init="--set model.init=$TMP/base"
  for np in 2 3; do
    # shellcheck disable=SC2086
    mpi $np run "$TMP/tiny.ini" $dev $init --set fl.strategy=$s --set run.output="$TMP/$s-$np.h5" \
      || { cat "$TMP/out"; fail "$s on the stand-in device, $np ranks"; }
    grep "^final $s" "$TMP/out"
  done
  for obj in /checkpoints/r000002 /metrics/clients; do
    "$H5DIFF" --follow-symlinks "$TMP/$s-2.h5" "$TMP/$s-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$s on the stand-in device: $obj differs between 2 and 3 ranks"; }
  done
  # shellcheck disable=SC2086
  mpi 2 run "$TMP/tiny.ini" $dense $init --set fl.strategy=$s --set run.output="$TMP/$s-cpu.h5" \
    || { cat "$TMP/out"; fail "$s on the CPU"; }
  "$H5DIFF" -p 1e-3 "$TMP/$s-cpu.h5" "$TMP/$s-2.h5" /metrics/clients /metrics/clients >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "$s: the stand-in device's metrics differ from the CPU's by more than 1e-3"; }
  echo "ok: $s on the stand-in device: identical on 2 and 3 ranks, the CPU's to 1e-3"
done
# MoE blocks (routing statistics and route masks read from the host layers) and the
# llama family (rotary tables, q/k norms, GQA, LoRA experts and attention adapters)
mirror="-q --set debug.device_mirror=true"
for case in "gpt2 comigs" "mixtral fedavg" "qwen2_moe comigs"; do
  set -- $case
  extra="--set model.family=$1"
  [ $1 = gpt2 ] || extra="$extra --set model.kv_heads=1"
  [ $1 = qwen2_moe ] && extra="$extra --set model.expert_type=lora --set model.attn_lora_rank=2"
  for np in 2 3; do
    mpi $np run "$TMP/tiny.ini" $mirror $extra --set fl.strategy=$2 --set run.output="$TMP/$1-$np.h5" \
      || { cat "$TMP/out"; fail "$1 $2 on the stand-in device, $np ranks"; }
  done
  for obj in /checkpoints/r000002 /metrics/clients /routing/counts /routing/gate_mass; do
    "$H5DIFF" --follow-symlinks "$TMP/$1-2.h5" "$TMP/$1-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$1 $2 on the stand-in device: $obj differs between 2 and 3 ranks"; }
  done
  mpi 2 run "$TMP/tiny.ini" -q $extra --set fl.strategy=$2 --set run.output="$TMP/$1-cpu.h5" \
    || { cat "$TMP/out"; fail "$1 $2 on the CPU"; }
  "$H5DIFF" -p 1e-3 "$TMP/$1-cpu.h5" "$TMP/$1-2.h5" /metrics/clients /metrics/clients >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "$1 $2: the stand-in device's metrics differ from the CPU's by more than 1e-3"; }
  echo "ok: $1 with $2 on the stand-in device: identical on 2 and 3 ranks, the CPU's to 1e-3"
done
set_run="$dev --set fl.strategy=local --set fl.rounds=4 --set run.checkpoint_every=1"
resume_equals "stand-in device" $set_run
echo "ok: on the stand-in device, stopped at 2 of 4 and resumed equals the uninterrupted run"
# the hosted clients' private state in device memory (run.device_state_mb: -1 all that
# fits, the stand-in device has no limit; 0 none; a budget that holds some: 3 MiB, two
# of the six local clients of d 64 on one host; 1 MiB a host, four of the comigs ones of
# d 32) gives the same run bit for bit, and says where it was
state_places "local" 2 3 $mirror $dense --set model.d_model=64 --set fl.strategy=local
echo "ok: local: private state resident, in host memory, or mixed: identical"
state_places "comigs" 3 1 $mirror --set model.d_model=32 --set fl.strategy=comigs
echo "ok: comigs: private state resident, in host memory, or mixed: identical"
# a checkpoint of resident clients resumes into host memory (and back): exact
set_run="$mirror $dense --set model.d_model=64 --set fl.strategy=local --set fl.rounds=4 --set run.checkpoint_every=1"
mpi 2 run "$TMP/tiny.ini" $set_run --set run.device_state_mb=-1 --set run.output="$TMP/sfull.h5" \
  || { cat "$TMP/out"; fail "resident full run"; }
mpi 2 run "$TMP/tiny.ini" $set_run --set run.device_state_mb=3 --set run.output="$TMP/shalf.h5" --set run.stop_after=2 \
  || { cat "$TMP/out"; fail "mixed first half"; }
mpi 3 run "$TMP/tiny.ini" $set_run --set run.device_state_mb=0 --resume "$TMP/shalf.h5" \
  || { cat "$TMP/out"; fail "resume in host memory"; }
for obj in /checkpoints/r000004 /metrics/clients; do
  "$H5DIFF" --follow-symlinks "$TMP/sfull.h5" "$TMP/shalf.h5" $obj $obj >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "private state: $obj differs after a resume with another placement"; }
done
echo "ok: resident, mixed then resumed in host memory equals the uninterrupted resident run"
expect_fail 2 30 "key 'fl.scaffold': fl.scaffold does not run on the GPU yet" run "$TMP/tiny.ini" $dev \
  --set fl.scaffold=true
echo "device_mirror: all passed"
