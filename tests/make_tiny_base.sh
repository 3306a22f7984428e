#!/bin/sh
# make_tiny_base.sh FEDMOE OUTDIR - a tiny pretrained base for tests, in seconds:
# OUTDIR/corpus (a few hundred lines of each of three English fortunes domains no
# client uses), OUTDIR/tokenizer.model (spm_train, 640 pieces), and OUTDIR/base, the
# base (llama, d_model 32, 2 blocks) that `fedmoe pretrain` writes with its
# tokenizer: usable as model.init = OUTDIR/base. OUTDIR/pretrain.ini is its
# configuration, OUTDIR/pretrain.h5 its run file. MPIEXEC, MPIEXEC_FLAGS and
# FEDMOE_NP (default 2) say how it runs.
set -eu
fedmoe=$1 out=$2
np=${FEDMOE_NP:-2}
mkdir -p "$out/corpus"
for d in literature science wisdom; do
  [ -f "/usr/share/games/fortunes/$d" ] || { echo "make_tiny_base: no /usr/share/games/fortunes/$d (Debian package fortunes)" >&2; exit 1; }
  head -n 600 "/usr/share/games/fortunes/$d" >"$out/corpus/$d"
done
spm_train --input="$out/corpus/literature,$out/corpus/science,$out/corpus/wisdom" --model_prefix="$out/spm" \
  --vocab_size=640 --model_type=unigram --byte_fallback=true --character_coverage=0.995 --random_seed=1 \
  --num_threads=1 --minloglevel=2 >"$out/spm_train.log" 2>&1 || { cat "$out/spm_train.log" >&2; exit 1; }
mv "$out/spm.model" "$out/tokenizer.model"
cat >"$out/pretrain.ini" <<INI
[run]
seed = 5
output = $out/pretrain.h5
[model]
family = llama
vocab = 640
tokenizer = $out/tokenizer.model
d_model = 32
heads = 2
layers = 2
context = 32
moe_layers = none
[train]
batch = 8
seq_len = 32
lr = 0.01
lr_min = 0.001
warmup_steps = 5
eval_batches = 4
[data]
path = $out/corpus
min_domain_bytes = 1024
val_frac = 0.1
[pretrain]
steps = 60
micro_batch = 4
eval_every = 20
output = $out/base
INI
# shellcheck disable=SC2086
timeout -k 5 300 "${MPIEXEC:-mpirun}" ${MPIEXEC_FLAGS:---oversubscribe} -np "$np" "$fedmoe" pretrain "$out/pretrain.ini" -q \
  --overwrite
