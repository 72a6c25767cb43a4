#!/usr/bin/env bash
# Certify Tansu (https://tansu.io), a third-party Kafka-compatible broker from crates.io, with
# `riptide certify`: proxy faults (partitions, delays, dropped replies, cut connections) plus
# pause/resume hooks (SIGSTOP/SIGCONT). Kill/restart is left out: with its in-memory storage a
# restarted Tansu starts empty, which would be reported as lost writes by design, not by bug.
#
#   bash ci/certify-tansu.sh                  # 60 s, seed 1, report in certify-tansu/
#   SEED=7 DURATION=120s OUT=/tmp/t CERTIFY_ARGS=--idempotent bash ci/certify-tansu.sh
#
# The first run builds Tansu (cargo install, ~15 min on 2 cores) into TANSU_ROOT and reuses it.
# Exit code: riptide certify's (0 pass, 1 anomalies, 2 could not run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
TANSU_ROOT=${TANSU_ROOT:-$HOME/.cache/riptide/tansu-$TANSU_VERSION}
PORT=${PORT:-39092}
SEED=${SEED:-1}
DURATION=${DURATION:-60s}
SCENARIO=${SCENARIO:-chaos}
OUT=${OUT:-$ROOT/certify-tansu}
RIPTIDE_BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/riptide}
WORK=$(mktemp -d)

if [ ! -x "$TANSU_ROOT/bin/tansu" ]; then
  echo "building tansu $TANSU_VERSION into $TANSU_ROOT (once)"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked --root "$TANSU_ROOT"
fi
[ -x "$RIPTIDE_BIN" ] || cargo build --release -p riptide-cli

"$TANSU_ROOT/bin/tansu" broker --listener-url "tcp://127.0.0.1:$PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ \
  >"$WORK/tansu.log" 2>&1 &
echo $! >"$WORK/tansu.pid"
cleanup() {
  kill -CONT "$(cat "$WORK/tansu.pid")" 2>/dev/null || true
  kill "$(cat "$WORK/tansu.pid")" 2>/dev/null || true
  echo "tansu log: $WORK/tansu.log"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

set +e
"$RIPTIDE_BIN" certify --bootstrap "127.0.0.1:$PORT" --scenario "$SCENARIO" --seed "$SEED" \
  --duration "$DURATION" --out "$OUT" ${CERTIFY_ARGS:-} \
  --pause "kill -STOP \$(cat $WORK/tansu.pid)" --resume "kill -CONT \$(cat $WORK/tansu.pid)"
code=$?
set -e
echo "riptide certify exit code: $code (report in $OUT)"
exit $code
