#!/bin/bash
# check-slurm.sh - `make check-slurm`: the batch scripts under a real Slurm.
# Installs and starts a single-node Slurm on this machine when none answers (Debian's
# slurm-wlm and munge, as root: slurmctld and slurmd on localhost, ProctrackType
# linuxproc, no cgroup), then submits on tiny configurations (the runtime tests'
# tests/mpi/tiny.sh on the fixture corpus):
#   1. jobs/slurm/run.sbatch                  -> a run file
#   2. jobs/slurm/submit-sweep.sh (array + afterok analysis job) -> run files, scaling plots
#   3. jobs/slurm/long.sbatch, sent USR1 by hand (scancel --batch --signal=USR1) once it
#      has a checkpoint -> it requeues itself and resumes -> all rounds in the run file
# and checks the results, then stops what it started (the daemons, its jobs) and
# removes the slurm.conf it wrote, also when a check fails. Not part of `make check`.
# Environment: FEDMOE, FEDMOE_ANALYZE (the programs), top_srcdir, CHECK_SLURM_TIMEOUT (s).
set -uo pipefail
: "${top_srcdir:=.}" "${FEDMOE:=$PWD/fedmoe}" "${FEDMOE_ANALYZE:=$PWD/analysis/fedmoe-analyze}"
top_srcdir=$(cd "$top_srcdir" && pwd)
export FEDMOE FEDMOE_ANALYZE
limit=${CHECK_SLURM_TIMEOUT:-300}
fail() { echo "check-slurm: FAIL: $*" >&2; exit 1; }
say() { echo "check-slurm: $*"; }
[ -x "$FEDMOE" ] || fail "$FEDMOE is not built"
[ -x "$FEDMOE_ANALYZE" ] || fail "$FEDMOE_ANALYZE is not built"
CONF=/etc/slurm/slurm.conf
MARK="# written by fedmoe jobs/check-slurm.sh"

slurm_up() { timeout 10 sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

# What this script starts it stops again, whatever way it ends (the EXIT trap): the
# jobs it submitted, then the daemons it started (munged, slurmctld, slurmd, by
# their pid files), and the slurm.conf it wrote. A Slurm that already answered is
# left alone.
STARTED=""   # daemons started here: "munged slurmctld slurmd"
SUBMITTED="" # job ids submitted here
WROTE_CONF=0
pid_of() { # pid_of DAEMON: from its pid file, if the process is alive
  local f
  case $1 in
    munged) f=/run/munge/munged.pid ;;
    slurmctld) f=/run/slurm/slurmctld.pid ;;
    slurmd) f=/run/slurm/slurmd.pid ;;
  esac
  [ -r "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}
stop_daemon() { # stop_daemon NAME: TERM, then KILL after 10 s
  local pid
  pid=$(pid_of "$1") || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || { say "stopped $1 (pid $pid)"; return 0; }; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null
  say "killed $1 (pid $pid)"
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$SUBMITTED" ] || scancel $SUBMITTED 2>/dev/null # ours only, before slurmd goes
  for d in slurmd slurmctld munged; do # the reverse of the starting order
    case " $STARTED " in *" $d "*) stop_daemon "$d" ;; esac
  done
  [ "$WROTE_CONF" = 0 ] || { rm -f "$CONF"; say "removed $CONF"; }
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
submitted() { SUBMITTED="$SUBMITTED $1"; }

start_slurm() {
  [ "$(id -u)" -eq 0 ] || fail "no Slurm answers and installing one needs root"
  if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
     || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/tmp/check-slurm-apt.log 2>&1 \
      || { tail -20 /tmp/check-slurm-apt.log; fail "apt-get install slurm-wlm munge"; }
  fi
  # munge: the key, its run folder, the daemon (as the munge user)
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || { mungekey -c -f 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
    STARTED="$STARTED munged"
    sleep 1
    munge -n </dev/null | unmunge >/dev/null || fail "munge does not work"
  fi
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    fail "$CONF exists (not ours) but no Slurm answers: start it, or move $CONF away"
  fi
  local cpus mem
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
  WROTE_CONF=1
  cat >"$CONF" <<CONF
$MARK: a single-node Slurm for testing
ClusterName=fedmoe
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE OverSubscribe=YES State=UP
CONF
  say "wrote $CONF (localhost: $cpus CPUs, $mem MiB)"
  if [ -z "$(pid_of slurmctld)" ]; then
    slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    STARTED="$STARTED slurmctld"
  fi
  if [ -z "$(pid_of slurmd)" ]; then
    slurmd -N localhost || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"
    STARTED="$STARTED slurmd"
  fi
  for _ in $(seq 30); do slurm_up && break; sleep 1; done
  if ! slurm_up; then
    scontrol update nodename=localhost state=resume 2>/dev/null
    sleep 2
  fi
  slurm_up || { sinfo; tail -5 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; fail "the Slurm node is not up"; }
  say "Slurm is up: $(sinfo -h -o '%P %D nodes %c CPUs %T')"
}

# wait_jobs ID...: until none of the jobs is pending or running (within $limit s)
wait_jobs() {
  local t0=$SECONDS ids
  ids=$(IFS=,; echo "$*")
  while [ -n "$(squeue -h -j "$ids" -o %i 2>/dev/null)" ]; do
    [ $((SECONDS - t0)) -lt "$limit" ] || { squeue; fail "jobs $ids still queued after $limit s"; }
    if squeue -h -j "$ids" -o %r | grep -Eq 'PartitionConfig|BadConstraints|PartitionNodeLimit|ReqNodeNotAvail'; then
      squeue; fail "jobs $ids can never run here"
    fi
    sleep 1
  done
}
# job_state ID: the final state Slurm keeps for a while (MinJobAge)
job_state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }
nonempty() { for f; do [ -s "$f" ] || fail "$f missing or empty"; done; }

slurm_up || start_slurm
[ "$(id -u)" -ne 0 ] || export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d "${TMPDIR:-/tmp}/fedmoe-check-slurm.XXXXXX")
cd "$W" || fail "cd $W"
say "working in $W"
TMP=$W
[ -f "$top_srcdir/tests/mpi/tiny.sh" ] || fail "no $top_srcdir/tests/mpi/tiny.sh"
. "$top_srcdir/tests/mpi/tiny.sh"
small="--set data.min_domain_bytes=100"
J=$top_srcdir/jobs/slurm
oversub="--oversubscribe"
# two ranks per job (the server and one host of every client): fits a 2-CPU machine
NT="--ntasks=2 --cpus-per-task=1"

# 1. a single run
export FEDMOE_OUTPUT=$W/single.h5 FEDMOE_MPIRUN_FLAGS=$oversub
jid=$(sbatch --parsable --export=ALL $NT --output="$W/single-%j.out" "$J/run.sbatch" "$W/tiny.ini" -q $small) \
  || fail "sbatch run.sbatch"
submitted "$jid"
say "submitted run.sbatch: job $jid"
wait_jobs "$jid"
cat "$W"/single-*.out
[ "$(job_state "$jid")" = COMPLETED ] || fail "run.sbatch job $jid: $(job_state "$jid")"
nonempty "$W/single.h5"
"$FEDMOE_ANALYZE" curves -o "$W/single-plots" "$W/single.h5" || fail "curves on the single run"
nonempty "$W/single-plots/curves.png"
say "ok: run.sbatch"
unset FEDMOE_OUTPUT

# 2. a client-count sweep (array) and its dependent analysis job
out=$(FEDMOE_SBATCH_FLAGS=$NT FEDMOE_CLIENTS="4 6 8" FEDMOE_SWEEP_DIR=$W/sweep sh "$J/submit-sweep.sh" "$W/tiny.ini" $small) \
  || fail "submit-sweep.sh"
echo "$out"
read -r array analysis <"$W/sweep/jobs"
submitted "$array"; submitted "$analysis"
wait_jobs "$array" "$analysis"
cat "$W"/sweep/*.out
[ "$(job_state "$analysis")" = COMPLETED ] || fail "analysis job $analysis: $(job_state "$analysis")"
nonempty "$W"/sweep/sweep-n4.h5 "$W"/sweep/sweep-n6.h5 "$W"/sweep/sweep-n8.h5 \
  "$W/sweep/plots/scaling.png" "$W/sweep/plots/scaling.csv" "$W/sweep/plots/curves.png"
say "ok: submit-sweep.sh (array $array, analysis $analysis after it)"

# 3. a long run that requeues itself on USR1 and resumes from its checkpoint
rounds=400
export FEDMOE_OUTPUT=$W/long.h5 FEDMOE_CHECKPOINT_EVERY=5
jid=$(sbatch --parsable --export=ALL $NT --output="$W/long-%j.out" "$J/long.sbatch" "$W/tiny.ini" -q $small \
  --set fl.rounds=$rounds --set run.keep_last=1) || fail "sbatch long.sbatch"
submitted "$jid"
say "submitted long.sbatch: job $jid"
t0=$SECONDS
until [ -f "$W/long.h5" ] && h5ls "$W/long.h5/checkpoints/latest" >/dev/null 2>&1; do
  [ $((SECONDS - t0)) -lt "$limit" ] || fail "long.sbatch wrote no checkpoint in $limit s"
  [ -n "$(squeue -h -j "$jid" -o %i)" ] || { cat "$W"/long-*.out; fail "long.sbatch ended before its first checkpoint"; }
  sleep 0.5
done
if [ "$(job_state "$jid")" = RUNNING ]; then
  scancel --batch --signal=USR1 "$jid" || fail "scancel --signal=USR1"
  say "sent USR1 to job $jid"
  requeue_expected=1
else
  say "note: long.sbatch finished before USR1 could be sent; requeue not exercised"
  requeue_expected=0
fi
sleep 2
wait_jobs "$jid"
for _ in $(seq 20); do [ "$(job_state "$jid")" = COMPLETED ] && break; sleep 1; wait_jobs "$jid"; done
cat "$W"/long-*.out
[ "$(job_state "$jid")" = COMPLETED ] || fail "long.sbatch job $jid: $(job_state "$jid")"
if [ $requeue_expected = 1 ]; then
  grep -q "requeueing job $jid" "$W"/long-*.out || fail "long.sbatch did not requeue on USR1"
  grep -q "long.sbatch: resuming from" "$W"/long-*.out || fail "the requeued long.sbatch did not resume"
fi
got=$(/usr/bin/python3 -c 'import h5py,sys; print(int(h5py.File(sys.argv[1],"r")["metrics/rounds"]["round"].max()))' \
  "$W/long.h5" 2>/dev/null || h5dump -d /metrics/rounds "$W/long.h5" | grep -c '^ *{')
[ "$got" = $rounds ] || fail "long.h5 holds $got rounds, expected $rounds"
say "ok: long.sbatch (requeued on USR1, resumed, $rounds rounds)"
say "all passed (results in $W)"
