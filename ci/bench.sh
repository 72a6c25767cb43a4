#!/usr/bin/env bash
# Client benchmark (not a test): builds the release broker and runs bench/client_bench.py, which
# prints produce/consume throughput and produce latency for the --memory and --data stores.
# confluent-kafka comes from the tests' virtual environment (ci/python-env.sh: .venv-ci/, or
# RIPTIDE_VENV; never the system Python).
#
#   bash ci/bench.sh                                   # 200,000 x 100 B, both stores
#   bash ci/bench.sh --messages 1000000 --size 1024    # any client_bench.py options
#   bash ci/bench.sh --flood                           # bench/produce_flood.py: broker RSS while
#                                                      # 1,000,000 x 1 KiB are produced to --data
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==== install: python packages (virtual environment, ci/python-env.sh) ===="
# shellcheck source=ci/python-env.sh
. ci/python-env.sh
echo "==== cargo build --release -p riptide-cli ===="
cargo build --release -p riptide-cli
script=bench/client_bench.py
if [ "${1:-}" = "--flood" ]; then
    shift
    script=bench/produce_flood.py
fi
echo "==== $script $* ===="
RIPTIDE_BIN="${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/riptide}" exec "$VENV_PY" "$script" "$@"
