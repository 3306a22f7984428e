# nn tests: the kernels one by one (test_nn), the whole model (test_model), and
# text generation: the decoder with its key/value cache and the sampler (test_decode).
# They include the private kernel header src/nn/nn.h.
check_PROGRAMS += tests/unit/test_nn tests/unit/test_model tests/unit/test_decode
tests_unit_test_nn_SOURCES = %reldir%/unit/test_nn.c $(TEST_UNIT_MAIN)
tests_unit_test_nn_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_nn_LDADD = $(TEST_UNIT_LDADD)
tests_unit_test_model_SOURCES = %reldir%/unit/test_model.c $(TEST_UNIT_MAIN)
tests_unit_test_model_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_model_LDADD = $(TEST_UNIT_LDADD)
tests_unit_test_decode_SOURCES = %reldir%/unit/test_decode.c $(TEST_UNIT_MAIN)
tests_unit_test_decode_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_decode_LDADD = $(TEST_UNIT_LDADD)
# the host mirrors of a model on a device backend, with a stand-in device (no GPU)
check_PROGRAMS += tests/unit/test_backend
tests_unit_test_backend_SOURCES = %reldir%/unit/test_backend.c $(TEST_UNIT_MAIN)
tests_unit_test_backend_CPPFLAGS = $(TEST_UNIT_CPPFLAGS) -I$(srcdir)/src/nn
tests_unit_test_backend_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_nn tests/unit/test_model tests/unit/test_decode tests/unit/test_backend

# fedmoe generate end to end: against tests/fixtures/gpt2_ref.py's greedy continuation,
# seeds, ranks, the context, --client and bad input
# and against transformers' generate() on the HF fixtures (hf_generate.sh; the
# tests/fixtures/hf/*/generate.json files from tests/fixtures/hf_generate.py)
GENERATE_TESTS = %reldir%/mpi/generate.sh %reldir%/mpi/hf_generate.sh
TESTS += $(GENERATE_TESTS)
dist_noinst_SCRIPTS += $(GENERATE_TESTS) %reldir%/fixtures/hf_generate.py
