#!/bin/sh
# run-demo.sh MPIEXEC MPIEXEC_FLAGS FEDMOE CONFIG - the default experiment (make demo).
set -eu
mpiexec=$1 flags=$2 fedmoe=$3 config=$4
np=${FEDMOE_NP:-3}
# shellcheck disable=SC2086
"$mpiexec" $flags -np "$np" "$fedmoe" run "$config"
