#!/bin/sh
# Ditto (fl.ditto), on the tiny configuration:
#  - the global model is fedavg's bit for bit (the personal models never leave the
#    clients), and /metrics/rounds test_loss_global is fedavg's mean test loss; the
#    personal steps cost simulated time and FLOPs;
#  - lambda very large: the personal models equal the global model the round began
#    with (to 1e-5); lambda 0: pure local training (one round equals strategy local's,
#    and over rounds the personal models ignore what the global model does);
#  - bit-identical files for 2 and 3 ranks; stopped and resumed equals uninterrupted;
#  - bad input: clear messages naming the key, non-zero exit on every rank.
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
same() { # same A B OBJ...: h5diff finds no difference in each object
  local a=$1 b=$2; shift 2
  for obj in "$@"; do
    "$H5DIFF" --follow-symlinks "$a" "$b" "$obj" "$obj" >"$TMP/diff" 2>&1 || { cat "$TMP/diff"; fail "$a and $b differ in $obj"; }
  done
}
common="-q --set fl.rounds=4 --set run.checkpoint_every=1"
dt="$common --set fl.ditto=true --set fl.ditto_lambda=0.5"

# the global model and its test loss are fedavg's
mpi 3 run "$TMP/tiny.ini" $common --set run.output="$TMP/fedavg.h5" || { cat "$TMP/out"; fail "fedavg"; }
mpi 3 run "$TMP/tiny.ini" ${dt#-q} --set run.output="$TMP/d3.h5" || { cat "$TMP/out"; fail "ditto, 3 ranks"; }
grep -q "ditto: each client that has trained holds its personal model of the shared tensors, [0-9.]* KiB" "$TMP/out" \
  || { cat "$TMP/out"; fail "no word on what each client holds"; }
grep -q "round 4/4 .*personal)  global model [0-9]" "$TMP/out" || { cat "$TMP/out"; fail "no global test loss in the round line"; }
same "$TMP/fedavg.h5" "$TMP/d3.h5" /checkpoints/r000004/shared
"$PYTHON_H5PY" - "$TMP/fedavg.h5" "$TMP/d3.h5" <<'PY' || fail "Ditto's figures"
import sys, h5py, numpy as np
f, d = (h5py.File(x, "r") for x in sys.argv[1:3])
fr, dr = f["/metrics/rounds"][...], d["/metrics/rounds"][...]
assert np.all(np.isnan(fr["test_loss_global"])), "no Ditto: NaN"
assert np.array_equal(fr["mean_test"], dr["test_loss_global"]), (fr["mean_test"], dr["test_loss_global"])
assert not np.array_equal(fr["mean_test"], dr["mean_test"]), "the clients' figures should be the personal models'"
assert np.array_equal(fr["mean_train"], dr["mean_train"]), "the global update's training loss"
assert np.all(dr["sim_time_s"] > fr["sim_time_s"]), (dr["sim_time_s"], fr["sim_time_s"])
fc, dc = f["/metrics/clients"][...], d["/metrics/clients"][...]
t = fc["tokens"] > 0
assert np.all(dc["flops"][t] > 1.9 * fc["flops"][t]), "the personal steps' FLOPs (as many steps again)"
assert np.array_equal(dc["bytes_up"], fc["bytes_up"]), "personal models are not uploaded"
print("mean test: personal %.4f, global %.4f; simulated round %.3f s against fedavg's %.3f s" %
      (dr["mean_test"][-1], dr["test_loss_global"][-1], dr["sim_time_s"].mean(), fr["sim_time_s"].mean()))
PY
"$FEDMOE" info "$TMP/d3.h5" >"$TMP/info" 2>&1 || { cat "$TMP/info"; fail "fedmoe info"; }
grep -q "personal models (Ditto)" "$TMP/info" && grep -q "^global model round 4: test [0-9]" "$TMP/info" \
  || { cat "$TMP/info"; fail "fedmoe info should say whose test loss it shows"; }
echo "ok: fl.ditto's global model is fedavg's bit for bit; the clients report their personal models; more compute"

# 2 and 3 ranks: the same files; stopped at 2 of 4 and resumed on 3 hosts: the same
mpi 2 run "$TMP/tiny.ini" $dt --set run.output="$TMP/d2.h5" || { cat "$TMP/out"; fail "ditto, 2 ranks"; }
same "$TMP/d2.h5" "$TMP/d3.h5" /checkpoints/r000004 /metrics/clients
mpi 3 run "$TMP/tiny.ini" $dt --set run.output="$TMP/half.h5" --set run.stop_after=2 || fail "ditto: first half"
mpi 4 run "$TMP/tiny.ini" $dt --resume "$TMP/half.h5" || { cat "$TMP/out"; fail "ditto: resume"; }
same "$TMP/d3.h5" "$TMP/half.h5" /checkpoints/r000004 /metrics/clients
"$PYTHON_H5PY" -c "import h5py,sys; c=h5py.File(sys.argv[1],'r')['/checkpoints/r000004/ditto/personal/client'][...]; print('personal models of clients', c); assert len(c) > 0" \
  "$TMP/d3.h5" || fail "the personal models should be in the checkpoint"
mpi 3 run "$TMP/tiny.ini" $common --set run.output="$TMP/avg-half.h5" --set run.stop_after=2 || fail "fedavg: first half"
expect_fail 3 30 "fl.ditto" run "$TMP/tiny.ini" $dt --resume "$TMP/avg-half.h5"
echo "ok: fl.ditto is bit-identical on 2 and 3 ranks and resumes exactly on another rank count"

# lambda: very large, the personal model is the global one it started the round
# from; 0, the client's own local training
one="-q --set fl.rounds=1 --set fl.local_steps=8"
mpi 3 run "$TMP/tiny.ini" $one --set fl.local_steps=0 --set run.output="$TMP/init.h5" || fail "initial model"
mpi 3 run "$TMP/tiny.ini" $one --set fl.ditto=true --set fl.ditto_lambda=1e7 --set run.output="$TMP/big.h5" \
  || { cat "$TMP/out"; fail "lambda 1e7"; }
mpi 3 run "$TMP/tiny.ini" $one --set fl.ditto=true --set fl.ditto_lambda=0 --set run.output="$TMP/zero.h5" \
  || fail "lambda 0"
mpi 3 run "$TMP/tiny.ini" $one --set fl.strategy=local --set run.output="$TMP/local.h5" || fail "local"
"$PYTHON_H5PY" - "$TMP/init.h5" "$TMP/big.h5" "$TMP/zero.h5" "$TMP/local.h5" <<'PY' || fail "lambda's limits"
import sys, h5py, numpy as np
def shared(f):  # the shared tensors in checkpoint order (the personal rows' order)
    t = f["tensors"][...]
    t = t[np.argsort(t["offset"])]
    return np.concatenate([f["shared"][n.decode()][...].ravel() for n in t["name"]]).astype(np.float64)
ck = lambda p: h5py.File(p, "r")["/checkpoints/r000001"]
w0 = shared(ck(sys.argv[1]))
big, zero = (ck(p)["ditto/personal/values"][...].astype(np.float64) for p in sys.argv[2:4])
db, dz = np.abs(big - w0).max(), np.abs(zero - w0).max()
print("largest |personal - global|: lambda 1e7 %.2e, lambda 0 %.2e" % (db, dz))
assert db < 1e-5 and dz > 1e-3, (db, dz)
z, l = (h5py.File(p, "r")["/metrics/clients"][...] for p in sys.argv[3:5])
k = z["status"] == 0  # the clients that trained
assert k.sum() > 0 and np.array_equal(z["client"], l["client"])
for f in ("test_loss", "val_loss"):
    assert np.array_equal(z[f][k], l[f][k]), (f, z[f][k], l[f][k])
PY
# over rounds, lambda 0's personal models do not see the global model (every client
# starts from the initial one in round 1): another server optimizer changes the
# global model and nothing of the personal ones
all="$common --set fl.sample_fraction=1 --set fl.ditto=true --set fl.ditto_lambda=0"
mpi 3 run "$TMP/tiny.ini" $all --set run.output="$TMP/z1.h5" || fail "lambda 0, avg"
mpi 3 run "$TMP/tiny.ini" $all --set fl.server_opt=avgm --set fl.server_lr=0.5 --set run.output="$TMP/z2.h5" \
  || fail "lambda 0, avgm"
same "$TMP/z1.h5" "$TMP/z2.h5" /checkpoints/r000004/ditto/personal
"$H5DIFF" --follow-symlinks -q "$TMP/z1.h5" "$TMP/z2.h5" /checkpoints/r000004/shared /checkpoints/r000004/shared \
  && fail "the global models should differ"
echo "ok: fl.ditto_lambda very large keeps the personal model at the global one; 0 is pure local training"

# bad input
expect_fail 3 20 "fl.ditto_lambda" run "$TMP/tiny.ini" --set fl.ditto=true --set fl.ditto_lambda=-1
expect_fail 3 20 "fl.ditto_steps" run "$TMP/tiny.ini" --set fl.ditto=true --set fl.ditto_steps=-2
for s in local comigs hfedmoe fedbiot; do
  expect_fail 3 20 "fl.ditto.*strategy $s" run "$TMP/tiny.ini" --set fl.strategy=$s --set fl.ditto=true
done
expect_fail 3 20 "fl.ditto.*fl.finetune_steps" run "$TMP/tiny.ini" --set fl.ditto=true --set fl.finetune_steps=3
echo "ditto: all passed"
