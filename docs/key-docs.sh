#!/bin/sh
# key-docs.sh - the README's and the man page's lists of configuration keys are
# `fedmoe keys --format=markdown|man`, the declarations in src/core/config_keys.c
# printed; this script puts them between the BEGIN KEYS / END KEYS marker lines.
#
#   key-docs.sh update FEDMOE SRCDIR   rewrite README.md and docs/fedmoe.1 (make update-key-docs)
#   key-docs.sh check FEDMOE SRCDIR    fail, showing the difference, when they differ
#                                      from the declarations (tests/docs_keys.sh, in make check)
set -eu
[ $# -eq 3 ] || { echo "usage: $0 update|check FEDMOE SRCDIR" >&2; exit 2; }
mode=$1 fedmoe=$2 src=$3
case $mode in update|check) ;; *) echo "$0: mode must be update or check" >&2; exit 2 ;; esac
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fedmoe-keydocs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$fedmoe" keys --format=markdown >"$tmp/markdown" || { echo "$0: '$fedmoe keys' failed" >&2; exit 1; }
"$fedmoe" keys --format=man >"$tmp/man" || { echo "$0: '$fedmoe keys' failed" >&2; exit 1; }

# splice FILE BEGIN END GENERATED: FILE with the lines between the marker lines
# (those starting with BEGIN and END) replaced by GENERATED
splice() {
  n=$(grep -c -F -e "$2" "$1" || true)
  m=$(grep -c -F -e "$3" "$1" || true)
  [ "$n" = 1 ] && [ "$m" = 1 ] || { echo "$0: $1 needs one '$2' and one '$3' line (has $n, $m)" >&2; exit 1; }
  # the markers through the environment: awk -v would eat the backslash of .\"
  KD_GEN=$4 KD_BEGIN=$2 KD_END=$3 awk '
    BEGIN { gen = ENVIRON["KD_GEN"]; b = ENVIRON["KD_BEGIN"]; e = ENVIRON["KD_END"] }
    index($0, b) == 1 { print; while ((getline l < gen) > 0) print l; skip = 1; done = 1; next }
    index($0, e) == 1 { skip = 0 }
    !skip { print }
    END { if (!done) exit 3 }' "$1" || { echo "$0: no '$2' line at a line start in $1" >&2; exit 1; }
}

status=0
for doc in "README.md|<!-- BEGIN KEYS|<!-- END KEYS|markdown" "docs/fedmoe.1|.\\\" BEGIN KEYS|.\\\" END KEYS|man"; do
  IFS='|' read -r file begin end fmt <<DOC
$doc
DOC
  splice "$src/$file" "$begin" "$end" "$tmp/$fmt" >"$tmp/new"
  if cmp -s "$src/$file" "$tmp/new"; then continue; fi
  if [ "$mode" = update ]; then
    cp "$tmp/new" "$src/$file"
    echo "key-docs: updated $file"
  else
    diff -u "$src/$file" "$tmp/new" | head -60
    echo "key-docs: $file differs from the keys declared in src/core/config_keys.c; run 'make update-key-docs'" >&2
    status=1
  fi
done
exit $status
