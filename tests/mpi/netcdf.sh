#!/bin/sh
# --metrics-netcdf: the per-round metrics as CDF-5 through PnetCDF, readable by
# ncdump and by netCDF4-python with the same values as the run file's.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
command -v ncdump >/dev/null || fail "ncdump not found (Debian: netcdf-bin; bootstrap installs it)"
mpi 3 run "$TMP/tiny.ini" -q --set fl.rounds=3 --set run.output="$TMP/m.h5" --metrics-netcdf "$TMP/m.nc" \
  || { cat "$TMP/out"; fail "run with --metrics-netcdf"; }
ncdump -k "$TMP/m.nc" | grep -q "cdf5" || fail "not a CDF-5 file: $(ncdump -k "$TMP/m.nc")"
ncdump -h "$TMP/m.nc" >"$TMP/header" || fail "ncdump cannot read it"
grep -q "round = UNLIMITED ; // (3 currently)" "$TMP/header" || { cat "$TMP/header"; fail "3 rounds expected"; }
grep -q "double mean_test(round)" "$TMP/header" || fail "mean_test missing"
"$PYTHON_H5PY" - "$TMP/m.h5" "$TMP/m.nc" <<'PY' || fail "NetCDF and HDF5 metrics differ"
import sys, h5py, numpy as np, netCDF4
h = h5py.File(sys.argv[1], "r")["/metrics/rounds"][...]
n = netCDF4.Dataset(sys.argv[2])
assert list(n.variables["round"][:]) == list(h["round"])
compared = 0
for name in h.dtype.names:
    if name == "round":
        continue
    assert name in n.variables, name
    a, b = np.asarray(n.variables[name][:], dtype=float), h[name].astype(float)
    assert np.array_equal(a, b, equal_nan=True), (name, a, b)
    compared += 1
print("NetCDF matches HDF5 on %d variables over %d rounds" % (compared, len(h)))
PY
expect_fail 3 20 "PnetCDF" run "$TMP/tiny.ini" -q --set run.output="$TMP/x.h5" --metrics-netcdf /proc/nope/m.nc
echo "netcdf: all passed"
