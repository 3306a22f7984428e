# CUDA tests: every kernel against its CPU twin. Built with the library whenever the
# CUDA backend is configured (so it never rots on machines without a GPU); run by
# `make check-cuda`, which needs a GPU.
EXTRA_DIST += %reldir%/cuda/test_cuda.c %reldir%/cuda/test_cuda_model.c %reldir%/cuda.mk %reldir%/cuda/run_gpu.sh \
	%reldir%/cuda/cuda_check.h %reldir%/cuda/test_cuda_llama.c %reldir%/cuda/test_cuda_moe.c \
	%reldir%/cuda/test_cuda_attention.c %reldir%/cuda/test_cuda_head.c
if HAVE_CUDA
noinst_PROGRAMS += tests/cuda/test_cuda tests/cuda/test_cuda_model tests/cuda/test_cuda_llama \
	tests/cuda/test_cuda_moe tests/cuda/test_cuda_attention tests/cuda/test_cuda_head
tests_cuda_test_cuda_SOURCES = %reldir%/cuda/test_cuda.c $(TEST_UNIT_MAIN)
tests_cuda_test_cuda_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn -I$(srcdir)/src/nn/cuda $(CUDA_CPPFLAGS)
tests_cuda_test_cuda_LDADD = libfedmoe_cuda.a $(TEST_UNIT_LDADD) $(CUDA_LIBS)
tests_cuda_test_cuda_model_SOURCES = %reldir%/cuda/test_cuda_model.c $(TEST_UNIT_MAIN)
tests_cuda_test_cuda_model_CPPFLAGS = $(tests_cuda_test_cuda_CPPFLAGS)
tests_cuda_test_cuda_model_LDADD = $(tests_cuda_test_cuda_LDADD)
tests_cuda_test_cuda_llama_SOURCES = %reldir%/cuda/test_cuda_llama.c $(TEST_UNIT_MAIN)
tests_cuda_test_cuda_llama_CPPFLAGS = $(tests_cuda_test_cuda_CPPFLAGS)
tests_cuda_test_cuda_llama_LDADD = $(tests_cuda_test_cuda_LDADD)
tests_cuda_test_cuda_moe_SOURCES = %reldir%/cuda/test_cuda_moe.c $(TEST_UNIT_MAIN)
tests_cuda_test_cuda_moe_CPPFLAGS = $(tests_cuda_test_cuda_CPPFLAGS)
tests_cuda_test_cuda_moe_LDADD = $(tests_cuda_test_cuda_LDADD)
tests_cuda_test_cuda_attention_SOURCES = %reldir%/cuda/test_cuda_attention.c $(TEST_UNIT_MAIN)
tests_cuda_test_cuda_attention_CPPFLAGS = $(tests_cuda_test_cuda_CPPFLAGS)
tests_cuda_test_cuda_attention_LDADD = $(tests_cuda_test_cuda_LDADD)
tests_cuda_test_cuda_head_SOURCES = %reldir%/cuda/test_cuda_head.c $(TEST_UNIT_MAIN)
tests_cuda_test_cuda_head_CPPFLAGS = $(tests_cuda_test_cuda_CPPFLAGS)
tests_cuda_test_cuda_head_LDADD = $(tests_cuda_test_cuda_LDADD)

CUDA_TESTS = tests/cuda/test_cuda tests/cuda/test_cuda_model tests/cuda/test_cuda_llama \
	tests/cuda/test_cuda_moe tests/cuda/test_cuda_attention tests/cuda/test_cuda_head
# every program runs (so one log shows every failure), then run_gpu.sh (fedmoe run on
# the GPU: 2 and 3 ranks, resume, bf16); the target fails if any did
check-cuda: $(CUDA_TESTS) fedmoe
	rc=0; for t in $(CUDA_TESTS); do \
	  top_srcdir=$(abs_top_srcdir) OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ./$$t || rc=1; \
	done; \
	top_srcdir=$(abs_top_srcdir) FEDMOE=./fedmoe sh $(abs_top_srcdir)/tests/cuda/run_gpu.sh || rc=1; \
	exit $$rc
else
check-cuda:
	@echo "check-cuda: this build has no CUDA backend; configure with --with-cuda" >&2; exit 1
endif
.PHONY: check-cuda

# The GPU benchmark (figures only): bench/bench_cuda against bench/torch_cuda.py;
# bench/bench_cuda_moe: one MoE layer on the GPU.
EXTRA_DIST += bench/bench_cuda.c bench/torch_cuda.py bench/bench_cuda_moe.c bench/torch_fedround.py \
	bench/gpu_bench.sh
if HAVE_CUDA
noinst_PROGRAMS += bench/bench_cuda bench/bench_cuda_moe
bench_bench_cuda_SOURCES = bench/bench_cuda.c
bench_bench_cuda_CPPFLAGS = $(AM_CPPFLAGS) -I$(srcdir)/src/nn -I$(srcdir)/src/nn/cuda $(CUDA_CPPFLAGS)
bench_bench_cuda_LDADD = libfedmoe_cuda.a libfedmoe.a $(FEDMOE_LIBS) $(CUDA_LIBS)
bench_bench_cuda_moe_SOURCES = bench/bench_cuda_moe.c
bench_bench_cuda_moe_CPPFLAGS = $(bench_bench_cuda_CPPFLAGS)
bench_bench_cuda_moe_LDADD = $(bench_bench_cuda_LDADD)
endif
