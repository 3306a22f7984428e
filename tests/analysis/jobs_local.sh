#!/bin/sh
# The batch scripts of jobs/ run outside a scheduler (as `bash SCRIPT`, their defaults
# standing in for Slurm's and PBS's variables) on the runtime tests' tiny config:
# single run, sweep tasks and their analysis, PBS equivalents, and long.sbatch's
# resume from an existing run file. `make check-slurm` runs them under Slurm.
. "${top_srcdir:-.}/tests/mpi/common.sh"
[ -f "$top_srcdir/tests/mpi/tiny.sh" ] || { echo "SKIP: no tests/mpi/tiny.sh yet"; exit 77; }
. "$top_srcdir/tests/mpi/tiny.sh"
: "${top_builddir:=.}"
export FEDMOE FEDMOE_ANALYZE="$top_builddir/analysis/fedmoe-analyze" MPLCONFIGDIR="$TMP/mpl"
command -v bash >/dev/null || { echo "SKIP: no bash"; exit 77; }
J=$top_srcdir/jobs
small="--set data.min_domain_bytes=100"
cd "$TMP" || fail "cd $TMP"
job() { # job NAME SCRIPT ARGS...: run a batch script with bash, output in $TMP/NAME.out
  name=$1; shift
  timeout -k 5 120 bash "$@" >"$TMP/$name.out" 2>&1 || { cat "$TMP/$name.out"; fail "$name: $*"; }
}

FEDMOE_OUTPUT=$TMP/single.h5 job run "$J/slurm/run.sbatch" "$TMP/tiny.ini" -q $small
[ -s "$TMP/single.h5" ] || { cat "$TMP/run.out"; echo "SKIP: fedmoe run wrote no run file yet"; exit 77; }
grep -q "on 3 ranks x 1 threads" "$TMP/run.out" || fail "run.sbatch: not 3 ranks x 1 thread by default"
echo "ok: run.sbatch"

# without FEDMOE: the build tree the job was submitted from has ./fedmoe (make built
# it there; it is not on PATH); a copy of the script run elsewhere (as Slurm runs
# it) with no fedmoe anywhere says how to give it
abs_builddir=$(cd "$top_builddir" && pwd)
(unset FEDMOE; SLURM_SUBMIT_DIR=$abs_builddir FEDMOE_OUTPUT=$TMP/found.h5 \
  job found "$J/slurm/run.sbatch" "$TMP/tiny.ini" -q $small)
grep -q "($abs_builddir/fedmoe)" "$TMP/found.out" || { cat "$TMP/found.out"; fail "run.sbatch: not the build tree's fedmoe"; }
[ -s "$TMP/found.h5" ] || fail "run.sbatch with the build tree's fedmoe wrote no run file"
mkdir -p "$TMP/spool" "$TMP/elsewhere"
cp "$J/slurm/run.sbatch" "$J/slurm/analyze.sbatch" "$TMP/spool/"
mpibin=$(dirname "$(command -v "$MPIEXEC")")
(unset FEDMOE FEDMOE_ANALYZE; cd "$TMP/elsewhere" && PATH=$mpibin:/usr/bin:/bin \
  timeout 60 bash "$TMP/spool/run.sbatch" "$TMP/tiny.ini" >"$TMP/nofedmoe.out" 2>&1) \
  && fail "run.sbatch without any fedmoe exited 0"
grep -q "run.sbatch: cannot find fedmoe: set FEDMOE=" "$TMP/nofedmoe.out" || { cat "$TMP/nofedmoe.out"; fail "run.sbatch: no advice"; }
(unset FEDMOE FEDMOE_ANALYZE; cd "$TMP/elsewhere" && PATH=$mpibin:/usr/bin:/bin \
  timeout 60 bash "$TMP/spool/analyze.sbatch" "$TMP" >"$TMP/noanalyze.out" 2>&1) \
  && fail "analyze.sbatch without any fedmoe-analyze exited 0"
grep -q "analyze.sbatch: cannot find fedmoe-analyze: set FEDMOE_ANALYZE=" "$TMP/noanalyze.out" \
  || { cat "$TMP/noanalyze.out"; fail "analyze.sbatch: no advice"; }
echo "ok: run.sbatch and analyze.sbatch find the build tree's programs, or say how to give them"

for t in 0 1; do
  SLURM_ARRAY_TASK_ID=$t FEDMOE_CLIENTS="4 6" FEDMOE_SWEEP_DIR=$TMP/sweep \
    job sweep$t "$J/slurm/sweep.sbatch" "$TMP/tiny.ini" $small
done
job analyze "$J/slurm/analyze.sbatch" "$TMP/sweep"
for f in sweep-n4.h5 sweep-n6.h5 plots/scaling.png plots/curves.png; do
  [ -s "$TMP/sweep/$f" ] || fail "sweep: $f missing or empty"
done
echo "ok: sweep.sbatch tasks and analyze.sbatch"

CONFIG=$TMP/tiny.ini FEDMOE_OUTPUT=$TMP/pbs.h5 FEDMOE_ARGS="-q $small" job run_pbs "$J/pbs/run.pbs"
[ -s "$TMP/pbs.h5" ] || fail "run.pbs wrote no run file"
for t in 0 1; do
  PBS_ARRAY_INDEX=$t CONFIG=$TMP/tiny.ini FEDMOE_CLIENTS="4 6" FEDMOE_SWEEP_DIR=$TMP/psweep \
    FEDMOE_ARGS="$small" job psweep$t "$J/pbs/sweep.pbs"
done
FEDMOE_ANALYZE_ONLY=1 FEDMOE_SWEEP_DIR=$TMP/psweep job panalyze "$J/pbs/sweep.pbs"
[ -s "$TMP/psweep/plots/scaling.png" ] || fail "sweep.pbs: no scaling plot"
echo "ok: run.pbs, sweep.pbs"

# long.sbatch: a first job stopped after 2 of 4 rounds (as by its time limit), then a
# "requeued" one continues to 4 (the same configuration: --resume refuses another)
FEDMOE_OUTPUT=$TMP/long.h5 FEDMOE_CHECKPOINT_EVERY=1 job long1 "$J/slurm/long.sbatch" "$TMP/tiny.ini" -q $small \
  --set fl.rounds=4 --set run.stop_after=2
grep -q "starting" "$TMP/long1.out" || fail "long.sbatch: did not start a new run"
FEDMOE_OUTPUT=$TMP/long.h5 FEDMOE_CHECKPOINT_EVERY=1 job long2 "$J/slurm/long.sbatch" "$TMP/tiny.ini" -q $small \
  --set fl.rounds=4
grep -q "resuming from" "$TMP/long2.out" || { cat "$TMP/long2.out"; fail "long.sbatch: did not resume"; }
"$FEDMOE_ANALYZE" compare -o "$TMP/lc" "$TMP/long.h5" | grep -q "round 4" || fail "long.h5 does not end at round 4"
echo "ok: long.sbatch resumes"
# gpu.sbatch: its checks of its own input, and a run that this CPU node must refuse
# (no GPU here: fedmoe says so, or that the build has no CUDA) with a non-zero exit
FEDMOE_PRECISION=fp16 timeout 60 bash "$J/slurm/gpu.sbatch" "$TMP/tiny.ini" >"$TMP/gpuprec.out" 2>&1 \
  && fail "gpu.sbatch with FEDMOE_PRECISION=fp16 exited 0"
grep -q "FEDMOE_PRECISION must be fp32, tf32 or bf16, not 'fp16'" "$TMP/gpuprec.out" \
  || { cat "$TMP/gpuprec.out"; fail "gpu.sbatch: no message for a bad precision"; }
FEDMOE_DEVICE_STATE_MB=lots timeout 60 bash "$J/slurm/gpu.sbatch" "$TMP/tiny.ini" >"$TMP/gpustate.out" 2>&1 \
  && fail "gpu.sbatch with FEDMOE_DEVICE_STATE_MB=lots exited 0"
grep -q "FEDMOE_DEVICE_STATE_MB must be -1 or a number of MiB, not 'lots'" "$TMP/gpustate.out" \
  || { cat "$TMP/gpustate.out"; fail "gpu.sbatch: no message for a bad FEDMOE_DEVICE_STATE_MB"; }
if ! command -v nvidia-smi >/dev/null; then
  FEDMOE_OUTPUT=$TMP/gpu.h5 SLURM_CPUS_PER_TASK=1 timeout -k 5 120 bash "$J/slurm/gpu.sbatch" "$TMP/tiny.ini" -q $small \
    >"$TMP/gpu.out" 2>&1 && { cat "$TMP/gpu.out"; fail "gpu.sbatch on a node without a GPU exited 0"; }
  grep -q "fedmoe GPU job .* on 2 ranks" "$TMP/gpu.out" || { cat "$TMP/gpu.out"; fail "gpu.sbatch: no banner"; }
  grep -q "run.device" "$TMP/gpu.out" || { cat "$TMP/gpu.out"; fail "gpu.sbatch: the refusal does not name run.device"; }
  echo "ok: gpu.sbatch checks its input; a node without a GPU is refused"
fi
echo "jobs_local: all passed"
