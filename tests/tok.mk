# tokenizer tests: GPT-2's real tokenizer against its JavaScript reference, the
# trained fixtures of tests/fixtures/tok against Hugging Face tokenizers and
# SentencePiece, `fedmoe tokenize` and its bad input.
check_PROGRAMS += tests/tok/tok_ids
tests_tok_tok_ids_SOURCES = %reldir%/tok/tok_ids.c
tests_tok_tok_ids_LDADD = libfedmoe.a $(FEDMOE_LIBS)

TOK_TESTS = %reldir%/tok/gpt2_reference.sh
TESTS += $(TOK_TESTS)
dist_noinst_SCRIPTS += $(TOK_TESTS) %reldir%/tok/gpt2_reference.js %reldir%/tok/npm_reference.sh
