#!/bin/bash
# sweep.sh - a scaling sweep over rank counts and client counts: one fedmoe run per
# point (P ranks, N clients), one run file each, DIR/p<P>/sweep-n<N>.h5.
#
#   jobs/sweep.sh [--local | --slurm] [options] CONFIG [fedmoe run options...]
#
# Under Slurm (--slurm, the default when sbatch is on PATH) each rank count is one job
# array of jobs/slurm/sweep.sbatch (one task per client count, --ntasks=P), submitted
# through jobs/slurm/submit-sweep.sh (which adds the per-P analysis job), then one
# job that draws DIR/plots from every point once all arrays succeeded. With no
# scheduler (--local) the points run one after the other through MPIEXEC, and
# --analyze draws DIR/plots at the end.
#
# Options (or environment variables):
#   --ranks "P..."          FEDMOE_RANKS      rank counts, server included (default "3")
#   --clients "N..."        FEDMOE_CLIENTS    client counts (default "8 16 32 64")
#   --per-host K            FEDMOE_PER_HOST   weak scaling: N = K x (P-1) for each P,
#                                             instead of --clients
#   --strategy S            FEDMOE_STRATEGY   fl.strategy (default: the config's)
#   --rounds R              FEDMOE_ROUNDS     fl.rounds (default: the config's)
#   --set KEY=VALUE         FEDMOE_SET        more fedmoe --set options (repeatable; the
#                                             variable: space-separated KEY=VALUE words)
#   -o, --output DIR        FEDMOE_SWEEP_DIR  the sweep folder (default sweep-<date>-<pid>)
#   --analyze               FEDMOE_ANALYZE_AT_END=1  local: fedmoe-analyze scaling at the end
#   --x clients|ranks|auto  FEDMOE_X          x axis of the final plots (default auto)
#   --timeout S             FEDMOE_TIMEOUT    local: seconds per point (default: none)
#   --verbose               FEDMOE_VERBOSE=1  fedmoe without -q (the resolved configuration
#                                             in the logs too; round lines and phase table are there anyway)
#   -n, --dry-run                             print the commands, run nothing
# Programs: FEDMOE (default: fedmoe on PATH, or ./fedmoe), FEDMOE_ANALYZE
# (fedmoe-analyze on PATH, or the build tree's), MPIEXEC (mpirun) and MPIEXEC_FLAGS (local mode), and for Slurm
# FEDMOE_SBATCH_FLAGS (more sbatch options for every array, e.g. "--time=1:00:00").
# Under Slurm the runs are quiet (sweep.sbatch passes -q). Local mode writes each point's output to DIR/p<P>/sweep-n<N>.log and prints one line
# per point; it goes on after a failed point and exits 1 if any failed.
# Examples (docs/scaling.md):
#   jobs/sweep.sh --local --ranks "2 3 5 9 16" --per-host 8 -o weak examples/demo.ini
#   jobs/sweep.sh --slurm --ranks 16 --clients "16 100 1000 10000" --strategy comigs \
#     --set fl.sample_count=30 --set fl.final_eval=sampled --set data.allow_overlap=true examples/demo.ini
#   (10,000 clients of demo.ini ask for more text than the corpus holds: data.allow_overlap)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '2,38p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "sweep.sh: $*" >&2; exit 2; }

mode=
ranks=${FEDMOE_RANKS:-3}
clients=${FEDMOE_CLIENTS:-8 16 32 64}
per_host=${FEDMOE_PER_HOST:-}
strategy=${FEDMOE_STRATEGY:-}
rounds=${FEDMOE_ROUNDS:-}
dir=${FEDMOE_SWEEP_DIR:-}
analyze=${FEDMOE_ANALYZE_AT_END:-0}
xaxis=${FEDMOE_X:-auto}
limit=${FEDMOE_TIMEOUT:-}
dry=0
quiet=-q
[ "${FEDMOE_VERBOSE:-0}" = 0 ] || quiet=
sets=()
for kv in ${FEDMOE_SET:-}; do sets+=(--set "$kv"); done
while [ $# -gt 0 ]; do
  case $1 in
    --local) mode=local ;;
    --slurm) mode=slurm ;;
    --ranks) [ $# -ge 2 ] || die "$1 needs a value"; ranks=$2; shift ;;
    --clients) [ $# -ge 2 ] || die "$1 needs a value"; clients=$2; shift ;;
    --per-host) [ $# -ge 2 ] || die "$1 needs a value"; per_host=$2; shift ;;
    --strategy) [ $# -ge 2 ] || die "$1 needs a value"; strategy=$2; shift ;;
    --rounds) [ $# -ge 2 ] || die "$1 needs a value"; rounds=$2; shift ;;
    --set) [ $# -ge 2 ] || die "$1 needs a value"; sets+=(--set "$2"); shift ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a value"; dir=$2; shift ;;
    --analyze) analyze=1 ;;
    --x) [ $# -ge 2 ] || die "$1 needs a value"; xaxis=$2; shift ;;
    --timeout) [ $# -ge 2 ] || die "$1 needs a value"; limit=$2; shift ;;
    --verbose) quiet= ;;
    -n|--dry-run) dry=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) die "unknown option '$1' (jobs/sweep.sh --help)" ;;
    *) break ;;
  esac
  shift
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
config=$1; shift
[ -r "$config" ] || die "cannot read the configuration '$config'"
case $xaxis in auto|clients|ranks) ;; *) die "--x must be clients, ranks or auto" ;; esac
isint() { case $1 in ''|*[!0-9]*) return 1 ;; esac; }
for p in $ranks; do isint "$p" && [ "$p" -ge 2 ] || die "rank count '$p': need integers >= 2 (rank 0 is the server)"; done
[ -n "$ranks" ] || die "no rank counts"
if [ -n "$per_host" ]; then
  isint "$per_host" && [ "$per_host" -ge 1 ] || die "--per-host '$per_host': need an integer >= 1"
else
  [ -n "$clients" ] || die "no client counts"
  for n in $clients; do isint "$n" && [ "$n" -ge 1 ] || die "client count '$n': need integers >= 1"; done
fi
[ -z "$limit" ] || isint "$limit" || die "--timeout '$limit': need seconds"
if [ -z "$mode" ]; then
  if command -v sbatch >/dev/null 2>&1; then mode=slurm; else mode=local; fi
fi
dir=${dir:-sweep-$(date +%Y%m%d-%H%M%S)-$$}
[ -z "$strategy" ] || sets+=(--set "fl.strategy=$strategy")
[ -z "$rounds" ] || sets+=(--set "fl.rounds=$rounds")
points_of() { # the client counts of rank count $1
  if [ -n "$per_host" ]; then echo $((per_host * ($1 - 1))); else echo $clients; fi
}
if [ -z "${FEDMOE:-}" ]; then
  if command -v fedmoe >/dev/null 2>&1; then FEDMOE=fedmoe; else FEDMOE=./fedmoe; fi
fi
export FEDMOE
analyzer=${FEDMOE_ANALYZE:-}
if [ -z "$analyzer" ]; then
  if command -v fedmoe-analyze >/dev/null 2>&1; then analyzer=fedmoe-analyze
  else analyzer=$here/../analysis/fedmoe-analyze; fi # the build tree's
fi
run() { if [ "$dry" = 1 ]; then printf '%q ' "$@"; echo; else "$@"; fi; }

if [ "$mode" = slurm ]; then
  [ "$dry" = 1 ] || command -v sbatch >/dev/null 2>&1 || die "--slurm: no sbatch on PATH (use --local)"
  run mkdir -p "$dir"
  arrays=()
  for p in $ranks; do
    # one array per rank count: every task of an array has the same --ntasks
    if [ "$dry" = 1 ]; then
      echo "FEDMOE_CLIENTS='$(points_of "$p")' FEDMOE_SWEEP_DIR='$dir/p$p'" \
        "FEDMOE_SBATCH_FLAGS='--ntasks=$p ${FEDMOE_SBATCH_FLAGS:-}' $here/slurm/submit-sweep.sh $config ${sets[*]} $*"
      continue
    fi
    FEDMOE_CLIENTS=$(points_of "$p") FEDMOE_SWEEP_DIR=$dir/p$p \
      FEDMOE_SBATCH_FLAGS="--ntasks=$p ${FEDMOE_SBATCH_FLAGS:-}" \
      "$here/slurm/submit-sweep.sh" "$config" "${sets[@]}" "$@" || die "submitting P=$p failed"
    read -r a _ <"$dir/p$p/jobs" || die "no job ids in $dir/p$p/jobs"
    arrays+=("$a")
  done
  [ "$dry" = 1 ] && exit 0
  dep=$(IFS=:; echo "${arrays[*]}")
  final=$(sbatch --parsable --export=ALL --dependency=afterok:"$dep" --ntasks=1 --time=00:30:00 \
    --job-name=fedmoe-scaling --output="$dir/scaling-%j.out" \
    --wrap "$(printf '%q ' "$analyzer" scaling --x "$xaxis" --skip-first -o "$dir/plots") $dir/p*/sweep-n*.h5")
  echo "sweep: arrays ${arrays[*]} (one per rank count: $ranks); all-points analysis job ${final%%;*}"
  echo "run files: $dir/p<P>/sweep-n<N>.h5, plots: $dir/plots"
  exit 0
fi

# local: consecutive mpirun calls
mpiexec=${MPIEXEC:-mpirun}
read -r -a mflags <<<"${MPIEXEC_FLAGS:-}"
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmo=()
[ -z "$limit" ] || tmo=(timeout -k 10 "$limit")
run mkdir -p "$dir"
failed=0 files=()
for p in $ranks; do
  run mkdir -p "$dir/p$p"
  for n in $(points_of "$p"); do
    out=$dir/p$p/sweep-n$n.h5
    # --overwrite: a sweep run again into its folder computes each point again
    cmd=("${tmo[@]}" "$mpiexec" "${mflags[@]}" -np "$p" "$FEDMOE" run "$config" ${quiet:+"$quiet"} --overwrite --set "fl.clients=$n"
         "${sets[@]}" "$@" --set "run.output=$out")
    if [ "$dry" = 1 ]; then run "${cmd[@]}"; continue; fi
    t0=$(date +%s%N)
    "${cmd[@]}" >"$dir/p$p/sweep-n$n.log" 2>&1
    rc=$?
    t1=$(date +%s%N)
    if [ $rc -eq 0 ] && [ -s "$out" ]; then
      files+=("$out")
      ms=$(( (t1 - t0) / 1000000 ))
      printf 'sweep: P=%-3d N=%-6d ok   %4d.%03d s  %s\n' "$p" "$n" $((ms / 1000)) $((ms % 1000)) "$out"
    else
      failed=$((failed + 1))
      printf 'sweep: P=%-3d N=%-6d FAIL rc=%d (%s)\n' "$p" "$n" "$rc" "$dir/p$p/sweep-n$n.log" >&2
      grep -v pcompress "$dir/p$p/sweep-n$n.log" | tail -5 >&2
    fi
  done
done
[ "$dry" = 1 ] && exit 0
if [ "$analyze" = 1 ] && [ ${#files[@]} -gt 0 ]; then
  "$analyzer" scaling --x "$xaxis" --skip-first -o "$dir/plots" "${files[@]}" || failed=$((failed + 1))
fi
[ $failed -eq 0 ] || { echo "sweep: $failed point(s) failed" >&2; exit 1; }
echo "sweep: ${#files[@]} run files in $dir"
