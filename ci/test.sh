#!/usr/bin/env bash
# riptide's test command: Rust tests, the release broker, then the end-to-end tests against real
# clients (kcat, kafka-python, confluent-kafka, moto). Installs what it needs when it is missing.
#
#   bash ci/test.sh              # everything
#   E2E_ARGS='-k kcat' bash ci/test.sh   # extra pytest arguments for the e2e stage
#   SKIP_CARGO_TEST=1 bash ci/test.sh    # only build + e2e
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PYTHON="${PYTHON:-python3}"
section() { printf '\n==== %s ====\n' "$*"; }

section "environment"
echo "repo: $ROOT"
echo "rustc: $(rustc --version 2>/dev/null || echo missing)  cargo: $(cargo --version 2>/dev/null || echo missing)"
echo "python: $($PYTHON --version 2>&1)"

section "install: kcat"
if command -v kcat >/dev/null 2>&1; then
  echo "kcat present: $(kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*' | head -1)"
else
  SUDO=""
  if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends kcat
  kcat -V 2>&1 | head -3
fi

section "install: python packages"
if $PYTHON -c 'import kafka, confluent_kafka, moto.server, boto3, pytest' >/dev/null 2>&1; then
  echo "kafka-python, confluent-kafka, moto[server], boto3, pytest present"
else
  $PYTHON -m pip install --quiet --disable-pip-version-check kafka-python confluent-kafka 'moto[server]' boto3 pytest
fi
$PYTHON - <<'EOF'
import importlib.metadata as md
for p in ("kafka-python", "confluent-kafka", "moto", "boto3", "pytest"):
    print(f"  {p} {md.version(p)}")
EOF

if [ -z "${SKIP_CARGO_TEST:-}" ]; then
  section "cargo test --workspace"
  cargo test --workspace
fi

section "cargo build --release -p riptide-cli"
cargo build --release -p riptide-cli
export RIPTIDE_BIN="${RIPTIDE_BIN:-$ROOT/target/release/riptide}"
echo "RIPTIDE_BIN=$RIPTIDE_BIN"
test -x "$RIPTIDE_BIN"

section "planted bugs: every one must be caught (riptide mutants)"
"$RIPTIDE_BIN" mutants --seeds 60

section "madsim backend (ci/madsim.sh: its own build, determinism, small sweep, planted bugs)"
bash ci/madsim.sh

section "end-to-end tests (pytest tests/e2e)"
# shellcheck disable=SC2086
timeout --signal=INT --kill-after=30 900 \
  $PYTHON -m pytest -v tests/e2e ${E2E_ARGS:-}
