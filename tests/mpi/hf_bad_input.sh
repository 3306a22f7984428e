#!/bin/sh
# Bad Hugging Face folders: each is refused with a message naming the file and the
# field or tensor, a non-zero exit on every rank within seconds, and nothing written
# (no run file, no export folder). model.init is read by `fedmoe run` on 3 ranks;
# `fedmoe eval --model` on 2.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
PY=/usr/bin/python3
REF="$top_srcdir/tests/fixtures/gpt2_ref.py"
text="$top_srcdir/tests/fixtures/text/cooking"
sed -i '/^d_model\|^heads\|^layers\|^context/d' "$TMP/tiny.ini"
$PY "$REF" make "$TMP/good" --seed 5 || fail "gpt2_ref.py make"

# fresh DIR: a copy of the good folder
fresh() { rm -rf "$TMP/$1"; cp -r "$TMP/good" "$TMP/$1"; }
# edit DIR PYTHON: rewrite DIR/model.safetensors; the code sees h (header dict) and
# data (bytes) and may change both
edit() {
  "$PY" - "$TMP/$1/model.safetensors" "$2" <<'EOF' || fail "editing $1"
import json, struct, sys
path, code = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h, data = json.loads(raw[8:8 + n]), raw[8 + n:]
exec(code)
hb = json.dumps(h).encode()
hb += b" " * (-len(hb) % 8)
open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
EOF
}
# bad DIR PATTERN [--set ...]: run and eval --model both refuse DIR, writing nothing
bad() {
  d=$1 pattern=$2; shift 2
  expect_fail 3 30 "$pattern" run "$TMP/tiny.ini" -q --set model.init="$TMP/$d" --set run.output="$TMP/$d.h5" "$@"
  [ ! -e "$TMP/$d.h5" ] || fail "$d: a run file was written"
  [ "$#" -gt 0 ] || expect_fail 2 30 "$pattern" eval --model "$TMP/$d" --text "$text"
}

# config.json
mkdir -p "$TMP/empty"
bad empty "cannot open '$TMP/empty/config.json'"
fresh dirjson; rm "$TMP/dirjson/config.json"; mkdir "$TMP/dirjson/config.json"
bad dirjson "cannot read '$TMP/dirjson/config.json'"
fresh bert; sed -i 's/"gpt2"/"bert"/' "$TMP/bert/config.json"
bad bert "$TMP/bert/config.json: field 'model_type': 'bert' is not supported (supported: gpt2, llama, qwen2, mistral, mixtral, olmoe, qwen2_moe)"
fresh notjson; printf '{"model_type": "gpt2",' >"$TMP/notjson/config.json"
bad notjson "$TMP/notjson/config.json: not JSON"
fresh nolayers; sed -i '/"n_layer"/d' "$TMP/nolayers/config.json"
bad nolayers "config.json: field 'n_layer': missing"
# an explicit key that disagrees with the folder names both values
bad good "key 'model.d_model' = 64 conflicts with the model folder: $TMP/good/config.json has n_embd = 32" \
  --set model.d_model=64

# tensors
fresh missing; edit missing 'del h["transformer.h.1.ln_2.bias"]'
bad missing "tensor 'transformer.h.1.ln_2.bias' is missing"
fresh extra; edit extra 'h["transformer.h.0.attn.q_norm.weight"] = dict(h["transformer.h.0.ln_1.bias"])'
bad extra "extra tensor 'transformer.h.0.attn.q_norm.weight'"
fresh shape; edit shape 'h["transformer.h.0.mlp.c_fc.weight"]["shape"] = [128, 32]'
bad shape "tensor 'transformer.h.0.mlp.c_fc.weight' has shape \[128, 32\], the model's h.0.mlp.c_fc.weight needs \[32, 128\]"
fresh trunc; truncate -s -100 "$TMP/trunc/model.safetensors"
bad trunc "$TMP/trunc/model.safetensors: truncated: tensor"
fresh hdr; "$PY" -c "
import sys; p=sys.argv[1]; raw=bytearray(open(p,'rb').read()); raw[8]=ord('x'); open(p,'wb').write(raw)" \
  "$TMP/hdr/model.safetensors"
bad hdr "$TMP/hdr/model.safetensors: the header is not JSON"
fresh dtype; edit dtype 'h["transformer.wpe.weight"]["dtype"] = "F64"; s = h["transformer.wpe.weight"]["shape"]; s[0] //= 2'
bad dtype "tensor 'transformer.wpe.weight' has dtype F64, which fedmoe does not read (F32, F16, BF16)"
fresh noweights; rm "$TMP/noweights/model.safetensors"
bad noweights "neither model.safetensors nor model.safetensors.index.json"

# memory: the clients' system.memory_mb, and a model larger than the machine
bad good "key 'system.memory_mb': the model of $TMP/good needs at least" --set system.memory_mb=0.1
fresh huge; sed -i 's/"n_embd": 32/"n_embd": 65536/; s/"n_layer": 2/"n_layer": 64/; s/"n_head": 4/"n_head": 64/' \
  "$TMP/huge/config.json"
bad huge "more than this machine's"

# keys and options
expect_fail 3 30 "upcycling needs a dense checkpoint: set model.init" run "$TMP/tiny.ini" -q \
  --set model.upcycle=copy --set run.output="$TMP/u.h5"
expect_fail 2 30 "--context 99: must be 1..32" eval --model "$TMP/good" --text "$text" --context 99
expect_fail 2 30 "--client is for --checkpoint" eval --model "$TMP/good" --text "$text" --client 1
expect_fail 2 30 "needs an OUTDIR" export --checkpoint "$TMP/x.h5"
[ ! -e "$TMP/u.h5" ] || fail "a run file was written"
echo "hf_bad_input: all passed"
