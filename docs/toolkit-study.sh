#!/bin/sh
# toolkit-study.sh - the study of docs/toolkit.md: fedavg against FedProx, FedAdam,
# SCAFFOLD, DP-FedAvg at epsilon 1, 4 and 8 and Ditto, on examples/fedavg.ini (the
# default data, /usr/share/games/fortunes, 8 clients by domain, 10 rounds of 10 steps),
# seeds 1-3.
#   sh docs/toolkit-study.sh OUTDIR [NP]     (from the build folder; NP ranks, default 3)
#   METHODS="ditto ditto01" sh docs/toolkit-study.sh OUTDIR    (some of the methods)
# (fedadam3: server learning rate 0.03; clip: DP's clipping without noise; ditto,
# ditto01, ditto0: Ditto at lambda 1, 0.1 and 0; finetune: 10 local steps of each
# client from the final model, whose test loss is printed after "fine-tuned".)
# Prints one line per method: the final mean test loss (mean and sd over seeds; with
# Ditto the personal models', then the global model's), the epsilon spent, bytes up
# per round and simulated seconds per round.
set -eu
out=${1:?usage: toolkit-study.sh OUTDIR [NP]}
np=${2:-3}
PY=${PYTHON_H5PY:-/usr/bin/python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p "$out"
methods=${METHODS:-"fedavg fedprox fedadam fedadam3 scaffold clip dp8 dp4 dp1 ditto ditto01 ditto0 finetune"}
opts() {
  case $1 in
  fedavg) ;;
  fedprox) echo "--set fl.prox_mu=0.1" ;;
  fedadam) echo "--set fl.server_opt=adam --set fl.server_lr=0.01 --set fl.server_eps=0.001" ;;
  fedadam3) echo "--set fl.server_opt=adam --set fl.server_lr=0.03 --set fl.server_eps=0.001" ;;
  clip) echo "--set privacy.clip=1" ;;
  scaffold) echo "--set fl.scaffold=true" ;;
  ditto) echo "--set fl.ditto=true --set fl.ditto_lambda=1" ;;
  ditto01) echo "--set fl.ditto=true --set fl.ditto_lambda=0.1" ;;
  ditto0) echo "--set fl.ditto=true --set fl.ditto_lambda=0" ;;
  finetune) echo "--set fl.finetune_steps=10" ;;
  dp*) echo "--set privacy.clip=1 --set privacy.target_epsilon=${1#dp} --set privacy.delta=1e-5" ;;
  esac
}
for m in $methods; do
  for seed in 1 2 3; do
    f="$out/$m-s$seed.h5"
    [ -f "$f" ] && continue
    mpirun --oversubscribe -np "$np" ./fedmoe run examples/fedavg.ini -q --set run.seed=$seed \
      --set run.output="$f" $(opts $m) >"$out/$m-s$seed.log" 2>&1 || { cat "$out/$m-s$seed.log"; exit 1; }
  done
done
"$PY" - "$out" $methods <<'PY'
import sys, h5py, numpy as np
out, methods = sys.argv[1], sys.argv[2:]
print("%-9s %-16s %-8s %-12s %-10s" % ("method", "test loss", "epsilon", "up/round", "sim s/round"))
for m in methods:
    rows = [h5py.File("%s/%s-s%d.h5" % (out, m, s), "r")["/metrics/rounds"][...] for s in (1, 2, 3)]
    t = np.array([r["mean_test"][-1] for r in rows])
    e = rows[0]["dp_epsilon"][-1]
    up = np.mean([r["bytes_up"].mean() for r in rows])
    sim = np.mean([r["sim_time_s"].mean() for r in rows])
    g = np.array([r["test_loss_global"][-1] for r in rows]) if "test_loss_global" in rows[0].dtype.names else [np.nan]
    glob = "" if np.isnan(g[0]) else "  global %.4f (%.4f)" % (g.mean(), g.std(ddof=1))
    fs = [h5py.File("%s/%s-s%d.h5" % (out, m, s), "r").attrs for s in (1, 2, 3)]
    if "finetune_test_loss" in fs[0]:
        ft = np.array([a["finetune_test_loss"] for a in fs])
        glob += "  fine-tuned %.4f (%.4f)" % (ft.mean(), ft.std(ddof=1))
    print("%-9s %.4f (%.4f)  %-8s %-12s %.2f%s" % (m, t.mean(), t.std(ddof=1), "-" if np.isnan(e) else "%.2f" % e,
                                                   "%.2f MB" % (up / 1e6), sim, glob))
PY
