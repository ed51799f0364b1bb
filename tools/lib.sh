# Shared by tools/launch.sh and tools/soak.sh (sourced, never run): the binary, the output
# directory, a registry and its nodes on this machine or on other machines over OpenSSH, and
# stopping every process they started (here and there) when the script exits, is interrupted or
# fails.
#
# After sourcing: the working directory is the repository's top ($top); `tool` is the script's
# name for messages; more descriptors are allowed (up to the hard limit: one per connection).

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
tool=$(basename "$0")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Nodes run in a process per core at every size and payload unless NODES_PER_PROCESS says
# otherwise: a hop between two nodes of one process is a copy in memory instead of a TCP
# connection's two, and the registry places a process's nodes so that most hops are such
# (docs/ARCHITECTURE.md, "Placement"; docs/PERFORMANCE.md, "Layout and placement": W2 1.27 x, W3 2.4 x a
# process per node, W1 the same).

# Sets `bin`: $OVERLAY_BIN if set (a prebuilt binary), else target/release/overlay, built now.
find_overlay() {
  if [ -n "${OVERLAY_BIN:-}" ]; then
    bin=$OVERLAY_BIN
  else
    echo "Building overlay (release)..." >&2
    cargo build --release --quiet
    bin="$top/target/release/overlay"
  fi
}

# Sets `out`: $OUT if set, else a new temporary directory; creates it.
make_out() {
  out=${OUT:-$(mktemp -d -t "overlay-${tool%.sh}.XXXXXX")}
  mkdir -p "$out"
}

# Every process in `pids` is stopped on exit, Ctrl-C or failure; then every command in
# `at_exit` runs (the remote hosts' cleanup, say).
pids=()
at_exit=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for command in "${at_exit[@]}"; do $command || true; done
}
trap stop_all EXIT
trap 'echo "$tool: interrupted" >&2; exit 130' INT TERM

# start_registry [FLAG...]: starts `overlay registry FLAG... --port-file $out/port --core 0`
# (standard input closed, output in $out/registry.log) and waits until it listens (20 s at
# most). Sets `registry` (its process ID) and `port`.
start_registry() {
  rm -f "$out/port"
  "$bin" registry "$@" --port-file "$out/port" --core 0 </dev/null >"$out/registry.log" 2>&1 &
  registry=$!
  pids+=("$registry")
  for _ in $(seq 400); do
    [ -s "$out/port" ] && break
    kill -0 "$registry" 2>/dev/null || { cat "$out/registry.log" >&2; echo "$tool: the registry exited" >&2; exit 1; }
    sleep 0.05
  done
  [ -s "$out/port" ] || { cat "$out/registry.log" >&2; echo "$tool: the registry did not start" >&2; exit 1; }
  port=$(cat "$out/port")
}

# start_nodes COUNT [FLAG...]: starts COUNT nodes of the registry on 127.0.0.1:$port in groups
# of K nodes per process (`overlay node --count K`): at least one process per core, and no more nodes per process than its descriptors allow (a
# listener, the registry connection and about 2 x (NR + 3) links each: NR = $nr or ceil(log2
# COUNT), and up to 3 backup entries). NODES_PER_PROCESS sets K. Process i is pinned to core i modulo the cores, its
# output in $out/node-i.log. Sets `node_pids` and `node_groups` (nodes in each process).
start_nodes() {
  local count=$1 cores i per_node limit fit per processes k bind nr_used=${nr:-}
  shift
  cores=$(nproc)
  if [ -z "$nr_used" ]; then
    nr_used=0
    while [ $((1 << nr_used)) -lt "$count" ]; do nr_used=$((nr_used + 1)); done
  fi
  per_node=$((10 + 2 * nr_used))
  limit=$(ulimit -n)
  fit=$(((limit - 64) / per_node))
  if [ -n "${NODES_PER_PROCESS:-}" ]; then
    per=$NODES_PER_PROCESS
  else
    per=$(((count + cores - 1) / cores))
    [ "$per" -le "$fit" ] || per=$fit
  fi
  case $per in '' | *[!0-9]* | 0) echo "$tool: NODES_PER_PROCESS must be a positive number" >&2; exit 2 ;; esac
  if [ "$per" -gt 1 ] && [ "$per" -gt "$fit" ]; then
    echo "$tool: $per nodes per process need about $((per * per_node + 64)) descriptors, but" \
      "ulimit -n is $limit: set NODES_PER_PROCESS to $fit or less" >&2
    exit 2
  fi
  processes=$(((count + per - 1) / per))
  node_pids=()
  node_groups=()
  for i in $(seq 0 $((processes - 1))); do
    # Spread evenly: the first count % processes processes take one more.
    k=$((count / processes + (i < count % processes ? 1 : 0)))
    # Each group on a loopback address of its own (unless the flags give one): the 28,000
    # ephemeral ports of one address would not give 10,000 nodes a connection each to the
    # registry's one port.
    bind=()
    case " $* " in *" --bind "*) ;; *) [ "$per" -eq 1 ] || bind=(--bind "127.0.$((1 + i / 250)).$((1 + i % 250))") ;; esac
    "$bin" node 127.0.0.1 "$port" --core $((i % cores)) --count "$k" "${bind[@]}" "$@" </dev/null >"$out/node-$i.log" 2>&1 &
    pids+=("$!")
    node_pids+=("$!")
    node_groups+=("$k")
  done
}

# --- Remote hosts over OpenSSH (tools/launch.sh --hosts) -------------------------------------
# Only ssh and a POSIX shell on the far side: no agent of our own. Each host gets a private
# directory (mktemp) holding the copied binary and one file per started process (pid.NAME);
# every remote process is stopped when its ssh session ends (sshd closes its standard input)
# and, in any case, by `cleanup_hosts` at exit, which also removes the directory.

# ssh with SSH_OPTS first (the first value of an option wins), then our defaults: never prompt,
# give up on an unreachable host after 10 s, notice a dead connection within 15 s.
remote_ssh() {
  # SSH_OPTS is split into words on purpose (several options).
  ssh ${SSH_OPTS:-} -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 \
    -o ServerAliveCountMax=3 "$@"
}

# sq WORD: WORD single-quoted for a POSIX shell; quote_all WORD...: each word so quoted.
sq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
quote_all() {
  local word
  for word; do printf ' %s' "$(sq "$word")"; done
}

# read_hosts FILE: sets `hosts` (ssh destinations) and `binds` (the address its nodes listen
# on, empty for the one that routes to the registry) from lines `DESTINATION [BIND_ADDRESS]`;
# `#` starts a comment.
read_hosts() {
  local file=$1 line dest bind extra number=0
  hosts=()
  binds=()
  [ -r "$file" ] || { echo "$tool: cannot read the hosts file $file" >&2; exit 2; }
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    line=${line%%#*}
    read -r dest bind extra <<<"$line" || true
    [ -n "$dest" ] || continue
    if [ -n "$extra" ]; then
      echo "$tool: $file:$number: expected DESTINATION [BIND_ADDRESS], got: $line" >&2
      exit 2
    fi
    hosts+=("$dest")
    binds+=("$bind")
  done <"$file"
  [ "${#hosts[@]}" -gt 0 ] || { echo "$tool: $file lists no hosts" >&2; exit 2; }
}

# Run on each host with the binary on standard input: a private directory, the binary in it
# (checked to run there), then one line: the directory and $SSH_CONNECTION (this machine's
# address and port as the host sees them, then the host's address and port).
copy_script='
d=$(mktemp -d "${TMPDIR:-/tmp}/overlay-remote.XXXXXX") || exit 1
if ! cat >"$d/overlay" || ! chmod 755 "$d/overlay"; then
  rm -rf "$d"; echo "cannot write the binary into $d" >&2; exit 1
fi
if ! "$d/overlay" --version >/dev/null 2>&1; then
  rm -rf "$d"; echo "the copied binary does not run there (another architecture or C library?)" >&2
  exit 1
fi
echo "$d $SSH_CONNECTION"'

# Run on a host by `sh -c` with DIR ROLE ARGS: ROLE `registry` runs `overlay registry ARGS`;
# ROLE `nodes` runs COUNT NR PER REGISTRY PORT FLAG...: COUNT nodes `overlay node REGISTRY PORT
# FLAG...` (REGISTRY empty: the address this ssh session comes from) as `start_nodes` spreads
# them here: up to 64, one process each, each line prefixed with the node's index; beyond,
# groups of PER nodes per process (`overlay node --count PER`; PER empty: as many as spread
# them over the host's cores, within the descriptors its `ulimit -n` allows for tables of NR
# entries; PER `cores`: so at any count), whose lines name their node already. Every process started is recorded in
# DIR/pid.NAME and stopped when standard input ends (the ssh session is gone); the script ends
# when they do.
remote_script='
dir=$1 role=$2
shift 2
exec 3<&0 </dev/null
( cat <&3 >/dev/null
  for f in "$dir"/pid.*; do [ -f "$f" ] && kill "$(cat "$f")"; done ) >/dev/null 2>&1 &
exec 3<&-
track='\''echo $$ >"$0"; exec "$@"'\''
if [ "$role" = registry ]; then
  sh -c "$track" "$dir/pid.registry" "$dir/overlay" registry "$@" 2>&1
  status=$?
  rm -f "$dir/pid.registry"
  exit "$status"
fi
count=$1 nr=$2 per=$3 registry=$4 port=$5
shift 5
[ -n "$registry" ] || registry=${SSH_CONNECTION%% *}
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ -z "$per" ] || [ "$per" = cores ]; then
  cores=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
  limit=$(ulimit -n)
  case $limit in unlimited) limit=1048576 ;; esac
  per=$(((count + cores - 1) / cores))
  fit=$(((limit - 64) / (10 + 2 * nr)))
  [ "$per" -le "$fit" ] || per=$fit
  [ "$per" -ge 1 ] || per=1
fi
processes=$(((count + per - 1) / per))
i=0 waits=
while [ "$i" -lt "$processes" ]; do
  k=$((count / processes + (i < count % processes ? 1 : 0)))
  if [ "$per" -eq 1 ]; then
    sh -c "$track" "$dir/pid.$i" "$dir/overlay" node "$registry" "$port" "$@" 2>&1 |
      while IFS= read -r line; do printf "node %s: %s\n" "$i" "$line"; done &
  else
    sh -c "$track" "$dir/pid.$i" "$dir/overlay" node "$registry" "$port" --count "$k" "$@" 2>&1 &
  fi
  waits="$waits $!"
  i=$((i + 1))
done
echo "overlay-launch: $count nodes in $processes node processes" >&2
wait $waits
rm -f "$dir"/pid.*'

# Run on a host at exit with DIR: stops what is still running there (TERM, then KILL after
# 5 s) and removes DIR.
cleanup_script='
dir=$1 alive=
for f in "$dir"/pid.*; do [ -f "$f" ] && alive="$alive $(cat "$f")"; done
[ -z "$alive" ] || kill $alive 2>/dev/null
n=0
while [ -n "$alive" ] && [ "$n" -lt 50 ] && kill -0 $alive 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
[ -z "$alive" ] || kill -9 $alive 2>/dev/null
rm -rf "$dir"'

# remote_command SCRIPT ARG...: the command line that runs SCRIPT by `sh -c` with ARGs
# whatever the login shell on the far side (sh, bash, dash, zsh, ksh).
remote_command() {
  local script=$1
  shift
  printf 'sh -c %s overlay-launch%s' "$(sq "$script")" "$(quote_all "$@")"
}

# copy_to_hosts: copies $bin to every host at once. Sets `dirs` (each host's directory),
# `host_client` (this machine's address as each host sees it) and `host_server` (the host's
# address as reached); queues their cleanup. Exits, naming every host that failed and why,
# unless all succeeded.
copy_to_hosts() {
  local i copiers=() failed=0 dir client server
  dirs=()
  host_client=()
  host_server=()
  at_exit+=(cleanup_hosts)
  for i in "${!hosts[@]}"; do
    remote_ssh "${hosts[$i]}" "$(remote_command "$copy_script")" <"$bin" \
      >"$out/copy-$i.out" 2>"$out/copy-$i.err" &
    copiers+=("$!")
  done
  for i in "${!hosts[@]}"; do
    if wait "${copiers[$i]}" && read -r dir client _ server _ <"$out/copy-$i.out" && [ -n "$dir" ]; then
      dirs[i]=$dir
      host_client[i]=$client
      host_server[i]=$server
      echo "Copied overlay to ${hosts[$i]}:$dir" >&2
    else
      failed=1
      echo "$tool: cannot use ${hosts[$i]} over ssh: $(tr '\n' ' ' <"$out/copy-$i.err")" >&2
    fi
  done
  if [ "$failed" = 1 ]; then
    echo "$tool: FAIL: not every host could be used; nothing was started" >&2
    exit 1
  fi
}

loggers=()

# Stops whatever still runs on every host reached and removes its directory (at exit).
cleanup_hosts() {
  local i cleaners=() reached=()
  # The sessions are gone: their loggers read to the end and stop (one whose session never
  # opened its fifo is released by opening it here, without blocking).
  for i in "$out"/.host-*; do [ -p "$i" ] && : <>"$i"; done
  for i in "${loggers[@]}"; do wait "$i" 2>/dev/null || true; done
  rm -f "$out/.alive" "$out"/.host-*
  for i in "${!dirs[@]}"; do
    remote_ssh "${hosts[$i]}" "$(remote_command "$cleanup_script" "${dirs[$i]}")" </dev/null \
      >/dev/null 2>"$out/cleanup-$i.err" &
    cleaners+=("$!")
    reached+=("$i")
  done
  for i in "${!cleaners[@]}"; do
    if ! wait "${cleaners[$i]}"; then
      echo "$tool: could not clean up ${hosts[${reached[$i]}]} (remove ${dirs[${reached[$i]}]} there;" \
        "its nodes exit by themselves once the registry is gone): $(tr '\n' ' ' <"$out/cleanup-${reached[$i]}.err")" >&2
    fi
  done
}

# start_remote_registry FLAG...: starts `overlay registry FLAG...` on the first host (output
# in $out/registry.log) and waits until it listens (30 s at most). Sets `registry` (the
# process ID of its ssh session here) and `port`.
start_remote_registry() {
  local line=
  remote_ssh "${hosts[0]}" "$(remote_command "$remote_script" "${dirs[0]}" registry "$@")" \
    <>"$out/.alive" >"$out/registry.log" 2>&1 &
  registry=$!
  pids+=("$registry")
  for _ in $(seq 600); do
    line=$(grep -m1 '^Registry listening on ' "$out/registry.log" 2>/dev/null || true)
    [ -z "$line" ] || break
    kill -0 "$registry" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$line" ]; then
    cat "$out/registry.log" >&2
    echo "$tool: the registry on ${hosts[0]} did not start" >&2
    exit 1
  fi
  port=${line##*:}
}

# start_remote_nodes COUNT REGISTRY FLAG...: spreads COUNT nodes evenly over the hosts, each
# group dialling REGISTRY:$port (empty: the address its ssh session comes from) with FLAGs
# (and --bind when the hosts file gives an address). Their lines go to standard error and to
# $out/host-i.log, prefixed with the host (by `loggers`, reading a fifo each). Sets `groups`
# (ssh process IDs) and `group_hosts`.
start_remote_nodes() {
  local total=$1 address=$2 i count nr_used=${nr:-0} per=${NODES_PER_PROCESS:-}
  shift 2
  case ${NODES_PER_PROCESS:-1} in '' | *[!0-9]* | 0) echo "$tool: NODES_PER_PROCESS must be a positive number" >&2; exit 2 ;; esac
  [ -n "$per" ] || per=cores
  if [ -z "${nr:-}" ]; then
    while [ $((1 << nr_used)) -lt "$total" ]; do nr_used=$((nr_used + 1)); done
  fi
  groups=()
  group_hosts=()
  for i in "${!hosts[@]}"; do
    count=$((total / ${#hosts[@]} + (i < total % ${#hosts[@]} ? 1 : 0)))
    [ "$count" -gt 0 ] || continue
    mkfifo "$out/.host-$i"
    prefix_lines "${hosts[$i]}" "$out/host-$i.log" <"$out/.host-$i" &
    loggers+=("$!")
    remote_ssh "${hosts[$i]}" "$(remote_command "$remote_script" "${dirs[$i]}" nodes "$count" \
      "$nr_used" "$per" "$address" "$port" ${binds[$i]:+--bind "${binds[$i]}"} "$@")" \
      <>"$out/.alive" >"$out/.host-$i" 2>&1 &
    pids+=("$!")
    groups+=("$!")
    group_hosts+=("$i")
  done
}

# prefix_lines LABEL FILE: copies standard input to standard error and FILE, each line
# prefixed with [LABEL].
prefix_lines() {
  local line
  while IFS= read -r line; do printf '[%s] %s\n' "$1" "$line"; done | tee "$2" >&2
}

# await_run: waits for the registry. A node group whose session ends first (a host lost, its
# nodes killed) gets 10 s for the registry to notice and fail the run by itself, then the run
# is stopped. Once the registry is gone, every node exits by itself: each group gets 15 s
# before it is said to be still running (and stopped at exit). Sets `status` (the registry's).
await_run() {
  local i since=
  status=0
  while kill -0 "$registry" 2>/dev/null; do
    for i in "${!groups[@]}"; do
      if [ -z "$since" ] && ! kill -0 "${groups[$i]}" 2>/dev/null; then
        since=$SECONDS
        echo "$tool: the nodes on ${hosts[${group_hosts[$i]}]} ended before the run did" >&2
      fi
    done
    if [ -n "$since" ] && [ $((SECONDS - since)) -ge 10 ]; then
      echo "$tool: stopping the run: a host's nodes are gone" >&2
      kill "$registry" 2>/dev/null || true
    fi
    sleep 0.2
  done
  wait "$registry" || status=$?
  for i in "${!groups[@]}"; do
    for _ in $(seq 150); do
      kill -0 "${groups[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "${groups[$i]}" 2>/dev/null; then
      echo "$tool: nodes on ${hosts[${group_hosts[$i]}]} still run 15 s after the registry ended; stopping them" >&2
    fi
  done
}
