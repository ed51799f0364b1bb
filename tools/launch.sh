#!/usr/bin/env bash
# Builds overlay in release mode, starts a registry and NODES messaging nodes on this machine,
# runs MESSAGES_PER_NODE packets per node through an overlay with NR table entries, prints the
# summary and exits 0 only if the run verified (PASS). Every process it starts is stopped on
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
if [ $# -ge 3 ]; then
  nr=$3
else
  # The reference's NR 3, or less when there are too few nodes for three distinct entries.
  nr=3
  while [ $((1 << (nr - 1))) -gt $((nodes - 1)) ]; do nr=$((nr - 1)); done
fi
runs=${RUNS:-1}
payload=${PAYLOAD:-0}

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ -n "${OVERLAY_BIN:-}" ]; then
  bin=$OVERLAY_BIN
else
  echo "Building overlay (release)..." >&2
  cargo build --release --quiet
  bin="$top/target/release/overlay"
fi

out=${OUT:-$(mktemp -d -t overlay-launch.XXXXXX)}
mkdir -p "$out"
cores=$(nproc)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo "launch.sh: interrupted" >&2; exit 130' INT TERM

rm -f "$out/port"
"$bin" registry --nodes "$nodes" --nr "$nr" --start "$messages" --runs "$runs" \
  --payload "$payload" --json "$out/result.json" --port-file "$out/port" --core 0 \
  ${REGISTRY_ARGS:-} </dev/null >"$out/registry.log" 2>&1 &
registry=$!
pids+=("$registry")
for _ in $(seq 200); do
  [ -s "$out/port" ] && break
  kill -0 "$registry" 2>/dev/null || { cat "$out/registry.log" >&2; exit 1; }
  sleep 0.05
done
[ -s "$out/port" ] || { echo "launch.sh: the registry did not start" >&2; exit 1; }
port=$(cat "$out/port")
echo "Registry on port $port; starting $nodes nodes (NR $nr, $messages packets each, logs in $out)" >&2

for i in $(seq 0 $((nodes - 1))); do
  "$bin" node 127.0.0.1 "$port" --core $((i % cores)) ${NODE_ARGS:-} </dev/null >"$out/node-$i.log" 2>&1 &
  pids+=("$!")
done

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
