# make bench-checkpoint: checkpoint write bandwidth against dd writing the same bytes.
# BENCH_DIR (default: the build folder) names the file system measured.
noinst_PROGRAMS += bench/bench_checkpoint
bench_bench_checkpoint_SOURCES = %reldir%/bench_checkpoint.c
bench_bench_checkpoint_LDADD = libfedmoe.a $(FEDMOE_LIBS)
BENCH_DIR = .
BENCH_MB = 512
bench-checkpoint: bench/bench_checkpoint$(EXEEXT)
	@echo "== sequential write of $(BENCH_MB) MB with dd (page cache, then with fdatasync)"
	@dd if=/dev/zero of=$(BENCH_DIR)/dd.bench bs=1M count=$(BENCH_MB) 2>&1 | tail -1
	@dd if=/dev/zero of=$(BENCH_DIR)/dd.bench bs=1M count=$(BENCH_MB) conv=fdatasync 2>&1 | tail -1
	@rm -f $(BENCH_DIR)/dd.bench
	@echo "== the same bytes as a fedmoe checkpoint (3 ranks, collective MPI-IO)"
	@OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(MPIEXEC) $(MPIEXEC_FLAGS) -np 3 \
	  bench/bench_checkpoint$(EXEEXT) $(BENCH_DIR) $(BENCH_MB)
.PHONY: bench-checkpoint
