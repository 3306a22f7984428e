#!/bin/sh
# Reproducible mode: the same configuration on 2, 3 and 5 ranks gives bit-identical
# final checkpoints, per-client metrics and routing statistics, for every strategy:
# those with private state (comigs, local) run each client at home, the others deal
# each round's clients to the hosts by work, so a client runs on different ranks.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
. "$top_srcdir/tests/mpi/base.sh"
H5DIFF=${H5DIFF:-h5diff}
# fedbiot starts from a pretrained model: a dense 4-block one and an OLMoE one
make_base "$TMP/base" --set data.public_frac=0.3
make_base "$TMP/olmoe" --set data.public_frac=0.3 --set model.family=olmoe --set model.kv_heads=1 \
  --set model.moe_layers=all
for s in fedavg comigs local fedbiot; do
  extra=""
  [ $s = fedbiot ] && extra="--set model.init=$TMP/base --set model.layers=4 --set data.public_frac=0.3"
  for np in 2 3 5; do
    # shellcheck disable=SC2086
    mpi $np run "$TMP/tiny.ini" -q --set fl.strategy=$s $extra --set run.output="$TMP/$s-$np.h5" \
      || { cat "$TMP/out"; fail "$s on $np ranks"; }
    grep "^final $s" "$TMP/out"
  done
  for np in 3 5; do
    for obj in /checkpoints/r000002 /metrics/clients /routing/counts /routing/gate_mass /routing/index; do
      "$H5DIFF" --follow-symlinks "$TMP/$s-2.h5" "$TMP/$s-$np.h5" $obj $obj >"$TMP/diff" 2>&1 \
        || { cat "$TMP/diff"; fail "$s: $obj differs between 2 and $np ranks"; }
    done
    echo "ok: $s on 2 and $np ranks: identical checkpoint, metrics and routing"
  done
done
# the llama family: the same identity for its MoE variants (GQA, SwiGLU experts, the
# shared expert, q/k norms, LoRA experts and attention adapters)
for case in "mixtral fedavg" "qwen2_moe comigs" "olmoe fedbiot"; do
  set -- $case
  fam=$1 s=$2
  extra="--set model.family=$fam --set model.kv_heads=1"
  [ $s = comigs ] && extra="$extra --set model.expert_type=lora --set model.attn_lora_rank=2"
  [ $s = fedbiot ] && extra="$extra --set model.init=$TMP/olmoe --set model.layers=4 --set data.public_frac=0.3"
  for np in 2 3; do
    mpi $np run "$TMP/tiny.ini" -q --set fl.strategy=$s $extra --set run.output="$TMP/$fam-$np.h5" \
      || { cat "$TMP/out"; fail "$fam $s on $np ranks"; }
    grep "^final $s" "$TMP/out"
  done
  for obj in /checkpoints/r000002 /metrics/clients /routing/counts /routing/gate_mass /routing/index; do
    "$H5DIFF" --follow-symlinks "$TMP/$fam-2.h5" "$TMP/$fam-3.h5" $obj $obj >"$TMP/diff" 2>&1 \
      || { cat "$TMP/diff"; fail "$fam $s: $obj differs between 2 and 3 ranks"; }
  done
  echo "ok: $fam with $s on 2 and 3 ranks: identical checkpoint, metrics and routing"
done
# dealing by unequal work: offline clients (system.availability) only evaluate
for np in 2 4; do
  mpi $np run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set fl.clients=12 --set fl.sample_count=7 \
    --set system.availability=0.6 --set run.output="$TMP/avail-$np.h5" || { cat "$TMP/out"; fail "availability on $np ranks"; }
done
for obj in /checkpoints/r000002 /metrics/clients /routing/counts /routing/gate_mass /routing/index; do
  "$H5DIFF" --follow-symlinks "$TMP/avail-2.h5" "$TMP/avail-4.h5" $obj $obj >"$TMP/diff" 2>&1 \
    || { cat "$TMP/diff"; fail "with offline clients: $obj differs between 2 and 4 ranks"; }
done
echo "ok: fedavg with offline clients on 2 and 4 ranks: identical"
# the float mode is allowed to differ in the last bits, but must run
mpi 3 run "$TMP/tiny.ini" -q --set fl.aggregation=float --set run.output="$TMP/float.h5" \
  || { cat "$TMP/out"; fail "float aggregation"; }
echo "fl_repro: all passed"
