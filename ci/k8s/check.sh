#!/usr/bin/env bash
# Checks ci/k8s without a cluster, here and in CI:
#   1. renders the manifests: ci/k8s as it is, and run.sh's overlay for a sample sweep (SHARDS=4);
#   2. validates both against Kubernetes' OpenAPI schema (kubernetes-validate --strict, for each
#      of K8S_VERSIONS) and against lint.py (what only kube-apiserver's code or the sweep's own
#      consistency says: completionMode's values, a container's image, completions = SHARDS, ...);
#   3. breaks the sample on purpose (completionMode: Indexd, no image, an unknown field, a claim
#      that does not exist, no writable /tmp, ...) and requires each broken manifest to be
#      rejected: a check that cannot fail is no check;
#   4. dry-runs the pipeline: the pods' own scripts, shard.sh for JOB_COMPLETION_INDEX=0..SHARDS-1
#      (side by side, as the Indexed Job's pods run) with the environment the rendered ConfigMap
#      gives the pods, then merge.sh, and compares the merged result with an unsharded
#      `riptide sweep` of the same seeds (counts, failures with repro lines, coverage, windows,
#      lags; wall time aside) and merge's exit code with the sweep's. Twice: once on the broker as
#      it is, once with a planted bug (BUG_SEEDS of FAIL_BUG), where every exit code must say 1;
#   5. runs run.sh against a stand-in kubectl answering with the dry run's merge: it must apply
#      the validated manifests, merge after the sweep, save the JSON, exit with merge's code;
#   6. requires shard.sh and merge.sh to refuse a wrong index, a missing shard, the wrong seeds;
#   7. shellcheck on ci/k8s/*.sh, when shellcheck is installed.
#
#   bash ci/k8s/check.sh
#   BACKEND=madsim SEEDS=1..=40 bash ci/k8s/check.sh
#
# Environment:
#   RIPTIDE_BIN   the ordinary riptide build (default ${CARGO_TARGET_DIR:-target}/release/riptide)
#   RIPTIDE_VENV  the Python venv of ci/python-env.sh (default .venv-ci; made by it when missing);
#                 kubernetes-validate is pip-installed into it when missing
#   SCENARIO=crashes SEEDS=1..=8 SHARDS=4 BACKEND=turmoil   the sample sweep (BACKEND=madsim needs
#                 the madsim build: $RIPTIDE_MADSIM_BIN, $MADSIM_TARGET_DIR/release/riptide, or
#                 target/madsim/release/riptide)
#   FAIL_BUG=hwm-off-by-one BUG_SEEDS=1..=4   the planted-bug dry run (FAIL_BUG= skips it)
#   K8S_VERSIONS="1.29.0 1.37.0"   the Kubernetes versions whose schemas the manifests must satisfy
#   KUBECTL=kubectl (with kustomize v5 built in)
# Exit 0 when everything holds, 1 on the first check that does not, 2 when a tool is missing.
set -euo pipefail

cd "$(dirname "$0")/../.."
root="$(pwd)"
k8s="$root/ci/k8s"
SCENARIO="${SCENARIO:-crashes}"
SEEDS="${SEEDS:-1..=8}"
SHARDS="${SHARDS:-4}"
BACKEND="${BACKEND:-turmoil}"
FAIL_BUG="${FAIL_BUG-hwm-off-by-one}"
BUG_SEEDS="${BUG_SEEDS:-1..=4}"
K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"
KUBECTL="${KUBECTL:-kubectl}"
bin="${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}"

section() { printf '\n==== k8s: %s ==== (%ss)\n' "$*" "$SECONDS"; }
fail() {
  echo "ci/k8s/check.sh: FAIL: $*" >&2
  exit 1
}
missing() {
  echo "ci/k8s/check.sh: $*" >&2
  exit 2
}

case "${1:-}" in
  -h | --help)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
    exit 0
    ;;
  "") ;;
  *) missing "takes no arguments (see --help), not '$*'" ;;
esac

section "tools"
command -v "$KUBECTL" >/dev/null 2>&1 || missing "no '$KUBECTL' (kubectl renders the manifests with its built-in kustomize)"
echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"
[ -x "$bin" ] || missing "no riptide binary at '$bin' (cargo build --release -p riptide-cli, or set RIPTIDE_BIN)"
bin="$(realpath "$bin")"
echo "riptide: $bin"
if [ "$BACKEND" = madsim ] && [ -z "${RIPTIDE_MADSIM_BIN:-}" ] && [ -n "${MADSIM_TARGET_DIR:-}" ] &&
  [ -x "$MADSIM_TARGET_DIR/release/riptide" ]; then
  export RIPTIDE_MADSIM_BIN="$MADSIM_TARGET_DIR/release/riptide"
fi
venv="${RIPTIDE_VENV:-$root/.venv-ci}"
py="$venv/bin/python"
if [ ! -x "$py" ]; then
  echo "no venv at $venv: making it with ci/python-env.sh"
  RIPTIDE_VENV="$venv" bash "$root/ci/python-env.sh"
fi
if ! "$py" -c 'import kubernetes_validate, yaml' >/dev/null 2>&1; then
  echo "installing kubernetes-validate into $venv"
  "$py" -m pip install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.0'
fi
echo "kubernetes-validate: $("$py" -m kubernetes_validate --version 2>&1) ($py)"

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

section "render: ci/k8s as it is, and run.sh's overlay for $SCENARIO $SEEDS in $SHARDS shards on $BACKEND"
"$KUBECTL" kustomize "$k8s" >"$tmp/base.yaml" || fail "kubectl kustomize ci/k8s failed"
sample() { SCENARIO="$SCENARIO" SEEDS="$1" SHARDS="$SHARDS" BACKEND="$BACKEND" JOBS=2 BUG="${2:-}" bash "$k8s/run.sh" --render; }
sample "$SEEDS" >"$tmp/sample.yaml" || fail "run.sh --render failed"
for f in base sample; do
  echo "$f: $(grep -c '^kind:' "$tmp/$f.yaml") objects: $(grep '^kind:' "$tmp/$f.yaml" | cut -d' ' -f2 | sort | uniq -c | xargs)"
done

# Schema (each version) then lint.py; prints what is wrong, returns non-zero when anything is.
# kubernetes-validate only warns (exit 0) about a kind it has no schema for: that fails here too.
validate() {
  local file="$1" v ok=0
  for v in $K8S_VERSIONS; do
    "$py" -m kubernetes_validate --strict --quiet -k "$v" "$file" >"$tmp/schema.out" 2>&1 || ok=1
    cat "$tmp/schema.out"
    if grep -q "Couldn't find schema" "$tmp/schema.out"; then ok=1; fi
  done
  "$py" "$k8s/lint.py" "$file" --scripts "$k8s" || ok=1
  return "$ok"
}

section "validate: OpenAPI schema of Kubernetes $K8S_VERSIONS (strict), and lint.py"
for f in base sample; do
  validate "$tmp/$f.yaml" || fail "the $f manifests do not validate (above)"
  echo "$f: valid"
done

section "broken manifests: each must be rejected"
broken=0
# NAME, then sed arguments that break the sample.
break_it() {
  local name="$1" out="$tmp/broken.out"
  shift
  sed "$@" "$tmp/sample.yaml" >"$tmp/broken.yaml"
  cmp -s "$tmp/sample.yaml" "$tmp/broken.yaml" && fail "breaking '$name' changed nothing: the edit no longer matches the manifests"
  if validate "$tmp/broken.yaml" >"$out" 2>&1; then
    cat "$out"
    fail "validation passed a broken manifest: $name"
  fi
  echo "rejected: $name -- $(grep -m 1 -E 'ERROR|WARN|LINT' "$out" | cut -c 1-220)"
  broken=$((broken + 1))
}
break_it "completionMode: Indexd" -e 's/completionMode: Indexed/completionMode: Indexd/'
break_it "no container image" -e '/^ *image: /d'
break_it "unknown field (completion: for completions:)" -e 's/^\( *\)completions: /\1completion: /'
break_it "completions as a string" -e "s/^\\( *\\)completions: $SHARDS\$/\\1completions: \"$SHARDS\"/"
break_it "completions differ from SHARDS" -e "s/^\\( *\\)completions: $SHARDS\$/\\1completions: $((SHARDS + 1))/"
break_it "restartPolicy Always in a Job" -e 's/restartPolicy: Never/restartPolicy: Always/'
break_it "a claim that is not rendered" -e 's/claimName: riptide-shards/claimName: riptide-shard/'
break_it "merge Job not suspended" -e 's/^\( *\)suspend: true/\1suspend: false/'
break_it "kind misspelt (Jobb)" -e 's/^kind: Job$/kind: Jobb/'
break_it "read-only root without /tmp (sweep --jobs writes there)" -e 's#mountPath: /tmp$#mountPath: /scratch#'
echo "$broken broken manifests rejected"

# The dry run: every pod's command, then the merge's, then the unsharded sweep to compare with.
# $1 names it, $2 the rendered manifests whose ConfigMap gives the pods' environment, $3 the
# exit code every step must give (0 pass, 1 findings).
dry_run() {
  local name="$1" manifests="$2" want="$3" dir="$tmp/$1" i rc params=()
  mkdir -p "$dir/shards"
  mapfile -t params < <("$py" "$k8s/lint.py" --env "$manifests")
  local -A p=()
  local kv
  for kv in "${params[@]}"; do p["${kv%%=*}"]="${kv#*=}"; done
  echo "pods' environment (ConfigMap riptide-sweep): ${params[*]}"
  # The pods, side by side as the Job runs them, each with a working directory and a temp dir of
  # its own (the pod's emptyDirs at /work and /tmp), with the Job's JOB_COMPLETION_INDEX.
  pids=()
  for ((i = 0; i < p[SHARDS]; i++)); do
    mkdir -p "$dir/pod-$i/tmp"
    (cd "$dir/pod-$i" && exec env "${params[@]}" JOB_COMPLETION_INDEX="$i" OUT_DIR="$dir/shards" \
      TMPDIR="$dir/pod-$i/tmp" RIPTIDE_BIN="$bin" bash "$k8s/shard.sh") >"$dir/pod-$i.log" 2>&1 &
    pids+=("$!")
  done
  for i in "${!pids[@]}"; do
    rc=0
    wait "${pids[$i]}" || rc=$?
    sed "s/^/  pod $i: /" "$dir/pod-$i.log" | grep -E 'shard [0-9]+/[0-9]+|shard\.sh' || true
    [ "$rc" = 0 ] || fail "$name: shard.sh for JOB_COMPLETION_INDEX=$i exited $rc (a pod that wrote its result exits 0)"
  done
  pids=()
  local written=("$dir"/shards/shard-*.json)
  echo "  shards written: ${written[*]##*/}"
  rc=0
  (cd "$dir" && exec env "${params[@]}" OUT_DIR="$dir/shards" RIPTIDE_BIN="$bin" bash "$k8s/merge.sh") \
    >"$dir/merge.log" 2>&1 || rc=$?
  grep -E '^(scenario|backend|shards|seeds|verdict) |^seed [0-9]+:|^merge\.sh' "$dir/merge.log" | sed 's/^/  merge: /'
  [ "$rc" = "$want" ] || fail "$name: merge.sh exited $rc, expected $want (log: above)"
  grep '^merged\.json ' "$dir/merge.log" | cut -d' ' -f2- | cmp -s - "$dir/shards/merged.json" ||
    fail "$name: the merged.json line of merge.sh's log is not the merged.json it wrote"
  # The same sweep, unsharded, as one run of riptide.
  local whole=("$bin" sweep --scenario "${p[SCENARIO]}" --seeds "${p[SEEDS]}" --jobs "${p[JOBS]}"
    --failures "$dir/whole-failures.txt" --json)
  [ -z "${p[BACKEND]}" ] || whole+=(--backend "${p[BACKEND]}")
  [ -z "${p[NO_COVERAGE]:-}" ] || whole+=(--no-coverage)
  [ -z "${p[BUG]:-}" ] || whole+=(--bug "${p[BUG]}")
  rc=0
  (cd "$dir" && exec "${whole[@]}") >"$dir/whole.json" 2>"$dir/whole.err" || rc=$?
  [ "$rc" = "$want" ] || {
    cat "$dir/whole.err" >&2
    fail "$name: the unsharded sweep exited $rc, expected $want"
  }
  "$py" - "$dir/shards/merged.json" "$dir/whole.json" "$name" <<'EOF' || fail "$name: the merged result differs from the unsharded sweep (above)"
import json, math, sys
merged, whole = (json.load(open(p)) for p in sys.argv[1:3])
name = sys.argv[3]
bad = []
for key in sorted(set(merged) | set(whole)):
    if key == "wall_s":  # the longest shard's against the whole run's
        continue
    m, w = merged.get(key), whole.get(key)
    if key == "sim_time_s":  # a sum in another order
        same = math.isclose(m, w, rel_tol=1e-9, abs_tol=1e-9)
    else:
        same = m == w
    if not same:
        bad.append(f"  {key}: merged {json.dumps(m)[:300]}\n  {' ' * len(key)}  whole  {json.dumps(w)[:300]}")
if bad:
    print(f"{name}: merged shards != unsharded sweep:", *bad, sep="\n")
    sys.exit(1)
cov = whole.get("coverage") or {}
print(f"  {name}: merged == unsharded: {whole['seeds']} seeds, {whole['passed']} passed, "
      f"{whole['failed']} failed (seeds {[f['seed'] for f in whole['failures']]}), "
      f"coverage {'counted' if cov else 'off'}, {len(whole.get('window_samples', []))} windows, "
      f"{len(whole.get('seed_lags', []))} lags; equal in every field but wall time")
EOF
  echo "  exit codes: shard.sh 0 for each pod, merge.sh $want, unsharded sweep $want"
}

section "dry run: $SHARDS pods of shard.sh, merge.sh, against the unsharded sweep ($SCENARIO $SEEDS on $BACKEND)"
dry_run pass "$tmp/sample.yaml" 0
if [ -n "$FAIL_BUG" ]; then
  section "dry run with a planted bug: $SCENARIO $BUG_SEEDS, --bug $FAIL_BUG (findings: exit 1 through merge)"
  sample "$BUG_SEEDS" "$FAIL_BUG" >"$tmp/bug.yaml" || fail "run.sh --render failed"
  validate "$tmp/bug.yaml" || fail "the planted-bug sample does not validate"
  dry_run bug "$tmp/bug.yaml" 1
  [ "$(grep -o '"failed":[0-9]*' "$tmp/bug/shards/merged.json" | head -n 1)" != '"failed":0' ] ||
    fail "the planted bug $FAIL_BUG found nothing in $BUG_SEEDS: pick FAIL_BUG/BUG_SEEDS that catch it"
fi

section "run.sh's own steps, against a stand-in kubectl that answers as a cluster would"
# No cluster here: a stand-in for kubectl records what run.sh asks and answers with the dry run's
# merge (its log and exit code), so that run.sh's sequence (delete, apply what it rendered, wait
# for the sweep, start the merge, read its log and exit code, save the JSON) and its exit code are
# exercised. It tests run.sh, not Kubernetes.
cat >"$tmp/kubectl" <<'STUB'
#!/usr/bin/env bash
# A stand-in for kubectl (ci/k8s/check.sh). STUB_DIR holds merge.log and merge.rc to answer with.
set -euo pipefail
echo "$*" >>"$STUB_DIR/calls"
args=" $* "
case "$args" in
  " kustomize "*) exec "$REAL_KUBECTL" "$@" ;;
  *" delete job riptide-sweep riptide-merge "*) ;;
  *" apply -f "*) cp "${*: -1}" "$STUB_DIR/applied.yaml" ;;
  *" get job riptide-sweep -o jsonpath={range .status.conditions"*) printf 'SuccessCriteriaMet\nComplete\n' ;;
  *" get job riptide-merge -o jsonpath={range .status.conditions"*)
    [ -e "$STUB_DIR/merge-started" ] || { echo "run.sh waited for the merge before starting it" >&2; exit 1; }
    if [ "$(cat "$STUB_DIR/merge.rc")" = 0 ]; then echo Complete; else printf 'FailureTarget\nFailed\n'; fi ;;
  *" get job "*) echo "stand-in progress" ;;
  *' patch job riptide-merge --type=merge -p {"spec":{"suspend":false}} '*) touch "$STUB_DIR/merge-started" ;;
  *" get pods -l job-name=riptide-merge "*) echo pod/riptide-merge-x1; echo pod/riptide-merge-x2 ;;
  *" logs pod/riptide-merge-x2 -c merge "*) cat "$STUB_DIR/merge.log" ;;
  *" get pod/riptide-merge-x2 -o jsonpath="*) cat "$STUB_DIR/merge.rc" ;;
  *) echo "stand-in kubectl: unexpected call: $*" >&2; exit 1 ;;
esac
STUB
chmod +x "$tmp/kubectl"
runs=(pass:0)
[ -z "$FAIL_BUG" ] || runs+=(bug:1)
for run in "${runs[@]}"; do
  name="${run%%:*}" want="${run#*:}"
  stub="$tmp/stub-$name"
  mkdir -p "$stub"
  cp "$tmp/$name/merge.log" "$stub/merge.log"
  echo "$want" >"$stub/merge.rc"
  seeds="$SEEDS" bug=""
  [ "$name" = pass ] || seeds="$BUG_SEEDS" bug="$FAIL_BUG"
  rc=0
  STUB_DIR="$stub" REAL_KUBECTL="$(command -v "$KUBECTL")" KUBECTL="$tmp/kubectl" RESULT="$stub/result.json" \
    SCENARIO="$SCENARIO" SEEDS="$seeds" SHARDS="$SHARDS" BACKEND="$BACKEND" JOBS=2 BUG="$bug" TIMEOUT=30 \
    bash "$k8s/run.sh" >"$stub/run.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || {
    cat "$stub/run.out"
    fail "run.sh ($name) exited $rc with a merge that exited $want"
  }
  cmp -s "$stub/result.json" "$tmp/$name/shards/merged.json" || fail "run.sh ($name) saved a RESULT other than the merge's merged.json"
  cmp -s "$stub/applied.yaml" "$tmp/$([ "$name" = pass ] && echo sample || echo bug).yaml" ||
    fail "run.sh ($name) applied manifests other than the ones validated above"
  grep -q '^seeds ' "$stub/run.out" || fail "run.sh ($name) did not print the merge's summary"
  echo "run.sh ($name): kubectl $(cut -d' ' -f1-2 "$stub/calls" | grep -v '^kustomize' | uniq | paste -sd, | sed 's/,/, /g'); applied the validated manifests, saved RESULT = merged.json, printed '$(grep '^verdict' "$stub/run.out" | xargs)', exit $rc"
done

section "the scripts refuse what they must"
mapfile -t env_pass < <("$py" "$k8s/lint.py" --env "$tmp/sample.yaml")
expect_exit() {
  local want="$1" what="$2" rc=0
  shift 2
  "$@" >"$tmp/refuse.out" 2>&1 || rc=$?
  [ "$rc" = "$want" ] || {
    cat "$tmp/refuse.out"
    fail "$what: exited $rc, expected $want"
  }
  echo "exit $rc: $what -- $(tail -n 1 "$tmp/refuse.out" | cut -c 1-200)"
}
expect_exit 2 "shard.sh with JOB_COMPLETION_INDEX=$SHARDS of SHARDS=$SHARDS" \
  env "${env_pass[@]}" JOB_COMPLETION_INDEX="$SHARDS" OUT_DIR="$tmp/refused" RIPTIDE_BIN="$bin" bash "$k8s/shard.sh"
expect_exit 2 "shard.sh without JOB_COMPLETION_INDEX" \
  env -u JOB_COMPLETION_INDEX "${env_pass[@]}" OUT_DIR="$tmp/refused" RIPTIDE_BIN="$bin" bash "$k8s/shard.sh"
expect_exit 2 "shard.sh with a scenario riptide does not know" \
  env "${env_pass[@]}" SCENARIO=no-such-scenario JOB_COMPLETION_INDEX=0 OUT_DIR="$tmp/refused" RIPTIDE_BIN="$bin" bash "$k8s/shard.sh"
[ ! -e "$tmp/refused/shard-1.json" ] || fail "shard.sh left a result after riptide refused its arguments"
expect_exit 2 "merge.sh with SEEDS other than the shards'" \
  env "${env_pass[@]}" SEEDS=1..=1000 OUT_DIR="$tmp/pass/shards" RIPTIDE_BIN="$bin" bash "$k8s/merge.sh"
mv "$tmp/pass/shards/shard-2.json" "$tmp/pass/shard-2.json"
expect_exit 2 "merge.sh with shard 2 missing" \
  env "${env_pass[@]}" OUT_DIR="$tmp/pass/shards" RIPTIDE_BIN="$bin" bash "$k8s/merge.sh"

section "shellcheck"
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck "$k8s"/*.sh || fail "shellcheck found problems in ci/k8s (above)"
  echo "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ci/k8s/*.sh clean"
else
  echo "shellcheck not installed: skipped (apt-get install shellcheck)"
fi

section "done"
echo "ci/k8s: manifests valid for Kubernetes $K8S_VERSIONS, $broken broken manifests rejected, sharded dry run == unsharded sweep (${SECONDS}s)"
