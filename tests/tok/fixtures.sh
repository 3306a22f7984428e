#!/bin/sh
# fixtures.sh - the tokenizers trained by tests/fixtures/make_tokenizer_fixtures.py
# (Hugging Face tokenizers and sentencepiece) give, through fedmoe, the ids those
# libraries gave (tests/tok/check_fixtures.py); the vocabulary size fedmoe reads is
# theirs. Missing fixtures fail.
. "${top_srcdir:-.}/tests/mpi/common.sh"
: "${top_builddir:=.}"
FIX=$top_srcdir/tests/fixtures/tok
"${PYTHON:-python3}" "$top_srcdir/tests/tok/check_fixtures.py" "$top_builddir/tests/tok/tok_ids" "$FIX" \
  "$top_srcdir" || fail "fedmoe's ids differ from the references"
