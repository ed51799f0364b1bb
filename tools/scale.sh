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
#   tools/scale.sh --throughput [N...]
#
# Environment: PACKETS (default 1000); OUT (default: a new temporary directory); OVERLAY_BIN a
# prebuilt binary; the rest as for tools/launch.sh (REGISTRY_ARGS, NODE_ARGS,
# NODES_PER_PROCESS). tools/scale_plot.py draws $OUT/scale.csv. Timing figures are only as good
# as the machine is quiet: the load average is recorded with each row.
#
# --throughput (default N = 64 1024 10000): transmissions/s at steady state, and the ratio of
# each size's to the first size's, from the same invocation. Each size is a run by time
# (DURATION seconds of sending, default 20; the first WARMUP seconds, default 5, left out), on
# the same number of node processes at every size (PROCESSES, default: the fewest that hold
# the largest size within `ulimit -n`, at least one per core), with the same bytes in flight
# in the whole overlay: a window of 256 MiB / N, at least 64 KiB (the registry's default from
# 64 to 1,024 nodes; its 256 KiB floor would put 2.5 GiB in flight at 10,000 nodes; WINDOW
# sets the window of every size). Measured between the end of
# the warm-up and the end of sending: transmissions (received + relayed) from the registry's
# progress rows (--csv, about one a second), the CPU time of all node processes (user +
# system, /proc, sampled every 0.2 s) over the same span. Printed per size: transmissions/s,
# its ratio to the first size's; transmissions per CPU second of the node processes (what the
# overlay would do on cores of its own), its ratio; the whole run's transmissions/s (start to
# verified summary, drain included, as the summary counts them); bytes per send (the drivers'
# totals at exit); loopback's drops during the run; the cores the node processes and the
# registry kept busy over the span (nodes, reg). When the registry's progress rows come
# further apart than the span, it runs from the first row after the warm-up to the end of the
# run. Rows also in $OUT/throughput.csv.
#
# After each size, the calibration ring (../shared/baselines/ringproto, or $RING_SRC; built
# into target/ringproto; RING=0 skips it) with P = N processes, the same NR, and M packets per
# process (RING_PACKETS, default: as many as our span's transmissions at our mean hops, at
# least 100), as tools/perf.sh runs it: a line under ours with its transmissions/s (its GO
# to its last delivery) and per CPU second (its processes' user + system), each with its ratio
# to the ring's first size, and ours / ring for both. Sizes above RING_MAX (default 1024) skip
# it: the ring's processes poll shared memory every 1 ms and 0.2 ms while they set up, and its
# set-up took 5 s at 512 processes, 44 s at 1,024 and 382 s at 2,048 here. Rows in
# $OUT/ring.csv.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
throughput=
if [ "${1:-}" = --throughput ]; then
  throughput=1
  shift
fi
sizes=("$@")
if [ ${#sizes[@]} -eq 0 ] && [ -n "$throughput" ]; then
  sizes=(64 1024 10000)
elif [ ${#sizes[@]} -eq 0 ]; then
  sizes=(16 64 256 1024 4096 10000)
fi
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

# ----- --throughput -----

# cpu_sample DIR: until DIR/.done, every 0.2 s, a line "SECONDS NODE_TICKS REGISTRY_TICKS" to
# DIR/cpu: the time and the user + system time so far of every node process of this run (each
# counted with its last reading once it has exited) and of the registry, and DIR/run_started
# once the run has begun.
cpu_sample() {
  local dir=$1 pid line total now registry=0 registry_pid=
  declare -A last=()
  while [ ! -e "$dir/.done" ]; do
    for pid in $(pgrep -f "^$OVERLAY_BIN (node|registry)" || true); do
      # Fields 14 and 15 of /proc/PID/stat (after the command's parenthesis): utime, stime.
      # Read by the shell itself: a process forked per node process and sample made the
      # samples 2 s apart with 32 node processes on a busy machine, too sparse for the span.
      read -r line 2>/dev/null <"/proc/$pid/stat" || continue
      line=${line##*) }
      read -r -a f <<<"$line"
      last[$pid]=$((f[11] + f[12]))
    done
    [ -n "$registry_pid" ] || registry_pid=$(pgrep -f "^$OVERLAY_BIN registry" || true)
    registry=${last[${registry_pid:-none}]:-0}
    total=$((-registry))
    for pid in "${!last[@]}"; do total=$((total + last[$pid])); done
    now=${EPOCHREALTIME/,/.}
    echo "$now $total $registry" >>"$dir/cpu"
    if [ ! -e "$dir/run_started" ] && grep -q "^Run 1:" "$dir/registry.log" 2>/dev/null; then
      echo "$now" >"$dir/run_started"
    fi
    sleep 0.2
  done
}

# loopback_drops: packets the kernel dropped so far for a full backlog queue (the second
# column of /proc/net/softnet_stat, all CPUs; the whole machine's): each one is a TCP segment
# sent again after a retransmission timeout (200 ms or more), a stall of its link.
loopback_drops() {
  local total=0 line
  while read -r -a line; do total=$((total + 16#${line[1]})); done </proc/net/softnet_stat
  echo "$total"
}

throughput_runs() {
  local duration=${DURATION:-20} warmup=${WARMUP:-5} largest=0 n nr per_node fit processes
  local cores dir status window per drops failed=0
  for value in "$duration" "$warmup"; do
    case "$value" in '' | *[!0-9]*) echo "scale.sh: DURATION and WARMUP are whole seconds" >&2; exit 2 ;; esac
  done
  [ "$warmup" -lt "$duration" ] || { echo "scale.sh: WARMUP must be shorter than DURATION" >&2; exit 2; }
  cores=$(nproc)
  for n in "${sizes[@]}"; do [ "$n" -le "$largest" ] || largest=$n; done
  if [ -n "${PROCESSES:-}" ]; then
    processes=$PROCESSES
    case "$processes" in '' | *[!0-9]* | 0) echo "scale.sh: PROCESSES must be a positive number" >&2; exit 2 ;; esac
  else
    # As tools/lib.sh's start_nodes counts descriptors: about 10 + 2 x NR a node.
    nr=0
    while [ $((1 << nr)) -lt "$largest" ]; do nr=$((nr + 1)); done
    per_node=$((10 + 2 * nr))
    fit=$((($(ulimit -n) - 64) / per_node))
    processes=$(((largest + fit - 1) / fit))
    [ "$processes" -ge "$cores" ] || processes=$cores
  fi
  ring=
  if [ "${RING:-1}" != 0 ]; then
    local ring_src=${RING_SRC:-$top/../shared/baselines/ringproto}
    [ -f "$ring_src/Cargo.toml" ] || { echo "scale.sh: no calibration ring in $ring_src (set RING_SRC, or RING=0)" >&2; exit 1; }
    # Built into our target directory: the ring's folder is read only, and shared.
    cargo build --release --quiet --manifest-path "$ring_src/Cargo.toml" --target-dir "$top/target/ringproto" 2>/dev/null
    ring="$top/target/ringproto/release/ring"
    echo "nodes,nr,packets_per_node,ring_transmissions_per_s,ring_ratio,ring_transmissions_per_cpu_s,ring_cpu_ratio,ours_over_ring,cpu_ours_over_ring,verdict,load_average" \
      >"$out/ring.csv"
  fi
  echo "machine: $cores cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(uname -r); throughput:" \
    "$processes node processes, $duration s of sending, the first $warmup s left out; $(uptime)" |
    tee "$out/machine.txt"
  echo "nodes,nr,processes,window_bytes,span_s,transmissions_per_s,ratio,transmissions_per_cpu_s,cpu_ratio,run_transmissions_per_s,hops_mean,bytes_per_send,loopback_drops,node_cores,registry_cores,verdict,load_average" \
    >"$out/throughput.csv"
  printf '%6s %3s %5s %8s %11s %12s %6s %13s %6s %12s %6s %7s %8s %5s %5s %7s %6s\n' N NR procs win_KiB \
    span_s transmit/s ratio 'per_cpu_s' ratio 'run_trans/s' hops B/send drops nodes reg verdict load
  for n in "${sizes[@]}"; do
    dir="$out/$n"
    rm -rf "$dir"
    mkdir -p "$dir"
    per=$(((n + processes - 1) / processes))
    # The same bytes in flight in the whole overlay at every size: 256 MiB (the registry's
    # default window is 256 MiB / N from 64 to 1,024 nodes), at least the largest frame.
    window=${WINDOW:-$((268435456 / n))}
    [ "$window" -ge 65536 ] || window=65536
    cpu_sample "$dir" &
    sampler=$!
    status=0
    drops=$(loopback_drops)
    # The driver's totals at exit (sends, receives, bytes per operation) in each node log.
    RUST_LOG=${RUST_LOG:-warn,overlay::io::event_loop=info} \
      OUT="$dir" DURATION=$duration NODES_PER_PROCESS=$per \
      REGISTRY_ARGS="--warmup $warmup --csv $dir/progress.csv --window-bytes $window ${REGISTRY_ARGS:-}" \
      tools/launch.sh "$n" 0 >"$dir/launch.log" 2>&1 || status=$?
    drops=$(($(loopback_drops) - drops))
    touch "$dir/.done"
    wait "$sampler" || true
    if [ "$status" -ne 0 ]; then
      failed=1
      echo "scale.sh: $n nodes: FAIL (launch.sh exit status $status; logs in $dir)" >&2
    fi
    python3 - "$dir" "$n" "$(ls "$dir"/node-*.log 2>/dev/null | wc -l)" "$window" "$warmup" "$duration" \
      "$status" "$(cut -d' ' -f1 /proc/loadavg)" "$out/throughput.csv" "$(getconf CLK_TCK)" "$drops" <<'PY'
import csv, glob, json, re, sys
d, n, procs, window, warmup, duration, status, load, table, hz, drops = sys.argv[1:]
warmup, duration, hz = float(warmup), float(duration), float(hz)
nan = float("nan")

def at(points, x):
    """The value at x of the piecewise linear curve through the (x, y) points."""
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else y1
    return nan

try:
    r = json.load(open(d + "/result.json"))
except (OSError, ValueError):
    r = {}
try:
    # Transmissions so far at each progress row (seconds since the start of the run).
    rows = list(csv.DictReader(open(d + "/progress.csv")))
    sent = [(0.0, 0)] + [
        (float(x["elapsed_s"]), int(x["packets_received"]) + int(x["packets_relayed"]))
        for x in rows if x["run"] == "1"]
    started = float(open(d + "/run_started").read())
    samples = [line.split() for line in open(d + "/cpu")]
    cpu = [(float(x[0]) - started, int(x[1]) / hz) for x in samples]
    registry_cpu = [(float(x[0]) - started, int(x[2]) / hz) for x in samples]
except (OSError, ValueError, KeyError, IndexError):
    sent, cpu, registry_cpu = [], [], []
# The span: the progress rows between the end of the warm-up and the end of sending (the
# first and the last such row); with fewer than two there (the registry's polls of a large
# overlay on a loaded machine came further apart), from the first row after the warm-up to
# the last row of the run, drain included.
inside = [p for p in sent if warmup <= p[0] <= duration]
if len(inside) < 2:
    inside = [p for p in sent if p[0] >= warmup][:1] + sent[-1:]
if len(inside) >= 2 and inside[-1][0] > inside[0][0]:
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    rate = (n1 - n0) / (t1 - t0)
    seconds = at(cpu, t1) - at(cpu, t0)
    per_cpu = (n1 - n0) / seconds if seconds > 0 else nan
    span = f"{t0:.1f}-{t1:.1f}"
    # Cores the node processes and the registry kept busy on average over the span.
    cores = seconds / (t1 - t0)
    registry_cores = (at(registry_cpu, t1) - at(registry_cpu, t0)) / (t1 - t0)
else:
    rate, per_cpu, span, cores, registry_cores = nan, nan, "-", nan, nan
whole = ((r["packets_received"] + r["packets_relayed"]) / r["duration_s"]
         if r.get("duration_s") else nan)
by_relays = r.get("stats", {}).get("packets_by_relays") or []
hops = (sum((i + 1) * c for i, c in enumerate(by_relays)) / sum(by_relays)) if sum(by_relays) else nan
verdict = r.get("verdict", "FAIL") if status == "0" else "FAIL"
# Bytes per send over all node processes, from the driver's totals at exit.
sends = sent_bytes = 0
for log in glob.glob(d + "/node-*.log"):
    for line in open(log, errors="replace"):
        if "event loop totals" in line:
            fields = dict(re.findall(r"(\w+)=(\d+)", line))
            sends += int(fields.get("sends", 0))
            sent_bytes += int(fields.get("sends", 0)) * int(fields.get("bytes_per_send", 0))
per_send = sent_bytes / sends if sends else nan
first = list(csv.DictReader(open(table)))
base = first[0] if first else None
ratio = rate / float(base["transmissions_per_s"]) if base else 1.0
cpu_ratio = per_cpu / float(base["transmissions_per_cpu_s"]) if base else 1.0
row = [n, r.get("nr", ""), procs, window, span, f"{rate:.0f}", f"{ratio:.3f}", f"{per_cpu:.0f}",
       f"{cpu_ratio:.3f}", f"{whole:.0f}", f"{hops:.3f}", f"{per_send:.0f}", drops, f"{cores:.2f}", f"{registry_cores:.2f}", verdict, load]
with open(table, "a") as f:
    f.write(",".join(str(x) for x in row) + "\n")
print(f"{n:>6} {r.get('nr', ''):>3} {procs:>5} {int(window) // 1024:>8} {span:>11} {rate:>12,.0f} {ratio:>6.3f} "
      f"{per_cpu:>13,.0f} {cpu_ratio:>6.3f} {whole:>12,.0f} {hops:>6.2f} {per_send:>7,.0f} {int(drops):>8,} {cores:>5.2f} {registry_cores:>5.2f} {verdict:>7} {load:>6}")
PY
    [ -z "$ring" ] || ring_beside "$n"
  done
  echo "scale.sh: results in $out/throughput.csv (each size's logs in $out/N)" >&2
  return "$failed"
}

# ring_beside N: the calibration ring with P = N processes and our NR, after our run at N (the
# last row of throughput.csv); prints its line and appends to ring.csv.
ring_beside() {
  local n=$1 max=${RING_MAX:-1024} m line status=0
  case "$max" in '' | *[!0-9]*) echo "scale.sh: RING_MAX must be a number" >&2; exit 2 ;; esac
  if [ "$n" -gt "$max" ]; then
    printf '%6s ring: skipped (P = %s processes > RING_MAX %s: the set-up of the ring grows as about P^3 here)\n' "$n" "$n" "$max"
    return
  fi
  # M: as many packets as our span's transmissions at our mean hops (the same work in about
  # the same time), at least 100.
  m=${RING_PACKETS:-$(python3 - "$out/throughput.csv" "$n" <<'PY'
import csv, math, sys
row = list(csv.DictReader(open(sys.argv[1])))[-1]
n = int(sys.argv[2])
try:
    t0, t1 = (float(x) for x in row["span_s"].split("-"))
    m = float(row["transmissions_per_s"]) * (t1 - t0) / (n * float(row["hops_mean"]))
    print(max(100, int(m)) if math.isfinite(m) else 100)
except ValueError:
    print(100)
PY
)}
  case "$m" in '' | *[!0-9]*) echo "scale.sh: RING_PACKETS must be a number" >&2; exit 2 ;; esac
  line=$(RING_MINFLUSH=32768 RING_RCAP=262144 "$ring" "$n" "$(ring_nr "$n")" "$m" epoll 1048576 4194304 4096 "${RING_PORT:-21000}" 2>&1) || status=$?
  echo "$line" >>"$out/ring.log"
  python3 - "$out/throughput.csv" "$out/ring.csv" "$n" "$m" "$status" "$(cut -d' ' -f1 /proc/loadavg)" "$line" <<'PY'
import csv, re, sys
ours_table, table, n, m, status, load, line = sys.argv[1:]
nan = float("nan")
ours = list(csv.DictReader(open(ours_table)))[-1]
# The ring's fields (its second line's "sys-wide:" part left out: it repeats "sys=").
f = dict(re.findall(r"([\w/]+)=([0-9.]+)", line.split("|")[0]))
done = re.search(r"delivered=(\d+)/(\d+)", line)
ok = status == "0" and done is not None and done.group(1) == done.group(2)
rate = float(f.get("trans/s", nan)) if ok else nan
cpu = float(f.get("user", nan)) + float(f.get("sys", nan))
per_cpu = float(f.get("trans", nan)) / cpu if ok and cpu > 0 else nan
first = list(csv.DictReader(open(table)))
base = first[0] if first else None
ratio = rate / float(base["ring_transmissions_per_s"]) if base else 1.0
cpu_ratio = per_cpu / float(base["ring_transmissions_per_cpu_s"]) if base else 1.0
vs = float(ours["transmissions_per_s"]) / rate
cpu_vs = float(ours["transmissions_per_cpu_s"]) / per_cpu
verdict = "PASS" if ok else "FAIL"
with open(table, "a") as t:
    t.write(",".join(str(x) for x in [n, f.get("NR", ""), m, f"{rate:.0f}", f"{ratio:.3f}", f"{per_cpu:.0f}",
                                       f"{cpu_ratio:.3f}", f"{vs:.3f}", f"{cpu_vs:.3f}", verdict, load]) + "\n")
print(f"{n:>6} ring: P {n}, M {int(m):,}: {rate:,.0f} transmissions/s ({ratio:.3f}), {per_cpu:,.0f} per CPU second "
      f"({cpu_ratio:.3f}); ours / ring {vs:.3f}, per CPU second {cpu_vs:.3f}; {verdict}, load {load}")
if not ok:
    print(f"scale.sh: the ring at {n} did not deliver everything: {line[:300]}", file=sys.stderr)
PY
}

# ring_nr N: ceil(log2 N), the NR launch.sh picks.
ring_nr() {
  local nr=0
  while [ $((1 << nr)) -lt "$1" ]; do nr=$((nr + 1)); done
  echo "$nr"
}

if [ -n "$throughput" ]; then
  throughput_runs
  exit
fi

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
