#!/bin/sh
# The per-strategy examples share one base experiment (examples/base.ini, included):
# one round of each, run with the same overrides, and fedmoe-analyze compare finds
# that they differ in their strategy only; the resolved configuration names base.ini
# as the origin of the shared keys.
. "${top_srcdir:-.}/tests/mpi/common.sh"
: "${top_builddir:=.}"
AN=$top_builddir/analysis/fedmoe-analyze
[ -x "$AN" ] || fail "$AN not built"
[ -d /usr/share/games/fortunes ] || fail "the examples' corpus /usr/share/games/fortunes is missing (bootstrap installs fortunes)"
export MPLCONFIGDIR="$TMP/mpl"
quick="--set fl.rounds=1 --set fl.local_steps=1 --set train.eval_batches=1 \
  --set fedbiot.align_steps=1 --set hfedmoe.score_batches=1"
for s in local fedavg comigs hfedmoe; do
  FM_TEST_TIMEOUT=${FM_TEST_TIMEOUT:-240} mpi 2 run "$top_srcdir/examples/$s.ini" $quick \
    --set run.output="$TMP/$s.h5" || { cat "$TMP/out"; fail "examples/$s.ini"; }
  grep -q "^strategy *= $s *# .*examples/$s.ini:" "$TMP/out" || fail "$s.ini does not set the strategy"
  grep -q "^layers *= 4 *# .*examples/base.ini:" "$TMP/out" || fail "$s.ini: model.layers not from base.ini"
done
"$AN" compare -o "$TMP/o" "$TMP"/local.h5 "$TMP"/fedavg.h5 "$TMP"/comigs.h5 "$TMP"/hfedmoe.h5 \
  >"$TMP/md" 2>"$TMP/err" || { cat "$TMP/md" "$TMP/err"; fail "compare"; }
cat "$TMP/md"
grep -q "differ in their strategy only" "$TMP/md" || fail "the examples differ in more than their strategy"
# fedbiot.ini starts from a pretrained dense model of base.ini's shape: the recipe of
# its comment (a fedavg run of base.ini with dense blocks, exported), then fedbiot.ini
FM_TEST_TIMEOUT=${FM_TEST_TIMEOUT:-240} mpi 2 run "$top_srcdir/examples/fedavg.ini" $quick \
  --set model.moe_layers=none --set run.output="$TMP/dense.h5" || { cat "$TMP/out"; fail "the dense base"; }
mpi 1 export --checkpoint "$TMP/dense.h5" "$TMP/dense-base" || { cat "$TMP/out"; fail "export of the dense base"; }
FM_TEST_TIMEOUT=${FM_TEST_TIMEOUT:-240} mpi 2 run "$top_srcdir/examples/fedbiot.ini" $quick \
  --set model.init="$TMP/dense-base" --set run.output="$TMP/fedbiot.h5" || { cat "$TMP/out"; fail "examples/fedbiot.ini"; }
grep -q "^strategy *= fedbiot *# .*examples/fedbiot.ini:" "$TMP/out" || fail "fedbiot.ini does not set the strategy"
grep -q "^layers *= 4 *# .*dense-base/config.json" "$TMP/out" || { cat "$TMP/out"; fail "fedbiot.ini: model.layers not from the base"; }
grep -q "^batch *= 8 *# .*examples/base.ini:" "$TMP/out" || fail "fedbiot.ini: train.batch not from base.ini"
"$AN" compare -o "$TMP/o" "$TMP"/fedavg.h5 "$TMP"/fedbiot.h5 >"$TMP/md" 2>"$TMP/err" \
  && fail "compare of the MoE fedavg example and the dense fedbiot one should be refused"
grep -q "different models" "$TMP/err" || { cat "$TMP/err"; fail "compare: no reason for the refusal"; }
echo "examples: all passed"
