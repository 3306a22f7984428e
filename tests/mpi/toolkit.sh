#!/bin/sh
# The federated-learning toolkit's round options, on the tiny configuration:
#  - server optimizers and SCAFFOLD: a stopped and resumed run equals the uninterrupted
#    one bit for bit (moments and control variates are in the checkpoints), on another
#    rank count;
#  - FedProx: mu = 0 is fedavg bit for bit; a large mu keeps the round's model near
#    the global one;
#  - DP-FedAvg: bit-identical for 3 and 4 ranks, epsilon in the round line and in
#    /metrics/rounds dp_epsilon, growing each round; clipping bounds each update;
#  - secure aggregation: the aggregate equals the unmasked run's bit for bit (with
#    dropouts, whose masks the server removes), more bytes up and more simulated time;
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

# server optimizer: resume exact
for opt in adam yogi avgm; do
  o="$common --set fl.server_opt=$opt --set fl.server_lr=0.01"
  mpi 3 run "$TMP/tiny.ini" $o --set run.output="$TMP/$opt-full.h5" || { cat "$TMP/out"; fail "$opt: full run"; }
  mpi 3 run "$TMP/tiny.ini" $o --set run.output="$TMP/$opt-half.h5" --set run.stop_after=2 \
    || { cat "$TMP/out"; fail "$opt: first half"; }
  mpi 4 run "$TMP/tiny.ini" $o --resume "$TMP/$opt-half.h5" || { cat "$TMP/out"; fail "$opt: resume"; }
  same "$TMP/$opt-full.h5" "$TMP/$opt-half.h5" /checkpoints/r000004 /metrics/clients
  echo "ok: fl.server_opt=$opt stopped at 2 of 4 and resumed on 3 hosts equals the uninterrupted run"
done
# the moments are in the checkpoint; a resume with another optimizer says which key
# differs (a run stopped half way: a finished one is refused as finished)
mpi 3 run "$TMP/tiny.ini" $common --set run.output="$TMP/avg-half.h5" --set run.stop_after=2 || fail "avg: first half"
expect_fail 3 30 "fl.server_opt" run "$TMP/tiny.ini" $common --set fl.server_opt=adam \
  --set fl.server_lr=0.01 --resume "$TMP/avg-half.h5"
# adam differs from plain averaging; avg with server_lr 1 is plain averaging
mpi 3 run "$TMP/tiny.ini" $common --set run.output="$TMP/fedavg.h5" || fail "fedavg"
mpi 3 run "$TMP/tiny.ini" $common --set fl.server_opt=avg --set fl.server_lr=1 --set run.output="$TMP/avg1.h5" || fail "avg"
same "$TMP/fedavg.h5" "$TMP/avg1.h5" /checkpoints/r000004
"$H5DIFF" --follow-symlinks -q "$TMP/fedavg.h5" "$TMP/adam-full.h5" /checkpoints/r000004 /checkpoints/r000004 \
  && fail "fedadam should differ from fedavg"
echo "ok: fl.server_opt=avg with server_lr 1 is fedavg; adam is not"

# SCAFFOLD: the control variates (c on the server, c_i at each client's home) are in
# the checkpoints: stopped and resumed on another rank count equals the full run
sc="$common --set fl.scaffold=true"
mpi 3 run "$TMP/tiny.ini" $sc --set run.output="$TMP/sc-full.h5" || { cat "$TMP/out"; fail "scaffold: full run"; }
mpi 3 run "$TMP/tiny.ini" $sc --set run.output="$TMP/sc-half.h5" --set run.stop_after=2 || fail "scaffold: first half"
mpi 4 run "$TMP/tiny.ini" $sc --resume "$TMP/sc-half.h5" || { cat "$TMP/out"; fail "scaffold: resume"; }
same "$TMP/sc-full.h5" "$TMP/sc-half.h5" /checkpoints/r000004 /metrics/clients
"$H5DIFF" --follow-symlinks -q "$TMP/fedavg.h5" "$TMP/sc-full.h5" /checkpoints/r000004/shared \
  /checkpoints/r000004/shared && fail "scaffold should differ from fedavg"
expect_fail 3 30 "fl.scaffold" run "$TMP/tiny.ini" $common --set fl.scaffold=true \
  --resume "$TMP/avg-half.h5"
echo "ok: fl.scaffold=true resumes exactly on another rank count; its state is in the checkpoints"

# compressed updates: the error feedback is client state in the checkpoints (resume
# exact), the run file's bytes up are the compressed ones
for k in topk int8; do
  cp="$common --set fl.compress=$k --set fl.compress_ratio=0.05"
  mpi 3 run "$TMP/tiny.ini" $cp --set run.output="$TMP/$k-full.h5" || { cat "$TMP/out"; fail "$k: full run"; }
  mpi 3 run "$TMP/tiny.ini" $cp --set run.output="$TMP/$k-half.h5" --set run.stop_after=2 || fail "$k: first half"
  mpi 4 run "$TMP/tiny.ini" $cp --resume "$TMP/$k-half.h5" || { cat "$TMP/out"; fail "$k: resume"; }
  same "$TMP/$k-full.h5" "$TMP/$k-half.h5" /checkpoints/r000004 /metrics/clients
done
"$PYTHON_H5PY" - "$TMP/fedavg.h5" "$TMP/topk-full.h5" "$TMP/int8-full.h5" <<'PY' || fail "compressed bytes"
import sys, h5py, numpy as np
p, t, q = (h5py.File(x, "r")["/metrics/clients"][...] for x in sys.argv[1:4])
p, t, q = (r[r["bytes_up"] > 0] for r in (p, t, q))
n = p["bytes_up"][0] / 4  # shared floats
ktop = np.ceil(0.05 * n)
assert np.all(t["bytes_up"] == 8 * ktop), (t["bytes_up"][:3], 8 * ktop)
f = h5py.File(sys.argv[1], "r")
nseg = len(f["/checkpoints/r000004/shared"])
assert np.all(q["bytes_up"] == n + 4 * nseg), (q["bytes_up"][:3], n + 4 * nseg)
print("bytes up per client: plain %d, top-5%% %d, int8 %d" % (p["bytes_up"][0], t["bytes_up"][0], q["bytes_up"][0]))
PY
echo "ok: fl.compress=topk and int8 resume exactly (error feedback in the checkpoints) and move the compressed bytes"

# fine-tuning baseline: after the last round each client fine-tunes the final model;
# the mean test loss before equals the last round's, after is lower, the same on 3 and 4 ranks
ft="-q --set fl.rounds=3 --set fl.finetune_steps=5"
mpi 3 run "$TMP/tiny.ini" $ft --set run.output="$TMP/ft3.h5" || { cat "$TMP/out"; fail "finetune, 3 ranks"; }
mpi 4 run "$TMP/tiny.ini" $ft --set run.output="$TMP/ft4.h5" || { cat "$TMP/out"; fail "finetune, 4 ranks"; }
"$PYTHON_H5PY" - "$TMP/ft3.h5" "$TMP/ft4.h5" <<'PY' || fail "fine-tuning figures"
import sys, h5py
a, b = (h5py.File(x, "r") for x in sys.argv[1:3])
for k in ("finetune_test_loss", "finetune_base_test_loss"):
    assert a.attrs[k] == b.attrs[k], (k, a.attrs[k], b.attrs[k])
last = a["/metrics/rounds"]["mean_test"][-1]
assert abs(a.attrs["finetune_base_test_loss"] - last) < 1e-9, (a.attrs["finetune_base_test_loss"], last)
assert a.attrs["finetune_test_loss"] < last
print("fine-tuned %.4f from %.4f" % (a.attrs["finetune_test_loss"], last))
PY
echo "ok: fl.finetune_steps fine-tunes the final model per client, the same on 3 and 4 ranks"

# FedProx
mpi 3 run "$TMP/tiny.ini" $common --set fl.prox_mu=0 --set run.output="$TMP/mu0.h5" || fail "mu 0"
same "$TMP/fedavg.h5" "$TMP/mu0.h5" /checkpoints/r000004 /metrics/clients
one="-q --set fl.rounds=1 --set fl.local_steps=8"
mpi 3 run "$TMP/tiny.ini" $one --set fl.local_steps=0 --set run.output="$TMP/init.h5" || fail "initial model"
mpi 3 run "$TMP/tiny.ini" $one --set run.output="$TMP/free.h5" || fail "mu 0, 8 steps"
mpi 3 run "$TMP/tiny.ini" $one --set fl.prox_mu=100 --set run.output="$TMP/prox.h5" || fail "mu 100"
mpi 4 run "$TMP/tiny.ini" $one --set fl.prox_mu=100 --set run.output="$TMP/prox4.h5" || fail "mu 100, 4 ranks"
same "$TMP/prox.h5" "$TMP/prox4.h5" /checkpoints/r000001
"$PYTHON_H5PY" - "$TMP/init.h5" "$TMP/free.h5" "$TMP/prox.h5" <<'PY' || fail "FedProx keeps the model near the global one"
import sys, h5py, numpy as np
def flat(p):
    s = h5py.File(p, "r")["/checkpoints/r000001/shared"]
    return np.concatenate([s[k][...].ravel() for k in sorted(s)]).astype(np.float64)
w0, free, prox = (flat(p) for p in sys.argv[1:4])
d_free, d_prox = np.linalg.norm(free - w0), np.linalg.norm(prox - w0)
print("distance from the global model after a round: mu 0 %.4f, mu 100 %.4f" % (d_free, d_prox))
assert d_free > 0 and d_prox < 0.25 * d_free
PY
echo "ok: fl.prox_mu=0 is fedavg bit for bit; mu=100 keeps the round's model near the global one"

# DP-FedAvg
dp="$common --set privacy.clip=0.05 --set privacy.noise_multiplier=0.8"
mpi 3 run "$TMP/tiny.ini" $dp --set run.output="$TMP/dp3.h5" || { cat "$TMP/out"; fail "dp, 3 ranks"; }
mpi 4 run "$TMP/tiny.ini" $dp --set run.output="$TMP/dp4.h5" || { cat "$TMP/out"; fail "dp, 4 ranks"; }
same "$TMP/dp3.h5" "$TMP/dp4.h5" /checkpoints/r000004 /metrics/clients
mpi 3 run "$TMP/tiny.ini" ${dp#-q} --set run.output="$TMP/dp-line.h5" || fail "dp, round lines"
grep -q "round 4/4 .* eps [0-9]" "$TMP/out" || { cat "$TMP/out"; fail "no epsilon in the round line"; }
line_eps=$(sed -n 's/^round 4\/4 .* eps \([0-9.e+]*\).*/\1/p' "$TMP/out")
mpi 3 run "$TMP/tiny.ini" $common --set privacy.clip=0.05 --set run.output="$TMP/clip.h5" || fail "clip only"
"$PYTHON_H5PY" - "$TMP/dp3.h5" "$TMP/clip.h5" "$TMP/fedavg.h5" "$line_eps" <<'PY' || fail "DP figures"
import sys, h5py, numpy as np
r = h5py.File(sys.argv[1], "r")["/metrics/rounds"][...]
eps = r["dp_epsilon"]
print("dp_epsilon per round:", eps)
assert np.all(np.isfinite(eps)) and np.all(np.diff(eps) > 0) and eps[0] > 0
assert abs(eps[-1] - float(sys.argv[4])) <= 1e-3 * eps[-1], (eps[-1], sys.argv[4])
assert np.all(np.isnan(h5py.File(sys.argv[3], "r")["/metrics/rounds"]["dp_epsilon"])), "no DP: NaN"
# clipping without noise: each round moves the model by at most the clip (the mean of
# clipped updates with the fixed denominator)
f = h5py.File(sys.argv[2], "r")
def flat(k):
    s = f["/checkpoints/%s/shared" % k]
    return np.concatenate([s[n][...].ravel() for n in sorted(s)]).astype(np.float64)
step = np.linalg.norm(flat("r000004") - flat("r000003"))
print("round 4 moved the clipped model by %.5f (clip 0.05)" % step)
assert 0 < step <= 0.05 * (1 + 1e-4)
PY
mpi 3 run "$TMP/tiny.ini" $dp --set fl.secure_agg=true --set fl.server_opt=adam --set fl.server_lr=0.01 \
  --set run.output="$TMP/dpsa-full.h5" || { cat "$TMP/out"; fail "dp + secagg + adam"; }
mpi 3 run "$TMP/tiny.ini" $dp --set fl.secure_agg=true --set fl.server_opt=adam --set fl.server_lr=0.01 \
  --set run.output="$TMP/dpsa-half.h5" --set run.stop_after=2 || fail "dp + secagg + adam: first half"
mpi 4 run "$TMP/tiny.ini" $dp --set fl.secure_agg=true --set fl.server_opt=adam --set fl.server_lr=0.01 \
  --resume "$TMP/dpsa-half.h5" || { cat "$TMP/out"; fail "dp + secagg + adam: resume"; }
same "$TMP/dpsa-full.h5" "$TMP/dpsa-half.h5" /checkpoints/r000004 /metrics/clients
echo "ok: DP-FedAvg is bit-identical on 3 and 4 ranks, reports epsilon each round; clipping bounds the update;"
echo "    with secure aggregation and FedAdam it resumes exactly"
# a target epsilon sets the noise; one that the given noise misses is a warning
mpi 3 run "$TMP/tiny.ini" $common --set privacy.clip=0.05 --set privacy.target_epsilon=4 \
  --set run.output="$TMP/target.h5" || { cat "$TMP/out"; fail "target epsilon"; }
"$PYTHON_H5PY" -c "import h5py,sys; e=h5py.File(sys.argv[1],'r')['/metrics/rounds']['dp_epsilon']; print(e); assert 3.9 < e[-1] <= 4.0" \
  "$TMP/target.h5" || fail "the calibrated noise should spend epsilon 4 over the rounds"
mpi 3 run "$TMP/tiny.ini" $common --set privacy.clip=0.05 --set privacy.noise_multiplier=0.5 \
  --set privacy.target_epsilon=1 --set run.output="$TMP/miss.h5" || fail "a missed target is a warning"
grep -q "privacy.target_epsilon = 1 is not met: .* reaches epsilon" "$TMP/out" || { cat "$TMP/out"; fail "no warning"; }
echo "ok: privacy.target_epsilon calibrates the noise, and warns with the epsilon reached when given noise misses it"

# secure aggregation, with dropouts: the same aggregate as without
sa="$common --set system.dropout=0.3 --set fl.sample_fraction=0.67"
mpi 3 run "$TMP/tiny.ini" $sa --set run.output="$TMP/plain.h5" || fail "plain"
mpi 3 run "$TMP/tiny.ini" $sa --set fl.secure_agg=true --set run.output="$TMP/sa3.h5" || { cat "$TMP/out"; fail "secagg"; }
mpi 4 run "$TMP/tiny.ini" $sa --set fl.secure_agg=true --set run.output="$TMP/sa4.h5" || fail "secagg, 4 ranks"
same "$TMP/plain.h5" "$TMP/sa3.h5" /checkpoints/r000004
same "$TMP/sa3.h5" "$TMP/sa4.h5" /checkpoints/r000004 /metrics/clients
"$PYTHON_H5PY" - "$TMP/plain.h5" "$TMP/sa3.h5" <<'PY' || fail "secure aggregation figures"
import sys, h5py, numpy as np
p, s = (h5py.File(x, "r")["/metrics/rounds"][...] for x in sys.argv[1:3])
assert s["dropped"].sum() > 0, "the test should have dropouts"
assert np.all(s["bytes_up"] > p["bytes_up"]) and np.all(s["sim_time_s"] > p["sim_time_s"])
for k in ("mean_val", "mean_test", "kept", "dropped"):
    assert np.array_equal(p[k], s[k]), k
print("secure aggregation: %.2fx bytes up, +%.3f s simulated per round" %
      ((s["bytes_up"] / p["bytes_up"]).mean(), (s["sim_time_s"] - p["sim_time_s"]).mean()))
PY
echo "ok: fl.secure_agg=true gives the unmasked aggregate bit for bit, with dropouts, at more bytes and time"
# a round left with one survivor is void: the server does not unmask one client's update
# (here rounds 1 and 3 keep one client, 2 and 4 none: the model stays the initial one,
# which init.h5's round of 0 local steps matches up to the fixed point's rounding)
mpi 3 run "$TMP/tiny.ini" $common --set run.keep_last=4 --set fl.sample_count=2 --set system.dropout=0.5 \
  --set fl.secure_agg=true --set run.output="$TMP/void.h5" || { cat "$TMP/out"; fail "secagg, void rounds"; }
mpi 3 run "$TMP/tiny.ini" ${common#-q} --set fl.sample_count=2 --set system.dropout=0.5 \
  --set fl.secure_agg=true --set run.output="$TMP/void2.h5" || fail "secagg, void rounds (warnings)"
grep -q "round 1: fl.secure_agg: 1 client left" "$TMP/out" || { cat "$TMP/out"; fail "no warning for a void round"; }
"$H5DIFF" --follow-symlinks "$TMP/void.h5" "$TMP/void.h5" /checkpoints/r000004/shared /checkpoints/r000001/shared \
  >"$TMP/diff" 2>&1 || { cat "$TMP/diff"; fail "void rounds changed the model"; }
# values only, to 1e-6 (h5diff would also compare the checksums, which see every bit)
"$PYTHON_H5PY" - "$TMP/void.h5" "$TMP/init.h5" <<'PY' || fail "a void round 1 changed the model"
import sys, h5py, numpy as np
a, b = (h5py.File(x, "r")["/checkpoints/r000001/shared"] for x in sys.argv[1:3])
assert sorted(a) == sorted(b)
for k in a:
    assert np.allclose(a[k][...], b[k][...], rtol=0, atol=1e-6), k
PY
echo "ok: a secure-aggregation round with one survivor is void, with a warning"

# bad input
expect_fail 3 20 "fl.prox_mu" run "$TMP/tiny.ini" --set fl.prox_mu=-1
expect_fail 3 20 "privacy.clip" run "$TMP/tiny.ini" --set privacy.clip=-0.1
expect_fail 3 20 "privacy.noise_multiplier" run "$TMP/tiny.ini" --set privacy.noise_multiplier=-1
expect_fail 3 20 "privacy.delta" run "$TMP/tiny.ini" --set privacy.clip=1 --set privacy.delta=0
expect_fail 3 20 "privacy.delta" run "$TMP/tiny.ini" --set privacy.clip=1 --set privacy.delta=1
expect_fail 3 20 "fl.server_opt" run "$TMP/tiny.ini" --set fl.server_opt=lamb
expect_fail 3 20 "privacy.clip" run "$TMP/tiny.ini" --set privacy.noise_multiplier=1
expect_fail 3 20 "fl.secure_agg" run "$TMP/tiny.ini" --set fl.secure_agg=true --set fl.sample_count=1
expect_fail 3 20 "fl.secure_agg" run "$TMP/tiny.ini" --set fl.secure_agg=true --set fl.aggregation=float
expect_fail 3 20 "fl.sampling" run "$TMP/tiny.ini" --set fl.sampling=poisson --set fl.sample_count=2
expect_fail 3 20 "privacy.clip" run "$TMP/tiny.ini" --set fl.strategy=local --set privacy.clip=1
expect_fail 3 20 "fl.scaffold" run "$TMP/tiny.ini" --set fl.scaffold=true --set privacy.clip=1
expect_fail 3 20 "fl.compress" run "$TMP/tiny.ini" --set fl.compress=gzip
expect_fail 3 20 "fl.finetune_steps" run "$TMP/tiny.ini" --set fl.strategy=local --set fl.finetune_steps=3
expect_fail 3 20 "fl.compress" run "$TMP/tiny.ini" --set fl.compress=topk --set privacy.clip=1
expect_fail 3 20 "fl.compress_ratio" run "$TMP/tiny.ini" --set fl.compress=topk --set fl.compress_ratio=0
echo "toolkit: all passed"
