# Hugging Face folders: safetensors and config.json (unit), gpt2 folders end to end
# against an independent PyTorch GPT-2 (hf.sh), bad folders (hf_bad_input.sh), and the
# transformers fixtures of every family (hf_fixtures.sh; made on a machine with
# transformers by tests/fixtures/make_hf_fixtures.py; their generate.json files, for
# nn.mk's hf_generate.sh, by tests/fixtures/hf_generate.py).
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
dist_noinst_DATA += %reldir%/fixtures/hf_export/gpt2/config.json \
	%reldir%/fixtures/hf_export/gpt2/fedmoe.json \
	%reldir%/fixtures/hf_export/gpt2/model.safetensors \
	%reldir%/fixtures/hf_export/gpt2_lora/config.json \
	%reldir%/fixtures/hf_export/gpt2_lora/fedmoe.json \
	%reldir%/fixtures/hf_export/gpt2_lora/model.safetensors \
	%reldir%/fixtures/hf_export/llama/config.json \
	%reldir%/fixtures/hf_export/llama/fedmoe.json \
	%reldir%/fixtures/hf_export/llama/model.safetensors \
	%reldir%/fixtures/hf_export/mixtral/config.json \
	%reldir%/fixtures/hf_export/mixtral/fedmoe.json \
	%reldir%/fixtures/hf_export/mixtral/model.safetensors \
	%reldir%/fixtures/hf_export/mixtral_top1/config.json \
	%reldir%/fixtures/hf_export/mixtral_top1/fedmoe.json \
	%reldir%/fixtures/hf_export/mixtral_top1/model.safetensors \
	%reldir%/fixtures/hf_export/olmoe/config.json \
	%reldir%/fixtures/hf_export/olmoe/fedmoe.json \
	%reldir%/fixtures/hf_export/olmoe/model.safetensors \
	%reldir%/fixtures/hf_export/olmoe_top1/config.json \
	%reldir%/fixtures/hf_export/olmoe_top1/fedmoe.json \
	%reldir%/fixtures/hf_export/olmoe_top1/model.safetensors \
	%reldir%/fixtures/hf_export/qwen2/config.json \
	%reldir%/fixtures/hf_export/qwen2/fedmoe.json \
	%reldir%/fixtures/hf_export/qwen2/model.safetensors \
	%reldir%/fixtures/hf_export/qwen2_moe/config.json \
	%reldir%/fixtures/hf_export/qwen2_moe/fedmoe.json \
	%reldir%/fixtures/hf_export/qwen2_moe/model.safetensors
# the transformers fixtures (tests/fixtures/make_hf_fixtures.py)
dist_noinst_DATA += \
	%reldir%/fixtures/hf/gpt2/generate.json \
	%reldir%/fixtures/hf/llama/generate.json \
	%reldir%/fixtures/hf/qwen2/generate.json \
	%reldir%/fixtures/hf/mixtral/generate.json \
	%reldir%/fixtures/hf/mixtral_top1/generate.json \
	%reldir%/fixtures/hf/olmoe/generate.json \
	%reldir%/fixtures/hf/olmoe_top1/generate.json \
	%reldir%/fixtures/hf/qwen2_moe/generate.json \
	%reldir%/fixtures/hf/gpt2/config.json \
	%reldir%/fixtures/hf/gpt2/expected.json \
	%reldir%/fixtures/hf/gpt2/generation_config.json \
	%reldir%/fixtures/hf/gpt2/model.safetensors \
	%reldir%/fixtures/hf/llama/config.json \
	%reldir%/fixtures/hf/llama/expected.json \
	%reldir%/fixtures/hf/llama/generation_config.json \
	%reldir%/fixtures/hf/llama/model.safetensors \
	%reldir%/fixtures/hf/mixtral/config.json \
	%reldir%/fixtures/hf/mixtral/expected.json \
	%reldir%/fixtures/hf/mixtral/generation_config.json \
	%reldir%/fixtures/hf/mixtral/model.safetensors \
	%reldir%/fixtures/hf/mixtral_top1/config.json \
	%reldir%/fixtures/hf/mixtral_top1/expected.json \
	%reldir%/fixtures/hf/mixtral_top1/generation_config.json \
	%reldir%/fixtures/hf/mixtral_top1/model.safetensors \
	%reldir%/fixtures/hf/olmoe/config.json \
	%reldir%/fixtures/hf/olmoe/expected.json \
	%reldir%/fixtures/hf/olmoe/generation_config.json \
	%reldir%/fixtures/hf/olmoe/model.safetensors \
	%reldir%/fixtures/hf/olmoe_top1/config.json \
	%reldir%/fixtures/hf/olmoe_top1/expected.json \
	%reldir%/fixtures/hf/olmoe_top1/generation_config.json \
	%reldir%/fixtures/hf/olmoe_top1/model.safetensors \
	%reldir%/fixtures/hf/qwen2/config.json \
	%reldir%/fixtures/hf/qwen2/expected.json \
	%reldir%/fixtures/hf/qwen2/generation_config.json \
	%reldir%/fixtures/hf/qwen2/model.safetensors \
	%reldir%/fixtures/hf/qwen2_moe/config.json \
	%reldir%/fixtures/hf/qwen2_moe/expected.json \
	%reldir%/fixtures/hf/qwen2_moe/generation_config.json \
	%reldir%/fixtures/hf/qwen2_moe/model.safetensors
