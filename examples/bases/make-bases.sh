#!/bin/sh
# make-bases.sh FEDMOE NAME... - pretrain the bases examples/bases/NAME.ini into the
# cache (make bases: dense moe-top1 moe-top2; make demo: demo), each a Hugging Face
# folder with its tokenizer, usable as model.init. docs/bases.md says what and why.
#
#   cache   $FEDMOE_CACHE/bases, else ${XDG_CACHE_HOME:-~/.cache}/fedmoe/bases
#   corpus  corpus-KEY/: make_corpus.py's text; KEY hashes the script and the
#           versions of the Debian packages it reads
#   tokenizer  tokenizer-KEY/tokenizer.model: spm_train on the corpus, vocabulary
#           model.vocab of the base's configuration (none when it is 256: bytes);
#           KEY hashes the corpus key and spm_train's arguments
#   base    NAME-KEY/ (and the link NAME -> NAME-KEY): KEY hashes the configuration
#           (the file and those it includes), the corpus and tokenizer keys and the
#           overrides below; its run file is NAME-KEY.h5 beside it
# A base whose key is in the cache is kept; a changed configuration, corpus or
# tokenizer gives a new key, so a stale base is never used. Prints each base's folder.
# Environment: FEDMOE_NP ranks (default 2; any count gives the same bytes), MPIEXEC,
# MPIEXEC_FLAGS, PYTHON (a Python 3; default /usr/bin/python3), FEDMOE_BASES_SET
# extra --set options for every base (part of the key).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fedmoe=$1; shift
[ $# -gt 0 ] || { echo "usage: make-bases.sh FEDMOE NAME..." >&2; exit 2; }
np=${FEDMOE_NP:-2}
mpiexec=${MPIEXEC:-mpirun}
flags=${MPIEXEC_FLAGS:---oversubscribe}
python=${PYTHON:-/usr/bin/python3}
extra=${FEDMOE_BASES_SET:-}
cache=${FEDMOE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fedmoe}/bases
mkdir -p "$cache"
key() { sha256sum | cut -c1-16; }

# the corpus: keyed by the script and the packages' versions (reading them is the
# slow part, not hashing them)
ckey=$({ cat "$here/make_corpus.py"
         dpkg-query -W -f='${Package} ${Version}\n' fortunes fortunes-min dict-gcide dict-jargon dict-foldoc \
           2>/dev/null || true; } | key)
corpus=$cache/corpus-$ckey
if [ ! -f "$corpus/.complete" ]; then
  echo "make-bases: corpus -> $corpus"
  rm -rf "$corpus.tmp"
  "$python" "$here/make_corpus.py" "$corpus.tmp"
  rm -rf "$corpus" && mv "$corpus.tmp" "$corpus" && touch "$corpus/.complete"
fi

# The configuration's text, its includes inlined (for the key).
config_text() {
  f=$1
  while IFS= read -r line; do
    case $line in
      include*=*) inc=$(echo "${line#*=}" | sed 's/^ *//; s/ *$//'); config_text "$(dirname "$f")/$inc" ;;
      *) printf '%s\n' "$line" ;;
    esac
  done <"$f"
}

for name in "$@"; do
  ini=$here/$name.ini
  [ -f "$ini" ] || { echo "make-bases: no configuration $ini" >&2; exit 1; }
  vocab=$(config_text "$ini" | sed -n 's/^vocab *= *\([0-9]*\).*/\1/p' | tail -1)
  vocab=${vocab:-256}
  tokset=""
  tkey=bytes
  if [ "$vocab" != 256 ]; then
    spm_args="--vocab_size=$vocab --model_type=unigram --byte_fallback=true --character_coverage=0.9995
      --input_sentence_size=300000 --shuffle_input_sentence=true --seed_sentencepiece_size=200000
      --random_seed=1234 --num_threads=2 --minloglevel=2"
    tkey=$(printf '%s %s' "$ckey" "$spm_args" | key)
    tok=$cache/tokenizer-$tkey
    if [ ! -f "$tok/tokenizer.model" ]; then
      echo "make-bases: tokenizer ($vocab pieces) -> $tok"
      mkdir -p "$tok"
      inputs=$(find "$corpus" -type f ! -name '.*' | sort | tr '\n' ',' | sed 's/,$//')
      # shellcheck disable=SC2086
      spm_train --input="$inputs" --model_prefix="$tok/spm" $spm_args >"$tok/spm_train.log" 2>&1 ||
        { cat "$tok/spm_train.log" >&2; exit 1; }
      mv "$tok/spm.model" "$tok/tokenizer.model"
    fi
    tokset="--set model.tokenizer=$tok/tokenizer.model"
  fi
  bkey=$({ config_text "$ini"; echo "$name $ckey $tkey $extra"; } | key)
  base=$cache/$name-$bkey
  [ -f "$base/config.json" ] || rm -rf "$base" # an interrupted export: ours to redo
  if [ -f "$base/config.json" ]; then
    echo "make-bases: $name is up to date"
  else
    echo "make-bases: pretraining $name on $np ranks -> $base"
    # shellcheck disable=SC2086
    "$mpiexec" $flags -np "$np" "$fedmoe" pretrain "$ini" -q --overwrite --set data.path="$corpus" $tokset \
      --set run.output="$base.h5" --set pretrain.output="$base" $extra
  fi
  ln -sfn "$name-$bkey" "$cache/$name"
  echo "base $name: $cache/$name"
done
