#!/bin/sh
# `fedmoe data` on 1 and 3 ranks: the partition of the fixture corpus, printed once and
# the same whatever the number of ranks; bad input fails on every rank with one clear
# message, never a hang. With the default corpus installed, also prints the time to
# partition 10,000 clients (a figure, not a check).
. "${top_srcdir:-.}/tests/mpi/common.sh"

FIX="$top_srcdir/tests/fixtures/text"
cat >"$TMP/fix.ini" <<INI
[data]
path = $FIX
min_domain_bytes = 512
client_bytes = 1500
partition = dirichlet
[train]
seq_len = 16
[model]
context = 2048
[fl]
clients = 6
INI

# drop the lines with timings before comparing outputs
strip() { grep -v -e 'partitioned in' -e 'read and shared' "$1"; }

for np in 1 3; do
  mpi $np data "$TMP/fix.ini" || { cat "$TMP/out"; fail "np=$np: fedmoe data failed"; }
  cat "$TMP/out"
  grep -q "corpus '$FIX': 4 domains" "$TMP/out" || fail "np=$np: no corpus summary"
  for d in astronomy cooking letters sailing; do
    grep -q "^  $d " "$TMP/out" || fail "np=$np: domain $d missing"
  done
  n=$(grep -c "^partition: dirichlet" "$TMP/out")
  [ "$n" -eq 1 ] || fail "np=$np: partition printed $n times"
  n=$(grep -cE '^ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+  [a-z]+ [0-9]+%' "$TMP/out")
  [ "$n" -eq 6 ] || fail "np=$np: $n client lines, expected 6"
  strip "$TMP/out" >"$TMP/np$np.txt"
done
cmp -s "$TMP/np1.txt" "$TMP/np3.txt" || { diff "$TMP/np1.txt" "$TMP/np3.txt"; fail "partition differs between 1 and 3 ranks"; }

grep -q "^clients' regions: disjoint" "$TMP/np1.txt" || fail "fedmoe data does not say the regions are disjoint"

# --set reaches the data keys
mpi 1 data "$TMP/fix.ini" --set data.partition=by_domain --set fl.clients=8 || fail "--set run failed"
grep -q "^partition: by_domain, sizes equal, 8 clients" "$TMP/out" || fail "--set not applied"

# bad input
mkdir "$TMP/empty" "$TMP/nul"
cp "$FIX/sailing" "$TMP/nul/sailing"
printf 'some text\000more text\n' >"$TMP/nul/broken"
for np in 1 3; do
  expect_fail $np 10 "key 'data.path': '$TMP/missing': No such file" data "$TMP/fix.ini" --set "data.path=$TMP/missing"
  expect_fail $np 10 "'$TMP/empty' holds no text files" data "$TMP/fix.ini" --set "data.path=$TMP/empty"
  expect_fail $np 10 "'$TMP/nul/broken' is not a text file: it contains NUL bytes" data "$TMP/fix.ini" --set "data.path=$TMP/nul"
  expect_fail $np 10 "split has .* fewer than one sequence of train.seq_len+1 = 1001 tokens" data "$TMP/fix.ini" \
    --set train.seq_len=1000 --set data.public_frac=0 --set data.allow_overlap=true
  # disjoint clients (the rule): too many for the domains, refused naming the domain and sizes
  expect_fail $np 10 "domain '[a-z]*' has [0-9]* tokens for clients, and its clients ask for [0-9]*" data \
    "$TMP/fix.ini" --set fl.clients=200
  expect_fail $np 10 "key 'data.public_frac'" data "$TMP/fix.ini" --set train.seq_len=400
  expect_fail $np 10 "key 'data.test_frac': data.train_frac + val_frac + test_frac = 1.3 exceeds 1" data "$TMP/fix.ini" \
    --set data.val_frac=0.4
  expect_fail $np 10 "key 'data.min_domain_bytes'" data "$TMP/fix.ini" --set data.min_domain_bytes=100000
  n=$(grep -c "key 'data.min_domain_bytes'" "$TMP/out")
  [ "$n" -eq 1 ] || fail "np=$np: message printed $n times"
done

# scale figure on the default corpus (printed, never asserted)
if [ -d /usr/share/games/fortunes ]; then
  for p in by_domain dirichlet; do
    mpi 2 data "$TMP/fix.ini" --set data.path=/usr/share/games/fortunes --set data.min_domain_bytes=4096 \
      --set data.client_bytes=65536 --set train.seq_len=64 --set fl.clients=10000 --set data.partition=$p \
      --set data.sizes=lognormal --set data.allow_overlap=true ||
      { tail "$TMP/out"; fail "default corpus, 10,000 clients ($p)"; }
    grep -e '^corpus' -e '^partition:' "$TMP/out"
  done
fi
echo "data_cli: all passed"
