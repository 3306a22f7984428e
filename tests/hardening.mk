# hardening.mk - sanitizer test environment, fuzz targets (replayed by make check,
# run by make fuzz), fault-injection and storage-fault tests (issue 12).

# ---- sanitizer builds (configure --enable-sanitizers) ----
# Every test runs under `env VAR=... test`: with no extension-specific compiler, the
# harness starts each test as $(LOG_COMPILER) $(AM_LOG_FLAGS) TEST, so this reaches
# the CUnit programs and the MPI scripts alike (mpirun passes the environment on to
# its ranks), without touching AM_TESTS_ENVIRONMENT. Leaks of Open MPI and the
# libraries under it are suppressed by tests/lsan.supp (each entry explained there);
# malloc stacks are unwound in full so that those libraries' frames can be matched.
# Instrumented ranks start and stop several times slower, so the time limits within
# which a failing run must have ended on every rank (tests/mpi/common.sh) are
# stretched by FM_TEST_TIME_SCALE: they catch hangs, not slowness.
SANITIZER_TESTS_ENVIRONMENT = FM_TEST_TIME_SCALE=4 \
	ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:detect_stack_use_after_return=0 \
	LSAN_OPTIONS=suppressions=$(abs_top_srcdir)/tests/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if SANITIZERS
LOG_COMPILER = env
AM_LOG_FLAGS = $(SANITIZER_TESTS_ENVIRONMENT)
endif
EXTRA_DIST += %reldir%/lsan.supp %reldir%/hardening.mk

# `make check-sanitizers`: a fresh copy of the sources (the files git tracks, and new
# ones it does not ignore), configured --enable-sanitizers in its own build folder
# (a VPATH build: an in-tree configured source cannot host one), and its make check.
SANITIZER_BUILD = $(abs_top_builddir)/sanitizer-build
check-sanitizers:
	rm -rf $(SANITIZER_BUILD)
	mkdir -p $(SANITIZER_BUILD)/src $(SANITIZER_BUILD)/build
	cd $(abs_top_srcdir) && git ls-files -z --cached --others --exclude-standard \
	  | grep -z -v '^sanitizer-build/' | xargs -0 cp --parents -t $(SANITIZER_BUILD)/src
	cd $(SANITIZER_BUILD)/src && autoreconf -fi
	cd $(SANITIZER_BUILD)/build && ../src/configure --enable-sanitizers && $(MAKE) check
.PHONY: check-sanitizers

# ---- fuzz targets ----
# tests/fuzz/fuzz_<t>.c defines the libFuzzer entry for parser t. make check replays
# each over its seeds tests/fuzz/<t>/ and the inputs that once crashed it,
# tests/fuzz/regressions/<t>/, through replay.c and the normal compiler (CI needs no
# clang). make fuzz builds them with clang and libFuzzer and runs each FUZZ_SECONDS.
FUZZ_TARGETS = config text corpus info resume eval safetensors hfconfig
FUZZ_ALL_TARGETS = $(FUZZ_TARGETS) info_raw
FUZZ_COMMON = %reldir%/fuzz/fuzz.h %reldir%/fuzz/fuzz_util.c %reldir%/fuzz/replay.c
FUZZ_GEN = %reldir%/fuzz/runfile_gen.c %reldir%/fuzz/runfile_gen.h
FUZZ_REPLAY_LDADD = libfedmoe.a $(FEDMOE_LIBS)

check_PROGRAMS += tests/fuzz/replay_config tests/fuzz/replay_text tests/fuzz/replay_corpus \
	tests/fuzz/replay_info tests/fuzz/replay_resume tests/fuzz/replay_eval tests/fuzz/replay_safetensors \
	tests/fuzz/replay_hfconfig
TESTS += tests/fuzz/replay_config tests/fuzz/replay_text tests/fuzz/replay_corpus \
	tests/fuzz/replay_info tests/fuzz/replay_resume tests/fuzz/replay_eval tests/fuzz/replay_safetensors \
	tests/fuzz/replay_hfconfig
tests_fuzz_replay_safetensors_SOURCES = %reldir%/fuzz/fuzz_safetensors.c $(FUZZ_COMMON)
tests_fuzz_replay_safetensors_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"safetensors"'
tests_fuzz_replay_safetensors_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_hfconfig_SOURCES = %reldir%/fuzz/fuzz_hfconfig.c $(FUZZ_COMMON)
tests_fuzz_replay_hfconfig_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"hfconfig"'
tests_fuzz_replay_hfconfig_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_config_SOURCES = %reldir%/fuzz/fuzz_config.c $(FUZZ_COMMON)
tests_fuzz_replay_config_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"config"'
tests_fuzz_replay_config_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_text_SOURCES = %reldir%/fuzz/fuzz_text.c $(FUZZ_COMMON)
tests_fuzz_replay_text_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"text"'
tests_fuzz_replay_text_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_corpus_SOURCES = %reldir%/fuzz/fuzz_corpus.c $(FUZZ_COMMON)
tests_fuzz_replay_corpus_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"corpus"'
tests_fuzz_replay_corpus_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_info_SOURCES = %reldir%/fuzz/fuzz_info.c $(FUZZ_COMMON) $(FUZZ_GEN)
tests_fuzz_replay_info_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"info"'
tests_fuzz_replay_info_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_resume_SOURCES = %reldir%/fuzz/fuzz_resume.c $(FUZZ_COMMON) $(FUZZ_GEN)
tests_fuzz_replay_resume_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"resume"'
tests_fuzz_replay_resume_LDADD = $(FUZZ_REPLAY_LDADD)
tests_fuzz_replay_eval_SOURCES = %reldir%/fuzz/fuzz_eval.c $(FUZZ_COMMON) $(FUZZ_GEN)
tests_fuzz_replay_eval_CPPFLAGS = $(AM_CPPFLAGS) -DFUZZ_TARGET='"eval"'
tests_fuzz_replay_eval_LDADD = $(FUZZ_REPLAY_LDADD)
EXTRA_DIST += %reldir%/fuzz/fuzz_info_raw.c %reldir%/fuzz/README.md %reldir%/fuzz/config \
	%reldir%/fuzz/text %reldir%/fuzz/corpus %reldir%/fuzz/info %reldir%/fuzz/resume %reldir%/fuzz/eval \
	%reldir%/fuzz/safetensors %reldir%/fuzz/hfconfig %reldir%/fuzz/regressions

# The library sources the targets need (the run-file reader of eval builds a model: nn),
# compiled again with clang for libFuzzer; MPI's flags come from the mpicc wrapper
# (Open MPI's --showme).
FUZZ_CLANG_SRCS = $(filter-out src/io/netcdf.c,$(filter src/core/%.c src/io/%.c src/nn/%.c src/data/text.c \
	src/data/corpus.c,$(libfedmoe_a_SOURCES)))
FUZZ_CC = clang
FUZZ_SECONDS = 60
FUZZ_SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_BUILD = tests/fuzz/build
FUZZ_FLAGS = -g -O1 -fno-omit-frame-pointer $(FUZZ_SANITIZE) -D_GNU_SOURCE -I$(top_srcdir)/include \
	-I$(top_builddir) $(HDF5_CPPFLAGS) $(BLIS_CPPFLAGS) $(JANSSON_CPPFLAGS)
fuzz-build-targets:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz: $(FUZZ_CC) not found (apt-get install clang libclang-rt-14-dev)"; exit 1; }
	@mkdir -p $(FUZZ_BUILD)/obj
	@set -e; mpi_c=`$(CC) --showme:compile`; mpi_l=`$(CC) --showme:link`; objs=; \
	for s in $(FUZZ_CLANG_SRCS) tests/fuzz/fuzz_util.c tests/fuzz/runfile_gen.c; do \
	  o=$(FUZZ_BUILD)/obj/`echo $$s | tr / _ | sed 's/\.c$$/.o/'`; \
	  echo "  FUZZCC   $$s"; \
	  $(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $$mpi_c -c -o $$o $(srcdir)/$$s; objs="$$objs $$o"; \
	done; \
	rm -f $(FUZZ_BUILD)/libfuzz.a; ar rcs $(FUZZ_BUILD)/libfuzz.a $$objs; \
	for t in $(FUZZ_ALL_TARGETS); do \
	  echo "  FUZZLD   $(FUZZ_BUILD)/fuzz_$$t"; \
	  $(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $$mpi_c -o $(FUZZ_BUILD)/fuzz_$$t $(srcdir)/tests/fuzz/fuzz_$$t.c \
	    $(FUZZ_BUILD)/libfuzz.a $(HDF5_LIBS) $(BLIS_LIBS) $(JANSSON_LIBS) $$mpi_l -lm; \
	done

# make fuzz [FUZZ_SECONDS=N] [FUZZ_TARGETS="config text"]: each target N seconds;
# new inputs go to $(FUZZ_BUILD)/corpus/<t>, crashes to $(FUZZ_BUILD)/crashes/<t>/.
fuzz: fuzz-build-targets
	@failed=; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  regress=$(srcdir)/tests/fuzz/regressions/$$t; [ -d $$regress ] || regress=; \
	  ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0 \
	  LSAN_OPTIONS=suppressions=$(abs_top_srcdir)/tests/lsan.supp:print_suppressions=0 \
	  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	  $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ \
	    $(FUZZ_BUILD)/corpus/$$t $(srcdir)/tests/fuzz/$$t $$regress >$(FUZZ_BUILD)/$$t.log 2>&1 \
	    || failed="$$failed $$t"; \
	  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)' $(FUZZ_BUILD)/$$t.log || true; \
	done; \
	if [ -n "$$failed" ]; then \
	  echo "make fuzz: FAILED:$$failed (logs: $(FUZZ_BUILD)/<target>.log, inputs: $(FUZZ_BUILD)/crashes/<target>/)"; exit 1; \
	fi; echo "make fuzz: no crash, hang or leak in $(FUZZ_TARGETS)"
.PHONY: fuzz fuzz-build-targets

clean-fuzz:
	rm -rf $(FUZZ_BUILD)
.PHONY: clean-fuzz

# ---- rank failures at every phase, and resuming after them ----
TESTS += %reldir%/mpi/faults.sh
dist_noinst_SCRIPTS += %reldir%/mpi/faults.sh

# ---- no hang (issue 25): a slow rank while resuming, fl.rounds far beyond memory,
# the collective watchdog against stalled ranks, one exit status on every rank ----
TESTS += %reldir%/mpi/hang.sh
dist_noinst_SCRIPTS += %reldir%/mpi/hang.sh

# `make check-resume-stress [RESUME_STRESS_PAIRS=50]`: the resume case run two at a
# time, RESUME_STRESS_PAIRS pairs (minutes; not part of make check)
dist_noinst_SCRIPTS += %reldir%/mpi/resume_stress.sh
RESUME_STRESS_PAIRS = 50
check-resume-stress: fedmoe$(EXEEXT)
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FEDMOE=$(abs_top_builddir)/fedmoe$(EXEEXT) \
	  top_srcdir=$(abs_top_srcdir) MPIEXEC='$(MPIEXEC)' MPIEXEC_FLAGS='$(MPIEXEC_FLAGS)' \
	  RESUME_STRESS_PAIRS=$(RESUME_STRESS_PAIRS) $(SHELL) $(srcdir)/tests/mpi/resume_stress.sh
.PHONY: check-resume-stress

# ---- storage faults: make check-storage (mounts tmpfs in a private mount namespace,
# which CI containers may not allow; the script fails, saying why, where it cannot) ----
dist_noinst_SCRIPTS += %reldir%/mpi/storage.sh
check-storage: fedmoe$(EXEEXT)
	OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FEDMOE=$(abs_top_builddir)/fedmoe$(EXEEXT) \
	  top_srcdir=$(abs_top_srcdir) MPIEXEC='$(MPIEXEC)' MPIEXEC_FLAGS='$(MPIEXEC_FLAGS)' H5DIFF='$(H5DIFF)' \
	  $(SHELL) $(srcdir)/tests/mpi/storage.sh
.PHONY: check-storage
