#!/bin/sh
# Hugging Face folders, gpt2: `fedmoe eval --model` against an independent PyTorch
# GPT-2 (tests/fixtures/gpt2_ref.py) on F32, F16 and BF16 folders, sharded ones and
# ones with GPT-2's mask buffers; model.init (the shape keys from config.json, the
# weights bit for bit), upcycling (copy and lora start as the dense model), export
# and its round trips (eval --model of an export equals eval --checkpoint, and the
# reference scores it alike), a CoMiGS client's export, checkpoints with 2-D tensors
# and format-2 run files still read and resumed.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
PY=/usr/bin/python3
REF="$top_srcdir/tests/fixtures/gpt2_ref.py"
text="$top_srcdir/tests/fixtures/text/cooking"
$PY -c "import torch" 2>/dev/null || fail "$PY cannot import torch (python3-torch)"
# the model's shape comes from the folders: keep tiny.ini's [model] out of it
sed -i '/^d_model\|^heads\|^layers\|^context/d' "$TMP/tiny.ini"
# a constant schedule, so that section 7's resume may add rounds
sed -i 's/^\[train\]$/[train]\nschedule = constant/' "$TMP/tiny.ini"

ce() { awk '/^cross_entropy/ {print $2}' "$TMP/out"; }
close() { # close A B TOL: |A - B| <= TOL * |B|
  awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= t * m) }'
}
score() { $PY "$REF" score "$@" | awk '/^loss/ {print $2}'; }

# 1. eval --model against the reference, each storage form
$PY "$REF" make "$TMP/g32" --seed 3 || fail "gpt2_ref.py make"
$PY "$REF" make "$TMP/g16" --seed 3 --dtype f16 || fail "gpt2_ref.py make f16"
$PY "$REF" make "$TMP/gbf" --seed 3 --dtype bf16 --shards 3 --buffers || fail "gpt2_ref.py make bf16"
for f in g32 g16 gbf; do
  for ctx in "" 20; do
    mpi 2 eval --model "$TMP/$f" --text "$text" ${ctx:+--context $ctx} || { cat "$TMP/out"; fail "eval --model $f"; }
    a=$(ce); b=$(score "$TMP/$f" "$text" ${ctx:+--context $ctx})
    [ -n "$a" ] && [ -n "$b" ] || fail "$f: no figure (fedmoe '$a', reference '$b')"
    close "$a" "$b" 1e-5 || fail "$f context '${ctx:-32}': fedmoe $a, reference $b"
    echo "ok: $f context ${ctx:-32}: fedmoe $a = reference $b"
  done
done
grep -q "blocks of 21 bytes" "$TMP/out" || { cat "$TMP/out"; fail "--context 20: not blocks of 21 bytes"; }

# 2. model.init: the folder fixes the shape keys (the resolved configuration says so)
#    and the run starts from its weights: no local steps leave them as they were
mpi 3 run "$TMP/tiny.ini" --set model.init="$TMP/g32" --set fl.local_steps=0 --set fl.rounds=1 \
  --set run.output="$TMP/init.h5" || { cat "$TMP/out"; fail "run with model.init"; }
grep -q "^d_model *= 32 *# $TMP/g32/config.json" "$TMP/out" || { cat "$TMP/out"; fail "d_model not from config.json"; }
grep -q "^moe_layers *= none *# $TMP/g32/config.json" "$TMP/out" || fail "moe_layers not from config.json"
mpi 1 eval --model "$TMP/g32" --text "$text" && base=$(ce)
mpi 1 eval --checkpoint "$TMP/init.h5" --text "$text" && got=$(ce)
[ "$base" = "$got" ] || fail "a run from model.init with no steps scores $got, the folder $base"
echo "ok: model.init keeps the folder's weights ($got)"
"$PYTHON_H5PY" - "$TMP/init.h5" <<'EOF' || fail "checkpoint tensor shapes"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
assert f.attrs["format"] == 3, f.attrs["format"]
s = f["checkpoints/latest/shared"]
assert s["h.0.attn.c_attn.weight"].shape == (32, 96), s["h.0.attn.c_attn.weight"].shape
assert s["h.1.mlp.c_proj.weight"].shape == (128, 32)
assert s["wte"].shape == (256, 32) and s["h.0.ln_1.weight"].shape == (32,) and s["h.0.attn.c_attn.bias"].shape == (96,)
print("checkpoint tensors keep their shapes")
EOF
# private classes: /tensors says where each tensor sits in a client's row
mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set fl.strategy=local --set fl.rounds=1 \
  --set run.output="$TMP/loc.h5" || { cat "$TMP/out"; fail "a local run from model.init"; }
"$PYTHON_H5PY" - "$TMP/loc.h5" <<'EOF' || fail "the checkpoint's /tensors table"
import sys, h5py
ck = h5py.File(sys.argv[1], "r")["checkpoints/latest"]
tab = {r["name"].decode(): r for r in ck["tensors"][()]}
assert len(tab) == 28 and all(r["where"] == 2 and r["cls"] == 0 for r in tab.values())
r = tab["h.0.attn.c_attn.weight"]
params = ck["clients/class0/params"]
w = params[0, r["offset"]:r["offset"] + r["rows"] * r["cols"]].reshape(r["rows"], r["cols"])
assert w.shape == (32, 96) and r["ndim"] == 2 and tab["h.0.ln_1.bias"]["ndim"] == 1
assert sum(int(t["rows"]) * int(t["cols"]) for t in tab.values()) == params.shape[1]
print("private rows cut into tensors by /tensors")
EOF

# 3. upcycling: experts copying the FFN (renormalised top-k) or LoRA pairs with B = 0
#    start as the dense model
for up in copy lora; do
  mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set model.upcycle=$up --set fl.local_steps=0 \
    --set fl.rounds=1 --set run.output="$TMP/up_$up.h5" || { cat "$TMP/out"; fail "upcycle $up"; }
  mpi 1 eval --checkpoint "$TMP/up_$up.h5" --text "$text" && got=$(ce)
  close "$got" "$base" 1e-5 || fail "upcycle $up starts at $got, the dense model at $base"
  "$PYTHON_H5PY" -c "import h5py,sys; c=h5py.File(sys.argv[1],'r').attrs['config']; c=c.decode() if isinstance(c,bytes) else c; assert 'expert_type      = $( [ $up = copy ] && echo full || echo lora)' in c" "$TMP/up_$up.h5" \
    || fail "upcycle $up: wrong expert_type"
  echo "ok: upcycle $up starts at the dense model's $got"
done

# every strategy starts from the folder (hfedmoe needs experts: upcycled)
for st in "fedbiot" "hfedmoe --set model.upcycle=copy"; do
  # shellcheck disable=SC2086
  mpi 3 run "$TMP/tiny.ini" -q --overwrite --set model.init="$TMP/g32" --set fl.rounds=1 --set run.output="$TMP/st.h5" \
    --set fl.strategy=$st || { cat "$TMP/out"; fail "$st from model.init"; }
done
echo "ok: fedbiot and hfedmoe start from model.init"

# 4. export: a trained run; eval of the export is eval of the checkpoint, bit for bit,
#    the reference scores it alike, and model.init from it starts where it ended
mpi 3 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set run.output="$TMP/tr.h5" \
  || { cat "$TMP/out"; fail "training from model.init"; }
mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set run.output="$TMP/tr2.h5" \
  || { cat "$TMP/out"; fail "training from model.init on 2 ranks"; }
mpi 1 eval --checkpoint "$TMP/tr2.h5" --text "$text" && a2=$(ce)
mpi 2 export --checkpoint "$TMP/tr.h5" "$TMP/e1" || { cat "$TMP/out"; fail "export"; }
[ -s "$TMP/e1/config.json" ] && [ -s "$TMP/e1/model.safetensors" ] || fail "export wrote no folder"
mpi 1 eval --checkpoint "$TMP/tr.h5" --text "$text" && a=$(ce)
mpi 1 eval --model "$TMP/e1" --text "$text" && b=$(ce)
[ "$a" = "$b" ] && [ "$a" != "$base" ] || fail "checkpoint $a, its export $b (initial $base)"
[ "$a" = "$a2" ] || fail "training from model.init: $a on 3 ranks, $a2 on 2"
r=$(score "$TMP/e1" "$text")
close "$a" "$r" 1e-5 || fail "export: fedmoe $a, reference $r"
mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/e1" --set fl.local_steps=0 --set fl.rounds=1 \
  --set run.output="$TMP/again.h5" || { cat "$TMP/out"; fail "model.init from an export"; }
mpi 1 eval --checkpoint "$TMP/again.h5" --text "$text" && c=$(ce)
[ "$c" = "$a" ] || fail "model.init from the export scores $c, the export $a"
echo "ok: export round trips ($a; reference $r)"
expect_fail 1 20 "exists and is not empty (--overwrite" export --checkpoint "$TMP/tr.h5" "$TMP/e1"
mpi 1 export --checkpoint "$TMP/tr.h5" --overwrite "$TMP/e1" || { cat "$TMP/out"; fail "export --overwrite"; }

# 4b. attention LoRA (model.attn_lora_rank): the adapters export as fedmoe.* tensors
#     (config.json's "fedmoe" object gives their rank and alpha), trained away from
#     zero; eval --model of the export and a run from model.init of it score what the
#     checkpoint scores, gpt2 from the folder and a llama made here
for fam in gpt2 llama; do
  if [ $fam = gpt2 ]; then
    src="--set model.init=$TMP/g32"
  else
    src="--set model.family=llama --set model.d_model=16 --set model.heads=4 --set model.kv_heads=2
      --set model.layers=2 --set model.context=16 --set model.moe_layers=none"
  fi
  # shellcheck disable=SC2086
  mpi 2 run "$TMP/tiny.ini" -q $src --set model.attn_lora_rank=4 --set model.lora_alpha=6 \
    --set run.output="$TMP/al_$fam.h5" || { cat "$TMP/out"; fail "$fam: training with attention LoRA"; }
  mpi 1 export --checkpoint "$TMP/al_$fam.h5" "$TMP/eal_$fam" || { cat "$TMP/out"; fail "$fam: attention LoRA export"; }
  grep -q '"attn_lora_rank": 4' "$TMP/eal_$fam/config.json" && grep -q '"lora_alpha": 6' "$TMP/eal_$fam/config.json" \
    || { cat "$TMP/eal_$fam/config.json"; fail "$fam: config.json lacks the adapters' rank and alpha"; }
  "$PY" - "$TMP/eal_$fam/model.safetensors" $fam <<'EOF2' || fail "$fam: the exported adapters"
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
names = {"gpt2": ["fedmoe.h.%d.attn.%s.lora_%s" % (l, m, ab) for l in (0, 1) for m in ("c_attn", "c_proj") for ab in "AB"],
         "llama": ["fedmoe.layers.%d.self_attn.%s.lora_%s" % (l, m, ab) for l in (0, 1) for m in ("q_proj", "v_proj") for ab in "AB"]}[sys.argv[2]]
missing = [x for x in names if x not in head]
assert not missing, missing
b = head[names[1]]
v = np.frombuffer(raw[8 + n + b["data_offsets"][0]:8 + n + b["data_offsets"][1]], dtype="<f4")
assert b["dtype"] == "F32" and np.abs(v).max() > 0, "lora_B still zero: the adapters did not train"
print("adapters exported:", len(names), "tensors, lora_B max", np.abs(v).max())
EOF2
  mpi 1 eval --checkpoint "$TMP/al_$fam.h5" --text "$text" && a=$(ce)
  mpi 1 eval --model "$TMP/eal_$fam" --text "$text" && b=$(ce)
  [ -n "$a" ] && close "$b" "$a" 1e-6 || fail "$fam attention LoRA: checkpoint $a, its export $b"
  mpi 2 run "$TMP/tiny.ini" --set model.init="$TMP/eal_$fam" --set fl.local_steps=0 --set fl.rounds=1 \
    --set run.output="$TMP/al_again_$fam.h5" || { cat "$TMP/out"; fail "$fam: model.init from an attention-LoRA export"; }
  grep -q "^attn_lora_rank *= 4 *# $TMP/eal_$fam/config.json" "$TMP/out" || { cat "$TMP/out"; fail "$fam: attn_lora_rank not from config.json"; }
  mpi 1 eval --checkpoint "$TMP/al_again_$fam.h5" --text "$text" && c=$(ce)
  close "$c" "$a" 1e-6 || fail "$fam: model.init from the attention-LoRA export scores $c, the checkpoint $a"
  echo "ok: $fam attention LoRA export round trips ($a, $b, $c)"
done
# an explicit rank that differs from the folder's is refused, naming both
expect_fail 2 20 "attn_lora_rank" run "$TMP/tiny.ini" --set model.init="$TMP/eal_gpt2" --set model.attn_lora_rank=2 \
  --set run.output="$TMP/al_bad.h5"
[ ! -e "$TMP/al_bad.h5" ] || fail "a refused run wrote $TMP/al_bad.h5"

# 4c. model.train = lora (PEFT's setting): only the adapters train; every base
#     tensor of the export is the folder's, bit for bit, and the adapters moved
mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set model.attn_lora_rank=4 --set model.train=lora \
  --set fl.strategy=fedavg --set run.output="$TMP/peft.h5" || { cat "$TMP/out"; fail "model.train = lora"; }
mpi 1 export --checkpoint "$TMP/peft.h5" "$TMP/epeft" || { cat "$TMP/out"; fail "model.train = lora: export"; }
"$PY" - "$TMP/g32/model.safetensors" "$TMP/epeft/model.safetensors" <<'EOF2' || fail "model.train = lora changed the base"
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in head.items() if k != "__metadata__"}
base, out = tensors(sys.argv[1]), tensors(sys.argv[2])
changed = [k for k in base if k in out and base[k] != out[k]]
assert not changed, "base tensors changed: %s" % changed[:4]
adapters = [k for k in out if k.startswith("fedmoe.") and k.endswith("lora_B")]
assert adapters and any(any(b) for b in (out[k] for k in adapters)), "the adapters did not train"
print("base unchanged over", len(base), "tensors;", len(adapters), "lora_B trained")
EOF2
expect_fail 2 20 "model.train" run "$TMP/tiny.ini" --set model.init="$TMP/g32" --set model.train=lora \
  --set run.output="$TMP/peft_bad.h5"
[ ! -e "$TMP/peft_bad.h5" ] || fail "a refused run wrote $TMP/peft_bad.h5"
expect_fail 2 20 "model.train" run "$TMP/tiny.ini" --set model.init="$TMP/g32" --set model.train=lora \
  --set model.attn_lora_rank=4 --set fl.strategy=fedbiot --set run.output="$TMP/peft_bad.h5"
echo "ok: model.train = lora trains only the adapters"

# 5. a full-expert gpt2 MoE has no Hugging Face form: refused, nothing written
mpi 2 run "$TMP/tiny.ini" -q --set fl.rounds=1 --set run.output="$TMP/moe.h5" || fail "moe run"
expect_fail 1 20 "no Hugging Face architecture" export --checkpoint "$TMP/moe.h5" "$TMP/e_moe"
[ ! -e "$TMP/e_moe" ] || fail "a refused export left $TMP/e_moe"

# 6. CoMiGS on LoRA experts upcycled from the folder: client 0's model (3 of 4
#    experts routed to) exports as the base GPT-2 plus fedmoe.* tensors of its experts
mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set model.upcycle=lora --set fl.strategy=comigs \
  --set run.output="$TMP/cm.h5" || { cat "$TMP/out"; fail "comigs from model.init"; }
mpi 1 export --checkpoint "$TMP/cm.h5" --client 0 "$TMP/ecm" || { cat "$TMP/out"; fail "export --client 0"; }
mpi 1 eval --checkpoint "$TMP/cm.h5" --client 0 --text "$text" && a=$(ce)
mpi 1 eval --model "$TMP/ecm" --text "$text" && b=$(ce)
[ "$a" = "$b" ] || fail "comigs client 0: checkpoint $a, export $b"
grep -q '"experts": 3' "$TMP/ecm/config.json" || fail "the export of client 0 does not keep its 3 experts"
echo "ok: comigs client export ($a)"

# 7. format 2 run files (flat tensors) still read and resume
cp "$TMP/tr.h5" "$TMP/old.h5"
cp -r "$TMP/tr.h5.ckpt" "$TMP/old.h5.ckpt"
"$PYTHON_H5PY" - "$TMP/old.h5" <<'EOF' || fail "making a format 2 file"
import os, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+")
f.attrs["format"] = np.int64(2)
# the checkpoint is a file of its own, linked by the name of the original's .ckpt
# folder: flatten the copy's (old.h5.ckpt), not the original's
name = "checkpoints/latest"
lk = f.get(name, getlink=True)
if isinstance(lk, h5py.SoftLink):
    name = lk.path
    lk = f.get(name, getlink=True)
if isinstance(lk, h5py.ExternalLink):
    ck = h5py.File(os.path.join(sys.argv[1] + ".ckpt", os.path.basename(lk.filename)), "r+")
    g = ck[lk.path]
else:
    g = f[name]
if "checksums" in g.attrs:  # format 2 had no checksums
    del g.attrs["checksums"]
s = g["shared"]
for n in list(s):
    v = s[n][()].reshape(-1)
    del s[n]
    s.create_dataset(n, data=v)
EOF
mpi 1 eval --checkpoint "$TMP/old.h5" --text "$text" && b=$(ce)
mpi 1 eval --checkpoint "$TMP/tr.h5" --text "$text" && a=$(ce)
[ "$a" = "$b" ] || fail "format 2 copy scores $b, the original $a"
mpi 2 run "$TMP/tiny.ini" -q --set model.init="$TMP/g32" --set fl.rounds=3 --resume "$TMP/old.h5" \
  || { cat "$TMP/out"; fail "resume of a format 2 file"; }
echo "ok: format 2 run files read ($b) and resume"
echo "hf: all passed"
