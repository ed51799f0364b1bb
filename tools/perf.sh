#!/usr/bin/env bash
# The data-plane workloads of docs/PERFORMANCE.md beside their baselines, run in alternation on
# the same machine in the same minute, in one table.
#
#   tools/perf.sh [W1|W2|W3 ...]      (default: all three)
#
# W1 classic:   10 nodes, NR 3, 100,000 packets per node.
# W2 stress:    64 nodes, NR 6, 1,000,000 packets per node (PACKETS=... to change).
# W3 bandwidth: 64 nodes, NR 6, 4 KiB extra payload, 20,000 packets per node.
# Each in launch.sh's layout: a process per core, the nodes of a process placed apart on the
# ring (NODES_PER_PROCESS=1 gives each node a process of its own).
#
# W1 and W2 run ROUNDS times (default 3) in alternation with the calibration ring
# (../shared/baselines/ringproto, or $RING_SRC; built into target/ringproto) with the same P, NR
# and M; each run's line gives both packets/s and their ratio (ours / ring), and a last line
# the medians and the ratio of the medians. Our packets/s run from the registry's start to the
# verified summary; the ring's from its GO to its last delivery. W3 runs ROUNDS times, each right
# after a single-stream iperf3 over loopback, and is judged by goodput (payload bytes
# delivered/s) over that iperf3's bytes/s; the median ratio comes last. W3's lines also give
# the CPU each side pays per byte and the ceiling all cores busy would allow at iperf3's cost per
# byte (docs/PERFORMANCE.md, "Why W3 stops short"). Each line carries the 1-minute load
# average (`uptime`) taken just before it.
#
# Installs iperf3 with apt-get when it is missing (root). Results land in $OUT (default a new
# temporary directory): each run's logs and result JSON, and perf.txt with the table.
# OVERLAY_BIN runs a prebuilt binary instead of building (to compare two builds).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(W1 W2 W3)
for w in "${workloads[@]}"; do
  case "$w" in W1|W2|W3) ;; *) echo "perf.sh: unknown workload $w (W1, W2 or W3; --help)" >&2; exit 2 ;; esac
done
runs=${ROUNDS:-3}
case "$runs" in *[!0-9]*|''|0) echo "perf.sh: ROUNDS must be a positive number" >&2; exit 2 ;; esac
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
ring_src=${RING_SRC:-$top/../shared/baselines/ringproto}
ring=
if printf '%s\n' "${workloads[@]}" | grep -q '^W[12]$'; then
  [ -f "$ring_src/Cargo.toml" ] || { echo "perf.sh: no calibration ring in $ring_src (set RING_SRC)" >&2; exit 1; }
  # Built into our target directory: the ring's folder is read only, and shared.
  cargo build --release --quiet --manifest-path "$ring_src/Cargo.toml" --target-dir "$top/target/ringproto" 2>/dev/null
  ring="$top/target/ringproto/release/ring"
fi

load() { cut -d' ' -f1 /proc/loadavg; }
say() { printf '%s\n' "$*" | tee -a "$out/perf.txt"; }

iperf_bytes_per_s() {
  local port=$((20000 + RANDOM % 20000)) json=$1
  iperf3 -s -1 -p "$port" >/dev/null 2>&1 &
  local server=$!
  sleep 0.5
  iperf3 -c 127.0.0.1 -p "$port" -t 5 -J >"$json"
  wait "$server" || true
  python3 -c 'import json,sys
e = json.load(open(sys.argv[1]))["end"]
cpu = e["cpu_utilization_percent"]
print(int(e["sum_received"]["bits_per_second"] / 8), (cpu["host_total"] + cpu["remote_total"]) / 100)' "$json"
}

# ring_pps P NR M: the ring's seconds and packets/s, with the settings its README gives.
ring_pps() {
  local line
  line=$(RING_MINFLUSH=32768 RING_RCAP=262144 "$ring" "$1" "$2" "$3" epoll 1048576 4194304 4096)
  echo "$line" >>"$out/ring.log"
  line=${line%%$'\n'*}
  case "$line" in *"delivered=$(($1 * $3))/"*) ;; *) echo "perf.sh: the ring did not deliver everything: $line" >&2; return 1 ;; esac
  sed 's/.* wall=\([0-9.]*\)s pkts\/s=\([0-9]*\).*/\1 \2/' <<<"$line"
}

# ours NAME NODES NR PACKETS EXTRA: runs the workload; prints duration_s, packets/s, goodput
# (payload bytes delivered/s), peak resident MiB per node (the largest node process's, or a
# group's divided by its nodes: W3's payloads run in a process per core), the CPU seconds (user +
# system) of launch.sh and everything it waited for (set-up included) per payload byte, and
# the links a packet crossed on average (transmissions / packets).
ours() {
  local name=$1 nodes=$2 nr=$3 packets=$4 extra=$5 cpu
  cpu=$(python3 -c 'import resource, subprocess, sys
ok = subprocess.run(sys.argv[2:], stdout=open(sys.argv[1], "w"), stderr=subprocess.STDOUT).returncode == 0
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime if ok else "failed")' "$out/$name.log" \
    env RUNS=1 OUT="$out/$name" PAYLOAD="$extra" tools/launch.sh "$nodes" "$packets" "$nr")
  [ "$cpu" != failed ] || { echo "perf.sh: $name did not PASS (log: $out/$name.log)" >&2; return 1; }
  python3 - "$out/$name" "$extra" "$cpu" <<'PY'
import glob, json, re, sys
logs, extra, cpu = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
r = json.load(open(logs + "/result.json"))
peak = 0
for log in glob.glob(logs + "/node-*.log"):
    text = open(log).read()
    # A process of several nodes (a group) registers each of them.
    nodes = max(1, text.count("Registered as"))
    for m in re.finditer(r"peak resident memory (\d+) KiB", text):
        peak = max(peak, int(m.group(1)) / nodes)
payload = r["packets_received"] * (4 + extra)
crossed = (r["packets_received"] + r["packets_relayed"]) / r["packets_received"]
print(r["duration_s"], r["packets_per_s"], payload / r["duration_s"], peak / 1024, cpu / payload, crossed)
PY
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

say "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u '+%F %H:%M') UTC; $runs alternating runs"

against_ring() {
  local name=$1 nodes=$2 nr=$3 packets=$4 ours_all=() ring_all=() l1 l2 rs r secs o peak
  say ""
  say "$name: $nodes nodes, NR $nr, $packets packets per node, against the ring (same P, NR, M)"
  say "$(printf '%-4s %3s %6s %7s %14s %6s %7s %14s %9s %9s' W run load_r ring_s ring_pkts/s load_o ours_s ours_pkts/s ours/ring peak_MiB)"
  for i in $(seq "$runs"); do
    l1=$(load)
    read -r rs r < <(ring_pps "$nodes" "$nr" "$packets")
    l2=$(load)
    read -r secs o _ peak _ _ < <(ours "$name-$i" "$nodes" "$nr" "$packets" 0)
    ring_all+=("$r")
    ours_all+=("$o")
    say "$(python3 -c 'import sys
n, i, l1, rs, r, l2, secs, o, peak = sys.argv[1:]
r, o = float(r), float(o)
print(f"{n:<4} {i:>3} {l1:>6} {float(rs):7.3f} {r:14,.0f} {l2:>6} {float(secs):7.3f} {o:14,.0f} {o / r:9.2f} {float(peak):9.1f}")' \
      "$name" "$i" "$l1" "$rs" "$r" "$l2" "$secs" "$o" "$peak")"
  done
  local mr mo
  mr=$(median "${ring_all[@]}")
  mo=$(median "${ours_all[@]}")
  say "$(python3 -c 'import sys
n, mr, mo = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
print(f"{n} median: ring {mr:,.0f} packets/s, ours {mo:,.0f} packets/s, ours / ring = {mo / mr:.2f}")' "$name" "$mr" "$mo")"
}

# Besides the ratio, each W3 line gives the CPU cost of a byte: iperf3's core-seconds per GB
# (its JSON's CPU use of client and server), ours per GB of payload (set-up included) and per GB
# crossing a link (a payload byte crosses `crossed` links), and the ceiling: the goodput all
# cores busy would give at iperf3's cost per byte crossed, as a multiple of iperf3's goodput.
against_iperf() {
  local name=$1 nodes=$2 nr=$3 packets=$4 extra=$5 ratios=() l1 l2 base cores secs pps g peak cpb crossed
  say ""
  say "$name: $nodes nodes, NR $nr, $packets packets of $extra extra payload bytes per node, against iperf3 right before each run"
  say "layout: ${NODES_PER_PROCESS:+$NODES_PER_PROCESS nodes per process (NODES_PER_PROCESS)}${NODES_PER_PROCESS:-a process per core, as launch.sh runs them (docs/PERFORMANCE.md, Layout and placement)}"
  say "$(printf '%-4s %3s %6s %12s %6s %8s %12s %12s %8s %9s %12s %10s %11s %9s' W run load_i iperf3_GB/s load_o seconds packets/s goodput_GB/s x_iperf peak_MiB iperf3_cs/GB ours_cs/GB cs/GB_link ceiling_x)"
  for i in $(seq "$runs"); do
    l1=$(load)
    read -r base cores < <(iperf_bytes_per_s "$out/iperf3-$name-$i.json")
    l2=$(load)
    read -r secs pps g peak cpb crossed < <(ours "$name-$i" "$nodes" "$nr" "$packets" "$extra")
    ratios+=("$(python3 -c 'import sys; print(float(sys.argv[1]) / float(sys.argv[2]))' "$g" "$base")")
    say "$(python3 -c 'import os, sys
n, i, l1, base, cores, l2, secs, pps, g, peak, cpb, crossed = sys.argv[1:]
base, cores, g, cpb, crossed = float(base), float(cores), float(g), float(cpb), float(crossed)
iperf_cpb = cores / base
ceiling = os.cpu_count() / (iperf_cpb * crossed) / base
print(f"{n:<4} {i:>3} {l1:>6} {base / 1e9:12.2f} {l2:>6} {float(secs):8.3f} {float(pps):12,.0f} {g / 1e9:12.2f} {g / base:8.2f} {float(peak):9.1f} "
      f"{iperf_cpb * 1e9:12.2f} {cpb * 1e9:10.2f} {cpb * 1e9 / crossed:11.2f} {ceiling:9.2f}")' \
      "$name" "$i" "$l1" "$base" "$cores" "$l2" "$secs" "$pps" "$g" "$peak" "$cpb" "$crossed")"
  done
  say "$name median goodput / iperf3: $(printf '%.2f' "$(median "${ratios[@]}")")"
}

for w in "${workloads[@]}"; do
  case "$w" in
    W1) against_ring W1 10 3 100000 ;;
    W2) against_ring W2 64 6 "${PACKETS:-1000000}" ;;
    W3) against_iperf W3 64 6 20000 4096 ;;
  esac
done
echo "perf.sh: results in $out" >&2
