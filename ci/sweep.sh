#!/usr/bin/env bash
# A shard of a seed sweep, for CI matrices:
#   bash ci/sweep.sh SCENARIO SEEDS SHARD     e.g.  bash ci/sweep.sh chaos 1..=2000 3/8
# Writes failing seeds (with repro lines) to riptide-failures-SCENARIO-SHARD.txt; exit 0 pass,
# 1 anomalies, 2 harness error.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-chaos}" seeds="${2:-1..=500}" shard="${3:-1/1}"
cargo build --release -p riptide-cli
out="riptide-failures-${scenario}-${shard/\//-of-}.txt"
exec "${CARGO_TARGET_DIR:-target}/release/riptide" sweep --scenario "$scenario" --seeds "$seeds" --shard "$shard" --jobs "$(nproc)" --failures "$out"
