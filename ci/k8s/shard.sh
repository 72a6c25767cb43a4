#!/usr/bin/env bash
# One shard of a riptide seed sweep. This is the command of every pod of the Indexed Job in
# ci/k8s/sweep-job.yaml (mounted from the riptide-scripts ConfigMap, which kustomize makes from
# this file), and ci/k8s/check.sh runs the same file for its local dry run.
#
#   JOB_COMPLETION_INDEX=0 SHARDS=4 SCENARIO=crashes SEEDS=1..=8 OUT_DIR=/tmp/shards bash ci/k8s/shard.sh
#
# Environment (Kubernetes sets JOB_COMPLETION_INDEX; the rest come from the riptide-sweep
# ConfigMap and the container's env):
#   JOB_COMPLETION_INDEX  this pod's completion index, 0-based (0 .. SHARDS-1). riptide's --shard
#                         is 1-based, so index K runs shard K+1/SHARDS.
#   SHARDS       N: the number of shards, the Job's completions
#   SCENARIO     riptide scenario (default chaos)
#   SEEDS        A..=B or A..B (default 1..=2000)
#   BACKEND      turmoil or madsim; empty: the binary's own backend
#   JOBS         seeds run at once in this pod, `riptide sweep --jobs` (default: nproc)
#   NO_COVERAGE  non-empty: `riptide sweep --no-coverage`
#   BUG          a planted bug (`riptide sim --help` lists them): a sweep that must find it, to
#                test the pipeline end to end; empty for the real broker (the default)
#   OUT_DIR      where the result goes (default /shards, the Job's PersistentVolumeClaim)
#   RIPTIDE_BIN  the riptide binary (default ${CARGO_TARGET_DIR:-target}/release/riptide; the
#                image sets /usr/local/bin/riptide)
#
# Writes OUT_DIR/shard-I.json (I = JOB_COMPLETION_INDEX+1): the one JSON object of
# `riptide sweep --shard I/N --json`, moved into place only once whole, so a pod killed half way
# leaves no partial result. When seeds failed, OUT_DIR/failures-I.txt lists them with repro lines.
#
# Exit codes, chosen for the Job's podFailurePolicy (see sweep-job.yaml):
#   0  the shard ran and its result is written, whatever the verdict: findings and per-seed harness
#      errors are in the JSON, and `riptide merge` reports them (exit 1 or 2) for the whole sweep.
#      A seeded run is deterministic, so a Job retrying a shard with findings would only repeat it.
#   2  usage error (bad parameters, no binary, riptide refused its arguments): retrying cannot
#      help, and the Job fails at once.
#   other  the sweep died without a result (killed, out of memory, ...): Kubernetes retries the pod.
set -euo pipefail

die() {
  echo "shard.sh: $*" >&2
  exit 2
}

case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
  "") ;;
  *) die "takes no arguments (parameters come from the environment; see --help), not '$*'" ;;
esac

index="${JOB_COMPLETION_INDEX:-}"
shards="${SHARDS:-}"
scenario="${SCENARIO:-chaos}"
seeds="${SEEDS:-1..=2000}"
backend="${BACKEND:-}"
jobs="${JOBS:-$(nproc)}"
out_dir="${OUT_DIR:-/shards}"
bin="${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}"

[[ "$index" =~ ^[0-9]+$ ]] || die "JOB_COMPLETION_INDEX must be a whole number (Kubernetes sets it in an Indexed Job), not '$index'"
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive whole number (the Job's completions), not '$shards'"
((index < shards)) || die "JOB_COMPLETION_INDEX=$index is not below SHARDS=$shards: the Job's completions and SHARDS disagree"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive whole number, not '$jobs'"
[ -x "$bin" ] || die "no riptide binary at '$bin' (set RIPTIDE_BIN)"
mkdir -p "$out_dir" || die "cannot create OUT_DIR '$out_dir'"

i=$((index + 1))
shard="$i/$shards"
result="$out_dir/shard-$i.json"
failures="$out_dir/failures-$i.txt"
partial="$out_dir/.shard-$i.json.partial.$$"
trap 'rm -f "$partial"' EXIT

cmd=("$bin" sweep --scenario "$scenario" --seeds "$seeds" --shard "$shard" --jobs "$jobs"
  --failures "$failures" --json)
[ -z "$backend" ] || cmd+=(--backend "$backend")
[ -z "${NO_COVERAGE:-}" ] || cmd+=(--no-coverage)
[ -z "${BUG:-}" ] || cmd+=(--bug "$BUG")

# An earlier run's list would outlive a run of this shard that fails no seed.
rm -f "$failures"
echo "shard $shard (JOB_COMPLETION_INDEX=$index): ${cmd[*]}" >&2
rc=0
"${cmd[@]}" >"$partial" || rc=$?

# A result is the one JSON object `sweep --json` prints last; a sweep that could not start prints
# none (its error is on stderr).
is_result() { [ -s "$1" ] && head -c 1 "$1" | grep -q '{' && grep -q '"scenario":' "$1"; }

case "$rc" in
  0 | 1 | 2)
    if ! is_result "$partial"; then
      if [ "$rc" = 2 ]; then
        die "riptide sweep exited 2 without a result (usage error, see above)"
      fi
      echo "shard.sh: riptide sweep exited $rc without a result" >&2
      exit 3
    fi
    ;;
  *)
    echo "shard.sh: riptide sweep died (exit $rc) without a result; Kubernetes may retry this shard" >&2
    exit "$rc"
    ;;
esac

mv "$partial" "$result"
verdict=(pass findings "harness errors")
echo "shard $shard: ${verdict[$rc]} (riptide sweep exit $rc); wrote $result" >&2
