#!/bin/sh
# fedmoe generate: greedy continuation of a GPT-2 folder equal to an independent
# PyTorch GPT-2 that recomputes the whole sequence for every token
# (tests/fixtures/gpt2_ref.py greedy); on every HF fixture family a nucleus of one
# token is the greedy choice; from a run file the same seed gives the same text on 1
# and 3 ranks and another seed another text; the stop at the context; --client; bad
# input fails on every rank with a message naming what was wrong, and writes nothing.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
PY=/usr/bin/python3
REF="$top_srcdir/tests/fixtures/gpt2_ref.py"
$PY -c "import torch" 2>/dev/null || fail "$PY cannot import torch (python3-torch)"

# gen NP ARGS...: fedmoe generate, stdout in $TMP/gen, stderr in $TMP/err
gen() {
  local np=$1; shift
  timeout -k 5 "${FM_TEST_TIMEOUT:-300}" "$MPIEXEC" $MPIEXEC_FLAGS -np "$np" "$FEDMOE" generate "$@" \
    >"$TMP/gen" 2>"$TMP/err" || { cat "$TMP/err"; return 1; }
}
# the byte ids of the continuation (stdout less its final newline)
ids() { head -c -1 "$TMP/gen" | od -An -tu1 -v | xargs; }

# 1. greedy = the reference's argmax continuation (float64, no cache)
prompt="Sailing on the "
for seed in 3 5; do
  $PY "$REF" make "$TMP/g$seed" --seed "$seed" || fail "gpt2_ref.py make"
  want=$($PY "$REF" greedy "$TMP/g$seed" "$prompt" --tokens 12 | sed -n 's/^ids //p')
  [ -n "$want" ] || fail "gpt2_ref.py greedy printed no ids"
  gen 1 --model "$TMP/g$seed" --prompt "$prompt" --tokens 12 --temperature 0 || fail "generate --model g$seed"
  got=$(ids)
  [ "$got" = "$want" ] || fail "greedy continuation of g$seed: fedmoe '$got', reference '$want'"
  grep -q "stopped: --tokens 12 reached" "$TMP/err" || { cat "$TMP/err"; fail "no stop line"; }
  grep -q "12 new tokens in .* tokens/s" "$TMP/err" || { cat "$TMP/err"; fail "no tokens/s figure"; }
done
echo "ok: greedy continuation = the reference GPT-2's ($want)"
# the context (32): a prompt of 15 bytes leaves room for 18 new tokens
want=$($PY "$REF" greedy "$TMP/g3" "$prompt" --tokens 100 | sed -n 's/^ids //p')
gen 1 --model "$TMP/g3" --prompt "$prompt" --tokens 100 --temperature 0 || fail "generate to the context"
[ "$(ids)" = "$want" ] || fail "to the context: fedmoe '$(ids)', reference '$want'"
grep -q "18 new tokens.*stopped: the context length 32 reached" "$TMP/err" || { cat "$TMP/err"; fail "no context stop"; }
echo "ok: generation stops at the context, saying so"

# 2. every family: top-p 1e-6 at temperature 1.5 is greedy
for f in gpt2 llama qwen2 mixtral olmoe qwen2_moe; do
  dir="$top_srcdir/tests/fixtures/hf/$f"
  gen 1 --model "$dir" --prompt "$prompt" --tokens 20 --temperature 0 || fail "generate --model $f"
  g=$(ids)
  gen 1 --model "$dir" --prompt "$prompt" --tokens 20 --temperature 1.5 --top-p 1e-6 --seed 9 || fail "top-p $f"
  [ "$(ids)" = "$g" ] || fail "$f: top-p 1e-6 gives '$(ids)', greedy '$g'"
done
echo "ok: a nucleus of one token is greedy (six families)"

# 3. a run file: same seed, same text on 1 and 3 ranks; another seed, another text
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set run.output="$TMP/fedavg.h5" \
  || { cat "$TMP/out"; fail "the fedavg run"; }
gen 1 --checkpoint "$TMP/fedavg.h5" --prompt "The " --tokens 11 --seed 1 || fail "generate --checkpoint"
cp "$TMP/gen" "$TMP/seed1"
grep -q "round 2 strategy fedavg, tokenizer bytes" "$TMP/err" || { cat "$TMP/err"; fail "no source line"; }
[ "$(head -c -1 "$TMP/gen" | wc -c)" -ge 11 ] || fail "fewer than 11 bytes generated"
gen 3 --checkpoint "$TMP/fedavg.h5" --prompt "The " --tokens 11 --seed 1 || fail "generate on 3 ranks"
cmp -s "$TMP/gen" "$TMP/seed1" || fail "seed 1 gives another text on 3 ranks"
gen 1 --checkpoint "$TMP/fedavg.h5" --prompt "The " --tokens 11 --seed 2 || fail "generate --seed 2"
cmp -s "$TMP/gen" "$TMP/seed1" && fail "seeds 1 and 2 give the same text: $(cat "$TMP/gen")"
echo "ok: same seed same text (1 and 3 ranks), another seed another text"
# the context (16): 12 bytes of prompt leave room for 5
gen 1 --checkpoint "$TMP/fedavg.h5" --prompt "Once upon a " --tokens 10 || fail "generate to the context"
grep -q "5 new tokens.*the context length 16 reached" "$TMP/err" || { cat "$TMP/err"; fail "no context stop"; }

# a BPE and a SentencePiece run: the prompt and the text through the run's tokenizer,
# its end-of-text token found
tok="$top_srcdir/tests/fixtures/tok"
for t in "bpe_gpt2.json 703 <|endoftext|> (id 0)" "spm_bpe.model 800 </s> (id 2)"; do
  set -- $t
  mpi 2 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set model.tokenizer="$tok/$1" --set model.vocab=$2 \
    --set run.output="$TMP/tok.h5" --overwrite || { cat "$TMP/out"; fail "a run with $1"; }
  gen 1 --checkpoint "$TMP/tok.h5" --prompt "The boat" --tokens 6 --seed 3 || fail "generate with $1"
  grep -q "tokenizer .*$1, end of text $3 $4 $5" "$TMP/err" || { cat "$TMP/err"; fail "$1: no end-of-text token"; }
  grep -q "prompt 4 tokens.* 6 new tokens" "$TMP/err" || { cat "$TMP/err"; fail "$1: not 4 + 6 tokens"; }
  [ -s "$TMP/gen" ] || fail "$1: no text"
done
echo "ok: BPE and SentencePiece runs"

# 4. --client: a local run's client 1
mpi 2 run "$TMP/tiny.ini" -q --set fl.strategy=local --set run.output="$TMP/local.h5" \
  || { cat "$TMP/out"; fail "the local run"; }
gen 1 --checkpoint "$TMP/local.h5" --prompt "The " --client 1 --tokens 4 || fail "generate --client 1"
grep -q "strategy local client 1" "$TMP/err" || { cat "$TMP/err"; fail "not client 1"; }
echo "ok: --client"

# 5. bad input: a message naming the problem, non-zero on every rank, nothing written
touch "$TMP/out" "$TMP/stamp"
ck="$TMP/fedavg.h5"
expect_fail 2 20 "needs --prompt" generate --checkpoint "$ck"
expect_fail 2 20 "tokenizes to nothing" generate --checkpoint "$ck" --prompt ""
expect_fail 2 20 "needs --checkpoint RUNFILE or --model DIR" generate --prompt "x"
expect_fail 2 20 "both given" generate --checkpoint "$ck" --model "$TMP/g3" --prompt "x"
expect_fail 2 20 "--temperature -1: must be a number >= 0" generate --checkpoint "$ck" --prompt x --temperature -1
expect_fail 2 20 "--temperature warm" generate --checkpoint "$ck" --prompt x --temperature warm
expect_fail 2 20 "--top-p 0: must be in (0, 1]" generate --checkpoint "$ck" --prompt x --top-p 0
expect_fail 2 20 "--top-p 1.5: must be in (0, 1]" generate --checkpoint "$ck" --prompt x --top-p 1.5
expect_fail 2 20 "--tokens 0: must be a whole number >= 1" generate --checkpoint "$ck" --prompt x --tokens 0
expect_fail 2 20 "--seed -3" generate --checkpoint "$ck" --prompt x --seed -3
expect_fail 2 20 "more than the model's context of 16" generate --checkpoint "$ck" --prompt "seventeen bytes.."
expect_fail 2 20 "nosuch.h5" generate --checkpoint "$TMP/nosuch.h5" --prompt x
expect_fail 2 20 "not an HDF5 file" generate --checkpoint "$REF" --prompt x
expect_fail 2 20 "nosuch-folder" generate --model "$TMP/nosuch-folder" --prompt x
expect_fail 2 20 "--client 6: the run has clients 0..5" generate --checkpoint "$TMP/local.h5" --prompt x --client 6
expect_fail 2 20 "keeps no per-client state" generate --checkpoint "$ck" --prompt x --client 1
expect_fail 2 20 "--client is for --checkpoint" generate --model "$TMP/g3" --prompt x --client 0
expect_fail 2 20 "outside the model's vocabulary" generate --model "$TMP/g3" --prompt "yes" \
  --tokenizer "$top_srcdir/tests/fixtures/tok/bpe_gpt2.json"
expect_fail 2 20 "options of 'fedmoe generate'" eval --checkpoint "$ck" --text "$REF" --prompt x
written=$(find "$TMP" -mindepth 1 -newer "$TMP/stamp" ! -name out)
[ -z "$written" ] || fail "a failed generate wrote $written"
echo "generate: all passed"
