# Shared by tools/launch.sh and tools/soak.sh (sourced, never run): the binary, the output
# directory, a registry and its nodes on this machine, and stopping every process they started
# when the script exits, is interrupted or fails.
#
# After sourcing: the working directory is the repository's top ($top); `tool` is the script's
# name for messages; more descriptors are allowed (up to the hard limit: one per connection).

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$top"
tool=$(basename "$0")
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

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

# Every process in `pids` is stopped on exit, Ctrl-C or failure.
pids=()
stop_all() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
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

# start_nodes COUNT [FLAG...]: starts COUNT nodes of the registry on 127.0.0.1:$port, node i
# pinned to core i modulo the cores, output in $out/node-i.log. Sets `node_pids`.
start_nodes() {
  local count=$1 cores i
  shift
  cores=$(nproc)
  node_pids=()
  for i in $(seq 0 $((count - 1))); do
    "$bin" node 127.0.0.1 "$port" --core $((i % cores)) "$@" </dev/null >"$out/node-$i.log" 2>&1 &
    pids+=("$!")
    node_pids+=("$!")
  done
}
