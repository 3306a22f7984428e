#!/bin/sh
# Storage faults (make check-storage; not in make check: it mounts file systems).
#  1. a read-only output folder: a clear error naming the file, every rank non-zero;
#     a --resume of a run file on a read-only file system: the same;
#  2. a full file system during a checkpoint (a small tmpfs that the 3rd of 4
#     checkpoints does not fit in): a clear error naming the file, every rank non-zero
#     within 10 s, the previous checkpoint intact, and --resume (after moving the file
#     to a file system with room) ends equal to an unfailed run.
# The mounts are made in a private mount namespace (unshare -m; for a user without
# the right to mount, unshare -rm maps it to root in a user namespace), so they vanish
# with the test. Root ignores permission bits, hence mounts rather than chmod. Where
# neither works the test FAILS, saying so: it never skips itself into green.
if [ -z "${FM_STORAGE_NS:-}" ]; then
  for u in "unshare -m" "unshare -rm"; do
    if $u true 2>/dev/null; then FM_STORAGE_NS=1 exec $u sh "$0" "$@"; fi
  done
  echo "FAIL: storage.sh needs a private mount namespace (unshare -m as root, or unshare -rm with user" >&2
  echo "      namespaces enabled); this environment allows neither, so storage faults cannot be tested here" >&2
  exit 1
fi
. "${top_srcdir:-.}/tests/mpi/common.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
H5DIFF=${H5DIFF:-h5diff}
NP=3
R=4
# d_model 64: a checkpoint (about 1.3 MB) is most of what a round adds to the run file
set_common="-q --set fl.rounds=$R --set run.checkpoint_every=1 --set fl.sample_fraction=1 --set fl.strategy=fedavg
  --set model.d_model=64 --set run.keep_last=$R"
mount --make-rprivate / 2>/dev/null || true

# 1. read-only
mkdir -p "$TMP/ro"
mount -t tmpfs -o ro,size=1m tmpfs "$TMP/ro" || fail "cannot mount a read-only tmpfs"
expect_fail $NP 10 "run file '$TMP/ro/run.h5': cannot create its lock file" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/ro/run.h5"
expect_fail $NP 10 "cannot create folder '$TMP/ro/sub'" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/ro/sub/run.h5"
mpi $NP run "$TMP/tiny.ini" $set_common --set run.output="$TMP/half.h5" --set run.stop_after=2 || { cat "$TMP/out"; fail "first half"; }
umount "$TMP/ro"
mount -t tmpfs -o size=4m tmpfs "$TMP/ro" && cp "$TMP/half.h5" "$TMP/ro/" && mount -o remount,ro "$TMP/ro" \
  || fail "cannot remount a tmpfs read-only"
expect_fail $NP 10 "$TMP/ro/half.h5" run "$TMP/tiny.ini" $set_common --resume "$TMP/ro/half.h5"
umount "$TMP/ro"
echo "ok: read-only file systems: clear errors naming the file"

# 2. a file system that fills up: the 3rd checkpoint does not fit; the run stops before
#    writing it (a parallel HDF5 write failing on some ranks only could hang the others)
mpi $NP run "$TMP/tiny.ini" $set_common --set run.output="$TMP/ref.h5" || { cat "$TMP/out"; fail "the unfailed run"; }
mkdir -p "$TMP/small"
mount -t tmpfs -o size=4m tmpfs "$TMP/small" || fail "cannot mount a small tmpfs"
expect_fail $NP 10 "$TMP/small/run.h5: round 3 needs" run "$TMP/tiny.ini" $set_common --set run.output="$TMP/small/run.h5"
sleep 0.5
pgrep -f -- "run.output=$TMP/small/run.h5" >/dev/null && fail "processes of the run are still there"
ls "$TMP/small/run.h5.ckpt" | grep -q tmp && fail "a temporary checkpoint file was left behind"
# the run file and its checkpoint folder, moved elsewhere under a new name: checkpoints
# are found by the run file's name
cp "$TMP/small/run.h5" "$TMP/full.h5" && cp -r "$TMP/small/run.h5.ckpt" "$TMP/full.h5.ckpt"
umount "$TMP/small"
"$FEDMOE" info "$TMP/full.h5" >"$TMP/info" 2>&1 || { cat "$TMP/info"; fail "fedmoe info cannot read the run file"; }
cat "$TMP/info" | sed -n '/^checkpoints/,/^configuration/p'
grep -q "latest *-> /checkpoints/r000002" "$TMP/info" || fail "latest should name r000002"
grep -q "r000002 *complete" "$TMP/info" || fail "r000002 should be complete"
grep -q "r000003 *complete" "$TMP/info" && fail "r000003 (written when the disk filled) is marked complete"
mpi $NP run "$TMP/tiny.ini" $set_common --resume "$TMP/full.h5" || { cat "$TMP/out"; fail "resume after the full disk"; }
bad=
for obj in /checkpoints/r00000$R /metrics/clients /routing/counts /routing/gate_mass /routing/index; do
  "$H5DIFF" --follow-symlinks "$TMP/ref.h5" "$TMP/full.h5" $obj $obj >"$TMP/diff" 2>&1 || { head -20 "$TMP/diff"; bad="$bad $obj"; }
done
[ -z "$bad" ] || fail "resumed after a full disk, differs from the unfailed run in:$bad"
echo "ok: a full disk in a checkpoint: clear error, r000002 intact, resumed equal to the unfailed run"
echo "storage: all passed"
