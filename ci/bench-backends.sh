#!/usr/bin/env bash
# Simulation speed, turmoil vs madsim, on the same scenario and seeds (one process, one seed at a
# time): simulated seconds per wall second, seeds per minute, and madsim's speed-up.
#
#   bash ci/bench-backends.sh                 # chaos, seeds 1..=20
#   bash ci/bench-backends.sh ownership 1..=50
#   MIN_SPEEDUP=10 bash ci/bench-backends.sh  # exit 1 if madsim is not at least 10x faster
set -euo pipefail
cd "$(dirname "$0")/.."
scenario="${1:-chaos}" seeds="${2:-1..=20}"
cargo build --release -p riptide-cli
RUSTFLAGS="--cfg madsim --cfg tokio_unstable" cargo build --release --target-dir target/madsim -p riptide-cli
# `--backend madsim` runs the madsim build; name it, since it is not next to the turmoil one when
# CARGO_TARGET_DIR points elsewhere.
export RIPTIDE_MADSIM_BIN="${RIPTIDE_MADSIM_BIN:-$PWD/target/madsim/release/riptide}"
declare -A ratio
for backend in turmoil madsim; do
  out="$("${CARGO_TARGET_DIR:-target}/release/riptide" sweep --backend "$backend" --scenario "$scenario" --seeds "$seeds" \
    --jobs 1 --failures "/tmp/riptide-bench-$backend.txt" 2>/dev/null || true)"
  line="$(grep '^speed' <<<"$out")"
  ratio[$backend]="$(sed -E 's/.*: ([0-9.]+)x real time.*/\1/' <<<"$line")"
  printf '%-8s %s\n' "$backend" "${line#speed        }"
done
speedup="$(awk -v m="${ratio[madsim]}" -v t="${ratio[turmoil]}" 'BEGIN { printf "%.1f", m / t }')"
echo "madsim/turmoil speed-up on $scenario ($seeds): ${speedup}x"
if [ -n "${MIN_SPEEDUP:-}" ] && awk -v s="$speedup" -v m="$MIN_SPEEDUP" 'BEGIN { exit !(s < m) }'; then
  echo "madsim is less than ${MIN_SPEEDUP}x faster"; exit 1
fi
