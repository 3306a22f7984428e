#!/bin/sh
# The run file explains itself (format 3): every dataset of the run file and of its
# checkpoint files has description and units attributes, every compound dataset
# field_names / field_descriptions / field_units matching its fields, and status is
# an HDF5 enum whose names are in the file. Checked with h5py on runs of the
# strategies that write /fl datasets (hfedmoe), private state (comigs) and a server
# model (fedbiot); the NetCDF export has long_name and units per variable, the seed
# and the configuration as global attributes.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
common="-q --set fl.final_eval=all --set system.dropout=0.3 --set fl.rounds=3"
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=hfedmoe --set run.output="$TMP/hf.h5" \
  --metrics-netcdf "$TMP/hf.nc" || { cat "$TMP/out"; fail "hfedmoe run"; }
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=comigs --set run.output="$TMP/cm.h5" \
  || { cat "$TMP/out"; fail "comigs run"; }
. "$top_srcdir/tests/mpi/base.sh"
make_base "$TMP/base" --set data.public_frac=0.3
mpi 3 run "$TMP/tiny.ini" $common --set fl.strategy=fedbiot --set model.layers=4 --set data.public_frac=0.3 \
  --set model.init="$TMP/base" --set run.output="$TMP/fb.h5" || { cat "$TMP/out"; fail "fedbiot run"; }
"$PYTHON_H5PY" - "$TMP/hf.h5" "$TMP/cm.h5" "$TMP/fb.h5" <<'PY' || fail "run file attributes"
import glob, sys, h5py, numpy as np
def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)
def check(f, where):
    seen = []
    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        seen.append(name)
        for a in ("description", "units"):
            assert a in obj.attrs and text(obj.attrs[a]).strip(), "%s: /%s has no %s" % (where, name, a)
        if obj.dtype.names:
            names = [text(x) for x in obj.attrs["field_names"]]
            assert names == list(obj.dtype.names), "%s: /%s field_names %s != %s" % (where, name, names, obj.dtype.names)
            for a in ("field_descriptions", "field_units"):
                v = [text(x) for x in obj.attrs[a]]
                assert len(v) == len(names) and all(s.strip() for s in v), "%s: /%s %s" % (where, name, a)
    f.visititems(visit)
    return seen
for path in sys.argv[1:]:
    f = h5py.File(path, "r")
    assert f.attrs["format"] == 3, f.attrs["format"]
    seen = check(f, path)
    for ck in sorted(glob.glob(path + ".ckpt/*.h5")):
        seen += check(h5py.File(ck, "r"), ck)
    c = f["metrics/clients"]
    enum = h5py.check_enum_dtype(c.dtype["status"])
    assert enum is not None, "%s: status is not an enum" % path
    assert {"kept", "late", "dropped", "offline", "surplus", "evaluated_only"} <= set(enum), enum
    names = {v: k for k, v in enum.items()}
    st = c["status"][...]
    assert {names[int(s)] for s in st} >= {"kept", "evaluated_only"}, "%s: statuses %s" % (path, set(st))
    u = dict(zip([text(x) for x in f["metrics/rounds"].attrs["field_names"]],
                 [text(x) for x in f["metrics/rounds"].attrs["field_units"]]))
    assert u["mean_test"] == "nats" and u["wall_s"] == "s" and u["peak_rss_mb"] == "MiB", u
    print("%s: %d datasets described, status enum %s" % (path, len(seen), sorted(enum)))
hf, fb = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[3], "r")
assert "fl/selected" in hf and text(hf["fl/selected"].attrs["units"]) == "1"
assert "server" in fb["checkpoints/latest"], "fedbiot checkpoint without its full model"
assert "fedbiot/emulator_adam/m" in fb["checkpoints/latest"], "fedbiot checkpoint without its alignment state"
PY
# a phase no rank did in a round is NaN in /metrics/rounds (local shares nothing)
mpi 3 run "$TMP/tiny.ini" -q --set fl.strategy=local --set run.output="$TMP/lo.h5" || { cat "$TMP/out"; fail "local run"; }
"$PYTHON_H5PY" - "$TMP/lo.h5" "$TMP/hf.h5" <<'PY' || fail "phase figures of phases that did not run"
import sys, h5py, numpy as np
lo, hf = h5py.File(sys.argv[1], "r")["metrics/rounds"][...], h5py.File(sys.argv[2], "r")["metrics/rounds"][...]
for f in ("t_aggregate", "t_server", "t_broadcast"):
    assert np.isnan(lo[f]).all(), (f, lo[f])
    assert np.isfinite(hf[f]).all(), (f, hf[f])
assert np.isfinite(lo["t_local"]).all() and np.isfinite(lo["t_evaluate"]).all() and (lo["t_local_mean"] > 0).all()
print("local: aggregate, server step and broadcast NaN; hfedmoe: all finite")
PY
# NetCDF: long_name and units per variable, seed and configuration as global attributes
dump=$(command -v ncdump)
if [ -n "$dump" ]; then
  $dump -h "$TMP/hf.nc" >"$TMP/header" || fail "$dump"
  cat "$TMP/header"
  awk '/^\t[a-z0-9]+ [a-z_0-9]+\(round\) ;/ { split($2, v, "("); var[v[1]] = 1 }
       /:long_name = / { split($1, v, ":"); ln[v[1]] = 1 } /:units = / { split($1, v, ":"); un[v[1]] = 1 }
       END { n = 0; for (x in var) { n++; if (!(x in ln) || !(x in un)) { print "no long_name/units: " x; bad = 1 } }
             if (n < 20) { print "only " n " variables"; bad = 1 } exit bad }' "$TMP/header" \
    || fail "NetCDF variables without long_name or units"
  grep -q ":seed = 7LL ;" "$TMP/header" || fail "NetCDF: no seed global attribute"
  grep -q ":config = " "$TMP/header" || fail "NetCDF: no config global attribute"
  grep -q "peak_rss_mb:units = \"MiB\"" "$TMP/header" || fail "NetCDF: memory not in MiB"
else
  fail "no ncmpidump or ncdump to read the NetCDF export"
fi
echo "runfile_attrs: all passed"
