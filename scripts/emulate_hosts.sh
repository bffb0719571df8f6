#!/usr/bin/env bash
# Emulated hosts on one Linux machine (as root): each host is a network
# namespace with its own host name, joined to the others over a bridge by a
# veth pair, so Open MPI between them speaks real TCP while ranks on one host
# use shared memory. No sshd: mpirun starts the other hosts' daemons through a
# launch agent that enters the host's namespace.
#
#   emulate_hosts.sh up N [--rate 1gbit] [--prefix pl]   make hosts plh1..plhN
#   emulate_hosts.sh run [--prefix pl] -- CMD...         run CMD as host 1 (mpirun's host)
#   emulate_hosts.sh exec HOST -- CMD...                 run CMD on HOST
#   emulate_hosts.sh cut HOST | mend HOST                take HOST's link down / up
#   emulate_hosts.sh down [--prefix pl]                  kill their processes, remove everything
#   emulate_hosts.sh agent HOST CMD...                   (Open MPI's plm_rsh_agent)
#
# `run` exports PARALLAMA_MPIRUN_ARGS with the agent and the subnet, so
#   emulate_hosts.sh run -- parallama generate --tp 2 --pp 2 --hosts plh1:2,plh2:2
# runs across the emulated hosts the way --hosts runs across real ones (where
# ssh is the agent and --mpi-net names the subnet).
set -euo pipefail

SELF=$(readlink -f "$0")
PREFIX=${EMULATE_HOSTS_PREFIX:-pl}
SUBNET_BASE=10.77.0   # hosts are .1 .. .N, the bridge has no address
STATE_DIR=/run/parallama-hosts

die() { echo "emulate_hosts: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces); run as root or with sudo"
  command -v ip >/dev/null || die "'ip' (iproute2) is missing: apt-get install iproute2"
}

host_name() { echo "${PREFIX}h$1"; }
bridge_ns() { echo "${PREFIX}br"; }

# Runs "$@" inside namespace $1 with UTS host name $1 (Open MPI keys its
# shared-memory segments and session directories by host name).
in_host() {
  local h=$1; shift
  exec ip netns exec "$h" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$h" "$@"
}

cmd_up() {
  local n=$1; shift
  local rate=""
  while [ $# -gt 0 ]; do
    case $1 in
      --rate) rate=$2; shift 2 ;;
      --prefix) PREFIX=$2; shift 2 ;;
      *) die "up: unknown option $1" ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 16 ] || die "up: N must be 1..16, got $n"
  need_root
  if ip netns list | grep -q "^$(bridge_ns)\b"; then die "hosts with prefix '$PREFIX' exist already; run 'down' first"; fi
  ip netns add "$(bridge_ns)" || die "cannot create network namespaces here (ip netns add failed): a container without CAP_SYS_ADMIN?"
  ip -n "$(bridge_ns)" link add br0 type bridge
  ip -n "$(bridge_ns)" link set br0 up
  ip -n "$(bridge_ns)" link set lo up
  local hosts_file=""
  for i in $(seq 1 "$n"); do hosts_file+="$SUBNET_BASE.$i $(host_name "$i")"$'\n'; done
  for i in $(seq 1 "$n"); do
    local h; h=$(host_name "$i")
    ip netns add "$h"
    ip link add "${PREFIX}v$i" netns "$(bridge_ns)" type veth peer name eth0 netns "$h"
    ip -n "$(bridge_ns)" link set "${PREFIX}v$i" master br0 up
    ip -n "$h" addr add "$SUBNET_BASE.$i/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    if [ -n "$rate" ]; then
      # A token bucket caps what each host sends (the kernel here has no netem: no delay).
      ip netns exec "$h" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kbit latency 50ms
      ip netns exec "$(bridge_ns)" tc qdisc add dev "${PREFIX}v$i" root tbf rate "$rate" burst 256kbit latency 50ms
    fi
    # ip netns exec bind-mounts /etc/netns/HOST/hosts over /etc/hosts: names resolve inside.
    mkdir -p "/etc/netns/$h"
    printf '127.0.0.1 localhost\n%s' "$hosts_file" >"/etc/netns/$h/hosts"
  done
  mkdir -p "$STATE_DIR"
  echo "$n $rate" >"$STATE_DIR/$PREFIX"
  # Open MPI's agent setting is a ':'-separated list of commands: a file of its own.
  printf '#!/bin/sh\nexec %q agent "$@"\n' "$SELF" >"$STATE_DIR/agent"
  chmod +x "$STATE_DIR/agent"
  echo "emulated hosts up: $(for i in $(seq 1 "$n"); do printf '%s=%s.%s ' "$(host_name "$i")" "$SUBNET_BASE" "$i"; done)${rate:+(links capped at $rate)}"
}

mpirun_args() {
  echo "--mca plm_rsh_agent $STATE_DIR/agent --mca btl self,vader,tcp" \
       "--mca btl_tcp_if_include $SUBNET_BASE.0/24 --mca oob_tcp_if_include $SUBNET_BASE.0/24"
}

cmd_down() {
  [ $# -ge 2 ] && [ "$1" = --prefix ] && PREFIX=$2
  need_root
  local ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${PREFIX}(h[0-9]+|br)$" || true); do
    local pids; pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  done
  sleep 0.2
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^${PREFIX}(h[0-9]+|br)$" || true); do
    ip netns del "$ns" 2>/dev/null || true
    case $ns in
      *br) ;;
      *) rm -rf "/etc/netns/$ns"
         # What a killed Open MPI job leaves behind, keyed by the host name.
         rm -rf /dev/shm/vader_segment."$ns".* /tmp/ompi."$ns".* 2>/dev/null || true ;;
    esac
  done
  rm -f "$STATE_DIR/$PREFIX"
  ls "$STATE_DIR" 2>/dev/null | grep -qv '^agent$' || rm -rf "$STATE_DIR"
}

# plm_rsh_agent: called as `agent [ssh options] HOST remote command words...`.
cmd_agent() {
  while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
  [ $# -ge 2 ] || die "agent: expected HOST COMMAND"
  local h=$1; shift
  ip netns list | grep -q "^$h\b" || die "agent: no emulated host '$h'"
  # The words form one remote shell command line, as ssh would run it.
  in_host "$h" sh -c "$*"
}

case ${1:-} in
  up) shift; [ $# -ge 1 ] || die "usage: up N [--rate R]"; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  agent) shift; cmd_agent "$@" ;;
  run | exec)
    what=$1; shift
    h=$(host_name 1)
    if [ "$what" = exec ]; then h=$1; shift; fi
    [ "${1:-}" = --prefix ] && { PREFIX=$2; h=$(host_name 1); shift 2; }
    [ "${1:-}" = -- ] && shift
    [ $# -ge 1 ] || die "usage: $what ${h:+HOST }-- CMD..."
    ip netns list | grep -q "^$h\b" || die "no emulated host '$h': run 'up N' first"
    if [ "$what" = run ]; then
      export PARALLAMA_MPIRUN_ARGS="$(mpirun_args) ${PARALLAMA_MPIRUN_ARGS:-}"
    fi
    in_host "$h" "$@" ;;
  cut | mend)
    what=$1; shift
    [ $# -eq 1 ] || die "usage: $what HOST"
    state=down; [ "$what" = mend ] && state=up
    ip -n "$1" link set eth0 "$state" ;;
  *) sed -n '2,20p' "$SELF" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
