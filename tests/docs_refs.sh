#!/bin/sh
# The documentation stands on its own: README.md, docs/*.md and the man page cite
# no issue numbers and no files outside the repository (the project's planning
# notes are not shipped), every relative Markdown link names a file that exists,
# and docs/strategies.md has a section for every strategy fl.strategy accepts.
set -u
: "${top_srcdir:=.}"
fail() { echo "FAIL: $*" >&2; exit 1; }
cd "$top_srcdir" || fail "cd $top_srcdir"
docs="README.md docs/fedmoe.1 $(ls docs/*.md)"
# shellcheck disable=SC2086
bad=$(grep -n -o -E '\(issue [0-9]+\)|[Ii]ssue #?[0-9]+|[A-Z][A-Z]+\.md|\.\./shared/|shared/tools/' $docs |
  grep -v -E ':README\.md$')
[ -z "$bad" ] || fail "documentation cites issues or files outside the repository:
$bad"
for f in $docs; do
  case $f in *.md) ;; *) continue ;; esac
  dir=$(dirname "$f")
  # [text](target): relative targets only (not http:, not #anchors)
  for t in $(grep -o '\]([^)#][^)]*)' "$f" | sed 's/^](\(.*\))$/\1/; s/#.*//' | grep -v -E '^[a-z]+:'); do
    [ -e "$dir/$t" ] || fail "$f links to '$t', which is not in the repository"
  done
done
grep -q '(docs/strategies.md)' README.md || fail "README.md does not link docs/strategies.md"
choices=$(sed -n 's/.*"fl.strategy", FM_KEY_ENUM,.*"\([a-z|]*\)",.*/\1/p' src/core/config_keys.c | tr '|' ' ')
[ -n "$choices" ] || fail "no fl.strategy choices found in src/core/config_keys.c"
for s in $choices; do
  grep -q "^## $s\b" docs/strategies.md || fail "docs/strategies.md has no section for $s"
done
echo "docs_refs: no outside references, links resolve, strategies documented ($choices)"
