#!/usr/bin/env bash
# Churn as a workload: a scripted registry runs one long run by time over NODES nodes while
# nodes join, leave gracefully (SIGTERM) and crash (SIGKILL) at a rate, with lifetimes drawn
# from an exponential or Pareto distribution, seeded; then it reports what the run accounted
# for. `tools/churn.sh --help` says more and starts nothing.
set -euo pipefail

usage() {
  echo "usage: tools/churn.sh [--nodes N] [--duration S] [--rate R] [--lifetime exponential|pareto]" >&2
  echo "                      [--mean-life S] [--crashes F] [--seed N] [--fingers positions|chord]" >&2
  echo "                      [--nr NR] [--min-nodes M] [--kill-fraction P] [--kill-at S]" >&2
  echo "       tools/churn.sh --help" >&2
  exit 2
}
help() {
  cat <<'EOF'
usage: tools/churn.sh [--nodes N] [--duration S] [--rate R] [--lifetime exponential|pareto]
                      [--mean-life S] [--crashes F] [--seed N] [--fingers positions|chord]
                      [--nr NR] [--min-nodes M] [--kill-fraction P] [--kill-at S]

Starts a scripted registry and N nodes (one process each) on this machine and runs one run by
time of S seconds. While it flows, nodes join at random (a Poisson process of R joins per
second) and every node, those of the start included, lives a lifetime drawn from the chosen
distribution (OverSim's and p2psim's churn models): exponential, or Pareto with shape 2, of
mean --mean-life (default N / R, so that departures keep pace with joins and about N nodes stay
online). When a lifetime ends the node crashes (SIGKILL) with probability F, else it leaves
gracefully (SIGTERM: the same as exit-overlay at its console). Departures that would leave fewer
than --min-nodes online (default: half of N, at least 4) are skipped, and nothing happens in the
last 2 s of the run. The draws come from Python's random generator seeded with --seed, so a
seed gives the same schedule.

At the end it prints the schedule carried out, the registry's cost per change (nodes that got
new tables, time until every table reflected it), and the run's account: packets sent,
delivered, lost (0 without crashes), handed to crashed nodes (delivered there or lost with
them), unaccounted (0 for PASS) and the verdict. Exit status: the registry's (0 PASS, 3 PASS
with crashes, 1 FAIL).

  --nodes N         nodes at the start (default 16)
  --duration S      seconds the run sends (default 20)
  --rate R          joins per second (default 1)
  --lifetime D      exponential (default) or pareto
  --mean-life S     mean lifetime in seconds (default N / R)
  --crashes F       fraction of departures that are crashes, 0 to 1 (default 0)
  --seed N          seed of the schedule (default 1)
  --fingers RULE    positions (default) or chord
  --nr NR           table size under positions (default: the registry's, ceil(log2 N))
  --min-nodes M     fewest nodes kept online
  --kill-fraction P massive failure (the Chord paper's Fig. 11): a fraction P of the nodes of
                    the start, drawn at random, killed at once (SIGKILL) at --kill-at; then the
                    time until the registry has taken every one out of every table, and what
                    was lost other than the packets sent toward the killed nodes. Use --rate 0
                    to see it alone. Fewer than --nr's 2^(NR-1) + 1 left is refused.
  --kill-at S       second of the run at which they are killed (default: a third of --duration)

Environment: OUT directory for logs, schedule.txt and result.json (default: a new temporary
directory); OVERLAY_BIN a prebuilt binary instead of building; REGISTRY_ARGS more registry
flags (e.g. "--rate 20000" to pace each node). Needs python3. Every process started is stopped
on exit, failure and Ctrl-C.
EOF
  exit 0
}

nodes=16 duration=20 rate=1 lifetime=exponential mean_life= crashes=0 seed=1 fingers=positions
nr= min_nodes= kill_fraction=0 kill_at=
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) help ;;
    --nodes | --duration | --rate | --lifetime | --mean-life | --crashes | --seed | --fingers | --nr | --min-nodes | --kill-fraction | --kill-at)
      [ $# -ge 2 ] || usage
      value=$2
      case $1 in
        --nodes) nodes=$value ;;
        --duration) duration=$value ;;
        --rate) rate=$value ;;
        --lifetime) lifetime=$value ;;
        --mean-life) mean_life=$value ;;
        --crashes) crashes=$value ;;
        --seed) seed=$value ;;
        --fingers) fingers=$value ;;
        --nr) nr=$value ;;
        --min-nodes) min_nodes=$value ;;
        --kill-fraction) kill_fraction=$value ;;
        --kill-at) kill_at=$value ;;
      esac
      shift 2
      ;;
    *) usage ;;
  esac
done
case "$nodes$seed${nr}${min_nodes}" in *[!0-9]*) echo "churn.sh: --nodes, --seed, --nr and --min-nodes are whole numbers" >&2; exit 2 ;; esac
for number in "$duration" "$rate" "$crashes" "$kill_fraction" ${mean_life:+"$mean_life"} ${kill_at:+"$kill_at"}; do
  [[ $number =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "churn.sh: $number is not a number" >&2; exit 2; }
done
case $lifetime in exponential | pareto) ;; *) usage ;; esac
case $fingers in positions | chord) ;; *) usage ;; esac
[ "$nodes" -ge 4 ] || { echo "churn.sh: at least 4 nodes" >&2; exit 2; }
command -v python3 >/dev/null || { echo "churn.sh: needs python3 (the schedule's draws, the result's JSON)" >&2; exit 2; }
# Under positions NR entries need 2^(NR - 1) + 1 nodes: fewer would make the registry refuse
# the leave (it does so with a reason, and the run goes on).
table=${nr:-0}
if [ -z "$nr" ]; then while [ $((1 << table)) -lt "$nodes" ]; do table=$((table + 1)); done; fi
floor=$(((1 << (table - 1)) + 1))
[ "$fingers" = positions ] || floor=4
: "${min_nodes:=$((nodes / 2 > floor ? nodes / 2 : floor))}"
# The massive failure: how many die at once, and when.
killed=$(python3 -c "import sys; print(round(float(sys.argv[1]) * int(sys.argv[2])))" "$kill_fraction" "$nodes")
[ "$killed" -lt "$nodes" ] || { echo "churn.sh: --kill-fraction must leave nodes alive" >&2; exit 2; }
if [ "$killed" -gt 0 ] && [ $((nodes - killed)) -lt "$floor" ]; then
  echo "churn.sh: $((nodes - killed)) nodes left could not keep tables of ${table} entries (2^$((table - 1)) + 1 needed): pass a smaller --nr" >&2
  exit 2
fi
: "${kill_at:=$(python3 -c "import sys; print(float(sys.argv[1]) / 3)" "$duration")}"

source "$(dirname "$0")/lib.sh"
find_overlay
make_out

# The schedule: "MICROSECONDS join|leave|crash INDEX" lines, sorted; index i < N is a node of
# the start, the others join in order.
python3 - "$nodes" "$duration" "$rate" "$lifetime" "${mean_life:-}" "$crashes" "$seed" \
  "$min_nodes" "$killed" "$kill_at" >"$out/schedule.txt" <<'EOF'
import math, random, sys
nodes, duration, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
lifetime, crashes, seed, floor = sys.argv[4], float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
killed, kill_at = int(sys.argv[9]), float(sys.argv[10])
mean = float(sys.argv[5]) if sys.argv[5] else (nodes / rate if rate > 0 else math.inf)
rng = random.Random(seed)
end = duration - 2.0  # nothing in the last 2 s

def life():
    if math.isinf(mean):
        return math.inf
    if lifetime == "exponential":
        return rng.expovariate(1.0 / mean)
    shape = 2.0  # Pareto of mean `mean`: scale = mean (shape - 1) / shape
    return mean * (shape - 1) / shape / (1.0 - rng.random()) ** (1.0 / shape)

events = []
births = [(0.0, i) for i in range(nodes)]
t, index = 0.0, nodes
while rate > 0:
    t += rng.expovariate(rate)
    if t >= end:
        break
    events.append((t, "join", index))
    births.append((t, index))
    index += 1
for born, i in births:
    gone = born + life()
    if gone < end:
        events.append((gone, "crash" if rng.random() < crashes else "leave", i))
events.sort()
online, kept = nodes, []
for at, what, i in events:
    if what == "join":
        online += 1
    elif online <= floor:
        continue  # too few would be left
    else:
        online -= 1
    kept.append((at, what, i))
if killed:
    # The massive failure: nodes of the start, at once; their own departures are dropped.
    victims = sorted(rng.sample(range(nodes), killed))
    kept = [(at, what, i) for at, what, i in kept if i not in victims]
    kept.append((kill_at, "kill", ",".join(map(str, victims))))
    kept.sort()
for at, what, i in kept:
    print(f"{round(at * 1e6)} {what} {i}")
EOF

registry_flags=(--nodes "$nodes" --duration "$duration" --fingers "$fingers" ${nr:+--nr "$nr"}
  --json "$out/result.json" --stall-timeout 60 --ready-timeout 60)
# REGISTRY_ARGS is split into words on purpose (several flags).
start_registry "${registry_flags[@]}" ${REGISTRY_ARGS:-}
declare -A node_pid
start_node() {
  "$bin" node 127.0.0.1 "$port" </dev/null >"$out/node-$1.log" 2>&1 &
  pids+=("$!")
  node_pid[$1]=$!
}
for i in $(seq 0 $((nodes - 1))); do start_node "$i"; done
echo "Registry on port $port; $nodes nodes; a ${duration} s run with ${rate} joins/s, $lifetime lifetimes" \
  "(mean ${mean_life:-N/R} s), crashes ${crashes} of departures, seed $seed (logs in $out)" >&2

for _ in $(seq 1200); do
  grep -q '^Run 1' "$out/registry.log" && break
  kill -0 "$registry" 2>/dev/null || break
  sleep 0.05
done
grep -q '^Run 1' "$out/registry.log" || { tail -20 "$out/registry.log" >&2; echo "churn.sh: the run did not start" >&2; exit 1; }
# The nodes the registry has taken out of every table after a loss ("Node 3 is ..." or, lost
# together, "Nodes 3, 5 and 9 are out of every table").
repaired_nodes() {
  { grep -oE 'Nodes? [0-9][0-9, and]* (is|are) out of every table' "$out/registry.log" || true; } |
    { grep -oE '[0-9]+' || true; } | wc -l
}
# Microseconds since the epoch, by bash alone (no process per event on a loaded machine).
now_us() { local t=$EPOCHREALTIME; echo $((10#${t/./})); }
started=$(now_us)

joins=0 leaves=0 crashed=0 killed_at_us=
while read -r at what i; do
  wait_us=$((started + at - $(now_us)))
  [ "$wait_us" -le 0 ] || sleep "$(printf '%d.%06d' $((wait_us / 1000000)) $((wait_us % 1000000)))"
  kill -0 "$registry" 2>/dev/null || break
  case $what in
    join) start_node "$i"; joins=$((joins + 1)) ;;
    leave) kill -TERM "${node_pid[$i]}" 2>/dev/null && leaves=$((leaves + 1)) ;;
    crash) kill -KILL "${node_pid[$i]}" 2>/dev/null && crashed=$((crashed + 1)) ;;
    kill)
      # All at once, then a watcher notes when the registry has taken the last one out of
      # every table (it polls the log every 10 ms).
      repaired_before=$(repaired_nodes)
      repairs_before=$(grep -c 'out of every table' "$out/registry.log" || true)
      for victim in ${i//,/ }; do kill -KILL "${node_pid[$victim]}" 2>/dev/null || true; done
      killed_at_us=$(now_us)
      (
        want=$((repaired_before + killed))
        while [ "$(repaired_nodes)" -lt "$want" ]; do
          kill -0 "$registry" 2>/dev/null || exit 0
          sleep 0.01
        done
        at=$(now_us)
        echo $(($(grep -c 'out of every table' "$out/registry.log" || true) - repairs_before)) \
          >"$out/repairs"
        echo "$at" >"$out/repaired_us"
      ) &
      pids+=("$!")
      ;;
  esac
  late=$((($(now_us) - started - at) / 1000))
  printf '%3d.%03d s: %s node process %s (%d ms late)\n' $((at / 1000000)) $((at % 1000000 / 1000)) "$what" "$i" "$late" >&2
done <"$out/schedule.txt"

status=0
wait "$registry" || status=$?

refused=$(cat "$out"/node-*.log | grep -c 'Deregistration refused' || true)
joins_refused=$(cat "$out"/node-*.log | grep -c 'egistration refused during a run' || true)
repair_ms=
if [ -n "$killed_at_us" ] && [ -s "$out/repaired_us" ]; then
  repair_ms=$((($(cat "$out/repaired_us") - killed_at_us) / 1000))
  repair_ms="$repair_ms ms after the kill, in $(cat "$out/repairs") membership changes"
fi
python3 - "$out/result.json" "$out/registry.log" "$joins" "$leaves" "$crashed" "$refused" "$duration" "$joins_refused" \
  "$killed" "${killed_at_us:+${repair_ms:-none}}" <<'EOF'
import json, re, sys
path, log, joins, leaves, crashed, refused, duration, joins_refused = sys.argv[1:9]
killed, repair_ms = int(sys.argv[9]), sys.argv[10]
changes = re.findall(r"(\d+) nodes got new tables; every table reflected it ([0-9.]+) ms",
                     open(log).read())
print(f"Churn: {joins} joins ({joins_refused} refused: routes too long for the traces), "
      f"{leaves} graceful leaves ({refused} refused: too few nodes left), {crashed} crashes "
      f"started in {duration} s")
if changes:
    tables = [int(n) for n, _ in changes]
    ms = sorted(float(m) for _, m in changes)
    print(f"Membership changes carried out: {len(changes)}; nodes that got new tables per "
          f"change: mean {sum(tables) / len(tables):.1f}, max {max(tables)}; every table "
          f"reflected a change after: median {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms")
try:
    result = json.load(open(path))
except (OSError, ValueError) as error:
    print(f"No result: {error}")
    sys.exit(0)
run = result["runs"][-1] if result.get("runs") else result
sent, received = run["packets_sent"], run["packets_received"]
account = run.get("accounting") or {}
print(f"Packets sent {sent:,}, delivered {received:,} ({run['packets_per_s']:,.0f} packets/s), "
      f"corrupted {run['corrupted']:,}, dropped {run['dropped']:,}")
if run.get("crashed"):
    print(f"Crashed: {', '.join(f'node {n}' for n in run['crashed'])}; the others handed them "
          f"{account.get('handed_to_lost_nodes', 0):,} packets (delivered there or lost with "
          f"them) and took {account.get('received_from_lost_nodes', 0):,} from them")
else:
    print(f"Packets lost: {sent - received:,}")
print(f"Unaccounted: {account.get('unaccounted', 0):,}; verdict {run['verdict']}")
if killed:
    # Lost with the killed nodes: sent toward them, or inside them (or in the kernel's buffers
    # toward them) when they died; the per-link account says the rest arrived. Dropped: a
    # packet for a live sink that found no live way on before the repair.
    lost = sent - received - run["corrupted"]
    repaired = repair_ms if repair_ms not in ("", "none") else "not within the run"
    # Net: the killed nodes' own packets that arrived (they never report them sent) count
    # against it, so it is negative when those outnumber what was lost.
    print(f"Massive failure: {killed} nodes of the start killed at once; every table repaired "
          f"{repaired}; lost with them (net) {lost - run['dropped']:,} "
          f"({(lost - run['dropped']) / max(sent, 1):.3%} of the {sent:,} sent), dropped for "
          f"want of a live way on {run['dropped']:,} ({run['dropped'] / max(sent, 1):.3%})")
EOF
echo "churn.sh: registry exit status $status (logs, schedule.txt and result.json in $out)" >&2
exit "$status"
