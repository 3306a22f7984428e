#!/bin/sh
# `fedmoe generate --model DIR --temperature 0` against transformers' generate() on
# every Hugging Face fixture: tests/fixtures/hf/*/generate.json come from
# tests/fixtures/hf_generate.py (run where transformers is installed). Each family
# must have its file and give the same ids.
. "${top_srcdir:-.}/tests/mpi/common.sh"
FIX="$top_srcdir/tests/fixtures/hf"
PY=/usr/bin/python3
field() { $PY -c "import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(' '.join(map(str, v)) if isinstance(v, list) else v)" "$1" "$2"; }
bad=""
for f in gpt2 llama qwen2 mixtral mixtral_top1 olmoe olmoe_top1 qwen2_moe; do
  j="$FIX/$f/generate.json"
  [ -s "$j" ] || { echo "FAIL: $f: no $j (tests/fixtures/hf_generate.py makes it)"; bad="$bad $f"; continue; }
  want=$(field "$j" ids)
  n=$(echo "$want" | wc -w)
  timeout -k 5 300 "$MPIEXEC" $MPIEXEC_FLAGS -np 1 "$FEDMOE" generate --model "$FIX/$f" \
    --prompt "$(field "$j" prompt)" --tokens "$n" --temperature 0 >"$TMP/gen" 2>"$TMP/err" ||
    { cat "$TMP/err"; echo "FAIL: $f: generate failed"; bad="$bad $f"; continue; }
  got=$(head -c -1 "$TMP/gen" | od -An -tu1 -v | xargs)
  if [ "$got" = "$want" ]; then echo "ok: $f: $n tokens as transformers"; else
    echo "FAIL: $f: fedmoe '$got', transformers '$want'"; bad="$bad $f"; fi
done
[ -z "$bad" ] || fail "families that differ from transformers:$bad"
echo "hf_generate: all passed"
