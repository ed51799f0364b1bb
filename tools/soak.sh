#!/usr/bin/env bash
# Soak: NODES nodes (default 64) send PACKETS packets each (default 1,000,000) in RUNS runs in
# a row (default 3) in one overlay (the scripted registry's --runs). Every run must PASS, and
# no node's resident memory may grow from one run to the next: VmRSS of every node is read
# when the overlay is ready, after run 1 and after run RUNS-1 (the last moment every node is
# sure to be alive), and the later must stay within SLACK_KIB (default 8 MiB) of the earlier.
#
#   tools/soak.sh [NODES] [PACKETS] [RUNS]
#
# Prints one line of memory figures per sample and the registry's summaries; exits 0 only if
# every run passed and memory did not grow. Logs in OUT (default: a new temporary directory).
# OVERLAY_BIN runs a prebuilt binary instead of building.
set -euo pipefail
nodes=${1:-64}
packets=${2:-1000000}
runs=${3:-3}
slack=${SLACK_KIB:-8192}
[ "$runs" -ge 2 ] || { echo "soak.sh: RUNS must be at least 2" >&2; exit 2; }
nr=3
while [ $((1 << (nr - 1))) -gt $((nodes - 1)) ]; do nr=$((nr - 1)); done

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ -z "${OVERLAY_BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${OVERLAY_BIN:-$top/target/release/overlay}
out=${OUT:-$(mktemp -d -t overlay-soak.XXXXXX)}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cores=$(nproc)

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo "soak.sh: interrupted" >&2; exit 130' INT TERM

rm -f "$out/port"
"$bin" registry --nodes "$nodes" --nr "$nr" --start "$packets" --runs "$runs" \
  --json "$out/result.json" --port-file "$out/port" --core 0 --stall-timeout 60 \
  </dev/null >"$out/registry.log" 2>&1 &
registry=$!
pids+=("$registry")
for _ in $(seq 400); do [ -s "$out/port" ] && break; sleep 0.05; done
[ -s "$out/port" ] || { echo "soak.sh: the registry did not start" >&2; cat "$out/registry.log" >&2; exit 1; }
port=$(cat "$out/port")
node_pids=()
for i in $(seq 0 $((nodes - 1))); do
  "$bin" node 127.0.0.1 "$port" --core $((i % cores)) </dev/null >"$out/node-$i.log" 2>&1 &
  pids+=("$!")
  node_pids+=("$!")
done

# Waits for a line in the registry's log (or its exit).
wait_for() {
  while ! grep -q -- "$1" "$out/registry.log"; do
    kill -0 "$registry" 2>/dev/null || return 1
    sleep 0.2
  done
}
# Prints "min max sum" of the nodes' VmRSS in KiB, and saves each in $out/rss-$1.
sample() {
  : >"$out/rss-$1"
  for pid in "${node_pids[@]}"; do
    awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null >>"$out/rss-$1" || echo 0 >>"$out/rss-$1"
  done
  awk -v what="$1" 'NR==1 {min=$1; max=$1} {s+=$1; if ($1<min) min=$1; if ($1>max) max=$1}
    END {printf "soak: RSS %-8s min %d KiB, max %d KiB, mean %d KiB over %d nodes\n", what, min, max, s/NR, NR}' "$out/rss-$1"
}

start=$(date +%s)
wait_for "Registry now ready" && sample ready
wait_for "Run 1 summary:" && sample run1
wait_for "Run $runs:" && sample "run$((runs - 1))"
status=0
wait "$registry" || status=$?
grep -E "^(Run [0-9]+ summary:|Sum|PASS|FAIL)" "$out/registry.log" || true
echo "soak: $nodes nodes x $packets packets x $runs runs in $(( $(date +%s) - start )) s; registry status $status; logs in $out"

grown=$(paste "$out/rss-run1" "$out/rss-run$((runs - 1))" | awk -v slack="$slack" '$2 > $1 + slack {n++} END {print n+0}')
if [ "$grown" -gt 0 ]; then
  echo "soak: FAIL: $grown nodes grew by more than $slack KiB between run 1 and run $((runs - 1))" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL" >&2
exit "$status"
