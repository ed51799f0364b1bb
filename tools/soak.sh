#!/usr/bin/env bash
# Soak: NODES nodes (default 64) send PACKETS packets each (default 1,000,000) in RUNS runs in
# a row (default 3) in one overlay (the scripted registry's --runs). Every run must PASS, and
# no node process's resident memory may grow from one run to the next: VmRSS of every node
# process (launch.sh's layout: a process per core) is read when the overlay is ready, after
# run 1 and after run RUNS-1 (the last moment every node is sure to be alive), and the later
# must stay within SLACK_KIB (default 8 MiB) per node of the process of the earlier.
# RUNS is at least 3, so that the two compared samples are a run apart.
#
#   tools/soak.sh [NODES] [PACKETS] [RUNS]       smallest useful: tools/soak.sh 10 10000000 3
#
# Prints one line of memory figures per sample and the registry's summaries; exits 0 only if
# every run passed, every node could be sampled (runs too short to sample fail: raise PACKETS)
# and memory did not grow. Logs in OUT (default: a new temporary directory). OVERLAY_BIN runs
# a prebuilt binary instead of building.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
nodes=${1:-64}
packets=${2:-1000000}
runs=${3:-3}
slack=${SLACK_KIB:-8192}
case "$nodes$packets$runs" in *[!0-9]*) echo "usage: tools/soak.sh [NODES] [PACKETS] [RUNS] (--help)" >&2; exit 2 ;; esac
[ "$runs" -ge 3 ] || { echo "soak.sh: RUNS must be at least 3" >&2; exit 2; }

# The reference's NR 3 (the soak's figures in docs/RELIABILITY.md use it), or less when there
# are too few nodes for three distinct entries.
nr=3
while [ $((1 << (nr - 1))) -gt $((nodes - 1)) ]; do nr=$((nr - 1)); done

source "$(dirname "$0")/lib.sh"
find_overlay
make_out

start_registry --nodes "$nodes" --nr "$nr" --start "$packets" --runs "$runs" \
  --json "$out/result.json" --stall-timeout 60
start_nodes "$nodes"

# Waits for a line in the registry's log (or its exit).
wait_for() {
  while ! grep -q -- "$1" "$out/registry.log"; do
    kill -0 "$registry" 2>/dev/null || return 1
    sleep 0.2
  done
}
# Prints "min max mean" of the node processes' VmRSS in KiB per node, and saves each process's
# in $out/rss-$1, one line per process, "KiB nodes": 0 KiB for a process that has exited (no
# VmRSS, or no /proc entry at all).
sample() {
  : >"$out/rss-$1"
  for i in "${!node_pids[@]}"; do
    kib=$(awk '/^VmRSS:/ {kib = $2} END {print kib + 0}' "/proc/${node_pids[$i]}/status" 2>/dev/null) || kib=0
    echo "${kib:-0} ${node_groups[$i]}" >>"$out/rss-$1"
  done
  awk -v what="$1" '{v = $1 / $2} NR==1 {min=v; max=v} {s+=$1; n+=$2; if (v<min) min=v; if (v>max) max=v}
    END {printf "soak: RSS %-8s per node min %d KiB, max %d KiB, mean %d KiB over %d nodes in %d processes\n", what, min, max, s/n, n, NR}' "$out/rss-$1"
}

start=$(date +%s)
wait_for "Registry now ready" && sample ready
wait_for "Run 1 summary:" && sample after-run1
wait_for "Run $runs:" && sample "after-run$((runs - 1))"
status=0
wait "$registry" || status=$?
grep -E "^(Run [0-9]+ summary:|Sum|PASS|FAIL)" "$out/registry.log" || true
echo "soak: $nodes nodes x $packets packets x $runs runs in $(( $(date +%s) - start )) s; registry status $status; logs in $out"

first="$out/rss-after-run1"
last="$out/rss-after-run$((runs - 1))"
gone=$(cat "$first" "$last" 2>/dev/null | awk '$1 == 0 {n++} END {print n+0}')
lines=$(cat "$first" "$last" 2>/dev/null | wc -l)
# A process of K nodes may grow by K x the slack.
grown=$(paste -d' ' "$first" "$last" 2>/dev/null | awk -v slack="$slack" '$3 > $1 + slack * $2 {n += $2} END {print n+0}')
if [ "$gone" -gt 0 ] || [ "$lines" -ne $((2 * ${#node_pids[@]})) ]; then
  echo "soak: FAIL: memory not sampled for every node after run 1 and run $((runs - 1)) (runs too short? raise PACKETS)" >&2
  status=1
elif [ "$grown" -gt 0 ]; then
  echo "soak: FAIL: $grown nodes grew by more than $slack KiB between run 1 and run $((runs - 1))" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL" >&2
exit "$status"
