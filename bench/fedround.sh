#!/bin/sh
# fedround.sh - fedmoe's side of the federated LoRA round of bench/torch_fedround.py
# (a benchmark: figures, not a test). 16 clients, all sampled each round, each trains
# the global attention LoRA pairs (rank 8, alpha 16, on c_attn and attn.c_proj) for 10
# local steps of 8 x 128 tokens on a frozen GPT-2-124M-shaped base (random weights, as
# PyTorch's from a config; vocabulary 50257), bf16 on one GPU; FedAvg averages them.
#
#   bench/fedround.sh [options] [--set KEY=VALUE ...]
#     --fedmoe PATH     the fedmoe binary (default ./fedmoe, else fedmoe on PATH)
#     --mpirun CMD      the launcher (default mpirun; --oversubscribe is added)
#     --layouts "2 17"  rank counts to run: 2 = the server and one rank hosting all
#                       16 clients; 17 = the server and one rank per client, every rank
#                       on the same GPU (default "2 17")
#     --rounds N        timed rounds after the warm-up round (default 3, as PyTorch's)
#     --small           a small model on the CPU (d 64, 2 layers, 2 x 32 tokens, 2 local
#                       steps), to check this script anywhere; the vocabulary stays 50257
#     --out DIR         where the tokenizer, text, run files and logs go (default: a
#                       new folder under ${TMPDIR:-/tmp}); kept afterwards
#     --timeout S       seconds each fedmoe run may take (default 300)
#     --set KEY=VALUE   passed on to every `fedmoe run` (after the above), e.g.
#                       --set run.client_batch=4 or --set run.precision=fp32
#
# The data need no network: the script writes a GPT-2-style vocab.json of 50257 ids
# (the 256 byte tokens, then filler tokens no merge reaches, and no merges), so the
# embedding and the head are as wide as PyTorch's while the text (random words, made
# here too) tokenizes to byte ids; PyTorch's batches are random ids over the whole
# vocabulary, which costs the same.
#
# Seconds per round, measured as torch_fedround.py does: the median over the timed
# rounds after one warm-up round. A round's time is what the run file records for the
# phases of the federated loop (`fedmoe info RUN --rounds`, the slowest rank's):
# local updates (loading the global adapters, 10 AdamW steps per client, the update
# out) + aggregation (the fixed-point reduction of the updates) + the server step +
# the broadcast of the new global adapters. Evaluation (one validation and one test
# batch per client, which PyTorch's loop does not do) and the run file's writes are
# printed beside it, outside the round; so is the whole round's wall time.
set -u
fedmoe="" mpirun=mpirun layouts="2 17" timed=3 small=0 out="" limit=300 extra=""
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "fedround.sh: $*" >&2; exit 2; }
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
while [ $# -gt 0 ]; do
  case $1 in --fedmoe|--mpirun|--layouts|--rounds|--out|--timeout|--set) [ $# -ge 2 ] || die "$1 needs a value" ;; esac
  case $1 in
    --fedmoe) fedmoe=$2; shift 2 ;;
    --mpirun) mpirun=$2; shift 2 ;;
    --layouts) layouts=$2; shift 2 ;;
    --rounds) timed=$2; shift 2 ;;
    --small) small=1; shift ;;
    --out) out=$2; shift 2 ;;
    --timeout) limit=$2; shift 2 ;;
    --set) extra="$extra --set $(quote "$2")"; shift 2 ;;
    --set=*) extra="$extra --set $(quote "${1#--set=}")"; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
case $timed in ''|*[!0-9]*|0) die "--rounds must be a positive integer, not '$timed'" ;; esac
case $limit in ''|*[!0-9]*|0) die "--timeout must be a positive integer, not '$limit'" ;; esac
if [ -z "$fedmoe" ]; then
  if [ -x ./fedmoe ]; then fedmoe=./fedmoe; else fedmoe=$(command -v fedmoe) || die "no ./fedmoe: pass --fedmoe PATH"; fi
fi
[ -x "$fedmoe" ] || die "--fedmoe $fedmoe is not an executable"
fedmoe=$(cd "$(dirname "$fedmoe")" && pwd)/$(basename "$fedmoe")
for np in $layouts; do
  case $np in ''|*[!0-9]*) die "--layouts: '$np' is not a rank count" ;; esac
  [ "$np" -ge 2 ] || die "--layouts: $np ranks: fedmoe run needs the server and at least one host"
done
[ -n "$out" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/fedround.XXXXXX") || die "cannot make a folder under ${TMPDIR:-/tmp}"
mkdir -p "$out/data" || die "cannot make $out/data"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# the tokenizer: GPT-2's byte table (bytes that print stand for themselves, the other
# 68 for U+0100.. in byte order), spelled as JSON escapes, then filler ids to 50256
awk 'BEGIN {
  n = 0; printf "{"
  for (c = 0; c < 256; c++) {
    pr = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255)
    cp = pr ? c : 256 + n++
    printf "%s\"\\u%04x\": %d", c ? ", " : "", cp, c
  }
  for (i = 256; i < 50257; i++) printf ", \"<filler%05d>\": %d", i, i
  print "}"
}' >"$out/vocab.json" || die "cannot write $out/vocab.json"
echo "#version: 0.2" >"$out/merges.txt"
# the text: 2 MiB of random words (16 clients x 64 KiB, iid), one domain
awk 'BEGIN {
  srand(1); split("the a federated round client server model token adapter rank gradient update " \
                  "average expert router layer head batch step learning rate frozen base weight", w, " ")
  for (i = 0; i < 2 * 1048576;) { s = w[int(rand() * 25) + 1]; printf "%s%s", s, (++k % 12 ? " " : "\n"); i += length(s) + 1 }
}' >"$out/data/words.txt" || die "cannot write $out/data/words.txt"

shape=""
[ $small = 1 ] && shape="--set run.device=cpu --set run.precision=fp32 --set model.d_model=64 --set model.heads=4
  --set model.layers=2 --set model.context=64 --set train.seq_len=32 --set train.batch=2 --set fl.local_steps=2"
echo "fedround.sh: $(date -u '+%F %T') UTC, $fedmoe ($(timeout 20 "$fedmoe" --version 2>&1)), output in $out"
[ $small = 1 ] && echo "fedround.sh: --small: a small model on the CPU (checks the script; its figures mean nothing)"
status=0
summary=""
for np in $layouts; do
  run="$out/run-$np.h5" log="$out/run-$np.log"
  cmd="timeout -k 10 $limit $mpirun --oversubscribe -np $np $fedmoe run $here/fedround.ini -q --overwrite
    --set data.path=$out/data --set data.token_cache=$out/cache --set model.tokenizer=$out/vocab.json
    --set fl.rounds=$((timed + 1)) --set run.output=$run $shape $extra"
  cmd=$(printf '%s' "$cmd" | tr -s ' \n' '  ')
  echo "fedround.sh: $np ranks: $cmd"
  t0=$(date +%s)
  eval "$cmd" >"$log" 2>&1
  rc=$?
  echo "fedround.sh: $np ranks: exit $rc after $(($(date +%s) - t0)) s; the run's lines:"
  grep -E "^(round|final|fedmoe:)" "$log" | sed 's/^/  | /'
  if [ $rc != 0 ]; then
    [ $rc = 124 ] || [ $rc = 137 ] && echo "fedround.sh: $np ranks: killed after --timeout $limit s"
    echo "fedround.sh: $np ranks FAILED; the log's last lines ($log):"
    tail -40 "$log" | sed 's/^/  ! /'
    status=1
    continue
  fi
  # (through the launcher: a bundled Open MPI may not start a program on its own;
  # $mpirun unquoted on purpose, it may carry options)
  # shellcheck disable=SC2086
  # (standard error apart: a launcher's warnings must not pass for rows)
  timeout 60 $mpirun --oversubscribe -np 1 "$fedmoe" info "$run" --rounds >"$out/rounds-$np.txt" 2>"$out/rounds-$np.err" || {
    sed 's/^/  ! /' "$out/rounds-$np.txt" "$out/rounds-$np.err"; echo "fedround.sh: $np ranks: fedmoe info --rounds failed"
    status=1; continue; }
  # shellcheck disable=SC2086
  timeout 60 $mpirun --oversubscribe -np 1 "$fedmoe" info "$run" >"$out/info-$np.txt" 2>"$out/info-$np.err"
  # tokens a round trains: sampled clients x local steps x batch x length, from the
  # resolved configuration the run file keeps (so --set changes count)
  tokens=$(awk '/^\[/ { sec = $1 } $2 == "=" { v[sec "." $1] = $3 }
    END { n = v["[fl].sample_count"]; if (n == 0) n = v["[fl].clients"]
          print n * v["[fl].local_steps"] * v["[train].batch"] * v["[train].seq_len"] }' "$out/info-$np.txt")
  line=$(awk -v tokens="$tokens" -v np="$np" '
    function med(a, n,   i, j, t) {  # median of a[1..n] (sorted in place)
      for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function z(x) { return x == "nan" || x == "-nan" ? 0 : x }
    $1 ~ /^[0-9]+$/ && $1 > 1 {  # the rounds after the warm-up round (rows only: the header is not one)
      k++; r[k] = z($3) + z($4) + z($5) + z($6); loc[k] = z($3); agg[k] = z($4) + z($5) + z($6)
      ev[k] = z($7); io[k] = z($8); wall[k] = $2; if (k == 1 || r[k] < best) best = r[k]
    }
    END {
      if (!k) { print "no timed round in the run file"; exit 1 }
      m = med(r, k)
      printf "%d ranks: %.3f s/round (best %.3f; local %.3f, aggregate+server+broadcast %.3f) %.0f tokens/s; " \
             "outside the round: evaluation %.3f s, run file %.3f s; whole round %.3f s; %d timed rounds\n",
             np, m, best, med(loc, k), med(agg, k), tokens / m, med(ev, k), med(io, k), med(wall, k), k
    }' "$out/rounds-$np.txt") || { echo "fedround.sh: $np ranks: $line"; cat "$out/rounds-$np.txt"; status=1; continue; }
  echo "fedround.sh: $line"
  summary="$summary  fedmoe $line
"
done
echo "fedround.sh: summary (fedmoe: median of the rounds after the first; a round = local updates +"
echo "  aggregation + server step + broadcast; tokens/s = the round's trained tokens / its time)"
printf '%s' "$summary"
exit $status
