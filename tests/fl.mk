# Runtime tests: reproducibility over rank counts, bad input.
FL_MPI_TESTS = %reldir%/mpi/fl_repro.sh %reldir%/mpi/fl_bad_input.sh %reldir%/mpi/resume.sh
TESTS += $(FL_MPI_TESTS)
dist_noinst_SCRIPTS += $(FL_MPI_TESTS) %reldir%/mpi/tiny.sh

check_PROGRAMS += tests/unit/test_fl
tests_unit_test_fl_SOURCES = %reldir%/unit/test_fl.c $(TEST_UNIT_MAIN)
tests_unit_test_fl_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_fl_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_fl
