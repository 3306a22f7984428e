# Runtime tests: reproducibility over rank counts, bad input.
FL_MPI_TESTS = %reldir%/mpi/fl_repro.sh %reldir%/mpi/device_mirror.sh %reldir%/mpi/fl_bad_input.sh %reldir%/mpi/resume.sh %reldir%/mpi/dataloss.sh %reldir%/mpi/output.sh \
	%reldir%/mpi/pretrain.sh %reldir%/mpi/pretrain_base.sh %reldir%/mpi/client_batch.sh
TESTS += $(FL_MPI_TESTS)
dist_noinst_SCRIPTS += $(FL_MPI_TESTS) %reldir%/mpi/tiny.sh %reldir%/mpi/base.sh %reldir%/make_tiny_base.sh

check_PROGRAMS += tests/unit/test_fl
tests_unit_test_fl_SOURCES = %reldir%/unit/test_fl.c $(TEST_UNIT_MAIN)
tests_unit_test_fl_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_fl_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_fl

check_PROGRAMS += tests/unit/test_toolkit
tests_unit_test_toolkit_SOURCES = %reldir%/unit/test_toolkit.c $(TEST_UNIT_MAIN)
tests_unit_test_toolkit_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_toolkit_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_toolkit

# Tests that read run files with h5py (configure found a Python that imports it).
if HAVE_PYTHON_H5PY
TESTS += %reldir%/mpi/runfile_attrs.sh %reldir%/mpi/hfedmoe.sh %reldir%/mpi/fedbiot.sh %reldir%/mpi/fl_scale.sh %reldir%/mpi/system.sh %reldir%/mpi/netcdf.sh \
	%reldir%/mpi/toolkit.sh %reldir%/mpi/ditto.sh %reldir%/mpi/comigs_router.sh
endif
dist_noinst_SCRIPTS += %reldir%/mpi/runfile_attrs.sh %reldir%/mpi/hfedmoe.sh %reldir%/mpi/fedbiot.sh %reldir%/mpi/fl_scale.sh %reldir%/mpi/system.sh %reldir%/mpi/netcdf.sh \
	%reldir%/mpi/toolkit.sh %reldir%/mpi/ditto.sh %reldir%/mpi/comigs_router.sh

check_PROGRAMS += tests/unit/test_hidden
tests_unit_test_hidden_SOURCES = %reldir%/unit/test_hidden.c $(TEST_UNIT_MAIN)
tests_unit_test_hidden_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_hidden_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_hidden
dist_noinst_DATA += %reldir%/fixtures/devices.csv
