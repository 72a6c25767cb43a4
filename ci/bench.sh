#!/usr/bin/env bash
# Client benchmark (not a test): builds the release broker and runs bench/client_bench.py, which
# prints produce/consume throughput and produce latency for the --memory and --data stores.
#
#   bash ci/bench.sh                                   # 200,000 x 100 B, both stores
#   bash ci/bench.sh --messages 1000000 --size 1024    # any client_bench.py options
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

echo "==== install: confluent-kafka ===="
$PYTHON -c 'import confluent_kafka' 2>/dev/null || $PYTHON -m pip install --quiet confluent-kafka
echo "==== cargo build --release -p riptide-cli ===="
cargo build --release -p riptide-cli
echo "==== bench/client_bench.py $* ===="
RIPTIDE_BIN="${RIPTIDE_BIN:-$PWD/target/release/riptide}" exec $PYTHON bench/client_bench.py "$@"
