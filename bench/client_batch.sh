#!/bin/sh
# client_batch.sh - the speed-up of run.client_batch (a benchmark: figures, not a
# test) on the federated LoRA round of bench/fedround.sh: 16 clients x 10 local steps
# of 8 x 128 tokens, rank-8 attention LoRA on a frozen GPT-2-124M-shaped base, bf16 on
# one GPU, all 16 clients on one host rank (--layouts 2), trained 1, 4 and 16 at once.
#
#   bench/client_batch.sh [--batches "1 4 16"] [--out DIR] [fedround.sh options ...]
#
# Runs fedround.sh once per client_batch (its options pass on: --fedmoe, --rounds,
# --small to check this script on the CPU, --set ...), keeps each run's folder under
# DIR/cbN, and prints seconds per round (fedround.sh's median over the timed rounds)
# and the speed-up over the first client_batch.
set -u
here=$(cd "$(dirname "$0")" && pwd)
batches="1 4 16" out=""
die() { echo "client_batch.sh: $*" >&2; exit 2; }
[ -x "$here/fedround.sh" ] || die "needs bench/fedround.sh (the federated-round benchmark) beside it"
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
pass="" # the options for fedround.sh, quoted
while [ $# -gt 0 ]; do
  case $1 in
    --batches) [ $# -ge 2 ] || die "--batches needs a value"; batches=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) pass="$pass $(quote "$1")"; shift ;;
  esac
done
eval "set -- $pass"
for n in $batches; do
  case $n in ''|*[!0-9]*|0) die "--batches: '$n' is not a positive client count" ;; esac
done
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/client_batch.XXXXXX") || die "cannot make a folder"
mkdir -p "$out" || die "cannot make $out"
summary="" first="" status=0
for n in $batches; do
  "$here/fedround.sh" --layouts 2 --out "$out/cb$n" "$@" --set run.client_batch=$n 2>&1 | tee "$out/cb$n.log"
  line=$(grep "^fedround.sh: 2 ranks: [0-9.]* s/round" "$out/cb$n.log" | tail -1)
  s=$(printf '%s\n' "$line" | sed -n 's/^fedround.sh: 2 ranks: \([0-9.]*\) s\/round.*/\1/p')
  if [ -z "$s" ]; then
    summary="$summary  client_batch $n: FAILED (see $out/cb$n.log)\n"
    status=1
    continue
  fi
  [ -n "$first" ] || first=$s
  summary="$summary$(awk -v n="$n" -v s="$s" -v f="$first" \
    'BEGIN { printf "  client_batch %3d: %8.3f s/round, %5.2fx over client_batch %s", n, s, f / s, "'"${batches%% *}"'" }')\n"
done
echo "client_batch.sh: fedround.sh's round, all clients on one host rank, by run.client_batch (logs in $out)"
printf '%b' "$summary"
exit $status
