#!/bin/sh
# No data loss: a run never replaces, prunes or mixes files that are not its own,
# a crash never loses a round's row, a resume never continues a different run, a
# damaged checkpoint is refused. Each part failed on fedmoe before these guards.
#  1. a copied run file (without its .ckpt folder) resumes nothing and touches none of
#     the original's checkpoints; copied or renamed with its folder, it resumes
#  2. an existing run.output is refused without --overwrite, and a file that is not a
#     run file even with it; with it, a run that fails at start leaves the old file
#  3. --metrics-netcdf: never the run file itself, never a file that is not NetCDF
#  4. a second run on a run file in use is refused, naming the holder; a crashed
#     run's lock does not block its resume
#  5. a crash after a round's checkpoint keeps the round's metrics row
#  6. --resume refuses a key that changes what the run computes, naming key and values
#  7. a damaged checkpoint is refused naming the tensor; resume falls back, saying so;
#     checkpoints without checksums (format 2) still load, with a note
#  8. a truncated run file is called truncated
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
[ -n "${PYTHON_H5PY:-}" ] || fail "no Python with h5py (configure found none)"
text=$top_srcdir/tests/fixtures/text/sailing
set_common="-q --set fl.strategy=comigs --set fl.rounds=4 --set run.checkpoint_every=1 --set run.keep_last=1"
# digest of a run file's checkpoint folder: names and contents
ckpt_sum() { (cd "$1" && ls && cat -- *) | cksum; }
rounds_of() { # the round column of /metrics/rounds
  "$PYTHON_H5PY" -c "import h5py,sys; print(' '.join(str(r) for r in h5py.File(sys.argv[1],'r')['/metrics/rounds']['round']))" "$1"
}

# a finished run file for the parts that need one, and a file that is not fedmoe's
mpi 3 run "$TMP/tiny.ini" $set_common --set run.output="$TMP/base.h5" || { cat "$TMP/out"; fail "the base run"; }
cp "$TMP/tiny.ini" "$TMP/keep.ini"

# ---- 1. copies and renames ----
part1() {
mpi 3 run "$TMP/tiny.ini" $set_common --set run.output="$TMP/good.h5" --set run.stop_after=2 \
  || { cat "$TMP/out"; fail "first half"; }
good=$(ckpt_sum "$TMP/good.h5.ckpt")
cp "$TMP/good.h5" "$TMP/copy.h5"
expect_fail 3 30 "no complete checkpoint in '$TMP/copy.h5.ckpt'" run "$TMP/tiny.ini" $set_common --resume "$TMP/copy.h5"
grep -q "copied, moved or renamed" "$TMP/out" || fail "the message should say the folder did not come along"
[ "$(ckpt_sum "$TMP/good.h5.ckpt")" = "$good" ] || fail "resuming a copy changed the original's checkpoints"
cp -r "$TMP/good.h5.ckpt" "$TMP/copy.h5.ckpt"
mpi 3 run "$TMP/tiny.ini" $set_common --resume "$TMP/copy.h5" || { cat "$TMP/out"; fail "resume of a copy with its folder"; }
[ "$(ckpt_sum "$TMP/good.h5.ckpt")" = "$good" ] || fail "resuming a copy (keep_last 1) pruned the original's checkpoints"
[ -f "$TMP/copy.h5.ckpt/r000004.h5" ] || fail "the copy's checkpoint went elsewhere"
mv "$TMP/good.h5" "$TMP/moved.h5" && mv "$TMP/good.h5.ckpt" "$TMP/moved.h5.ckpt"
mpi 3 run "$TMP/tiny.ini" $set_common --resume "$TMP/moved.h5" || { cat "$TMP/out"; fail "resume of a renamed run"; }
"$FEDMOE" info "$TMP/moved.h5" | grep -q "r000004 *complete.*moved.h5.ckpt/r000004.h5" || fail "info: r000004 of the renamed run"
echo "ok: a copied run file leaves the original's checkpoints alone; copied or renamed with its folder it resumes"

}
# ---- 2. an existing run.output ----
part2() {
cp "$TMP/base.h5" "$TMP/exist.h5"
sum0=$(cksum <"$TMP/exist.h5")
expect_fail 3 30 "'$TMP/exist.h5' exists: pass --overwrite" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/exist.h5"
[ "$(cksum <"$TMP/exist.h5")" = "$sum0" ] || fail "a refused run changed the existing run file"
# --overwrite, but the run fails at start (its NetCDF file cannot be written): the old file stays
expect_fail 3 30 "PnetCDF" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/exist.h5" --overwrite \
  --metrics-netcdf /proc/nope/m.nc
[ "$(cksum <"$TMP/exist.h5")" = "$sum0" ] || fail "a run that failed at start replaced the run file"
expect_fail 3 30 "is not an HDF5 file: fedmoe replaces only its own run files" run "$TMP/tiny.ini" $set_common \
  --set run.output="$TMP/keep.ini" --overwrite
cmp -s "$TMP/tiny.ini" "$TMP/keep.ini" || fail "an INI file given as run.output was replaced"
mpi 3 run "$TMP/tiny.ini" $set_common --set run.output="$TMP/exist.h5" --overwrite || { cat "$TMP/out"; fail "--overwrite"; }
"$FEDMOE" info "$TMP/exist.h5" | grep -q "rounds     4 done" || fail "--overwrite: the new run should hold 4 rounds"
# info --rounds: a header and one line per round, its wall time above its local-update time
"$FEDMOE" info "$TMP/exist.h5" --rounds >"$TMP/rounds" || { cat "$TMP/rounds"; fail "info --rounds"; }
awk 'NR == 1 { ok = $1 == "round" && $2 == "wall_s" && $3 == "t_local"; next }
     { n++; if ($1 != n || !($2 > 0) || !($3 > 0) || $2 < $3) ok = 0 }
     END { exit !(ok && n == 4) }' "$TMP/rounds" || { cat "$TMP/rounds"; fail "info --rounds: not 4 rounds of times"; }
expect_fail 1 30 "is not an HDF5 file" info "$TMP/keep.ini" --rounds
echo "ok: an existing output is replaced only with --overwrite, only when it is a run file, only once the run starts"

}
# ---- 3. --metrics-netcdf ----
part3() {
cp "$TMP/base.h5" "$TMP/exist.h5"
sum0=$(cksum <"$TMP/exist.h5")
expect_fail 3 30 "is the run file itself" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/exist.h5" \
  --overwrite --metrics-netcdf "$TMP/./exist.h5"
expect_fail 3 30 "is the run file itself" run "$TMP/tiny.ini" $set_common --resume "$TMP/exist.h5" \
  --metrics-netcdf "$TMP/exist.h5"
[ "$(cksum <"$TMP/exist.h5")" = "$sum0" ] || fail "a refused NetCDF path changed the run file"
"$FEDMOE" info "$TMP/exist.h5" >/dev/null || fail "the run file is no longer readable"
expect_fail 3 30 "--metrics-netcdf: '$TMP/keep.ini' exists and is not a NetCDF file" run "$TMP/tiny.ini" $set_common \
  --set run.output="$TMP/n.h5" --overwrite --metrics-netcdf "$TMP/keep.ini"
cmp -s "$TMP/tiny.ini" "$TMP/keep.ini" || fail "an INI file given as --metrics-netcdf was replaced"
mpi 3 run "$TMP/tiny.ini" $set_common --set run.output="$TMP/n.h5" --metrics-netcdf "$TMP/n.nc" \
  || { cat "$TMP/out"; fail "run with a new NetCDF file"; }
expect_fail 3 30 "'$TMP/n.nc' exists: pass --overwrite" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/n2.h5" \
  --metrics-netcdf "$TMP/n.nc"
echo "ok: --metrics-netcdf refuses the run file and files that are not NetCDF"

}
# ---- 4. one run per run file ----
part4() {
FM_TEST_TIMEOUT=300 timeout -k 5 300 "$MPIEXEC" $MPIEXEC_FLAGS -np 3 "$FEDMOE" run "$TMP/tiny.ini" -q \
  --set fl.rounds=100000 --set run.output="$TMP/busy.h5" >"$TMP/busy.out" 2>&1 &
busy=$!
i=0
while ! grep -q "^pid [0-9]* on host" "$TMP/busy.h5.lock" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 600 ] || { kill "$busy"; cat "$TMP/busy.out"; fail "the first run took no lock within 60 s"; }
  sleep 0.1
done
expect_fail 3 30 "'$TMP/busy.h5' is in use by another fedmoe run (pid [0-9]* on host" run "$TMP/tiny.ini" $set_common \
  --set run.output="$TMP/busy.h5" --overwrite
kill "$busy"
wait "$busy" 2>/dev/null
# a run whose server rank dies leaves its lock file behind, but no lock: resume goes on
mpi 3 run "$TMP/tiny.ini" $set_common --set run.output="$TMP/crash.h5" --set debug.fail=0:server_step:3:abort \
  && fail "the injected abort did not stop the run"
[ -f "$TMP/crash.h5.lock" ] || fail "the crashed run should have left its lock file"
mpi 3 run "$TMP/tiny.ini" $set_common --resume "$TMP/crash.h5" || { cat "$TMP/out"; fail "resume after a crash"; }
[ -f "$TMP/crash.h5.lock" ] && fail "the lock file should be gone after the run"
echo "ok: a second run on a busy run file is refused naming the holder; a crashed run's lock is no obstacle"

}
# ---- 5. a crash between a checkpoint and its round's row ----
part5() {
S5="-q --set fl.strategy=comigs --set fl.rounds=6 --set run.checkpoint_every=2 --set run.output=$TMP/row.h5"
mpi 3 run "$TMP/tiny.ini" $S5 --set debug.fail=0:checkpoint_done:4:abort && fail "the injected abort did not stop the run"
"$FEDMOE" info "$TMP/row.h5" | grep -q "latest *-> /checkpoints/r000004" || fail "checkpoint 4 should be there"
mpi 3 run "$TMP/tiny.ini" $S5 --resume "$TMP/row.h5" || { cat "$TMP/out"; fail "resume after the crash"; }
grep -q "resuming .* after round 4" "$TMP/out" || fail "should resume after round 4"
[ "$(rounds_of "$TMP/row.h5")" = "1 2 3 4 5 6" ] || fail "/metrics/rounds holds rounds $(rounds_of "$TMP/row.h5")"
echo "ok: killed after round 4's checkpoint, the resumed run file has every round's row"

}
# ---- 6. what a resume may change ----
part6() {
mpi 3 run "$TMP/tiny.ini" $set_common --set run.output="$TMP/half.h5" --set run.stop_after=2 \
  || { cat "$TMP/out"; fail "first half"; }
sum0=$(cksum <"$TMP/half.h5")
for kv in "model.heads=4:model.heads is '2' in the run file, '4' now" \
          "train.lr=0.01:train.lr is '0.003' in the run file, '0.01' now" \
          "data.domains=sailing,astronomy,cooking:data.domains is '' in the run file, 'sailing,astronomy,cooking' now" \
          "comigs.specialists=1,1:comigs.specialists is '1,2' in the run file, '1,1' now" \
          "fl.local_steps=3:fl.local_steps is '2' in the run file, '3' now" \
          "fl.rounds=5:fl.rounds is '4' in the run file, '5' now"; do
  expect_fail 3 30 "${kv#*:}" run "$TMP/tiny.ini" $set_common --set "${kv%%:*}" --resume "$TMP/half.h5"
done
[ "$(cksum <"$TMP/half.h5")" = "$sum0" ] || fail "a refused resume changed the run file"
mpi 3 run "$TMP/tiny.ini" $set_common --set run.threads=2 --set run.log_level=warn --set run.keep_last=3 \
  --set run.stop_after=1 --resume "$TMP/half.h5" || { cat "$TMP/out"; fail "resume with threads, log level, keep_last"; }
# fl.rounds extends a run with a constant learning rate
S6="-q --set fl.strategy=comigs --set train.schedule=constant --set run.checkpoint_every=1"
mpi 3 run "$TMP/tiny.ini" $S6 --set fl.rounds=2 --set run.output="$TMP/ext.h5" || { cat "$TMP/out"; fail "2 rounds"; }
mpi 3 run "$TMP/tiny.ini" $S6 --set fl.rounds=3 --resume "$TMP/ext.h5" || { cat "$TMP/out"; fail "extend to 3 rounds"; }
[ "$(rounds_of "$TMP/ext.h5")" = "1 2 3" ] || fail "extended run holds rounds $(rounds_of "$TMP/ext.h5")"
echo "ok: --resume refuses keys that change what the run computes and takes those that do not"

}
# ---- 7. damaged checkpoints ----
part7() {
S7="-q --set fl.strategy=comigs --set fl.rounds=4 --set run.checkpoint_every=2 --set run.output=$TMP/dmg.h5"
mpi 3 run "$TMP/tiny.ini" $S7 || { cat "$TMP/out"; fail "the run to damage"; }
cp "$TMP/dmg.h5.ckpt/r000004.h5" "$TMP/r4.h5"
# 4 KB of 0xFF over a tensor's bytes
smash() { # FILE DATASET
  "$PYTHON_H5PY" - "$1" "$2" <<'PY' || fail "cannot damage $2 in $1"
import h5py, sys
f = h5py.File(sys.argv[1], "r")
off = f[sys.argv[2]].id.get_offset()
f.close()
with open(sys.argv[1], "r+b") as g:
    g.seek(off)
    g.write(b"\xff" * 4096)
PY
}
smash "$TMP/dmg.h5.ckpt/r000004.h5" shared/wte
expect_fail 1 30 "tensor 'shared/wte' fails its checksum" eval --checkpoint "$TMP/dmg.h5" --text "$text"
cp "$TMP/r4.h5" "$TMP/dmg.h5.ckpt/r000004.h5"
smash "$TMP/dmg.h5.ckpt/r000004.h5" clients/class1/params
c0=$("$PYTHON_H5PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['clients/class1/client'][0])" "$TMP/r4.h5")
expect_fail 1 30 "'clients/class1/params' row 0 (client $c0) fails its checksum" eval --checkpoint "$TMP/dmg.h5" \
  --text "$text" --client "$c0"
cp "$TMP/dmg.h5" "$TMP/dmg2.h5" && cp -r "$TMP/dmg.h5.ckpt" "$TMP/dmg2.h5.ckpt"
smash "$TMP/dmg2.h5.ckpt/r000002.h5" clients/class1/adam_v
expect_fail 3 30 "none of its 2 complete checkpoints is usable (the latest, r000004: clients/class1/params row 0 fails" \
  run "$TMP/tiny.ini" $S7 --resume "$TMP/dmg2.h5"
mpi 3 run "$TMP/tiny.ini" $S7 --resume "$TMP/dmg.h5" || { cat "$TMP/out"; fail "resume of a damaged run file"; }
grep -q "checkpoint r000004 of $TMP/dmg.h5 is unusable (clients/class1/params row 0 fails its checksum): falling back to r000002" \
  "$TMP/out" || { cat "$TMP/out"; fail "resume should say r000004 is unusable and fall back"; }
grep -q "resuming .* after round 2" "$TMP/out" || fail "should resume after round 2"
"$FEDMOE" eval --checkpoint "$TMP/dmg.h5" --text "$text" --client "$c0" >"$TMP/eval" 2>&1 || { cat "$TMP/eval"; fail "eval after the resume"; }
# a checkpoint of format 2 (no checksums): loaded without verification, with a note
mpi 3 run "$TMP/tiny.ini" $S7 --set run.output="$TMP/f2.h5" --set run.stop_after=2 || { cat "$TMP/out"; fail "f2"; }
"$PYTHON_H5PY" -c "
import h5py, sys
f = h5py.File(sys.argv[1], 'r+'); f.attrs['format'] = 2; f.close()
c = h5py.File(sys.argv[1] + '.ckpt/r000002.h5', 'r+'); del c.attrs['checksums']" "$TMP/f2.h5" || fail "cannot make a format-2 file"
"$FEDMOE" eval --checkpoint "$TMP/f2.h5" --text "$text" >"$TMP/eval" 2>&1 || { cat "$TMP/eval"; fail "eval of format 2"; }
grep -q "no checksums.*loaded without verification" "$TMP/eval" || fail "eval of format 2: no note"
mpi 3 run "$TMP/tiny.ini" $S7 --resume "$TMP/f2.h5" || { cat "$TMP/out"; fail "resume of format 2"; }
grep -q "note: checkpoint r000002 .* has no checksums" "$TMP/out" || fail "resume of format 2: no note"
echo "ok: damaged checkpoints are refused naming the tensor; resume falls back saying so; format 2 loads with a note"

}
# ---- 8. a truncated run file ----
part8() {
head -c 4000 "$TMP/base.h5" >"$TMP/cut.h5"
expect_fail 3 30 "'$TMP/cut.h5' is truncated or damaged" run "$TMP/tiny.ini" $set_common --resume "$TMP/cut.h5"
}
# FM_TEST_PARTS="1 5": only those parts (each part makes its own files)
for p in ${FM_TEST_PARTS:-1 2 3 4 5 6 7 8}; do part$p; done
echo "dataloss: all passed"
