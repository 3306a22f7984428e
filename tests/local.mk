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
EXTRA_DIST += %reldir%/nn.mk %reldir%/oracle.mk %reldir%/data.mk %reldir%/tok.mk %reldir%/fl.mk
