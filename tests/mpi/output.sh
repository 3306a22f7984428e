#!/bin/sh
# What `fedmoe run` prints: -q hides the configuration only (the round lines, with
# their ETA, stay); the round line labels its times, gives losses in nats and says
# why sampled clients were left out; the phase table compares only the ranks that did
# a phase and leaves out phases that did not run.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=fedavg --set fl.rounds=4 --set system.dropout=0.5 \
  || { cat "$TMP/out"; fail "fedavg run"; }
cat "$TMP/out"
! grep -q "resolved configuration" "$TMP/out" || fail "-q printed the configuration"
[ "$(grep -c '^round [1-4]/4  clients .*  loss (nats) train .*  sim [0-9.]* s  wall [0-9.]* s  ETA [0-9]* s$' \
  "$TMP/out")" -eq 4 ] || fail "-q: expected 4 labelled round lines with ETA"
# kept/sampled, and the reasons for the others adding up to the difference
awk '/^round / {
  split($4, km, "/"); kept = km[1]; m = km[2]; left = 0
  if (match($0, /clients [0-9]+\/[0-9]+ \([^)]*\)/)) {
    s = substr($0, RSTART, RLENGTH); sub(/.*\(/, "", s); sub(/\)/, "", s)
    n = split(s, parts, ", ")
    for (i = 1; i <= n; i++) { split(parts[i], w, " "); left += w[1]
      if (w[2] !~ /^(late|dropped|offline|surplus)$/) { print "bad reason: " $0; exit 1 } }
  }
  if (kept + left != m) { print "reasons do not add up: " $0; exit 1 }
  if (left) some = 1
} END { if (!some) { print "dropout 0.5 left nobody out in 4 rounds"; exit 1 } }' "$TMP/out" \
  || fail "clients left out without reasons"
# phase table: the server alone does server_step, the 2 hosts local_update and evaluate
row() { awk -v p="$1" '$1 == p' "$TMP/out"; }
[ "$(row server_step | awk '{print $3}')" = 1 ] || fail "server_step: expected 1 rank (the server)"
[ "$(row local_update | awk '{print $3}')" = 2 ] || fail "local_update: expected 2 ranks (the hosts)"
[ "$(row evaluate | awk '{print $3}')" = 2 ] || fail "evaluate: expected 2 ranks (the hosts)"
# the phases the server sits out are compared over the hosts only (a collective such
# as gather_metrics may legitimately take one rank no time at all: not checked)
awk '($1 == "local_update" || $1 == "evaluate" || $1 == "server_step") && NF == 8 && $7 + 0 > 1000 { print; bad = 1 }
     END { exit bad }' "$TMP/out" || fail "a phase ratio over 1000: the idle server compared"
# local shares nothing: no aggregate or server_step row
mpi 3 run "$TMP/tiny.ini" -q --overwrite --set fl.strategy=local || { cat "$TMP/out"; fail "local run"; }
[ -z "$(row aggregate)" ] && [ -z "$(row server_step)" ] || { cat "$TMP/out"; fail "phases that did not run listed"; }
echo "output: all passed"
