#!/bin/sh
# run-demo.sh MPIEXEC MPIEXEC_FLAGS FEDMOE CONFIG [PYTHON ANALYZE] - the default
# experiment (make demo): local, fedavg and comigs on the same data, model, seed and
# starting point,
# a table of the final mean test perplexity per strategy, and (when a Python with
# h5py was found) the loss curves and routing heatmaps drawn into the output folder.
# FEDMOE_NP sets the rank count (default 3), FEDMOE_DEMO_DIR the folder (runs),
# FEDMOE_DEMO_INIT the pretrained base every strategy starts from (model.init; make
# demo pretrains it first with examples/bases/make-bases.sh, or finds it cached).
set -eu
mpiexec=$1 flags=$2 fedmoe=$3 config=$4 python=${5:-} analyze=${6:-}
np=${FEDMOE_NP:-3}
out=${FEDMOE_DEMO_DIR:-runs}
init=${FEDMOE_DEMO_INIT:-}
mkdir -p "$out"
for s in local fedavg comigs; do
  echo "== fedmoe demo: strategy $s on $np ranks${init:+, from the base $init} =="
  # shellcheck disable=SC2086
  "$mpiexec" $flags -np "$np" "$fedmoe" run "$config" -q --overwrite --set fl.strategy=$s \
    --set run.output="$out/demo-$s.h5" ${init:+--set model.init="$init"} | tee "$out/demo-$s.log"
done
echo
echo "strategy   mean test loss   test perplexity   run file"
for s in local fedavg comigs; do
  sed -n "s/^final $s: mean test loss \([0-9.]*\) (perplexity \([0-9.]*\)).*/\1 \2/p" "$out/demo-$s.log" |
    { read -r loss ppl; printf '%-10s %15s %17s   %s\n' "$s" "$loss" "$ppl" "$out/demo-$s.h5"; }
done
if [ -n "$python" ] && [ -n "$analyze" ]; then
  echo
  "$analyze" curves -o "$out" "$out/demo-local.h5" "$out/demo-fedavg.h5" "$out/demo-comigs.h5"
  "$analyze" routing -o "$out" "$out/demo-comigs.h5"
  "$analyze" compare -o "$out" "$out/demo-local.h5" "$out/demo-fedavg.h5" "$out/demo-comigs.h5" >"$out/compare.md"
  echo "wrote $out/compare.md"
else
  echo "(no Python with h5py and matplotlib: plots skipped; see analysis/README.md)"
fi
