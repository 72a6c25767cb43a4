#!/usr/bin/env bash
# Runs a sharded riptide sweep on a Kubernetes cluster and merges it: renders ci/k8s (kustomize)
# with the parameters below, applies it, waits for the Indexed Job riptide-sweep (one pod per
# shard) to complete, starts the merge Job riptide-merge, prints its verdict and saves the merged
# JSON. Kubernetes schedules and retries the shards; this script only applies and waits.
#
#   bash ci/k8s/run.sh                  # apply, wait, merge; exit code = riptide merge's
#   bash ci/k8s/run.sh --render         # print the manifests it would apply (no cluster needed)
#   bash ci/k8s/run.sh --overlay DIR    # write the kustomize overlay to DIR (then kubectl apply -k DIR)
#   bash ci/k8s/run.sh --help
#
#   SHARDS=8 SCENARIO=ownership SEEDS=1..=4000 IMAGE=registry.example.com/riptide:madsim bash ci/k8s/run.sh
#
# Parameters (environment):
#   SCENARIO=chaos         riptide scenario
#   SEEDS=1..=2000         A..=B or A..B
#   SHARDS=4               N: the Indexed Job's completions, riptide's --shard I/N
#   PARALLELISM=$SHARDS    shard pods at once
#   BACKEND=madsim         turmoil or madsim: must match the image (Dockerfile's BACKEND build arg)
#   JOBS=2                 seeds at once in a pod (riptide sweep --jobs), also the pod's CPU request
#   NO_COVERAGE=           non-empty: sweep --no-coverage
#   BUG=                   a planted bug to sweep for (a run that must find it); empty: the real broker
#   IMAGE=riptide:latest   the image built from ci/k8s/Dockerfile
#   NAMESPACE=             default: kubectl's current namespace
#   ACCESS_MODE=ReadWriteMany  the claim's access mode; ReadWriteOnce on one-node clusters
#   STORAGE_CLASS=         the claim's storage class; default: the cluster's default class
#   TIMEOUT=7200           seconds to wait for the sweep, and then for the merge
#   RESULT=merged.json     where the merged JSON (`riptide merge --json`) is saved
#   KUBECTL=kubectl        the kubectl to use (with kustomize v5, built in since kubectl 1.27)
#
# A run deletes the previous riptide-sweep and riptide-merge Jobs first (a Job's pod template
# cannot change); the claim and the shards on it stay, and each shard's file is replaced.
# Exit code: riptide merge's, 0 pass, 1 findings, 2 could not run; also 2 when the parameters are
# wrong, the sweep Job failed or timed out, or the cluster cannot be reached.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() {
  echo "run.sh: $*" >&2
  exit 2
}

mode=run
overlay_dir=""
case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
  --render) mode=render ;;
  --overlay)
    mode=overlay
    overlay_dir="${2:-}"
    [ -n "$overlay_dir" ] || die "--overlay takes a directory"
    ;;
  "") ;;
  *) die "unknown argument '$1' (see --help)" ;;
esac

SCENARIO="${SCENARIO:-chaos}"
SEEDS="${SEEDS:-1..=2000}"
SHARDS="${SHARDS:-4}"
PARALLELISM="${PARALLELISM:-$SHARDS}"
BACKEND="${BACKEND:-madsim}"
JOBS="${JOBS:-2}"
NO_COVERAGE="${NO_COVERAGE:-}"
BUG="${BUG:-}"
IMAGE="${IMAGE:-riptide:latest}"
NAMESPACE="${NAMESPACE:-}"
ACCESS_MODE="${ACCESS_MODE:-ReadWriteMany}"
STORAGE_CLASS="${STORAGE_CLASS:-}"
TIMEOUT="${TIMEOUT:-7200}"
RESULT="${RESULT:-merged.json}"
KUBECTL="${KUBECTL:-kubectl}"

# The values go into YAML unquoted-safe forms only: refuse anything else here, with the reason.
[[ "$SCENARIO" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "SCENARIO must be a scenario name (riptide sim --help lists them), not '$SCENARIO'"
[[ "$SEEDS" =~ ^[0-9]+\.\.=?[0-9]+$ ]] || die "SEEDS must be A..=B or A..B, not '$SEEDS'"
[[ "$SHARDS" =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive whole number, not '$SHARDS'"
if ! [[ "$PARALLELISM" =~ ^[1-9][0-9]*$ ]] || ((PARALLELISM > SHARDS)); then
  die "PARALLELISM must be a whole number from 1 to SHARDS=$SHARDS, not '$PARALLELISM'"
fi
[[ "$BACKEND" =~ ^(turmoil|madsim)$ ]] || die "BACKEND must be turmoil or madsim, not '$BACKEND'"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "JOBS must be a positive whole number, not '$JOBS'"
[[ "$NO_COVERAGE" =~ ^[a-z0-9]*$ ]] || die "NO_COVERAGE must be empty or a word like 1, not '$NO_COVERAGE'"
[[ "$BUG" =~ ^[a-z0-9-]*$ ]] || die "BUG must be empty or a planted bug's name (riptide sim --help lists them), not '$BUG'"
[[ "$IMAGE" =~ ^[A-Za-z0-9][A-Za-z0-9./:@_-]*$ ]] || die "IMAGE must be an image reference, not '$IMAGE'"
[[ -z "$NAMESPACE" || "$NAMESPACE" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || die "NAMESPACE must be a namespace name, not '$NAMESPACE'"
[[ "$ACCESS_MODE" =~ ^(ReadWriteMany|ReadWriteOnce|ReadWriteOncePod)$ ]] || die "ACCESS_MODE must be ReadWriteMany, ReadWriteOnce or ReadWriteOncePod, not '$ACCESS_MODE'"
[[ -z "$STORAGE_CLASS" || "$STORAGE_CLASS" =~ ^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$ ]] || die "STORAGE_CLASS must be a storage class name, not '$STORAGE_CLASS'"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "TIMEOUT must be seconds, not '$TIMEOUT'"
command -v "$KUBECTL" >/dev/null 2>&1 || die "no '$KUBECTL' on PATH (set KUBECTL)"

# The overlay: ci/k8s as its base, the sharding component (SHARDS -> completions, ...), the
# parameters as the riptide-sweep ConfigMap's literals, the image, the claim's access mode.
write_overlay() {
  local dir="$1" base
  mkdir -p "$dir"
  # kustomize takes only relative paths to other kustomizations.
  base="$(realpath -m --relative-to="$(cd "$dir" && pwd)" "$here")"
  {
    echo "# Made by ci/k8s/run.sh. Apply with: kubectl apply -k $dir"
    echo "apiVersion: kustomize.config.k8s.io/v1beta1"
    echo "kind: Kustomization"
    [ -z "$NAMESPACE" ] || echo "namespace: $NAMESPACE"
    echo "resources:"
    echo "  - $base"
    echo "components:"
    echo "  - $base/sharding"
    echo "configMapGenerator:"
    echo "  - name: riptide-sweep"
    echo "    behavior: merge"
    echo "    literals:"
    echo "      - SCENARIO=$SCENARIO"
    echo "      - SEEDS=$SEEDS"
    echo "      - SHARDS=$SHARDS"
    echo "      - PARALLELISM=$PARALLELISM"
    echo "      - BACKEND=$BACKEND"
    echo "      - JOBS=$JOBS"
    echo "      - NO_COVERAGE=$NO_COVERAGE"
    echo "      - BUG=$BUG"
    echo "images:"
    echo "  - name: riptide"
    # NAME[:TAG] or NAME@DIGEST; a registry's port (host:5000/...) is not a tag.
    if [[ "$IMAGE" == *@* ]]; then
      echo "    newName: ${IMAGE%%@*}"
      echo "    digest: ${IMAGE#*@}"
    elif [[ "${IMAGE##*/}" == *:* ]]; then
      echo "    newName: ${IMAGE%:*}"
      echo "    newTag: ${IMAGE##*:}"
    else
      echo "    newName: $IMAGE"
      echo "    newTag: latest"
    fi
    echo "patches:"
    echo "  - target:"
    echo "      kind: PersistentVolumeClaim"
    echo "      name: riptide-shards"
    echo "    patch: |-"
    echo "      - op: replace"
    echo "        path: /spec/accessModes"
    echo "        value: [$ACCESS_MODE]"
    if [ -n "$STORAGE_CLASS" ]; then
      echo "      - op: add"
      echo "        path: /spec/storageClassName"
      echo "        value: $STORAGE_CLASS"
    fi
  } >"$dir/kustomization.yaml"
}

render() {
  local dir
  dir="$(mktemp -d)"
  write_overlay "$dir"
  "$KUBECTL" kustomize "$dir" || {
    rm -rf "$dir"
    die "kubectl kustomize failed on the overlay above"
  }
  rm -rf "$dir"
}

case "$mode" in
  render)
    render
    exit 0
    ;;
  overlay)
    write_overlay "$overlay_dir"
    echo "wrote $overlay_dir/kustomization.yaml" >&2
    exit 0
    ;;
esac

kc=("$KUBECTL")
[ -z "$NAMESPACE" ] || kc+=(--namespace "$NAMESPACE")

# "Complete" or "Failed" once the Job has finished; empty while it runs.
job_finished() {
  "${kc[@]}" get job "$1" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{"\n"}{end}' |
    grep -E -x 'Complete|Failed' | head -n 1 || true
}

# Waits until Job $1 has finished, printing its progress now and then; prints Complete or Failed.
wait_job() {
  local job="$1" deadline=$((SECONDS + TIMEOUT)) state="" next=0
  while :; do
    state="$(job_finished "$job")"
    [ -z "$state" ] || break
    if ((SECONDS >= deadline)); then
      echo "run.sh: job/$job has not finished after ${TIMEOUT}s" >&2
      state=Timeout
      break
    fi
    if ((SECONDS >= next)); then
      echo "job/$job: $("${kc[@]}" get job "$job" -o jsonpath='{.status.succeeded}/{.spec.completions} succeeded, {.status.active} running, {.status.failed} failed') (${SECONDS}s)" >&2
      next=$((SECONDS + 60))
    fi
    sleep 5
  done
  echo "$state"
}

manifests="$(mktemp)"
logs="$(mktemp)"
trap 'rm -f "$manifests" "$logs"' EXIT
render >"$manifests"

echo "run.sh: $SCENARIO $SEEDS on $BACKEND in $SHARDS shards ($PARALLELISM at a time), image $IMAGE" >&2
"${kc[@]}" delete job riptide-sweep riptide-merge --ignore-not-found --cascade=foreground --timeout=300s ||
  die "could not delete the previous riptide-sweep/riptide-merge Jobs (is the cluster reachable?)"
"${kc[@]}" apply -f "$manifests" || die "kubectl apply failed"

state="$(wait_job riptide-sweep)"
if [ "$state" != Complete ]; then
  echo "run.sh: the sweep Job did not complete ($state); its pods' last lines:" >&2
  "${kc[@]}" get pods -l job-name=riptide-sweep -o wide >&2 || true
  "${kc[@]}" logs -l job-name=riptide-sweep --prefix --tail=20 --max-log-requests="$((SHARDS + 5))" >&2 || true
  exit 2
fi
echo "run.sh: all $SHARDS shards done; merging" >&2

"${kc[@]}" patch job riptide-merge --type=merge -p '{"spec":{"suspend":false}}' >/dev/null ||
  die "could not start job/riptide-merge"
state="$(wait_job riptide-merge)"
pod="$("${kc[@]}" get pods -l job-name=riptide-merge --sort-by=.metadata.creationTimestamp -o name | tail -n 1)"
[ -n "$pod" ] || die "job/riptide-merge has no pod ($state)"
"${kc[@]}" logs "$pod" -c merge >"$logs" || die "could not read the log of $pod"
code="$("${kc[@]}" get "$pod" -o jsonpath='{.status.containerStatuses[?(@.name=="merge")].state.terminated.exitCode}')"

grep -v '^merged\.json ' "$logs" || true
if grep -q '^merged\.json ' "$logs"; then
  grep '^merged\.json ' "$logs" | tail -n 1 | cut -d' ' -f2- >"$RESULT"
  echo "run.sh: merged result saved to $RESULT" >&2
fi
case "$code" in
  0 | 1 | 2) ;;
  *) die "the merge pod $pod ended without an exit code of riptide merge's ($state, exit '${code}')" ;;
esac
echo "run.sh: verdict $([ "$code" = 0 ] && echo PASS || echo FAIL) (riptide merge exit $code)" >&2
exit "$code"
