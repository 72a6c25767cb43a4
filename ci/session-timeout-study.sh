#!/usr/bin/env bash
# The session-timeout knob study (README, "What serverless promises"): how the reference broker's
# session timeout trades shorter windows after a crash against partitions moved away from brokers
# that were only slow. For each timeout, two madsim sweeps:
#   crashes       write windows a crash and a pause open (p50 / p99, seconds);
#   object-store  no broker dies (store errors, latency, cut links): every partition an owner
#                 had to let go of (coverage point broker.partition_released) moved away from a
#                 running broker: ownership moves per seed.
#
#   bash ci/session-timeout-study.sh                       # 1000 2000 3000 6000 ms, seeds 1..=500
#   SEEDS=1..=1000 TIMEOUTS="1000 3000" bash ci/session-timeout-study.sh
#
# Needs the madsim build (RIPTIDE_MADSIM_BIN, default $MADSIM_TARGET_DIR or target/madsim,
# /release/riptide); prints a Markdown table. Exit 1 if any sweep found an anomaly.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${RIPTIDE_MADSIM_BIN:-${MADSIM_TARGET_DIR:-target/madsim}/release/riptide}"
seeds="${SEEDS:-1..=500}"
timeouts="${TIMEOUTS:-1000 2000 3000 6000}"
jobs="${JOBS:-$(nproc)}"
[ -x "$bin" ] || { echo "no madsim build at $bin (see ci/madsim.sh)" >&2; exit 2; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
status=0
sweep() { # scenario timeout -> JSON file
  local out="$tmp/$1-$2.json"
  "$bin" sweep --backend madsim --scenario "$1" --seeds "$seeds" --jobs "$jobs" --json \
    --session-timeout-ms "$2" --failures "$tmp/$1-$2.failures" >"$out" || status=1
  echo "$out"
}
# p50 / p99 of a window kind, or a dash.
window() { jq -r --arg k "$2" '.windows[$k] // empty | "\(.p50_ns/1e9*100|round/100) / \(.p99_ns/1e9*100|round/100)"' "$1" | grep . || echo "–"; }
echo "| session timeout | crash write window p50 / p99 (s) | pause write window p50 / p99 (s) | moves from running brokers per seed (object-store) | seeds passed |"
echo "|---|---|---|---|---|"
for t in $timeouts; do
  crashes="$(sweep crashes "$t")"
  store="$(sweep object-store "$t")"
  moves="$(jq -r '.coverage.points["broker/broker.partition_released"].hits // 0' "$store")"
  seeds_run="$(jq -r .seeds "$store")"
  passed="$(jq -r '"\(.passed)/\(.seeds)"' "$crashes") + $(jq -r '"\(.passed)/\(.seeds)"' "$store")"
  per_seed="$(awk -v m="$moves" -v s="$seeds_run" 'BEGIN { printf "%.2f", (s ? m / s : 0) }')"
  echo "| ${t} ms | $(window "$crashes" write-window/crash) | $(window "$crashes" write-window/pause) | $per_seed | $passed |"
done
exit "$status"
