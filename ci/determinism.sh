#!/usr/bin/env bash
# Determinism meta-test: the same seeds in two separate processes must give the same trace hashes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p riptide-cli
bin="${CARGO_TARGET_DIR:-target}/release/riptide"
scenario="${1:-chaos}" seeds="${2:-1..=20}"
tmp="$(mktemp -d)"
for run in a b; do
  "$bin" sweep --scenario "$scenario" --seeds "$seeds" --jobs "$(nproc)" \
    --hashes "$tmp/$run" --failures "$tmp/$run.failures" >/dev/null || true
done
if diff "$tmp/a" "$tmp/b"; then echo "deterministic: $(wc -l < "$tmp/a") seeds of $scenario hash the same twice"; else echo "NONDETERMINISTIC"; exit 1; fi
