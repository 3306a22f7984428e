#!/bin/sh
# hfedmoe-selection.sh - the README's figures on hfedmoe's expert selection: the
# example (examples/hfedmoe.ini on examples/base.ini) with the paper's top b
# (explore = 0), a random subset, and the default draw around the best scores
# (explore = 2), against unrestricted fedavg (examples/fedavg.ini), over seeds.
#   sh docs/hfedmoe-selection.sh OUTDIR [SEEDS] [NP]   (from the build folder;
#   default seeds "1 2 3", 2 ranks: the results are the same for any rank count)
# Prints the final mean test perplexity over the 8 clients per variant: mean (sd).
set -eu
out=${1:?usage: hfedmoe-selection.sh OUTDIR [SEEDS] [NP]}
seeds=${2:-"1 2 3"}
np=${3:-2}
PY=${PYTHON_H5PY:-/usr/bin/python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out"
variants="top random explore2 fedavg"
args() {
  case $1 in
  top) echo "examples/hfedmoe.ini --set hfedmoe.explore=0" ;;
  random) echo "examples/hfedmoe.ini --set hfedmoe.select=random" ;;
  explore2) echo "examples/hfedmoe.ini --set hfedmoe.explore=2" ;;
  fedavg) echo "examples/fedavg.ini" ;;
  esac
}
for v in $variants; do
  for seed in $seeds; do
    f="$out/$v-s$seed.h5"
    [ -f "$f" ] && continue
    mpirun --oversubscribe -np "$np" ./fedmoe run $(args $v) -q --set run.seed=$seed --set run.output="$f" \
      >"$out/$v-s$seed.log" 2>&1 || { cat "$out/$v-s$seed.log"; exit 1; }
  done
done
"$PY" - "$out" "$seeds" $variants <<'PY'
import sys, h5py, numpy as np
out, seeds, variants = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
for v in variants:
    p = np.exp([h5py.File("%s/%s-s%s.h5" % (out, v, s), "r")["/metrics/rounds"]["mean_test"][-1] for s in seeds])
    print("%-9s test perplexity %.2f (sd %.2f) over seeds %s" % (v, p.mean(), p.std(ddof=1), " ".join(seeds)))
PY
