#!/bin/sh
# gpu_bench.sh - the GPU benchmarks in one go (figures, not tests), from the build tree
# of a --with-cuda build on a machine with a GPU and PyTorch (+ transformers, PEFT):
#   bench/gpu_bench.sh [PYTHON]        (default python3)
# fedmoe's training step (bench/bench_cuda) and PyTorch's (bench/torch_cuda.py) at
# batch 8 x 1024 and 8 x 128 (and fedmoe's profile per part at 8 x 1024), then
# PyTorch's federated LoRA round (torch_fedround.py).
py=${1:-python3}
here=$(dirname "$0")
status=0
for bt in "8 1024" "8 128"; do
  # shellcheck disable=SC2086
  ./bench/bench_cuda $bt || status=1
done
# where the time goes (each part serialised, so slower overall): 5 steps at 8 x 1024
FEDMOE_CUDA_PROFILE=1 ./bench/bench_cuda 8 1024 5 || status=1
for bt in "8 1024" "8 128"; do
  # shellcheck disable=SC2086
  "$py" "$here/torch_cuda.py" $bt || status=1
done
"$py" "$here/torch_fedround.py" || status=1
exit $status
