#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS seconds each (default 60), seeded from the golden
# vectors (fuzz/examples/make_seeds.rs). Exits non-zero if any target found a crash; crashing
# inputs are in fuzz/artifacts/TARGET/.
#
#   tools/fuzz.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler. Works on stable Rust
# (no sanitizer: `-s none`); overflow checks and debug assertions are on (`-a`).
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { sed -n '2,/^set -/{/^#/!d;s/^# \{0,1\}//;p}' "$0"; exit 0; }
set -euo pipefail
seconds=${1:-60}
shift || true
case "$seconds" in *[!0-9]*|'') echo "usage: tools/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top/fuzz"
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

seeds="$top/fuzz/target/seeds"
rm -rf "$seeds"
cargo run --quiet --example make_seeds -- "$seeds"

status=0
for target in "${targets[@]}"; do
  corpus="$top/fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "== fuzz $target for ${seconds}s (corpus $corpus, seeds $seeds/$target)"
  start=$(date +%s)
  if cargo fuzz run -s none -a "$target" "$corpus" "$seeds/$target" -- \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 2>"$top/fuzz/target/$target.log"; then
    echo "   $target: no crash in $(( $(date +%s) - start ))s; $(grep -E '^stat::number_of_executed_units' "$top/fuzz/target/$target.log" | tail -1)"
  else
    status=1
    echo "   $target: CRASH after $(( $(date +%s) - start ))s; see fuzz/artifacts/$target/ and fuzz/target/$target.log" >&2
    grep -E 'panicked|ERROR|Test unit written' "$top/fuzz/target/$target.log" | head -5 >&2 || true
  fi
done
exit $status
