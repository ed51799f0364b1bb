#!/usr/bin/env bash
# Builds overlay in release mode, starts a registry and NODES messaging nodes on this machine,
# runs MESSAGES_PER_NODE packets per node through an overlay with NR table entries (default
# ceil(log2 NODES), chosen by the registry, as is an ID space wide enough), prints the summary
# and exits 0 only if the run verified (PASS), 3 if nodes crashed and every packet is still
# accounted for (PASS with crashes). Every process it starts is stopped on
# exit, Ctrl-C or failure.
#
#   tools/launch.sh [--fingers chord|positions] NODES [MESSAGES_PER_NODE] [NR]
#   tools/launch.sh --hosts FILE [--registry-on local|first] [-F SSH_CONFIG] NODES [...]
#
# With --hosts the nodes run on the machines FILE lists, over OpenSSH (`--help`, and
# docs/USAGE.md, "Across machines").
#
# Environment: RUNS (default 1) runs in a row; DURATION seconds each node sends per run, instead
# of MESSAGES_PER_NODE packets (`overlay registry --duration`); PAYLOAD extra payload bytes per packet
# (default 0); OUT directory for logs and result.json (default: a new temporary directory);
# OVERLAY_BIN a prebuilt binary to use instead of building; REGISTRY_ARGS more registry flags
# (for example "--window-bytes 1048576"); NODE_ARGS more flags for every node (for example
# "--busy-poll-us 1000"); NODES_PER_PROCESS nodes per process (default: groups sized by
# cores and descriptors; 1 gives each node a process of its own). With --hosts also: SSH_OPTS options for every ssh; REGISTRY_PORT
# the registry's port (default: a free one); REGISTRY_ADDRESS the address nodes dial.
set -euo pipefail

usage() {
  echo "usage: tools/launch.sh [--fingers chord|positions] [--hosts FILE [--registry-on local|first] [-F SSH_CONFIG]] NODES [MESSAGES_PER_NODE] [NR]" >&2
  echo "       tools/launch.sh --help" >&2
  exit 2
}
help() {
  cat <<'EOF'
usage: tools/launch.sh [--fingers chord|positions]
                       [--hosts FILE [--registry-on local|first] [-F SSH_CONFIG]]
                       NODES [MESSAGES_PER_NODE] [NR]

Starts a registry and NODES messaging nodes, runs MESSAGES_PER_NODE packets per node (default
100000) through an overlay of NR table entries (default ceil(log2 NODES)), prints the summary
and exits 0 only if the run verified (PASS), 3 if nodes crashed and every packet is still
accounted for (PASS with crashes). Logs and result.json go to $OUT (default: a new
temporary directory). Every process started is stopped on exit, failure and Ctrl-C.

  --fingers RULE       `positions` (default): the reference's tables, entry i = the node 2^i
                       positions ahead, NR entries; `chord`: Chord's fingers, successor(n +
                       2^i) over 160-bit random identifiers (no NR; REGISTRY_ARGS="--chord-ids
                       hash --chord-bits 64" for hashed or narrower ones).
  --hosts FILE         run the nodes on the machines FILE lists, over OpenSSH: one ssh
                       destination per line (`user@host` or `host`), optionally followed by
                       the address that host's nodes listen on (default: the one that routes
                       to the registry); `#` starts a comment. NODES are spread evenly; the
                       binary is copied to each host (a private temporary directory, removed
                       at exit). The far side needs sshd and a POSIX shell, nothing else.
  --registry-on WHERE  `local` (default): the registry runs on this machine; `first`: on the
                       first host of FILE.
  -F SSH_CONFIG        an ssh configuration file for every ssh (as ssh -F).

Environment: RUNS runs in a row (default 1); DURATION seconds each node sends per run instead
of MESSAGES_PER_NODE packets; PAYLOAD extra payload bytes per packet; OUT;
OVERLAY_BIN a prebuilt binary instead of building; REGISTRY_ARGS and NODE_ARGS more flags for
the registry and every node process; NODES_PER_PROCESS nodes in each process (default: as
many as spread the nodes over the cores, on each host with --hosts, within the descriptors
`ulimit -n` allows, about 2 x NR + 10 a node; 1 gives each node a process of its own; the
nodes of a process hand links to each other over in memory, share one connection, a trunk,
with each other such process, and the registry places them apart on the ring so that most
hops stay in memory: NODE_ARGS=--no-trunks gives every link a connection of its own,
REGISTRY_ARGS="--placement random" places every node at random). With --hosts: SSH_OPTS options for every ssh (e.g. "-p 2222
-i ~/.ssh/lab"); REGISTRY_PORT the registry's port (default: a free one); REGISTRY_ADDRESS the
address the nodes dial (default: this machine's address as each host sees it, or with
--registry-on first the first host's as this machine reaches it).
EOF
  exit 0
}
hosts_file=
registry_on=
fingers=positions
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) help ;;
    --hosts) [ $# -ge 2 ] || usage; hosts_file=$2; shift 2 ;;
    --fingers) [ $# -ge 2 ] || usage; fingers=$2; shift 2 ;;
    --registry-on) [ $# -ge 2 ] || usage; registry_on=$2; shift 2 ;;
    -F) [ $# -ge 2 ] || usage; SSH_OPTS="${SSH_OPTS:-} -F $2"; ssh_config=$2; shift 2 ;;
    -*) usage ;;
    *) break ;;
  esac
done
if [ -z "$hosts_file" ] && { [ -n "$registry_on" ] || [ -n "${ssh_config:-}" ]; }; then
  echo "launch.sh: --registry-on and -F go with --hosts" >&2
  usage
fi
case ${registry_on:=local} in local | first) ;; *) usage ;; esac
case $fingers in positions | chord) ;; *) usage ;; esac
if [ "$fingers" = chord ] && [ $# -ge 3 ]; then
  echo "launch.sh: NR sets the size of position tables; Chord fingers need none" >&2
  usage
fi
[ $# -ge 1 ] && [ $# -le 3 ] || usage
nodes=$1
messages=${2:-100000}
case "$nodes$messages" in *[!0-9]*) usage ;; esac
[ "$nodes" -ge 2 ] || { echo "launch.sh: an overlay needs at least 2 nodes" >&2; exit 2; }
runs=${RUNS:-1}
# What ends a run's origination: a count of packets, or a time (DURATION seconds).
goal=(--start "$messages")
what="$messages packets each"
if [ -n "${DURATION:-}" ]; then
  goal=(--duration "$DURATION")
  what="sending for $DURATION s"
fi
payload=${PAYLOAD:-0}
case $payload in '' | *[!0-9]*) echo "launch.sh: PAYLOAD must be a number of bytes, not '$payload'" >&2; exit 2 ;; esac

source "$(dirname "$0")/lib.sh"
nr=${3:-}
[ -z "$hosts_file" ] || read_hosts "$hosts_file"
find_overlay
make_out

if [ -n "$hosts_file" ]; then
  copy_to_hosts
  mkfifo "$out/.alive"
  # REGISTRY_PORT, REGISTRY_ARGS and NODE_ARGS are split into words on purpose.
  registry_flags=(${REGISTRY_PORT:-} --nodes "$nodes" --fingers "$fingers" ${nr:+--nr "$nr"} "${goal[@]}"
    --runs "$runs" --payload "$payload" ${REGISTRY_ARGS:-})
  if [ "$registry_on" = first ]; then
    start_remote_registry "${registry_flags[@]}" --json "${dirs[0]}/result.json"
    address=${REGISTRY_ADDRESS:-${binds[0]:-${host_server[0]}}}
    where="on ${hosts[0]} ($address:$port)"
  else
    start_registry "${registry_flags[@]}" --json "$out/result.json"
    address=${REGISTRY_ADDRESS:-}
    where="here (port $port)"
  fi
  echo "Registry $where; starting $nodes nodes on ${#hosts[@]} hosts (NR ${nr:-ceil(log2 $nodes)}, $what, logs in $out)" >&2
  start_remote_nodes "$nodes" "$address" ${NODE_ARGS:-}
  tail -n +1 -f "$out/registry.log" --pid "$registry" &
  tailer=$!
  pids+=("$tailer")
  await_run
  wait "$tailer" 2>/dev/null || true
  if [ "$registry_on" = first ]; then
    remote_ssh "${hosts[0]}" "cat $(sq "${dirs[0]}/result.json")" </dev/null \
      >"$out/result.json" 2>/dev/null || rm -f "$out/result.json"
  fi
  if [ "$status" -eq 0 ]; then
    echo "launch.sh: PASS (result: $out/result.json)" >&2
  elif [ "$status" -eq 3 ]; then
    echo "launch.sh: PASS with crashes: nodes crashed, every packet accounted for (result: $out/result.json)" >&2
  else
    echo "launch.sh: FAIL (status $status; logs in $out)" >&2
  fi
  exit "$status"
fi

# REGISTRY_ARGS and NODE_ARGS are split into words on purpose (several flags).
start_registry --nodes "$nodes" --fingers "$fingers" ${nr:+--nr "$nr"} "${goal[@]}" --runs "$runs" \
  --payload "$payload" --json "$out/result.json" ${REGISTRY_ARGS:-}
if [ "$fingers" = chord ]; then tables="Chord fingers"; else tables="NR ${nr:-ceil(log2 $nodes)}"; fi
echo "Registry on port $port; starting $nodes nodes ($tables, $what, logs in $out)" >&2
start_nodes "$nodes" ${NODE_ARGS:-}
[ "${#node_pids[@]}" -eq "$nodes" ] || echo "Nodes run in ${#node_pids[@]} processes of ${node_groups[0]} or fewer (overlay node --count)" >&2

tail -n +1 -f "$out/registry.log" --pid "$registry" &
tailer=$!
status=0
wait "$registry" || status=$?
wait "$tailer" 2>/dev/null || true
if [ "$status" -eq 0 ]; then
  echo "launch.sh: PASS (result: $out/result.json)" >&2
elif [ "$status" -eq 3 ]; then
  echo "launch.sh: PASS with crashes: nodes crashed, every packet accounted for (result: $out/result.json)" >&2
else
  echo "launch.sh: FAIL (status $status; logs in $out)" >&2
fi
exit "$status"
