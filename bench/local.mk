# Benchmarks print figures; they never assert a speed.
# make bench: fedmoe bench against bench/torch_bench.py (Debian's python3-torch, run with
# TORCH_PY), model by model, then a table of tokens/s and the ratio.
# make bench BENCH_ARGS=--profile adds fedmoe's per-part breakdown; BENCH_ROUNDS=N repeats
# the alternation N times and reports medians over the rounds (steadier on a shared machine).
TORCH_PY = /usr/bin/python3
BENCH_ARGS =
BENCH_ROUNDS = 1
bench: fedmoe$(EXEEXT)
	FEDMOE_BENCH_ARGS='$(BENCH_ARGS)' BENCH_ROUNDS='$(BENCH_ROUNDS)' $(SHELL) $(srcdir)/bench/run_bench.sh ./fedmoe$(EXEEXT) $(TORCH_PY)
.PHONY: bench
dist_noinst_SCRIPTS += bench/run_bench.sh bench/torch_bench.py
# run.client_batch 1 / 4 / 16 on the federated round of bench/fedround.sh (GPU)
dist_noinst_SCRIPTS += bench/client_batch.sh
# the federated LoRA round against bench/torch_fedround.py (docs/gpu.md)
dist_noinst_SCRIPTS += bench/fedround.sh
EXTRA_DIST += bench/fedround.ini
