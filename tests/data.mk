# data tests: the data module's unit tests, its fixture corpus and `fedmoe data` under MPI.
check_PROGRAMS += tests/unit/test_data
tests_unit_test_data_SOURCES = %reldir%/unit/test_data.c $(TEST_UNIT_MAIN)
tests_unit_test_data_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_data_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_data

TESTS += %reldir%/mpi/data_cli.sh
dist_noinst_SCRIPTS += %reldir%/mpi/data_cli.sh
dist_noinst_DATA += %reldir%/fixtures/text/astronomy %reldir%/fixtures/text/cooking \
	%reldir%/fixtures/text/cooking.dat %reldir%/fixtures/text/sailing \
	%reldir%/fixtures/text/letters/autumn %reldir%/fixtures/text/letters/autumn.u8 \
	%reldir%/fixtures/text/letters/spring
