# Unit tests (CUnit): one program per module, sharing one main().
TEST_UNIT_CFLAGS = $(AM_CFLAGS)
TEST_UNIT_CPPFLAGS = $(AM_CPPFLAGS) $(CUNIT_CPPFLAGS) -I$(srcdir)/tests/unit
TEST_UNIT_LDADD = libfedmoe.a $(CUNIT_LIBS) $(FEDMOE_LIBS)
TEST_UNIT_MAIN = %reldir%/unit/cunit_main.c %reldir%/unit/cunit_main.h

check_PROGRAMS += tests/unit/test_core
tests_unit_test_core_SOURCES = %reldir%/unit/test_core.c $(TEST_UNIT_MAIN)
tests_unit_test_core_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_core_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_core

# MPI integration tests: shell scripts running the fedmoe program under mpirun.
MPI_TESTS = %reldir%/mpi/bad_input.sh %reldir%/mpi/cli.sh
TESTS += $(MPI_TESTS)
dist_noinst_SCRIPTS += $(MPI_TESTS) %reldir%/mpi/common.sh
EXTRA_DIST += %reldir%/nn.mk %reldir%/oracle.mk %reldir%/data.mk %reldir%/tok.mk %reldir%/fl.mk %reldir%/hf.mk

# Strict input: numbers, lists, duplicate keys, NUL bytes, "did you mean".
check_PROGRAMS += tests/unit/test_input
tests_unit_test_input_SOURCES = %reldir%/unit/test_input.c $(TEST_UNIT_MAIN)
tests_unit_test_input_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_input_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_input

# The generated key lists of README.md and docs/fedmoe.1 match the declarations.
TESTS += %reldir%/docs_keys.sh
dist_noinst_SCRIPTS += %reldir%/docs_keys.sh

# make check ends with "N passed, N failed" on a line of its own (tests/summary.sh,
# reading test-suite.log), for anyone reading a CI log. check-local runs after
# check-TESTS (the prerequisite orders them under make -j), and check-TESTS's own
# failure is ignored so that the line comes after a failing run too: summary.sh
# exits 1 then, so make check still fails. (GNU make's .IGNORE: the build already
# needs GNU make.)
.IGNORE: check-TESTS
check-local: check-TESTS
	@sh $(srcdir)/tests/summary.sh $(TEST_SUITE_LOG)
TESTS += %reldir%/summary_line.sh
dist_noinst_SCRIPTS += %reldir%/summary.sh %reldir%/summary_line.sh

# The documentation cites nothing outside the repository and documents every strategy.
TESTS += %reldir%/docs_refs.sh
dist_noinst_SCRIPTS += %reldir%/docs_refs.sh
