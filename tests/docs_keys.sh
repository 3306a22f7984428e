#!/bin/sh
# The README's and the man page's key lists are what `fedmoe keys` prints from the
# declarations (src/core/config_keys.c): a key added, removed or changed without
# `make update-key-docs` fails here, showing the difference.
set -u
: "${FEDMOE:=./fedmoe}" "${top_srcdir:=.}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
sh "$top_srcdir/docs/key-docs.sh" check "$FEDMOE" "$top_srcdir" || exit 1
echo "docs_keys: README.md and docs/fedmoe.1 list the declared keys"
