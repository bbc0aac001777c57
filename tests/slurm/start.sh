#!/usr/bin/env bash
# A single-node SLURM cluster on this machine for the tests (tests/test_slurm.py), from Debian's packages.
#
# Installs slurm-wlm and munge with apt-get where they are missing (root only), writes a slurm.conf for this
# machine's cores and memory, starts munged, slurmctld and slurmd, and waits until `sinfo` shows the node idle.
# Prints one line and exits 0 when the cluster is up (also when it already was), else one line saying why and a
# non-zero status: the SLURM tests then skip with that reason.
#
#   bash tests/slurm/start.sh          # start (or check) the cluster
#   bash tests/slurm/start.sh stop     # stop the daemons this script started
#
# The cluster: one node with every core and 90% of the memory, one partition `debug` (the default), no accounting
# storage (sacct is not available; scalepredict reads job states from squeue), proctrack/linuxproc, task/none,
# select/cons_tres, job requeue allowed (a requeued job starts again after 11 s).
set -uo pipefail

CONF_DIR=/etc/slurm
STATE=/var/spool/scalepredict-slurm
LOGS=/var/log/scalepredict-slurm

say() { echo "slurm: $*"; }
fail() { echo "slurm: not started: $*"; exit 1; }

if [ "${1:-}" = "stop" ]; then
  pkill -x slurmd; pkill -x slurmctld; pkill -x munged
  say "stopped"; exit 0
fi

if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
  say "already running ($(sinfo -h -o '%N %T %c CPUs' | head -1))"; exit 0
fi

[ "$(id -u)" = 0 ] || fail "needs root (to install packages and start daemons)"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || fail "slurm-wlm and munge are not installed and there is no apt-get"
  say "installing slurm-wlm and munge with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
     slurm-wlm munge >/tmp/scalepredict-slurm-apt.log 2>&1) \
    || fail "apt-get install slurm-wlm munge failed (see /tmp/scalepredict-slurm-apt.log)"
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d" "$LOGS" /run/munge /var/lib/munge /var/log/munge

cat >"$CONF_DIR/slurm.conf" <<EOF
# written by scalepredict's tests/slurm/start.sh: a one-node test cluster
ClusterName=scalepredict-test
SlurmctldHost=$host
AuthType=auth/munge
# a requeued job waits cred_expire + 1 s before it starts again (default 120 s)
AuthInfo=cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# look at the queue every second or two (a requeued job starts as soon as it may)
SchedulerParameters=bf_interval=1,sched_interval=2
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

# munge: a key, then the daemon (as root, which munged allows with --force)
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null || fail "cannot write /etc/munge/munge.key"
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  if id munge >/dev/null 2>&1; then
    su -s /bin/sh munge -c "munged" 2>/dev/null || munged --force 2>/dev/null || fail "munged did not start"
  else
    munged --force || fail "munged did not start"
  fi
fi
for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || fail "munge does not answer (see /var/log/munge/munged.log)"

pgrep -x slurmctld >/dev/null || slurmctld -c 2>>"$LOGS/start.err" || fail "slurmctld did not start (see $LOGS)"
pgrep -x slurmd >/dev/null || slurmd 2>>"$LOGS/start.err" || fail "slurmd did not start (see $LOGS)"

for _ in $(seq 150); do
  state=$(sinfo -h -o '%T' 2>/dev/null | head -1)
  case "$state" in
    idle|mixed|allocated) say "up: node $host, $cpus CPUs, ${mem_mb} MB, partition debug ($state)"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 ;;
  esac
  sleep 0.2
done
fail "the node never became idle (sinfo: ${state:-no answer}; see $LOGS)"
