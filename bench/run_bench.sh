#!/bin/sh
# run_bench.sh FEDMOE [PYTHON] - `make bench`: fedmoe bench and bench/torch_bench.py on the
# same models, one model at a time, each side right after the other (the machine's load
# changes less in between), then a table of tokens/s and the ratio fedmoe / PyTorch.
# BENCH_ROUNDS=N (default 1) repeats the whole alternation N times; the table then gives,
# per model and side, the median over the rounds of each run's median step (and the
# best step seen), which steadies the ratio on a shared machine.
# Without an importable torch the PyTorch column is skipped and says why.
# Extra arguments for fedmoe bench (--profile) go in FEDMOE_BENCH_ARGS.
fedmoe=${1:-./fedmoe}
py=${2:-/usr/bin/python3}
rounds=${BENCH_ROUNDS:-1}
case $rounds in
  '' | *[!0-9]* | 0) echo "run_bench.sh: BENCH_ROUNDS must be a whole number of at least 1, not '$rounds'" >&2; exit 2 ;;
esac
here=$(dirname "$0")
# BENCH_MODELS picks models (default all); the real-sized ones take minutes each
models=${BENCH_MODELS:-"dense-d128 moe-d128 moe-d256 mixtral-d128 gpt2-124m gpt2-124m-lora smollm-135m smollm-135m-lora"}
out=$(mktemp "${TMPDIR:-/tmp}/fedmoe-bench.XXXXXX")
trap 'rm -f "$out" "$out.t"' EXIT
torch=yes
"$py" -c 'import torch' 2>/dev/null || torch=no
r=1
while [ "$r" -le "$rounds" ]; do
  for m in $models; do
    FEDMOE_BENCH_ONLY=$m "$fedmoe" bench $FEDMOE_BENCH_ARGS | tee "$out.t" || exit 1
    grep "^$m " "$out.t" | awk '{print "C", $1, $4, $5}' >>"$out"
    if [ $torch = yes ]; then
      "$py" "$here/torch_bench.py" --only "$m" | grep "^$m " | awk '{print "P", $1, $2, $3}' >>"$out"
    fi
  done
  r=$((r + 1))
done
echo
echo "tokens/s, 1 thread (small models B=16 T=128; gpt2-124m, smollm-135m B=4 T=256): median step (best step), median over $rounds round(s)${FEDMOE_BENCH_CPU:+, CPU clock}"
if [ $torch = yes ]; then
  echo "$("$py" -c 'import torch; print("PyTorch", torch.__version__)')"
  printf '%-16s %20s %20s %9s\n' model fedmoe PyTorch "ratio"
else
  "$py" "$here/torch_bench.py" | head -1
  printf '%-16s %20s\n' model fedmoe
fi
for m in $models; do
  for side in C P; do
    # median of the runs' medians, and the best step, of one side
    awk -v m="$m" -v s="$side" '$1 == s && $2 == m { print $3, $4 }' "$out" | sort -n |
      awk -v s="$side" '{ v[NR] = $1; if ($2 > b) b = $2 }
        END { if (NR) printf "%s %.1f %.1f\n", s, (v[int((NR + 1) / 2)] + v[int(NR / 2) + 1]) / 2, b }'
  done | awk -v m="$m" -v torch=$torch '
    $1 == "C" { c = $2; cb = $3 }
    $1 == "P" { p = $2; pb = $3 }
    END {
      if (c == "") exit
      if (torch == "yes" && p != "")
        printf "%-16s %10.0f (%7.0f) %10.0f (%7.0f) %8.2fx\n", m, c, cb, p, pb, c / p
      else
        printf "%-16s %10.0f (%7.0f)\n", m, c, cb
    }'
done
