#!/bin/sh
# shellcheck disable=SC2086 # $one and FEDROUND_ARGS: words split on purpose
# gpu_bench.sh - the GPU benchmarks of the CUDA backend in one go, bf16 (figures, not
# tests), from the top of a --with-cuda build on a machine with a GPU and PyTorch
# (+ transformers, PEFT), no network needed:
#   bench/gpu_bench.sh [PYTHON]          (default python3)
# Environment: FEDMOE (default ./fedmoe), MPIRUN (default mpirun), GPU_BENCH_OUT (the
# logs' folder, default gpu-bench-out), GPU_BENCH_BUDGET (seconds for the whole script,
# default 480: a step that would start past it is skipped, and each step's time limit
# is cut to what is left), STEPS (timed steps per case, default 10, both sides),
# FEDROUND_ARGS (more options for bench/fedround.sh, e.g. "--set run.client_batch=4";
# "--small" checks this script on a machine without a GPU, with stand-ins for the rest).
#
# In order (the issue's rows first, so a cut budget loses the least):
#  1. `fedmoe bench --device cuda` and bench/torch_cuda.py at batch 8 x 128 and
#     8 x 1024: gpt2-124m full and LoRA, smollm-135m full and LoRA, the 12-layer MoE
#  2. the federated LoRA round: bench/fedround.sh on 2 ranks, bench/torch_fedround.py
#  3. fused against GEMM attention (FEDMOE_CUDA_ATTENTION=fused|gemm) and the fused
#     head (FEDMOE_CUDA_HEAD=fused) and the head on padded logits rows (=padded) on
#     gpt2-124m full, at the same steps as row 1
#  4. bench/fedround.sh on 17 ranks sharing the GPU
# then a summary table: model, batch, fedmoe tokens/s, PyTorch tokens/s, ratio.
set -u
py=${1:-python3}
here=$(cd "$(dirname "$0")" && pwd)
fedmoe=${FEDMOE:-./fedmoe}
mpirun=${MPIRUN:-mpirun}
out=${GPU_BENCH_OUT:-gpu-bench-out}
budget=${GPU_BENCH_BUDGET:-480}
steps=${STEPS:-10}
# fedmoe on one rank, through the launcher (a bundled Open MPI may not start a
# program on its own); unquoted where used: the launcher and its options
one="$mpirun --oversubscribe -np 1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 # Open MPI refuses root otherwise
mkdir -p "$out" || { echo "gpu_bench.sh: cannot make $out" >&2; exit 2; }
start=$(date +%s)
status=0
export FEDMOE_BENCH_PRECS=bf16 FEDMOE_BENCH_STEPS="$steps"
echo "gpu_bench.sh: $(date -u '+%F %T') UTC, $fedmoe, $py, logs in $out, budget $budget s, $steps timed steps"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv,noheader 2>&1 | sed 's/^/gpu_bench.sh: GPU /'

# step NAME LIMIT CMD...: CMD under a time limit (cut to the budget left), its output
# shown as it comes and kept in $out/NAME.log, its exit status in $out/NAME.rc
step() {
  name=$1 limit=$2
  shift 2
  left=$((budget - ($(date +%s) - start)))
  if [ "$left" -lt 20 ]; then
    echo "== $name: SKIPPED, $left s of the budget left"
    echo skipped >"$out/$name.rc"
    status=1
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit $limit s): $*"
  t0=$(date +%s)
  { timeout -k 10 "$limit" "$@"; echo $? >"$out/$name.rc"; } 2>&1 | tee "$out/$name.log"
  rc=$(cat "$out/$name.rc")
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && echo "== $name: KILLED at its $limit s limit"
  echo "== $name: exit $rc after $(($(date +%s) - t0)) s"
  [ "$rc" = 0 ] || status=1
}

# 1. the training step, both sides
for bt in 8x128 8x1024; do
  step "fedmoe-$bt" 120 env FEDMOE_BENCH_BT="$bt" $one "$fedmoe" bench --device cuda
done
for bt in 8x128 8x1024; do
  B=${bt%x*} T=${bt#*x}
  step "torch-$bt" 150 "$py" "$here/torch_cuda.py" "$B" "$T" "$steps" --precs bf16 --models gpt2,smollm --modes full,lora
  step "torch-moe-$bt" 90 "$py" "$here/torch_cuda.py" "$B" "$T" "$steps" --precs bf16 --models moe --modes full
done
# 2. the federated round, 2 ranks, both sides
# shellcheck disable=SC2086 # FEDROUND_ARGS: options, split on purpose
step fedround-2 150 sh "$here/fedround.sh" --fedmoe "$fedmoe" --mpirun "$mpirun" --layouts 2 --out "$out/fedround" \
  --timeout 120 ${FEDROUND_ARGS:-}
step torch-fedround 150 "$py" "$here/torch_fedround.py"
# and with the 16 clients trained at once over the shared base, where this fedmoe has
# run.client_batch
if timeout 60 $one "$fedmoe" keys run.client_batch >/dev/null 2>&1; then
  step fedround-cb16 150 sh "$here/fedround.sh" --fedmoe "$fedmoe" --mpirun "$mpirun" --layouts 2 \
    --out "$out/fedround-cb16" --timeout 120 --set run.client_batch=16 ${FEDROUND_ARGS:-}
fi
# 3. attention and head variants, the same steps
for a in fused gemm; do
  step "attention-$a" 90 env FEDMOE_CUDA_ATTENTION=$a FEDMOE_BENCH_BT=8x128,8x1024 FEDMOE_BENCH_ONLY=gpt2-124m/full \
    $one "$fedmoe" bench --device cuda
done
for h in fused padded; do
  step "head-$h" 90 env FEDMOE_CUDA_HEAD=$h FEDMOE_BENCH_BT=8x128,8x1024 FEDMOE_BENCH_ONLY=gpt2-124m/full \
    $one "$fedmoe" bench --device cuda
done
# 4. the federated round, 17 ranks on the one GPU
# shellcheck disable=SC2086
step fedround-17 150 sh "$here/fedround.sh" --fedmoe "$fedmoe" --mpirun "$mpirun" --layouts 17 --out "$out/fedround" \
  --timeout 120 ${FEDROUND_ARGS:-}

# the summary: fedmoe's lines are "MODEL MODE BxT PREC TOK/S ...", PyTorch's
# "NAME MODE PREC TOK/S tokens/s ..." (NAME gpt2, smollm, moe; the batch in the log's name)
echo
echo "== summary: bf16 tokens/s of the median step ($steps timed steps), fedmoe against PyTorch on this GPU"
{
  for f in "$out"/fedmoe-8x128.log "$out"/fedmoe-8x1024.log; do
    [ -f "$f" ] && awk '!/^#/ && $4 == "bf16" && $5 + 0 > 0 { print "F", $1 "/" $2 "/" $3, $5 }' "$f"
  done
  for f in "$out"/torch-8x128.log "$out"/torch-moe-8x128.log "$out"/torch-8x1024.log "$out"/torch-moe-8x1024.log; do
    [ -f "$f" ] || continue
    bt=$(basename "$f" .log); bt=${bt##*-}
    awk -v bt="$bt" 'BEGIN { m["gpt2"] = "gpt2-124m"; m["smollm"] = "smollm-135m"; m["moe"] = "moe-12x768" }
      $3 == "bf16" && $5 == "tokens/s" && ($1 in m) { print "T", m[$1] "/" $2 "/" bt, $4 }' "$f"
  done
  for v in attention-fused attention-gemm head-fused head-padded; do
    [ -f "$out/$v.log" ] && awk -v v="$v" '!/^#/ && $4 == "bf16" && $5 + 0 > 0 { print "V", $1 "/" $2 "/" $3 "/" v, $5 }' \
      "$out/$v.log"
  done
} | awk '
  $1 == "F" { f[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  $1 == "T" { t[$2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } }
  $1 == "V" { v[++nv] = $2; vt[nv] = $3 }
  END {
    printf "%-12s %-5s %-7s %12s %12s %7s\n", "model", "mode", "batch", "fedmoe", "PyTorch", "ratio"
    for (i = 1; i <= n; i++) {
      split(order[i], k, "/")
      r = (order[i] in f) && (order[i] in t) && t[order[i]] > 0 ? sprintf("%.2fx", f[order[i]] / t[order[i]]) : "-"
      a = (order[i] in f) ? f[order[i]] : "missing"
      b = (order[i] in t) ? t[order[i]] : "missing"
      printf "%-12s %-5s %-7s %12s %12s %7s\n", k[1], k[2], k[3], a, b, r
    }
    if (nv) print "variants of gpt2-124m full (the same steps; the default: gemm attention at fp32/tf32 MHA, fused in bf16; unfused head):"
    for (i = 1; i <= nv; i++) {
      split(v[i], k, "/"); base = k[1] "/" k[2] "/" k[3]
      d = (base in f) ? f[base] : "missing"
      r = ((base in f) && f[base] > 0) ? sprintf("%.2fx", vt[i] / f[base]) : "-"
      printf "  %-16s %-7s %12s tokens/s   default %12s   %s\n", k[4], k[3], vt[i], d, r
    }
  }'
echo "== the federated round (16 clients x 10 local LoRA steps of 8 x 128): seconds per round"
for n in 2 17; do
  [ -f "$out/fedround-$n.log" ] && grep "^  fedmoe" "$out/fedround-$n.log"
done
[ -f "$out/fedround-cb16.log" ] && grep "^  fedmoe" "$out/fedround-cb16.log" | sed 's/ranks:/ranks, run.client_batch 16:/'

[ -f "$out/torch-fedround.log" ] && grep -E "^  (numpy|resident)" "$out/torch-fedround.log" | sed 's/^  /  PyTorch /'
fm=$(awk '/^  fedmoe 2 ranks:/ { print $4; exit }' "$out/fedround-2.log" 2>/dev/null)
pt=$(awk '$1 == "resident" { print $2; exit }' "$out/torch-fedround.log" 2>/dev/null)
[ -n "$fm" ] && [ -n "$pt" ] && awk -v f="$fm" -v p="$pt" 'BEGIN { printf "  fedmoe (2 ranks) against PyTorch (adapters resident): %.2fx faster a round\n", p / f }'
echo "== steps not done: $(cd "$out" && grep -Lx 0 ./*.rc 2>/dev/null | sed 's|^\./||; s|\.rc$||' | tr '\n' ' ')"
echo "gpu_bench.sh: done in $(($(date +%s) - start)) s, exit $status"
exit $status
