#!/usr/bin/env bash
# Every planted bug must be caught within SEEDS seeds of its scenario (exit 1 if one escapes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p riptide-cli
exec "${CARGO_TARGET_DIR:-target}/release/riptide" mutants --seeds "${SEEDS:-60}"
