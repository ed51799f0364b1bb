#!/usr/bin/env bash
# The data-plane workloads of docs/PERFORMANCE.md, with a single-stream iperf3 over loopback
# measured just before as the baseline, in one table.
#
#   tools/perf.sh [W1|W2|W3 ...]      (default: all three)
#
# W1 classic:   10 nodes, NR 3, 100,000 packets per node.
# W2 stress:    64 nodes, NR 6, 1,000,000 packets per node (PACKETS=... to change).
# W3 bandwidth: 64 nodes, NR 6, 4 KiB extra payload, 20,000 packets per node.
# iperf3 runs again after the workloads, to show how far the baseline moved meanwhile.
# Installs iperf3 with apt-get when it is missing (root). Results land in $OUT (default a new
# temporary directory): one result JSON per workload and perf.txt with the table. OVERLAY_BIN
# runs a prebuilt binary instead of building (to compare two builds).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^set -/d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(W1 W2 W3)
for w in "${workloads[@]}"; do
  case "$w" in W1|W2|W3) ;; *) echo "perf.sh: unknown workload $w (W1, W2 or W3; --help)" >&2; exit 2 ;; esac
done
out=${OUT:-$(mktemp -d -t overlay-perf.XXXXXX)}
mkdir -p "$out"

if ! command -v iperf3 >/dev/null; then
  echo "perf.sh: installing iperf3" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 >/dev/null
fi
if [ -z "${OVERLAY_BIN:-}" ]; then
  cargo build --release --quiet
  export OVERLAY_BIN="$top/target/release/overlay"
fi

iperf_bytes_per_s() {
  local port=$((20000 + RANDOM % 20000))
  iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
  local server=$!
  sleep 0.5
  iperf3 -c 127.0.0.1 -p "$port" -t 5 -J >"$out/iperf3.json"
  wait "$server" || true
  python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/8))' "$out/iperf3.json"
}

printf '%s\n' "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" | tee "$out/perf.txt"
base=$(iperf_bytes_per_s)
python3 -c 'import sys; print(f"iperf3 single stream over loopback: {int(sys.argv[1])/1e9:.2f} GB/s")' "$base" | tee -a "$out/perf.txt"
printf '%-4s %6s %3s %9s %6s %8s %12s %14s %10s %12s %8s %9s\n' \
  W nodes NR packets extra seconds packets/s transmissions/s frame_B frame_B/s x_iperf peak_MiB | tee -a "$out/perf.txt"

run() {
  local name=$1 nodes=$2 nr=$3 packets=$4 extra=$5
  OUT="$out/$name" PAYLOAD=$extra tools/launch.sh "$nodes" "$packets" "$nr" >"$out/$name.log" 2>&1 \
    || { echo "perf.sh: $name did not PASS (log: $out/$name.log)" >&2; return 1; }
  python3 - "$out/$name/result.json" "$name" "$nodes" "$nr" "$packets" "$extra" "$base" "$out/$name" <<'PY' | tee -a "$out/perf.txt"
import glob, json, re, sys
path, name, nodes, nr, packets, extra, base, logs = sys.argv[1:]
r = json.load(open(path))
nodes, nr, extra, base = int(nodes), int(nr), int(extra), float(base)
# trace slots = longest path's relays in this overlay
def tx(d, nr):
    big = 1 << (nr - 1)
    return d // big + bin(d % big).count("1")
slots = max(tx(d, nr) - 1 for d in range(1, nodes))
frame = 32 + 4 * slots + 4 + extra
secs = r["duration_s"]
transmissions = r["packets_received"] + r["packets_relayed"]
bps = transmissions * frame / secs
peak = 0
for log in glob.glob(logs + "/node-*.log"):
    for m in re.finditer(r"peak resident memory (\d+) KiB", open(log).read()):
        peak = max(peak, int(m.group(1)))
print(f"{name:<4} {nodes:6d} {nr:3d} {int(packets):9d} {extra:6d} {secs:8.3f} {r['packets_per_s']:12,.0f} {transmissions/secs:14,.0f} {frame:10d} {bps/1e9:10.2f}GB {bps/base:8.2f} {peak/1024:9.1f}")
if extra:
    goodput = r["packets_received"] * (4 + extra) / secs
    print(f"     goodput (payload bytes delivered/s): {goodput/1e9:.2f} GB/s = {goodput/base:.2f} x iperf3")
if name == "W1":
    print(f"     W1 vs the reference Java implementation's ~40 s: {40/secs:,.0f} x faster")
PY
}

for w in "${workloads[@]}"; do
  case "$w" in
    W1) run W1 10 3 100000 0 ;;
    W2) run W2 64 6 "${PACKETS:-1000000}" 0 ;;
    W3) run W3 64 6 20000 4096 ;;
    *) echo "perf.sh: unknown workload $w" >&2; exit 2 ;;
  esac
done
# The baseline moves with the host; a second measurement shows by how much during this run.
again=$(iperf_bytes_per_s)
python3 -c 'import sys; print(f"iperf3 again, after the workloads: {int(sys.argv[1])/1e9:.2f} GB/s (the ratios above use the first)")' "$again" | tee -a "$out/perf.txt"
echo "perf.sh: results in $out" >&2
