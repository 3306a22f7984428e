#!/bin/sh
# jobs/studies.sh and jobs/studies-table.py: the run list (every variant of every study
# once per seed, with its keys), refusals of bad options, the table's rows and figures
# against synthetic run files (fedbiot: a full-model and an emulator row per aligned
# run; the target loss and the rounds to it), and one study end to end on a tiny base.
. "${top_srcdir:-.}/tests/mpi/common.sh"
: "${top_builddir:=.}" "${PYTHON_H5PY:=/usr/bin/python3}"
export FEDMOE FEDMOE_ANALYZE="$top_builddir/analysis/fedmoe-analyze" MPLCONFIGDIR="$TMP/mpl"
S="$top_srcdir/jobs/studies.sh"
GEN="$PYTHON_H5PY $top_srcdir/tests/analysis/make_runfile.py"
mkdir -p "$TMP/d" "$TMP/m" && echo '{}' >"$TMP/d/config.json" && echo '{}' >"$TMP/m/config.json"
# 1. the run list: 15 runs a seed
bash "$S" --emit --seeds "1 2" --dense "$TMP/d" --moe "$TMP/m" -o "$TMP/r" >"$TMP/list" || fail "--emit"
[ "$(wc -l <"$TMP/list")" -eq 30 ] || { cat "$TMP/list"; fail "expected 30 runs for 2 seeds"; }
cnt() { grep -c -- "$1" "$TMP/list"; }
[ "$(cnt 'run.seed=2 ')" -eq 15 ] || fail "seed 2: not 15 runs"
[ "$(cnt 'comigs.router_data=train')" -eq 4 ] || fail "train-router runs"
[ "$(cnt 'comigs.specialists=1,2')" -eq 4 ] || fail "specialists per class"
[ "$(cnt 'fl.strategy=local')" -eq 2 ] || fail "local baseline"
[ "$(cnt 'fedbiot.keep=0.8')" -eq 4 ] && [ "$(cnt 'fedbiot.keep=0.5')" -eq 4 ] || fail "fedbiot betas"
[ "$(cnt 'fedbiot.align_steps=0')" -eq 4 ] || fail "offsite runs"
[ "$(cnt 'hfedmoe.select=random')" -eq 2 ] && [ "$(cnt 'hfedmoe.select=usage')" -eq 2 ] || fail "hfedmoe selections"
[ "$(cnt 'fl.strategy=fedavg')" -eq 6 ] || fail "fedavg baselines"
[ "$(cnt "model.init=$TMP/m ")" -eq 8 ] || fail "hfedmoe runs should start from the MoE base"
grep -q "run.output=$TMP/r/fedbiot/fedbiot-fedbiot-offsite-beta0.2-s1.h5" "$TMP/list" || fail "run file names"
echo "ok: the run list"
# 2. bad options
bad() { # bad PATTERN ARGS...: exit 2 naming the problem
  pat=$1; shift
  bash "$S" "$@" >"$TMP/out" 2>&1 && fail "studies.sh $* succeeded"
  grep -q -- "$pat" "$TMP/out" || { cat "$TMP/out"; fail "studies.sh $*: no message '$pat'"; }
  echo "ok: refused: $*"
}
bad "unknown study 'fedprox'" --emit --study fedprox --dense "$TMP/d" --moe "$TMP/m"
bad "base '$TMP/none': no config.json" --emit --dense "$TMP/none" --moe "$TMP/m"
bad "seed 'x'" --emit --seeds "1 x" --dense "$TMP/d" --moe "$TMP/m"
bad "\-j '0'" --emit -j 0 --dense "$TMP/d" --moe "$TMP/m"
# 3. the table from synthetic run files: 2 seeds of fedbiot (aligned, offsite) and fedavg
text=$top_srcdir/tests/fixtures/text
printf 'name,study,strategy,variant,seed,file\n' >"$TMP/manifest.csv"
for s in 1 2; do
  for v in full-beta0.2 offsite-beta0.2; do
    $GEN "$TMP/$v-$s.h5" --strategy fedbiot --seed $s --full-loss --data-path "$text" || fail "make_runfile.py"
    echo "$v-$s,fedbiot,fedbiot,$v,$s,$TMP/$v-$s.h5" >>"$TMP/manifest.csv"
  done
  $GEN "$TMP/fa-$s.h5" --strategy fedavg --seed $s --data-path "$text" || fail "make_runfile.py"
  echo "fa-$s,fedbiot,fedavg,baseline,$s,$TMP/fa-$s.h5" >>"$TMP/manifest.csv"
done
"$PYTHON_H5PY" "$top_srcdir/jobs/studies-table.py" --manifest "$TMP/manifest.csv" --docs "$TMP/docs" || fail "studies-table.py"
"$PYTHON_H5PY" - "$TMP/docs/fedbiot.csv" "$TMP" <<'PY' || fail "fedbiot.csv"
import csv, math, sys, h5py, numpy as np
rows = list(csv.DictReader(open(sys.argv[1])))
tmp = sys.argv[2]
assert list(rows[0])[:6] == ["study", "strategy", "variant", "seed", "final_test_loss", "rounds_to_target"], list(rows[0])
got = sorted((r["strategy"], r["variant"], r["seed"]) for r in rows)
want = sorted([("fedbiot", v, s) for v in ("full-beta0.2", "emulator-beta0.2", "offsite-beta0.2") for s in "12"]
              + [("fedavg", "baseline", s) for s in "12"])
assert got == want, got
def rounds(path):
    r = h5py.File(path, "r")["metrics/rounds"][()]
    return r[np.argsort(r["round"])]
# the target: fedavg's mean test loss after half of the 4 rounds, the mean over seeds
target = np.mean([rounds("%s/fa-%s.h5" % (tmp, s))["mean_test"][1] for s in "12"])
for r in rows:
    assert abs(float(r["target_loss"]) - target) < 1e-5, (r["target_loss"], target)
    f = {"full-beta0.2": ("full-beta0.2", "test_loss_full"), "emulator-beta0.2": ("full-beta0.2", "mean_test"),
         "offsite-beta0.2": ("offsite-beta0.2", "test_loss_full"), "baseline": ("fa", "mean_test")}[r["variant"]]
    rr = rounds("%s/%s-%s.h5" % (tmp, f[0], r["seed"]))
    y = rr[f[1]]
    assert abs(float(r["final_test_loss"]) - y[-1]) < 1e-5, (r, y[-1])
    hit = [int(x) for x, v in zip(rr["round"], y) if v <= target]
    assert r["rounds_to_target"] == (str(hit[0]) if hit else ""), (r["rounds_to_target"], hit)
    assert float(r["client_flops"]) > 0 and float(r["client_bytes_down"]) > 0
print("ok: fedbiot.csv: %d rows, target %.4f" % (len(rows), target))
PY
echo "ok: the table"
# 4. one study end to end on a tiny base: runs, table, compare plot, total time
. "$top_srcdir/tests/mpi/tiny.sh"
. "$top_srcdir/tests/mpi/base.sh"
make_base "$TMP/base" --set data.public_frac=0.3
small="--set fl.rounds=2 --set fl.local_steps=1 --set train.eval_batches=1 --set train.seq_len=16 --set fl.clients=4"
small="$small --set data.client_bytes=4096 --set fedbiot.align_steps=1"
# shellcheck disable=SC2086
bash "$S" -j 2 --study fedbiot --seeds "1 2" --dense "$TMP/base" -o "$TMP/runs" --docs "$TMP/sd" $small >"$TMP/out" 2>&1 \
  || { cat "$TMP/out"; tail -5 "$TMP"/runs/fedbiot/*.log; fail "studies.sh fedbiot"; }
cat "$TMP/out"
grep -q "^studies: total .* for 10 runs" "$TMP/out" || fail "no total time"
[ "$(wc -l <"$TMP/sd/fedbiot.csv")" -eq 15 ] || { cat "$TMP/sd/fedbiot.csv"; fail "fedbiot.csv: expected 14 rows"; }
[ -s "$TMP/sd/fedbiot/compare.png" ] && grep -q "Paired by seed" "$TMP/sd/fedbiot/compare.md" || fail "compare output"
! grep -q warning "$TMP/sd/fedbiot/compare.err" || { cat "$TMP/sd/fedbiot/compare.err"; fail "compare warned"; }
# the run folder holds runs of that base: another base is refused, not mixed in
bad "holds runs of other bases" -j 2 --study fedbiot --seeds "1 2" --dense "$TMP/d" -o "$TMP/runs" --docs "$TMP/sd"
echo "studies: all passed"
