#!/bin/sh
# spm_cli.sh - SentencePiece through fedmoe: a BPE model (byte fallback, Llama 2
# style) and a unigram model trained here by spm_train on tests/fixtures/tok/train.txt;
# `fedmoe tokenize` gives spm_encode's ids on one-line texts (spm_encode encodes line
# by line) and decodes them back; a corpus loads through the model. The same library
# on both sides: this checks the wrapper and the corpus path; the ids of an
# independent build (Python's sentencepiece) are tests/fixtures/tok's.
. "${top_srcdir:-.}/tests/mpi/common.sh"
command -v spm_train >/dev/null 2>&1 || fail "spm_train not found (Debian: sentencepiece; bootstrap installs it)"
TRAIN="$top_srcdir/tests/fixtures/tok/train.txt"
common="--input=$TRAIN --character_coverage=1.0 --num_threads=1 --minloglevel=2 --shuffle_input_sentence=false"
# shellcheck disable=SC2086
spm_train $common --model_prefix="$TMP/bpe" --model_type=bpe --vocab_size=800 --byte_fallback=true \
  --split_digits=true --normalization_rule_name=identity --remove_extra_whitespaces=false >"$TMP/train.log" 2>&1 ||
  { cat "$TMP/train.log"; fail "spm_train (bpe)"; }
# shellcheck disable=SC2086
spm_train $common --model_prefix="$TMP/uni" --model_type=unigram --vocab_size=500 >"$TMP/train.log" 2>&1 ||
  { cat "$TMP/train.log"; fail "spm_train (unigram)"; }

printf '%s\n' "Hello, world! It's fedmoe's test: we'll see   how spaces    go." \
  "Freiheit fürs Hirn, nieder mit den Computern!" \
  "Хочешь, чтобы все твои желания исполнялись? Тобой?!!" \
  "K mlčení je zapotřebí hodně duchaplnosti. -- André Maurois" \
  "Emoji: 😀🚀 and 12345 digits, 3.14159." >"$TMP/lines"
for m in bpe uni; do
  i=0
  while IFS= read -r line; do
    i=$((i + 1))
    printf '%s' "$line" >"$TMP/t$i"
    want=$(printf '%s\n' "$line" | spm_encode --model="$TMP/$m.model" --output_format=id)
    mpi 1 tokenize "$TMP/$m.model" "$TMP/t$i" --ids || { cat "$TMP/out"; fail "$m: tokenize failed"; }
    got=$(sed -n 2p "$TMP/out")
    [ "$got" = "$want" ] || fail "$m, line $i: ids '$got', spm_encode '$want'"
    printf '%s\n' "$got" >"$TMP/ids"
    mpi 1 tokenize "$TMP/$m.model" "$TMP/ids" --decode || { cat "$TMP/out"; fail "$m: decode failed"; }
    want=$(printf '%s\n' "$want" | spm_decode --model="$TMP/$m.model" --input_format=id)
    [ "$(cat "$TMP/out")" = "$want" ] || fail "$m, line $i: decodes to '$(cat "$TMP/out")', spm_decode '$want'"
  done <"$TMP/lines"
  echo "ok: $m: $i texts, the ids and text of spm_encode and spm_decode"
done

mkdir "$TMP/corpus"
cp "$top_srcdir/tests/fixtures/text/astronomy" "$top_srcdir/tests/fixtures/text/sailing" "$TMP/corpus/"
printf '[run]\nname = spm\n' >"$TMP/spm.ini"
mpi 2 data "$TMP/spm.ini" -q --set "data.path=$TMP/corpus" --set "model.tokenizer=$TMP/bpe.model" \
  --set model.vocab=800 --set data.token_cache=off --set fl.clients=2 --set data.client_bytes=400 \
  --set data.min_domain_bytes=100 --set train.seq_len=16 || { cat "$TMP/out"; fail "data through SentencePiece"; }
grep -q "tokenizer: sentencepiece $TMP/bpe.model, 800 ids" "$TMP/out" || { cat "$TMP/out"; fail "no tokenizer line"; }
echo "ok: a corpus through SentencePiece"
