#!/usr/bin/env bash
# Regenerates the pictures docs/USAGE.md shows, from one real run on this machine: a scripted
# run of NODES nodes (NR ceil(log2 NODES)) sending MESSAGES_PER_NODE packets each at RATE
# packets per second per node (so that it lasts a few seconds and the progress has points),
# with the registry drawing the overlay and each link's traffic after the run
# (--export-overlay docs/overlay-NODES.svg), then tools/plot.py all: docs/progress-NODES.svg,
# docs/hops-NODES.svg, docs/latency-NODES.svg and docs/load-NODES.svg. The run's logs, CSV and
# result stay in $OUT.
#
#   tools/pictures.sh [NODES [MESSAGES_PER_NODE [RATE]]]     default 16 60000 10000
#
# Environment: OUT (default: a new temporary directory); DOCS the directory the pictures go to
# (default: docs/ of this repository); OVERLAY_BIN as for tools/launch.sh.
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
nodes=${1:-16}
messages=${2:-60000}
rate=${3:-10000}
for value in "$nodes" "$messages" "$rate"; do
  case "$value" in *[!0-9]*|'') echo "pictures.sh: NODES, MESSAGES_PER_NODE and RATE are numbers" >&2; exit 2 ;; esac
done
top=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$(mktemp -d -t overlay-pictures.XXXXXX)}
docs=${DOCS:-$top/docs}
mkdir -p "$out" "$docs"
OUT=$out REGISTRY_ARGS="--csv $out/progress.csv --rate $rate --export-overlay $docs/overlay-$nodes.svg" \
  "$top/tools/launch.sh" "$nodes" "$messages" > "$out/launch.log" 2>&1 ||
  { tail -20 "$out/launch.log" >&2; echo "pictures.sh: the run failed (logs in $out)" >&2; exit 1; }
echo "pictures.sh: wrote $docs/overlay-$nodes.svg"
python3 "$top/tools/plot.py" all "$out/progress.csv" "$out/result.json" -d "$docs" --name "$nodes"
echo "pictures.sh: run in $out"
