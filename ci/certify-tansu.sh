#!/usr/bin/env bash
# Certify Tansu (https://tansu.io, crates.io `tansu`) or its successor Nisshi (crates.io `nisshi`),
# third-party Kafka-compatible brokers, with `riptide certify`. Not part of `.ci/run`: it builds
# the target (cargo install, ~13-15 min on 2 cores, once, into TARGET_ROOT).
#
#   bash ci/certify-tansu.sh                              # tansu 0.6.0, memory engine, one node
#   STORAGE=s3 bash ci/certify-tansu.sh                   # three nodes on one moto bucket
#   TARGET=nisshi STORAGE=s3 bash ci/certify-tansu.sh     # nisshi 0.8.1 (built with +nightly)
#   SEED=7 DURATION=120s OUT=/tmp/t CERTIFY_ARGS=--idempotent bash ci/certify-tansu.sh
#   SCENARIO=transactions TARGET=nisshi STORAGE=s3 bash ci/certify-tansu.sh   # transactional
#     producers (a target that does not serve transactions is a row of the compatibility table)
#
# STORAGE=memory: one node, client-proxy faults and pause/resume hooks (SIGSTOP/SIGCONT). No kill:
# a restarted node on the memory engine starts empty, which would be lost writes by design.
# STORAGE=s3: three nodes, each with the S3 engine on one moto bucket through its own
# `riptide store-proxy` (endpoint mode: AWS_ENDPOINT is the proxy), so certify applies store faults
# (500/503 SlowDown, latency, a cut link, reply lost, late writes) per node as well as client-proxy
# faults and the kill, start, pause and resume hooks of ci/riptide-cluster.sh.
#
# Exit code: riptide certify's (0 pass, 1 anomalies, 2 could not run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGET=${TARGET:-tansu}
case $TARGET in
  tansu) VERSION=${VERSION:-0.6.0}; INSTALL=(cargo install tansu --features dynostore) ;;
  # nisshi 0.8.1 needs rustc 1.96: the nightly toolchain.
  nisshi) VERSION=${VERSION:-0.8.1}
    INSTALL=(cargo +nightly install nisshi --no-default-features --features dynostore) ;;
  *) echo "TARGET must be tansu or nisshi" >&2; exit 2 ;;
esac
TARGET_ROOT=${TARGET_ROOT:-$HOME/.cache/riptide/$TARGET-$VERSION}
STORAGE=${STORAGE:-memory}
PORT=${PORT:-39092}
SEED=${SEED:-1}
DURATION=${DURATION:-60s}
SCENARIO=${SCENARIO:-chaos}
OUT=${OUT:-$ROOT/certify-$TARGET-$STORAGE}
RIPTIDE_BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/riptide}
WORK=$(mktemp -d)
export RIPTIDE_BIN CLUSTER_DIR="$WORK/cluster" BASE_PORT=$PORT TARGET TARGET_BIN="$TARGET_ROOT/bin/$TARGET"

if [ ! -x "$TARGET_BIN" ]; then
  echo "building $TARGET $VERSION into $TARGET_ROOT (once)"
  "${INSTALL[@]}" --version "$VERSION" --locked --root "$TARGET_ROOT"
fi
[ -x "$RIPTIDE_BIN" ] || cargo build --release -p riptide-cli

pids=()
cleanup() {
  bash ci/riptide-cluster.sh down || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  echo "logs: $WORK"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

hooks=(--pause "bash $ROOT/ci/riptide-cluster.sh pause {node}"
       --resume "bash $ROOT/ci/riptide-cluster.sh resume {node}")
case $STORAGE in
  memory)
    nodes=1
    bash ci/riptide-cluster.sh up 1
    ;;
  s3)
    nodes=3
    # moto in riptide's Python environment (ci/python-env.sh: VENV_PY).
    # shellcheck source=ci/python-env.sh
    . ci/python-env.sh >/dev/null
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
      AWS_DEFAULT_REGION=us-east-1 AWS_ALLOW_HTTP=true AWS_EC2_METADATA_DISABLED=true
    moto=$((PORT + 100))
    (cd "$WORK" && exec "$VENV_PY" -m moto.server -H 127.0.0.1 -p "$moto") >"$WORK/moto.log" 2>&1 &
    pids+=($!)
    wait_port "$moto"
    bucket="certify-$TARGET-$SEED"
    "$VENV_PY" -c "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:$moto/$bucket', method='PUT'))"
    specs=() endpoints=() proxy_flags=()
    for i in 0 1 2; do
      p=$((PORT + 200 + i))
      specs+=("127.0.0.1:$p=http://127.0.0.1:$moto")
      endpoints+=("http://127.0.0.1:$p")
      proxy_flags+=(--store-proxy "127.0.0.1:$p")
    done
    "$RIPTIDE_BIN" store-proxy "${specs[@]}" --seed "$SEED" >"$WORK/store-proxy.log" 2>&1 &
    pids+=($!)
    for i in 0 1 2; do wait_port $((PORT + 200 + i)); done
    S3_ENDPOINTS=$(IFS=,; echo "${endpoints[*]}")
    export S3_URL="s3://$bucket" S3_ENDPOINTS
    bash ci/riptide-cluster.sh up 3
    hooks+=(--kill "bash $ROOT/ci/riptide-cluster.sh kill {node}"
            --start "bash $ROOT/ci/riptide-cluster.sh start {node}"
            "${proxy_flags[@]}")
    ;;
  *) echo "STORAGE must be memory or s3" >&2; exit 2 ;;
esac
bootstrap=$(for i in $(seq 0 $((nodes - 1))); do printf '127.0.0.1:%s,' $((PORT + i)); done)

set +e
# shellcheck disable=SC2086
"$RIPTIDE_BIN" certify --bootstrap "${bootstrap%,}" --scenario "$SCENARIO" --seed "$SEED" \
  --duration "$DURATION" --out "$OUT" "${hooks[@]}" ${CERTIFY_ARGS:-}
code=$?
set -e
echo "riptide certify exit code: $code (report in $OUT)"
exit $code
