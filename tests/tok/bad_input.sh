#!/bin/sh
# bad_input.sh - tokenizers and the text they read, given wrong: every case fails on
# every rank (1 and 3) with a message naming the file and where in it, prints no ids
# or text, and never hangs. Then a run through a tokenizer: `fedmoe data` and `fedmoe
# run` on the fixture corpus with a tokenizer.json, the second run reading the cache.
. "${top_srcdir:-.}/tests/mpi/common.sh"
FIX="$top_srcdir/tests/fixtures/text"

# a small byte-level BPE: every ASCII letter, space, newline and punctuation of the
# fixture corpus, a few merges, one special token
"${PYTHON:-python3}" - "$TMP/tok.json" <<'PY'
import json, sys
def b2u():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}
m = b2u()
vocab = {m[b]: b for b in range(256)}
merges = [("t", "h"), ("th", "e"), (m[32], "a"), ("i", "n"), (m[32], "the")]
for a, b in merges:
    vocab[a + b] = len(vocab)
tok = {"added_tokens": [{"id": len(vocab), "content": "<|end|>", "special": True, "single_word": False,
                         "lstrip": False, "rstrip": False, "normalized": False}],
       "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
       "model": {"type": "BPE", "vocab": vocab, "merges": [a + " " + b for a, b in merges]}}
json.dump(tok, open(sys.argv[1], "w"))
PY
[ -s "$TMP/tok.json" ] || fail "could not write the test tokenizer"

printf 'the thin cat\n' >"$TMP/good.txt"
printf 'line one\nline two \351t\351\n' >"$TMP/latin1.txt"
printf '{"model": {"type": "BPE",\n "vocab": {"a": 0},\n "merges": [,]}}\n' >"$TMP/broken.json"
printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}\n' >"$TMP/wordpiece.json"
printf 'not a model\n' >"$TMP/tokenizer.model"
printf '10 20\n30 999999\n' >"$TMP/far.ids"
printf '10 20\n30 x1\n' >"$TMP/word.ids"
for np in 1 3; do
  expect_fail $np 20 "broken.json:3:.*not valid JSON" tokenize "$TMP/broken.json" "$TMP/good.txt"
  expect_fail $np 20 "model.type is 'WordPiece', not BPE" tokenize "$TMP/wordpiece.json" "$TMP/good.txt"
  expect_fail $np 20 "tokenizer.model: not a SentencePiece model that loads" tokenize "$TMP/tokenizer.model" "$TMP/good.txt"
  expect_fail $np 20 "latin1.txt: invalid UTF-8 at byte 18 (line 2)" tokenize "$TMP/tok.json" "$TMP/latin1.txt"
  expect_fail $np 20 "far.ids: id 999999 at position 3 is outside the vocabulary" tokenize "$TMP/tok.json" "$TMP/far.ids" --decode
  expect_fail $np 20 "word.ids:2: 'x1' (id 4) is not a token id" tokenize "$TMP/tok.json" "$TMP/word.ids" --decode
  expect_fail $np 20 "needs a TOKENIZER" tokenize "$TMP/tok.json"
  ! grep -q "^tokens" "$TMP/out" || fail "an error printed a token count"
done

# the command on good input
mpi 3 tokenize "$TMP/tok.json" "$TMP/good.txt" --ids || { cat "$TMP/out"; fail "fedmoe tokenize failed"; }
# merges th=256 the=257 " a"=258 in=259 " the"=260: "the" | " thin" = " " th in | " cat" | "\n"
[ "$(sed -n 1p "$TMP/out")" = "tokens 9" ] || { cat "$TMP/out"; fail "tokenize: $(sed -n 1p "$TMP/out")"; }
[ "$(sed -n 2p "$TMP/out")" = "257 32 256 259 32 99 97 116 10" ] || fail "tokenize --ids: $(sed -n 2p "$TMP/out")"
echo "ok: tokenize"

# a corpus through the tokenizer
mkdir "$TMP/corpus" "$TMP/cache"
cp "$FIX/astronomy" "$FIX/cooking" "$FIX/sailing" "$TMP/corpus/"
cat >"$TMP/tok.ini" <<INI
[run]
output = $TMP/run.h5
[data]
path = $TMP/corpus
token_cache = $TMP/cache
min_domain_bytes = 512
client_bytes = 800
public_frac = 0
[model]
tokenizer = $TMP/tok.json
vocab = 262
d_model = 16
heads = 2
layers = 1
context = 16
experts = 2
top_k = 1
[train]
seq_len = 16
batch = 2
[fl]
clients = 3
rounds = 2
local_steps = 2
INI
for np in 1 3; do
  expect_fail $np 20 "model.vocab.*fewer than the 262 ids of the tokenizer" data "$TMP/tok.ini" --set model.vocab=200
  expect_fail $np 20 "model.vocab.*the tokenizer is bytes" data "$TMP/tok.ini" --set model.tokenizer=bytes
  expect_fail $np 20 "model.tokenizer.*No such file" data "$TMP/tok.ini" --set model.tokenizer=$TMP/none.json
done
cp "$TMP/latin1.txt" "$TMP/corpus/zz-latin1"
expect_fail 3 20 "zz-latin1:2: invalid UTF-8" data "$TMP/tok.ini"
rm "$TMP/corpus/zz-latin1"
[ -z "$(ls "$TMP/cache")" ] || fail "a failed load left a token cache: $(ls "$TMP/cache")"

mpi 3 data "$TMP/tok.ini" || { cat "$TMP/out"; fail "fedmoe data with a tokenizer failed"; }
cat "$TMP/out"
grep -q "corpus '$TMP/corpus': 3 domains, [0-9]* tokens ([0-9]* bytes of text)" "$TMP/out" || fail "no token count"
grep -q "tokenizer: bpe $TMP/tok.json, 262 ids" "$TMP/out" || fail "no tokenizer line"
grep -q "token cache: $TMP/cache/.fedmoe-tokens-.*(written)" "$TMP/out" || fail "the cache was not written"
mpi 2 run "$TMP/tok.ini" -q || { cat "$TMP/out"; fail "fedmoe run with a tokenizer failed"; }
mpi 1 data "$TMP/tok.ini" || { cat "$TMP/out"; fail "fedmoe data with a tokenizer failed"; }
grep -q "token cache: $TMP/cache/.fedmoe-tokens-.*(read)" "$TMP/out" || fail "the cache was not read"
# eval reads the text through the run's tokenizer
mpi 1 eval --checkpoint "$TMP/run.h5" --text "$FIX/cooking" || { cat "$TMP/out"; fail "fedmoe eval failed"; }
grep -q "blocks of 17 tokens" "$TMP/out" || { cat "$TMP/out"; fail "eval did not read tokens"; }
expect_fail 2 20 "latin1.txt: invalid UTF-8" eval --checkpoint "$TMP/run.h5" --text "$TMP/latin1.txt"
echo "ok: data and run through a tokenizer, the cache written then read"
