#!/bin/bash
# studies.sh - the studies of docs/studies.md: CoMiGS, FedBiOT and HFedMoE, each in its
# paper's setting on the pretrained bases, each variant over several seeds. One run
# file per run (OUT/<study>/<name>.h5, its log beside it), then docs/studies/<study>.csv
# (jobs/studies-table.py: one row per run) and the plots of fedmoe-analyze compare
# (docs/studies/<study>/compare.png, compare.md).
#
#   jobs/studies.sh [options]
#
# Options:
#   -j N                 runs at once, locally (default: the cores / the ranks of a run)
#   --seeds "S..."       seeds of every variant (default "1 2 3 4 5")
#   --study "S..."       studies to run: comigs fedbiot hfedmoe (default all three)
#   --bases DIR          the pretrained bases: DIR/dense (a dense model) and DIR/moe-top1
#                        (an MoE model with top-1 gating), Hugging Face folders; default
#                        $FEDMOE_BASES, else the cache of `make bases` when it holds both
#                        ($FEDMOE_CACHE/bases, else ${XDG_CACHE_HOME:-~/.cache}/fedmoe/bases);
#                        none there: stand-ins are trained first into OUT/bases
#                        (examples/studies/standin-*.ini; docs/studies.md says which base
#                        its figures come from)
#   --dense DIR, --moe DIR   one base each (instead of --bases)
#   -o, --output OUT     run folder (default runs/studies)
#   --docs DIR           where the CSV files and plots go (default docs/studies)
#   --ranks P            ranks per run, the server included (default 2)
#   --set KEY=VALUE      one more fedmoe --set for every run (repeatable)
#   --slurm              submit one Slurm job array (a task per run, --ntasks=P) and a job
#                        that makes the tables and plots once the array succeeded
#   --emit               print the runs (one fedmoe command a line) and exit
#   --tables-only        make the tables and plots from the run files there, run nothing
#   -n, --dry-run        print what would be run, run nothing
# Programs: FEDMOE (default ./fedmoe of this checkout, else fedmoe on PATH),
# FEDMOE_ANALYZE, MPIEXEC (mpirun), MPIEXEC_FLAGS (default --oversubscribe --bind-to
# none: concurrent runs must not share the cores MPI would bind them to), PYTHON
# (/usr/bin/python3), FEDMOE_SBATCH_FLAGS (more sbatch options).
# Local mode prints one line per run and the total time; it goes on after a failed run
# and exits 1 if any failed. A run whose run file is complete is not run again
# (delete OUT to start over).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
usage() { sed -n '2,37p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "studies.sh: $*" >&2; exit 2; }

jobs_n= seeds="1 2 3 4 5" studies="comigs fedbiot hfedmoe" bases=${FEDMOE_BASES:-} dense= moe=
out=runs/studies docs=$top/docs/studies ranks=2 mode=local dry=0 sets=() tables_only=0
while [ $# -gt 0 ]; do
  case $1 in
    -j) [ $# -ge 2 ] || die "$1 needs a value"; jobs_n=$2; shift ;;
    -j*) jobs_n=${1#-j} ;;
    --seeds) [ $# -ge 2 ] || die "$1 needs a value"; seeds=$2; shift ;;
    --study) [ $# -ge 2 ] || die "$1 needs a value"; studies=$2; shift ;;
    --bases) [ $# -ge 2 ] || die "$1 needs a value"; bases=$2; shift ;;
    --dense) [ $# -ge 2 ] || die "$1 needs a value"; dense=$2; shift ;;
    --moe) [ $# -ge 2 ] || die "$1 needs a value"; moe=$2; shift ;;
    -o|--output) [ $# -ge 2 ] || die "$1 needs a value"; out=$2; shift ;;
    --docs) [ $# -ge 2 ] || die "$1 needs a value"; docs=$2; shift ;;
    --ranks) [ $# -ge 2 ] || die "$1 needs a value"; ranks=$2; shift ;;
    --set) [ $# -ge 2 ] || die "$1 needs a value"; sets+=(--set "$2"); shift ;;
    --slurm) mode=slurm ;;
    --emit) mode=emit ;;
    --tables-only) tables_only=1 ;;
    -n|--dry-run) dry=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (jobs/studies.sh --help)" ;;
  esac
  shift
done
isint() { case $1 in ''|*[!0-9]*) return 1 ;; esac; }
cores=$(nproc 2>/dev/null || echo 2)
isint "$ranks" && [ "$ranks" -ge 2 ] || die "--ranks '$ranks': need an integer >= 2 (rank 0 is the server)"
jobs_n=${jobs_n:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}
isint "$jobs_n" && [ "$jobs_n" -ge 1 ] || die "-j '$jobs_n': need an integer >= 1"
[ -n "$seeds" ] || die "no seeds"
for s in $seeds; do isint "$s" || die "seed '$s': need integers >= 0"; done
for s in $studies; do case $s in comigs|fedbiot|hfedmoe) ;; *) die "unknown study '$s' (comigs, fedbiot, hfedmoe)" ;; esac; done
if [ -z "${FEDMOE:-}" ]; then
  if [ -x "$top/fedmoe" ]; then FEDMOE=$top/fedmoe; elif command -v fedmoe >/dev/null 2>&1; then FEDMOE=fedmoe
  else die "no fedmoe: build it (make) or set FEDMOE"; fi
fi
analyzer=${FEDMOE_ANALYZE:-}
if [ -z "$analyzer" ]; then
  if [ -x "$top/analysis/fedmoe-analyze" ]; then analyzer=$top/analysis/fedmoe-analyze
  else analyzer=fedmoe-analyze; fi
fi
python=${PYTHON:-/usr/bin/python3}
mpiexec=${MPIEXEC:-mpirun}
read -r -a mflags <<<"${MPIEXEC_FLAGS:---oversubscribe --bind-to none}"
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ex=$top/examples/studies
if [ -z "$bases" ] && [ -z "$dense$moe" ]; then # the bases `make bases` made, if any
  cache=${FEDMOE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fedmoe}/bases
  [ -f "$cache/dense/config.json" ] && [ -f "$cache/moe-top1/config.json" ] && bases=$cache
fi
[ -z "$bases" ] || { dense=${dense:-$bases/dense}; moe=${moe:-$bases/moe-top1}; }

# ---- the stand-in bases, when none is given ----
standin() { # standin NAME INI: train INI centrally and export it into OUT/bases/NAME
  local name=$1 ini=$2 dir=$out/bases
  [ -f "$dir/$name/config.json" ] && { echo "studies: stand-in base $dir/$name already there"; return 0; }
  echo "studies: no $name base given: training the stand-in $ini into $dir/$name"
  [ "$dry" = 1 ] && return 0
  mkdir -p "$dir" || return 1
  "$mpiexec" "${mflags[@]}" -np 2 "$FEDMOE" run "$ini" -q --overwrite --set "run.output=$dir/$name.h5" \
    >"$dir/$name.log" 2>&1 && "$mpiexec" "${mflags[@]}" -np 1 "$FEDMOE" export --checkpoint "$dir/$name.h5" \
    --overwrite "$dir/$name" >>"$dir/$name.log" 2>&1 || { tail -5 "$dir/$name.log" >&2; return 1; }
  grep "^final" "$dir/$name.log"
}
t_start=$(date +%s)
if [ "$tables_only" = 1 ]; then # the bases' paths only name the runs: nothing is trained
  dense=${dense:-$out/bases/dense} moe=${moe:-$out/bases/moe-top1}
fi
case " $studies " in *" comigs "*|*" fedbiot "*)
  if [ -z "$dense" ]; then standin dense "$ex/standin-dense.ini" || die "the stand-in dense base failed"; dense=$out/bases/dense; fi ;;
esac
case " $studies " in *" hfedmoe "*)
  if [ -z "$moe" ]; then standin moe-top1 "$ex/standin-moe.ini" || die "the stand-in MoE base failed"; moe=$out/bases/moe-top1; fi ;;
esac
for b in ${dense:+"$dense"} ${moe:+"$moe"}; do
  [ "$dry" = 1 ] || [ -f "$b/config.json" ] || die "base '$b': no config.json there (a Hugging Face folder; make bases)"
done

# a run is not run again when its run file is complete: never one of other bases
if [ "$mode" != emit ] && [ "$dry" = 0 ]; then
  mkdir -p "$out" || die "cannot create $out"
  used="dense=$dense moe=$moe"
  if [ -f "$out/bases.txt" ] && [ "$(cat "$out/bases.txt")" != "$used" ] && [ "$tables_only" = 0 ]; then
    die "$out holds runs of other bases ($(cat "$out/bases.txt")), not $used: delete it or give another -o"
  fi
  [ "$tables_only" = 1 ] || echo "$used" >"$out/bases.txt"
fi

# ---- the runs: NAME STUDY STRATEGY VARIANT SEED then the fedmoe run arguments ----
list=()
add() { # add STUDY STRATEGY VARIANT INI [--set ...]: one run per seed
  local study=$1 strategy=$2 variant=$3 ini=$4 s; shift 4
  for s in $seeds; do
    list+=("$study-$strategy-$variant-s$s|$study|$strategy|$variant|$s|$ini --set run.seed=$s $*")
  done
}
for st in $studies; do
  case $st in
    comigs)
      b="--set model.init=$dense" spec="--set model.experts=3 --set comigs.specialists=1,2"
      add comigs comigs val-router "$ex/comigs.ini" $b
      add comigs comigs train-router "$ex/comigs.ini" $b --set comigs.router_data=train
      add comigs comigs val-router-spec1-2 "$ex/comigs.ini" $b $spec
      add comigs comigs train-router-spec1-2 "$ex/comigs.ini" $b $spec --set comigs.router_data=train
      add comigs local baseline "$ex/comigs.ini" $b --set fl.strategy=local
      add comigs fedavg baseline "$ex/comigs.ini" $b --set fl.strategy=fedavg ;;
    fedbiot)
      b="--set model.init=$dense"
      for beta in 0.2 0.5; do
        keep=$(awk -v b=$beta 'BEGIN { print 1 - b }')
        add fedbiot fedbiot full-beta$beta "$ex/fedbiot.ini" $b --set fedbiot.keep=$keep
        add fedbiot fedbiot offsite-beta$beta "$ex/fedbiot.ini" $b --set fedbiot.keep=$keep --set fedbiot.align_steps=0
      done
      add fedbiot fedavg baseline "$ex/fedbiot.ini" $b --set fl.strategy=fedavg ;;
    hfedmoe)
      b="--set model.init=$moe"
      add hfedmoe hfedmoe ib "$ex/hfedmoe.ini" $b
      add hfedmoe hfedmoe random "$ex/hfedmoe.ini" $b --set hfedmoe.select=random
      add hfedmoe hfedmoe usage "$ex/hfedmoe.ini" $b --set hfedmoe.select=usage
      add hfedmoe fedavg unrestricted "$ex/hfedmoe.ini" $b --set fl.strategy=fedavg ;;
  esac
done
command_of() { # the fedmoe command of list entry $1
  local name study args
  IFS='|' read -r name study _ _ _ args <<<"$1"
  echo "$mpiexec ${mflags[*]} -np $ranks $FEDMOE run $args ${sets[*]} -q --overwrite --set run.output=$out/$study/$name.h5"
}
if [ "$mode" = emit ]; then
  for e in "${list[@]}"; do command_of "$e"; done
  exit 0
fi
manifest() { # OUT/manifest.csv: what each run file is, for studies-table.py
  mkdir -p "$out" || die "cannot create $out"
  { echo "name,study,strategy,variant,seed,file"
    for e in "${list[@]}"; do
      IFS='|' read -r name study strategy variant seed _ <<<"$e"
      echo "$name,$study,$strategy,$variant,$seed,$out/$study/$name.h5"
    done; } >"$out/manifest.csv"
}
tables() { # the CSV files and the plots from the run files
  local st
  mkdir -p "$docs" || return 1
  "$python" "$here/studies-table.py" --manifest "$out/manifest.csv" --docs "$docs" || return 1
  for st in $studies; do
    local files=() vary
    while IFS=, read -r _ study _ _ _ file; do [ "$study" = "$st" ] && [ -s "$file" ] && files+=("$file"); done \
      < <(tail -n +2 "$out/manifest.csv")
    [ ${#files[@]} -gt 0 ] || continue
    case $st in
      comigs) vary=comigs.router_data,comigs.specialists,model.experts ;;
      fedbiot) vary=fedbiot.keep,fedbiot.align_steps ;;
      hfedmoe) vary=hfedmoe.select ;;
    esac
    local target
    target=$(awk -F, -v s="$st" 'NR > 1 && $1 == s { print $7; exit }' "$docs/$st.csv")
    mkdir -p "$docs/$st"
    "$analyzer" compare -o "$docs/$st" --vary "$vary" ${target:+--target "$target"} "${files[@]}" \
      >"$docs/$st/compare.md" 2>"$docs/$st/compare.err" || { cat "$docs/$st/compare.err" >&2; return 1; }
    echo "studies: $docs/$st.csv, $docs/$st/compare.md, $docs/$st/compare.png"
  done
}

if [ "$mode" = slurm ]; then
  [ "$dry" = 1 ] || command -v sbatch >/dev/null 2>&1 || die "--slurm: no sbatch on PATH"
  manifest
  printf '%s\n' "${list[@]}" | while read -r e; do command_of "$e"; done >"$out/commands"
  for st in $studies; do mkdir -p "$out/$st"; done
  n=${#list[@]}
  if [ "$dry" = 1 ]; then echo "sbatch --array=1-$n --ntasks=$ranks $here/slurm/studies.sbatch $out/commands"; exit 0; fi
  # shellcheck disable=SC2086
  arr=$(sbatch --parsable --export=ALL --array=1-"$n" --ntasks="$ranks" --job-name=fedmoe-studies \
    --output="$out/slurm-%A_%a.out" ${FEDMOE_SBATCH_FLAGS:-} "$here/slurm/studies.sbatch" "$out/commands") \
    || die "sbatch of the array failed"
  fin=$(sbatch --parsable --export=ALL --dependency=afterok:"${arr%%;*}" --ntasks=1 --job-name=fedmoe-studies-tables \
    --output="$out/tables-%j.out" --wrap "$(printf '%q ' "$0" --study "$studies" --seeds "$seeds" -o "$out" \
    --docs "$docs" --dense "$dense" --moe "$moe") --tables-only") || die "sbatch of the tables job failed"
  echo "studies: array ${arr%%;*} ($n runs), tables job ${fin%%;*}; run files in $out, tables in $docs"
  exit 0
fi

if [ "$tables_only" = 1 ]; then manifest; tables; exit $?; fi

# ---- local: N runs at once ----
manifest
for st in $studies; do mkdir -p "$out/$st"; done
failed=0 done_n=0
one() { # one ENTRY: run it, print one line
  local e=$1 name study cmd t0 ms rc
  IFS='|' read -r name study _ _ _ _ <<<"$e"
  local file=$out/$study/$name.h5
  if [ -s "$file" ] && grep -q "^final" "$out/$study/$name.log" 2>/dev/null; then
    echo "studies: $name already done"; return 0
  fi
  cmd=$(command_of "$e")
  [ "$dry" = 1 ] && { echo "$cmd"; return 0; }
  t0=$(date +%s%N)
  # shellcheck disable=SC2086
  $cmd >"$out/$study/$name.log" 2>&1 </dev/null # mpirun would read the script's stdin
  rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ $rc -eq 0 ] && [ -s "$file" ]; then
    printf 'studies: %-44s ok   %4d.%01d s  %s\n' "$name" $((ms / 1000)) $((ms % 1000 / 100)) \
      "$(grep '^final' "$out/$study/$name.log" | sed 's/ nats.*//; s/^final //')"
  else
    printf 'studies: %-44s FAIL rc=%d (%s)\n' "$name" "$rc" "$out/$study/$name.log" >&2
    tail -3 "$out/$study/$name.log" >&2
    return 1
  fi
}
echo "studies: ${#list[@]} runs ($studies; seeds $seeds), $jobs_n at once, $ranks ranks each; bases: dense ${dense:-none}, MoE ${moe:-none}"
for e in "${list[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_n" ]; do wait -n || failed=$((failed + 1)); done
  one "$e" &
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=$((failed + 1)); done
[ "$dry" = 1 ] && exit 0
tables || failed=$((failed + 1))
t=$(( $(date +%s) - t_start ))
echo "studies: total $((t / 60)) min $((t % 60)) s for ${#list[@]} runs ($jobs_n at once on $cores cores)"
[ $failed -eq 0 ] || { echo "studies: $failed run(s) or steps failed" >&2; exit 1; }
