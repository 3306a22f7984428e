#!/bin/sh
# comigs.router_data: the router steps fit the private router on the validation split
# (CoMiGS) or on the training split (the paper's ablation). The two give different
# routers; with no router steps they are the same run bit for bit (the key changes
# nothing but the router's batches); a bad value is refused naming the key.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
H5DIFF=${H5DIFF:-h5diff}
cm="-q --set fl.strategy=comigs --set fl.sample_fraction=1"
for d in val train; do
  for rs in 1 0; do
    mpi 3 run "$TMP/tiny.ini" $cm --set comigs.router_data=$d --set comigs.router_steps=$rs \
      --set run.output="$TMP/$d-$rs.h5" || { cat "$TMP/out"; fail "comigs router_data=$d router_steps=$rs"; }
  done
done
"$H5DIFF" --follow-symlinks "$TMP/val-0.h5" "$TMP/train-0.h5" /checkpoints/r000002 /checkpoints/r000002 >"$TMP/diff" 2>&1 \
  || { cat "$TMP/diff"; fail "without router steps, router_data should change nothing"; }
"$PYTHON_H5PY" - "$TMP/val-1.h5" "$TMP/train-1.h5" "$TMP/val-0.h5" <<'PY' || fail "the routers"
import sys, h5py, numpy as np
def routers(path):  # the private router class of every client (class 2)
    return h5py.File(path, "r")["/checkpoints/latest/clients/class2/params"][...]
v, t, none = (routers(p) for p in sys.argv[1:])
assert v.shape == t.shape and not np.array_equal(v, t), "the val and train routers are equal"
assert not np.array_equal(v, none) and not np.array_equal(t, none), "router steps left the router as it was"
print("routers: val and train differ by %.3g (max), each differs from no router steps" % np.abs(v - t).max())
PY
expect_fail 3 20 "key 'comigs.router_data'" run "$TMP/tiny.ini" $cm --set comigs.router_data=test
echo "comigs_router: all passed"
