# fedmoe eval (src/cmd_eval.c) and the checkpoint reader it uses (src/io/checkpoint_read.c),
# with its test: a tiny fedavg run evaluated by `fedmoe eval` and, independently, by
# test_bench_eval (which tests/mpi/eval.sh runs on the same run file), plus bad input.
libfedmoe_a_SOURCES += src/io/checkpoint_read.c

check_PROGRAMS += tests/unit/test_bench_eval
tests_unit_test_bench_eval_SOURCES = %reldir%/unit/test_bench_eval.c $(TEST_UNIT_MAIN)
tests_unit_test_bench_eval_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_bench_eval_LDADD = $(TEST_UNIT_LDADD)

TESTS += %reldir%/mpi/eval.sh
dist_noinst_SCRIPTS += %reldir%/mpi/eval.sh

# bench/fedround.sh as a script (--small on the CPU): it runs and reports a round
TESTS += %reldir%/mpi/bench_fedround.sh
dist_noinst_SCRIPTS += %reldir%/mpi/bench_fedround.sh
