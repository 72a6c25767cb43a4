#!/usr/bin/env bash
# The madsim backend (issue 8): clippy on the --cfg madsim build, which builds riptide in its own
# target directory, then
#   1. every fault kind takes effect on madsim (sim/tests/faults.rs under the cfg), and the same
#      seed twice in one process hashes the same (sim/tests/same_process.rs),
#   2. madsim's determinism check on 20 chaos seeds (each seed run twice under madsim's random-draw
#      check, plus a third run: same trace hash), and the same 20 seeds in other processes without
#      coverage counting,
#   3. a small sweep (SEEDS seeds, default 50, of chaos, ownership, groups, idempotent, transactions),
#   4. every planted bug caught on madsim (riptide mutants).
# Exit non-zero on the first failure. The ordinary build reaches this binary with --backend madsim.
#
#   bash ci/madsim.sh          # all of it
#   bash ci/madsim.sh build    # only what compiles (clippy, the binary, the three test binaries):
#                              # ci/test.sh runs this in the background while it does other work,
#                              # then runs the whole script, whose compile steps are then no-ops
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg madsim --cfg tokio_unstable"
target="${MADSIM_TARGET_DIR:-target/madsim}"
bin="$target/release/riptide"
seeds="${SEEDS:-50}"
jobs="$(nproc)"
section() { printf '\n==== %s ==== (madsim %ss)\n' "$*" "$SECONDS"; }

section "cargo clippy -D warnings (cfg madsim, $target)"
cargo clippy --release --target-dir "$target" --workspace --all-targets -- -D warnings

section "cargo build --release (cfg madsim, $target)"
cargo build --release --target-dir "$target" -p riptide-cli

# With -p riptide-cli: the same packages as the build above, so the same features, so only the
# test targets compile here (riptide-sim alone would compile 14 crates again with fewer features).
madsim_tests=(cargo test --release --target-dir "$target" -p riptide-cli -p riptide-sim
  --test faults --test coverage --test same_process)
if [ "${1:-}" = build ]; then
  section "cargo test --no-run: the test binaries (cfg madsim, $target)"
  "${madsim_tests[@]}" --no-run
  exit 0
fi

section "fault kinds take effect on madsim, coverage counts there, a seed is the same twice in one process"
"${madsim_tests[@]}"

section "madsim determinism check: chaos 1..=20"
tmp="$(mktemp -d)"
"$bin" sweep --scenario chaos --seeds 1..=20 --check-determinism --jobs "$jobs" \
  --hashes "$tmp/checked" --failures riptide-failures-madsim-determinism.txt
# Without coverage counting: the same runs.
"$bin" sweep --scenario chaos --seeds 1..=20 --jobs "$jobs" --hashes "$tmp/again" --no-coverage \
  --failures "$tmp/again.failures" >/dev/null
if diff "$tmp/checked" "$tmp/again"; then
  echo "deterministic: 20 chaos seeds pass madsim's check and hash the same in other processes, without coverage too"
else
  echo "NONDETERMINISTIC across processes"; exit 1
fi

for scenario in chaos ownership groups idempotent transactions; do
  section "sweep: $scenario 1..=$seeds on madsim"
  "$bin" sweep --scenario "$scenario" --seeds "1..=$seeds" --jobs "$jobs" \
    --failures "riptide-failures-madsim-$scenario.txt"
done

section "planted bugs on madsim (riptide mutants)"
"$bin" mutants --seeds "${MUTANT_SEEDS:-60}"
