#!/bin/sh
# submit-sweep.sh - submit a client-count sweep (sweep.sbatch as a job array, one task
# per client count) and the analysis job that runs once all of them succeeded
# (analyze.sbatch, --dependency=afterok). Prints the two job ids.
#
#   jobs/slurm/submit-sweep.sh CONFIG [fedmoe run options...]
#
# Environment (optional):
#   FEDMOE_CLIENTS    client counts (default "8 16 32 64 128 256 512 1024")
#   FEDMOE_SWEEP_DIR  the sweep folder (default: sweep-<date>-<pid>)
#   FEDMOE_SBATCH_FLAGS extra sbatch options for the array (e.g. "--ntasks=17 --time=4:00:00")
#   FEDMOE, FEDMOE_ANALYZE, FEDMOE_LAUNCHER, ...: passed to the jobs (--export=ALL)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
config=$1
[ -r "$config" ] || { echo "submit-sweep.sh: cannot read the configuration '$config'" >&2; exit 2; }
FEDMOE_CLIENTS=${FEDMOE_CLIENTS:-8 16 32 64 128 256 512 1024}
FEDMOE_SWEEP_DIR=${FEDMOE_SWEEP_DIR:-sweep-$(date +%Y%m%d-%H%M%S)-$$}
export FEDMOE_CLIENTS FEDMOE_SWEEP_DIR
n=$(echo $FEDMOE_CLIENTS | wc -w)
mkdir -p "$FEDMOE_SWEEP_DIR"
# shellcheck disable=SC2086
array=$(sbatch --parsable --export=ALL --array=0-$((n - 1)) ${FEDMOE_SBATCH_FLAGS:-} \
  --output="$FEDMOE_SWEEP_DIR/sweep-%A_%a.out" "$here/sweep.sbatch" "$@")
array=${array%%;*}
analysis=$(sbatch --parsable --export=ALL --dependency=afterok:"$array" \
  --output="$FEDMOE_SWEEP_DIR/analyze-%j.out" "$here/analyze.sbatch" "$FEDMOE_SWEEP_DIR")
analysis=${analysis%%;*}
echo "sweep: array job $array ($n client counts: $FEDMOE_CLIENTS), analysis job $analysis"
echo "run files and plots: $FEDMOE_SWEEP_DIR/"
echo "$array $analysis" >"$FEDMOE_SWEEP_DIR/jobs"
