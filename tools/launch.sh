#!/usr/bin/env bash
# Builds overlay in release mode, starts a registry and NODES messaging nodes on this machine,
# runs MESSAGES_PER_NODE packets per node through an overlay with NR table entries (default
# ceil(log2 NODES), chosen by the registry, as is an ID space wide enough), prints the summary
# and exits 0 only if the run verified (PASS). Every process it starts is stopped on
# exit, Ctrl-C or failure.
#
#   tools/launch.sh NODES [MESSAGES_PER_NODE] [NR]
#
# Environment: RUNS (default 1) runs in a row; PAYLOAD extra payload bytes per packet
# (default 0); OUT directory for logs and result.json (default: a new temporary directory);
# OVERLAY_BIN a prebuilt binary to use instead of building; REGISTRY_ARGS more registry flags
# (for example "--window-bytes 1048576"); NODE_ARGS more flags for every node (for example
# "--busy-poll-us 1000").
set -euo pipefail

usage() { echo "usage: tools/launch.sh NODES [MESSAGES_PER_NODE] [NR]" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 3 ] || usage
nodes=$1
messages=${2:-100000}
case "$nodes$messages" in *[!0-9]*) usage ;; esac
[ "$nodes" -ge 2 ] || { echo "launch.sh: an overlay needs at least 2 nodes" >&2; exit 2; }
runs=${RUNS:-1}
payload=${PAYLOAD:-0}

source "$(dirname "$0")/lib.sh"
nr=${3:-}
find_overlay
make_out

# REGISTRY_ARGS and NODE_ARGS are split into words on purpose (several flags).
start_registry --nodes "$nodes" ${nr:+--nr "$nr"} --start "$messages" --runs "$runs" \
  --payload "$payload" --json "$out/result.json" ${REGISTRY_ARGS:-}
echo "Registry on port $port; starting $nodes nodes (NR ${nr:-ceil(log2 $nodes)}, $messages packets each, logs in $out)" >&2
start_nodes "$nodes" ${NODE_ARGS:-}

tail -n +1 -f "$out/registry.log" --pid "$registry" &
tailer=$!
status=0
wait "$registry" || status=$?
wait "$tailer" 2>/dev/null || true
if [ "$status" -eq 0 ]; then
  echo "launch.sh: PASS (result: $out/result.json)" >&2
else
  echo "launch.sh: FAIL (status $status; logs in $out)" >&2
fi
exit "$status"
