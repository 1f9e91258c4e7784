#!/usr/bin/env bash
# Start a single-node SLURM cluster on localhost for the sweep tests (Debian's slurm-wlm and
# munge, run as root). Idempotent: does nothing if `sinfo` already answers. Usage (as root):
#   bash tests/slurm_cluster.sh        then   sinfo   shows one idle node in partition "debug"
set -euo pipefail
if sinfo >/dev/null 2>&1 && [ "$(sinfo -h -o %t | head -1)" != "" ]; then
  exit 0
fi
if ! command -v slurmctld >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))

# munge: a key, then the daemon as the munge user
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# slurm: the node at 127.0.0.1, no cgroups (22.05 refuses CgroupPlugin=disabled: no cgroup.conf)
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
rm -f /etc/slurm/cgroup.conf
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=flowsim
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do
  if [ "$(sinfo -h -o %t 2>/dev/null | head -1)" = "idle" ]; then
    exit 0
  fi
  sleep 1
done
echo "slurm_cluster.sh: the node did not become idle" >&2
sinfo >&2 || true
tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
