#!/usr/bin/env bash
# A real SLURM on this one host, for the tests: munge, MariaDB, slurmdbd, slurmctld and two slurmd
# nodes (n1, n2, each with its own hostname and 4+4 fake GPUs), started as root with no systemd and
# no cgroups. Everything lives under one private folder, $HPCDL_CLUSTER_DIR (default /var/tmp/hpcdl-slurm).
#
#   tests/cluster/slurm.sh up      install what is missing, start (or reuse a running cluster), wait for idle nodes;
#                                  a running cluster whose config differs from this script's gets its SLURM
#                                  daemons restarted once (running jobs go on: slurmstepd outlives slurmd)
#   tests/cluster/slurm.sh down    stop every daemon it started
#   tests/cluster/slurm.sh env     print `export SLURM_CONF=…` for a shell
#
# Partitions are Discovery-like: debug (default), gpu (1 node, 8 h), multigpu (1 day), short (1 day).
# MaxArraySize is small (array indices 0..4), so that a test sees hpcdl split a sweep into several arrays.
set -euo pipefail

D=${HPCDL_CLUSTER_DIR:-/var/tmp/hpcdl-slurm}
CTLD_PORT=${HPCDL_SLURMCTLD_PORT:-16817}
DBD_PORT=${HPCDL_SLURMDBD_PORT:-16819}
DB_PORT=${HPCDL_MARIADB_PORT:-16830}
NODE_PORTS=(16821 16822)
NODES=(n1 n2)
MAX_ARRAY_SIZE=5
PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
export SLURM_CONF=$D/etc/slurm.conf

log() { printf '[slurm.sh] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...
    local limit=$1 what=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what (logs in $D/log)"
        sleep 0.2
    done
}

install_packages() {  # under the Makefile's apt lock: make runs two targets at once
    (
        flock 9
        if ! dpkg -s "${PACKAGES[@]}" >/dev/null 2>&1; then
            log "installing ${PACKAGES[*]}"
            apt-get update -q >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${PACKAGES[@]}" >/dev/null
        fi
    ) 9>/tmp/hpcdl-apt.lock
}

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_bg() {  # start_bg PIDFILE LOGFILE COMMAND...: detached from this shell, survives its exit
    local pidfile=$1 logfile=$2; shift 2
    setsid "$@" >>"$logfile" 2>&1 < /dev/null &
    echo $! > "$pidfile"
}

all_up() {  # every node answers and takes jobs (busy nodes count: a running cluster is reused as it is)
    local states
    states=$(timeout 5 sinfo -h -N -p debug -o '%N %t' 2>/dev/null) || return 1
    [ "$(echo "$states" | grep -cE ' (idle|mix|alloc|comp)$')" = "${#NODES[@]}" ]
}

all_idle() {
    local states
    states=$(timeout 5 sinfo -h -N -p debug -o '%N %t' 2>/dev/null) || return 1
    [ "$(echo "$states" | grep -c ' idle$')" = "${#NODES[@]}" ]
}

make_dirs() {
    mkdir -p "$D"/{etc,state,log,run,dev,mysql} "$D"/spool/{n1,n2}
    for i in 0 1 2 3 4 5 6 7; do  # fake GPUs: character devices (plain files are refused)
        [ -c "$D/dev/gpu$i" ] || mknod "$D/dev/gpu$i" c 1 3
    done
}

write_config() {  # write_config DIR: the config files, written into DIR
    local host etc=$1
    host=$(hostname -s)
    mkdir -p "$etc"
    cat > "$etc/slurm.conf" <<CONF
ClusterName=hpcdl
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=5
JobCompType=jobcomp/none
InactiveLimit=0
KillWait=5
MinJobAge=60
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
OverTimeLimit=0
MaxArraySize=$MAX_ARRAY_SIZE
NodeName=n1 NodeHostname=$host NodeAddr=127.0.0.1 Port=${NODE_PORTS[0]} CPUs=16 RealMemory=16000 Gres=gpu:v100-sxm2:4,gpu:a100:4 State=UNKNOWN
NodeName=n2 NodeHostname=$host NodeAddr=127.0.0.1 Port=${NODE_PORTS[1]} CPUs=16 RealMemory=16000 Gres=gpu:v100-sxm2:4,gpu:a100:4 State=UNKNOWN
PartitionName=debug Nodes=n[1-2] Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=n[1-2] MaxNodes=1 MaxTime=08:00:00 State=UP
PartitionName=multigpu Nodes=n[1-2] MaxTime=1-00:00:00 State=UP
PartitionName=short Nodes=n[1-2] MaxTime=1-00:00:00 State=UP
CONF
    cat > "$etc/gres.conf" <<CONF
AutoDetect=off
Name=gpu Type=v100-sxm2 File=$D/dev/gpu[0-3]
Name=gpu Type=a100 File=$D/dev/gpu[4-7]
CONF
    cat > "$etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db
CONF
    chmod 600 "$etc/slurmdbd.conf"
    printf '127.0.0.1 localhost %s\n127.0.0.1 n1\n127.0.0.1 n2\n' "$host" > "$etc/hosts"
}

conf_hash() {  # conf_hash DIR: one hash of the config files in DIR
    (cd "$1" && cat slurm.conf gres.conf slurmdbd.conf hosts 2>/dev/null) | sha256sum | cut -c1-16
}

config_changed() {  # whether this script writes another config than the running cluster's
    local new rc=1
    new=$(mktemp -d)
    write_config "$new"
    [ "$(conf_hash "$new")" = "$(conf_hash "$D/etc")" ] || rc=0
    rm -rf "$new"
    return $rc
}

all_gone() { local p; for p; do ! kill -0 "$p" 2>/dev/null || return 1; done; }

stop_slurm_daemons() {  # slurmdbd, slurmctld and every slurmd; not their jobs (slurmstepd outlives slurmd)
    local f pids=()
    for f in slurmctld.pid slurmdbd.pid slurmd-n1.pid slurmd-n2.pid; do
        if running "$D/run/$f"; then pids+=("$(cat "$D/run/$f")"); fi
    done
    [ ${#pids[@]} = 0 ] && return
    kill "${pids[@]}" 2>/dev/null || true
    wait_for 30 "the SLURM daemons to stop" all_gone "${pids[@]}"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key; chown munge:munge /etc/munge/munge.key; }
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
    if running "$D/run/mariadb.pid"; then return; fi
    if [ ! -d "$D/mysql/mysql" ]; then
        mariadb-install-db --no-defaults --datadir="$D/mysql" --user=root --auth-root-authentication-method=normal \
            > "$D/log/mariadb-install.log" 2>&1
    fi
    start_bg "$D/run/mariadb.pid" "$D/log/mariadb.log" /usr/sbin/mariadbd --no-defaults --datadir="$D/mysql" \
        --socket="$D/run/mysql.sock" --port="$DB_PORT" --bind-address=127.0.0.1 --user=root \
        --skip-name-resolve --innodb-buffer-pool-size=64M
    wait_for 60 MariaDB mariadb --no-defaults -S "$D/run/mysql.sock" -u root -e 'select 1'
    mariadb --no-defaults -S "$D/run/mysql.sock" -u root \
        -e "ALTER USER 'root'@'localhost' IDENTIFIED BY ''; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1'; FLUSH PRIVILEGES;"
}

start_slurm() {  # start_slurm READY: start what is not running, then wait until READY (all_idle or all_up)
    if ! running "$D/run/slurmdbd.pid"; then
        start_bg "$D/run/slurmdbd.pid" "$D/log/slurmdbd.out" env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmdbd -D
        wait_for 30 slurmdbd bash -c "echo > /dev/tcp/127.0.0.1/$DBD_PORT"
    fi
    if ! running "$D/run/slurmctld.pid"; then
        start_bg "$D/run/slurmctld.pid.bg" "$D/log/slurmctld.out" /usr/sbin/slurmctld -D -i
        wait_for 30 slurmctld scontrol ping
    fi
    for i in "${!NODES[@]}"; do
        local n=${NODES[$i]}
        if running "$D/run/slurmd-$n.pid"; then continue; fi
        # each node gets its own hostname (UTS namespace) and a hosts file that maps n1 and n2 to 127.0.0.1
        start_bg "$D/run/slurmd-$n.pid.bg" "$D/log/slurmd-$n.out" unshare --uts --mount sh -c \
            "hostname $n && mount --bind $D/etc/hosts /etc/hosts && exec /usr/sbin/slurmd -D -N $n"
    done
    wait_for 30 "slurmd to register" sh -c "sinfo -h -N -o '%N %t' | grep -vq unk"
    # a node that once registered badly stays drained
    if sinfo -h -N -o '%N %t' | grep -qE ' (drain|drng|down)'; then
        timeout 10 scontrol update nodename=n1,n2 state=resume >/dev/null 2>&1 || true
    fi
    wait_for 60 "nodes that take jobs ($1)" "$1"
}

up() {
    local t0=$SECONDS ready=all_idle
    if [ -f "$SLURM_CONF" ] && all_up; then
        if ! config_changed; then
            log "reusing the running cluster ($SLURM_CONF)"
            return
        fi
        log "the running cluster's config differs from this script's: restarting its SLURM daemons once"
        stop_slurm_daemons
        ready=all_up  # other jobs may be running: their nodes need not be idle
    fi
    install_packages
    make_dirs
    write_config "$D/etc"
    start_munge
    start_mariadb
    start_slurm "$ready"
    log "up in $((SECONDS - t0))s: $(sinfo -h -N -p debug -o '%N:%t' | tr '\n' ' ')(SLURM_CONF=$SLURM_CONF)"
}

down() {
    for f in slurmd-n1.pid.bg slurmd-n2.pid.bg slurmctld.pid.bg slurmdbd.pid mariadb.pid; do
        if running "$D/run/$f"; then
            kill -- "-$(cat "$D/run/$f")" 2>/dev/null || kill "$(cat "$D/run/$f")" 2>/dev/null || true
        fi
    done
    pkill -f "slurmd -D -N n[12]" 2>/dev/null || true
    sleep 1
    rm -f "$D"/run/*.pid "$D"/run/*.pid.bg
    log "stopped"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
