# nn tests: the kernels one by one (test_nn) and the whole model (test_model).
# They include the private kernel header src/nn/nn.h.
check_PROGRAMS += tests/unit/test_nn tests/unit/test_model
tests_unit_test_nn_SOURCES = %reldir%/unit/test_nn.c $(TEST_UNIT_MAIN)
tests_unit_test_nn_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_nn_LDADD = $(TEST_UNIT_LDADD)
tests_unit_test_model_SOURCES = %reldir%/unit/test_model.c $(TEST_UNIT_MAIN)
tests_unit_test_model_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_model_LDADD = $(TEST_UNIT_LDADD)
# the host mirrors of a model on a device backend, with a stand-in device (no GPU)
check_PROGRAMS += tests/unit/test_backend
tests_unit_test_backend_SOURCES = %reldir%/unit/test_backend.c $(TEST_UNIT_MAIN)
tests_unit_test_backend_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_backend_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_nn tests/unit/test_model tests/unit/test_backend
