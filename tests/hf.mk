# Hugging Face folders: safetensors and config.json (unit), gpt2 folders end to end
# against an independent PyTorch GPT-2 (hf.sh), bad folders (hf_bad_input.sh), and the
# transformers fixtures of every family (hf_fixtures.sh; made on a machine with
# transformers by tests/fixtures/make_hf_fixtures.py).
check_PROGRAMS += tests/unit/test_hf
tests_unit_test_hf_SOURCES = %reldir%/unit/test_hf.c $(TEST_UNIT_MAIN)
tests_unit_test_hf_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_hf_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_hf

HF_TESTS = %reldir%/mpi/hf.sh %reldir%/mpi/hf_bad_input.sh %reldir%/mpi/hf_fixtures.sh
TESTS += $(HF_TESTS)
dist_noinst_SCRIPTS += $(HF_TESTS) %reldir%/fixtures/gpt2_ref.py %reldir%/fixtures/make_hf_fixtures.py \
	%reldir%/fixtures/hf_roundtrip.py %reldir%/fixtures/make_hf_exports.sh
# fedmoe's exports for the transformers side of the round trip (hf_roundtrip.py)
dist_noinst_DATA += %reldir%/fixtures/hf_export/gpt2/config.json %reldir%/fixtures/hf_export/gpt2/model.safetensors \
	%reldir%/fixtures/hf_export/gpt2/fedmoe.json %reldir%/fixtures/hf_export/gpt2_lora/config.json \
	%reldir%/fixtures/hf_export/gpt2_lora/model.safetensors %reldir%/fixtures/hf_export/gpt2_lora/fedmoe.json
