# make bench-generate: tokens/s of fedmoe generate's decoder (the key/value cache) on a
# GPT-2-124M-shaped model, one thread, and of recomputing the sequence for every token.
noinst_PROGRAMS += bench/bench_generate
bench_bench_generate_SOURCES = %reldir%/bench_generate.c
bench_bench_generate_LDADD = libfedmoe.a $(FEDMOE_LIBS)
bench-generate: bench/bench_generate$(EXEEXT)
	bench/bench_generate$(EXEEXT)
.PHONY: bench-generate
