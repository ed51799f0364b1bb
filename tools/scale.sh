#!/usr/bin/env bash
# Runs tools/launch.sh at each overlay size N (default 16 64 256 1024 4096 10000; NR =
# ceil(log2 N), the ID space and the nodes per process as launch.sh picks them), PACKETS packets
# per node each (default 1000), and records for each N: packets/s, transmissions/s (received +
# relayed, per second), mean and p99 hops against the exact values for that NR (every sink
# equally likely, as the nodes pick them), peak resident memory of all node processes per node
# and of the registry, the set-up time (launch to "Registry now ready") and the time from the
# end of the run (its last delivery) to the verdict. The table goes to standard output and
# $OUT/scale.csv; every run's directory (logs, result.json) is $OUT/N.
#
#   tools/scale.sh [N...]
#
# Environment: PACKETS (default 1000); OUT (default: a new temporary directory); OVERLAY_BIN a
# prebuilt binary; the rest as for tools/launch.sh (REGISTRY_ARGS, NODE_ARGS,
# NODES_PER_PROCESS). tools/scale_plot.py draws $OUT/scale.csv. Timing figures are only as good
# as the machine is quiet: the load average is recorded with each row.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(16 64 256 1024 4096 10000)
for n in "${sizes[@]}"; do
  case "$n" in '' | *[!0-9]*) echo "scale.sh: not a node count: $n (--help)" >&2; exit 2 ;; esac
  [ "$n" -ge 2 ] || { echo "scale.sh: an overlay needs at least 2 nodes, not $n" >&2; exit 2; }
done
packets=${PACKETS:-1000}
case "$packets" in '' | *[!0-9]*) echo "scale.sh: PACKETS must be a number" >&2; exit 2 ;; esac
out=${OUT:-$(mktemp -d -t overlay-scale.XXXXXX)}
mkdir -p "$out"
if [ -z "${OVERLAY_BIN:-}" ]; then
  cargo build --release --quiet
  OVERLAY_BIN="$top/target/release/overlay"
fi
# A copy of its own, so that the processes of these runs (and only they) are found by path.
cp "$OVERLAY_BIN" "$out/overlay"
export OVERLAY_BIN="$out/overlay"

echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(uname -r); $packets packets per node" | tee "$out/machine.txt"
header=nodes,nr,processes,packets_per_s,transmissions_per_s,hops_mean,hops_mean_exact,hops_p99,hops_p99_exact,rss_kib_per_node,registry_rss_kib,setup_s,run_s,verdict_after_run_s,verdict,load_average
echo "$header" >"$out/scale.csv"
printf '%6s %3s %5s %10s %12s %12s %8s %8s %7s %7s %6s %8s %7s %6s\n' \
  N NR procs packets/s transmit/s 'hops(exact)' 'p99(ex)' KiB/node reg_MiB setup_s run_s verdict+s verdict load

# sample N DIR: until launch.sh ends, every 0.2 s: the summed resident memory of the node
# processes (peak), the registry's (peak), and when the registry's log says ready, running and
# done. Writes DIR/samples.
sample() {
  local dir=$1 start=$2 now nodes registry pid rss peak=0 reg_peak=0 ready= run= verdict=
  while [ ! -e "$dir/.done" ]; do
    nodes=0
    registry=0
    for pid in $(pgrep -f "^$OVERLAY_BIN node" || true); do
      rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
      nodes=$((nodes + ${rss:-0}))
    done
    for pid in $(pgrep -f "^$OVERLAY_BIN registry" || true); do
      rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || true)
      registry=$((registry + ${rss:-0}))
    done
    [ "$nodes" -le "$peak" ] || peak=$nodes
    [ "$registry" -le "$reg_peak" ] || reg_peak=$registry
    now=$(date +%s.%N)
    if [ -z "$ready" ] && grep -q "Registry now ready" "$dir/registry.log" 2>/dev/null; then ready=$now; fi
    if [ -z "$run" ] && grep -q "^Run 1:" "$dir/registry.log" 2>/dev/null; then run=$now; fi
    if [ -z "$verdict" ] && grep -qE "^(PASS|FAIL)" "$dir/registry.log" 2>/dev/null; then verdict=$now; fi
    echo "$peak $reg_peak $start ${ready:-0} ${run:-0} ${verdict:-0}" >"$dir/samples"
    sleep 0.2
  done
}

for n in "${sizes[@]}"; do
  dir="$out/$n"
  rm -rf "$dir"
  mkdir -p "$dir"
  start=$(date +%s.%N)
  sample "$dir" "$start" &
  sampler=$!
  status=0
  OUT="$dir" tools/launch.sh "$n" "$packets" >"$dir/launch.log" 2>&1 || status=$?
  touch "$dir/.done"
  wait "$sampler" || true
  processes=$(ls "$dir"/node-*.log 2>/dev/null | wc -l)
  python3 - "$dir" "$n" "$processes" "$status" "$(cut -d' ' -f1 /proc/loadavg)" >>"$out/scale.csv" <<'PY' || echo "$n,,,,,,,,,,,,,,FAIL," >>"$out/scale.csv"
import json, math, os, sys
d, n, processes, status, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
nan = float("nan")
try:
    peak, reg_peak, start, ready, run, verdict = (float(x) for x in open(d + "/samples").read().split())
except (OSError, ValueError):
    peak, reg_peak, start, ready, run, verdict = 0, 0, 0, 0, 0, 0
try:
    r = json.load(open(d + "/result.json"))
except (OSError, ValueError):
    r = None  # no verdict written (the registry failed before the run ended)
# The verdict: the registry's if it gave one, otherwise FAIL.
ok = status == 0 and r is not None
if r is not None and r.get("nr"):
    nr = r["nr"]
    # Exact hops of the positions rule: the sink is any other node, each equally likely; a
    # packet to the node d positions ahead takes d // 2^(NR-1) full hops plus one per bit of
    # the rest.
    big = 1 << (nr - 1)
    hops = sorted(d // big + bin(d % big).count("1") for d in range(1, n))
    exact_mean = sum(hops) / len(hops)
    exact_p99 = hops[min(len(hops) - 1, math.ceil(0.99 * len(hops)) - 1)]
else:
    nr, exact_mean, exact_p99 = "", nan, ""
by_relays = (r or {}).get("stats", {}).get("packets_by_relays") or []
total = sum(by_relays)
mean, p99 = nan, ""
if total:
    mean = sum((i + 1) * c for i, c in enumerate(by_relays)) / total
    seen = 0
    for i, c in enumerate(by_relays):
        seen += c
        if seen >= 0.99 * total:
            p99 = i + 1
            break
secs = (r or {}).get("duration_s") or 0
transmissions = (r["packets_received"] + r["packets_relayed"]) / secs if secs else nan
rate = (r or {}).get("packets_per_s") or nan
setup = ready - start if ready else nan
after = verdict - run - secs if verdict and run and secs else nan
word = (r or {}).get("verdict", "FAIL") if ok else "FAIL"
print(f"{n},{nr},{processes},{rate:.0f},{transmissions:.0f},{mean:.3f},{exact_mean:.3f},"
      f"{p99},{exact_p99},{peak / n:.0f},{reg_peak:.0f},{setup:.1f},{secs:.2f},{after:.2f},"
      f"{word},{load}")
PY
  if [ "$status" -ne 0 ]; then
    # Why, in the registry's words (its FAIL line, or its last line), then the row.
    why=$(grep -m1 -E '^(FAIL|error|Error)' "$dir/registry.log" 2>/dev/null ||
      tail -n 1 "$dir/registry.log" 2>/dev/null || true)
    echo "scale.sh: $n nodes: FAIL (launch.sh exit status $status): ${why:-no registry log}" >&2
    echo "scale.sh: logs in $dir (launch.log, registry.log, node-*.log)" >&2
  fi
  tail -1 "$out/scale.csv" | awk -F, '{printf "%6s %3s %5s %10s %12s %5s(%5s) %3s(%3s) %8s %7.0f %7s %6s %8s %7s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11/1024, $12, $13, $14, $15, $16}'
done
echo "scale.sh: results in $out/scale.csv (tools/scale_plot.py $out/scale.csv draws them)" >&2
