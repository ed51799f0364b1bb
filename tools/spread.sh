#!/usr/bin/env bash
# Runs one workload RUNS times in a row and prints each run's seconds (start to verified
# summary), sorted, and the median: single runs on a shared machine vary by 30% and more.
#
#   tools/spread.sh RUNS NODES [MESSAGES_PER_NODE] [NR]     e.g. tools/spread.sh 15 10 100000 3 (W1)
#
# Environment: OVERLAY_BIN a prebuilt binary (default: builds target/release/overlay once);
# PAYLOAD, REGISTRY_ARGS and NODE_ARGS as for tools/launch.sh.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: tools/spread.sh RUNS NODES [MESSAGES_PER_NODE] [NR]" >&2; exit 2; }
runs=$1
shift
case "$runs" in *[!0-9]*|'') echo "spread.sh: RUNS must be a number" >&2; exit 2 ;; esac
top=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${OVERLAY_BIN:-}" ]; then
  (cd "$top" && cargo build --release --quiet)
  export OVERLAY_BIN="$top/target/release/overlay"
fi
out=$(mktemp -d -t overlay-spread.XXXXXX)
trap 'rm -rf "$out"' EXIT
times=()
for i in $(seq "$runs"); do
  line=$(OUT="$out/$i" "$top/tools/launch.sh" "$@" 2>&1 | grep -E '^(PASS|FAIL):' | tail -1)
  case "$line" in
    PASS:*) times+=("$(sed 's/.*packets in \([0-9.]*\) s.*/\1/' <<<"$line")") ;;
    *) echo "spread.sh: run $i did not pass: $line (logs in $out/$i)" >&2; trap - EXIT; exit 1 ;;
  esac
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}' <<<"$sorted")
echo "seconds: $(tr '\n' ' ' <<<"$sorted")"
echo "median: $median s over $runs runs"
