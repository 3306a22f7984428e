# tokenizer tests: GPT-2's real tokenizer against its JavaScript reference, the
# trained fixtures of tests/fixtures/tok against Hugging Face tokenizers and
# SentencePiece, `fedmoe tokenize` and its bad input.
check_PROGRAMS += tests/tok/tok_ids
tests_tok_tok_ids_SOURCES = %reldir%/tok/tok_ids.c
tests_tok_tok_ids_LDADD = libfedmoe.a $(FEDMOE_LIBS)

TOK_TESTS = %reldir%/tok/gpt2_reference.sh %reldir%/tok/bad_input.sh %reldir%/tok/jsonl_cli.sh %reldir%/tok/spm_cli.sh
TESTS += $(TOK_TESTS)
dist_noinst_SCRIPTS += $(TOK_TESTS) %reldir%/tok/gpt2_reference.js %reldir%/tok/npm_reference.sh \
	%reldir%/tok/gpt2_to_json.py %reldir%/tok/check_fixtures.py %reldir%/tok/fixtures.sh \
	%reldir%/fixtures/make_tokenizer_fixtures.py
dist_noinst_DATA += %reldir%/fixtures/tok/train.txt %reldir%/fixtures/tok/samples.json

# The trained references come from make_tokenizer_fixtures.py, run where Hugging Face
# tokenizers and sentencepiece are installed (tests/fixtures/README.md); its outputs
# are listed here and checked by fixtures.sh, which fails when a file that
# expected.json names is missing.
TOK_FIXTURES = %reldir%/fixtures/tok/expected.json %reldir%/fixtures/tok/bpe_gpt2.json \
	%reldir%/fixtures/tok/bpe_split.json %reldir%/fixtures/tok/bpe_digits.json \
	%reldir%/fixtures/tok/spm_bpe.model %reldir%/fixtures/tok/spm_unigram.model
dist_noinst_DATA += $(TOK_FIXTURES)
TESTS += %reldir%/tok/fixtures.sh

check_PROGRAMS += tests/unit/test_tok
tests_unit_test_tok_SOURCES = %reldir%/unit/test_tok.c $(TEST_UNIT_MAIN)
tests_unit_test_tok_CPPFLAGS = $(TEST_UNIT_CPPFLAGS)
tests_unit_test_tok_LDADD = $(TEST_UNIT_LDADD)
TESTS += tests/unit/test_tok
