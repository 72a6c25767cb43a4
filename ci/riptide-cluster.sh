#!/usr/bin/env bash
# A local cluster of `riptide broker` processes sharing one data directory, with
# the per-node hooks `riptide certify` needs:
#
#   ci/riptide-cluster.sh up N          start N brokers on ports BASE..BASE+N-1
#   ci/riptide-cluster.sh start I       (re)start broker I
#   ci/riptide-cluster.sh kill I        SIGKILL broker I
#   ci/riptide-cluster.sh pause I       SIGSTOP broker I
#   ci/riptide-cluster.sh resume I      SIGCONT broker I
#   ci/riptide-cluster.sh down          kill every broker
#
# Environment: RIPTIDE_BIN (default $CARGO_TARGET_DIR or target, /release/riptide), CLUSTER_DIR
# (default /tmp/riptide-cluster), BASE_PORT (default 19092), BROKER_ARGS (extra
# flags for every broker, e.g. "--bug hwm-off-by-one"). S3_URL (s3://BUCKET) puts the cluster on S3
# instead of the shared data directory, with S3_ENDPOINTS (comma-separated: the i-th broker's S3
# endpoint, e.g. its own store proxy) and the usual AWS_* credentials.
#
# TARGET=tansu or TARGET=nisshi (with TARGET_BIN, the broker binary) starts that broker instead,
# with the same hooks: memory storage without S3_URL (then one node only: nodes do not share
# memory), else its S3 engine on S3_URL, the i-th node's AWS_ENDPOINT from S3_ENDPOINTS.
set -euo pipefail
BIN=${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/.." && pwd)/target}/release/riptide}
DIR=${CLUSTER_DIR:-/tmp/riptide-cluster}
BASE=${BASE_PORT:-19092}
mkdir -p "$DIR"

# The i-th node's S3 endpoint, from S3_ENDPOINTS.
endpoint() {
  local endpoints
  IFS=, read -ra endpoints <<<"${S3_ENDPOINTS:?S3_URL needs S3_ENDPOINTS}"
  echo "${endpoints[$1]:?no S3 endpoint for broker $1 in S3_ENDPOINTS}"
}

start() {
  local i=$1 port=$((BASE + $1))
  case ${TARGET:-riptide} in
    riptide)
      local store=(--data "$DIR/data")
      if [ -n "${S3_URL:-}" ]; then
        store=(--s3 "$S3_URL" --s3-endpoint "$(endpoint "$i")")
      fi
      # shellcheck disable=SC2086
      nohup "$BIN" broker --listen "127.0.0.1:$port" --node-id "$((i + 1))" \
        "${store[@]}" --heartbeat-ms 500 --session-timeout-ms 3000 ${BROKER_ARGS:-} \
        >>"$DIR/broker-$i.log" 2>&1 &
      ;;
    tansu | nisshi)
      local engine="memory://$TARGET/" env=()
      if [ -n "${S3_URL:-}" ]; then
        engine="${S3_URL%/}/"
        env=(AWS_ENDPOINT="$(endpoint "$i")" AWS_ALLOW_HTTP=true)
      fi
      # shellcheck disable=SC2086
      env "${env[@]}" nohup "${TARGET_BIN:?TARGET=$TARGET needs TARGET_BIN}" broker \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$engine" ${BROKER_ARGS:-} >>"$DIR/broker-$i.log" 2>&1 &
      ;;
    *) echo "unknown TARGET=$TARGET (riptide, tansu or nisshi)" >&2; return 2 ;;
  esac
  echo $! >"$DIR/broker-$i.pid"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "broker $i did not listen on $port" >&2
  return 1
}

signal() {
  local pidfile="$DIR/broker-$2.pid"
  [ -f "$pidfile" ] || { echo "no broker $2" >&2; return 1; }
  kill "-$1" "$(cat "$pidfile")"
  if [ "$1" = KILL ]; then
    # Wait until it is gone, so that a start right after cannot race it.
    while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.05; done
  fi
}

case ${1:-} in
  up) for i in $(seq 0 $(($2 - 1))); do start "$i"; done ;;
  start) start "$2" ;;
  kill) signal KILL "$2" ;;
  pause) signal STOP "$2" ;;
  resume) signal CONT "$2" ;;
  down)
    for f in "$DIR"/broker-*.pid; do
      [ -f "$f" ] || continue
      kill -CONT "$(cat "$f")" 2>/dev/null || true
      kill -KILL "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done ;;
  *) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 2 ;;
esac
