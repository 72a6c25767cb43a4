#!/usr/bin/env bash
# Determinism meta-test: the same seeds in separate processes must give the same trace hashes,
# twice with coverage points counted and once without (counting must not change a run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p riptide-cli
bin="${CARGO_TARGET_DIR:-target}/release/riptide"
scenario="${1:-chaos}" seeds="${2:-1..=20}"
tmp="$(mktemp -d)"
for run in a b nocov; do
  extra=()
  if [ "$run" = nocov ]; then extra=(--no-coverage); fi
  "$bin" sweep --scenario "$scenario" --seeds "$seeds" --jobs "$(nproc)" "${extra[@]}" \
    --hashes "$tmp/$run" --failures "$tmp/$run.failures" >/dev/null || true
done
if ! diff "$tmp/a" "$tmp/b"; then echo "NONDETERMINISTIC: two runs of the same seeds differ"; exit 1; fi
if ! diff "$tmp/a" "$tmp/nocov"; then echo "NONDETERMINISTIC: counting coverage changed a run"; exit 1; fi
echo "deterministic: $(wc -l < "$tmp/a") seeds of $scenario hash the same twice, and the same without coverage"
