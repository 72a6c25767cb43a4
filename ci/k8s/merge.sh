#!/usr/bin/env bash
# The merge step of a sharded riptide sweep: `riptide merge` over the shards the Indexed Job wrote.
# The command of the riptide-merge Job (ci/k8s/merge-job.yaml, mounted from the riptide-scripts
# ConfigMap), and of ci/k8s/check.sh's local dry run.
#
#   SHARDS=4 SEEDS=1..=8 OUT_DIR=/tmp/shards bash ci/k8s/merge.sh
#
# Environment (from the riptide-sweep ConfigMap and the container's env):
#   SHARDS       N: merges OUT_DIR/shard-1.json .. shard-N.json, exactly these. (A shard-*.json
#                glob would also take shards an earlier sweep with more shards left on the volume.)
#   SEEDS        the sweep's seeds, A..=B or A..B: the merged result must count every one of them
#   OUT_DIR      where the shards are and merged.json goes (default /shards)
#   RIPTIDE_BIN  the riptide binary (default ${CARGO_TARGET_DIR:-target}/release/riptide)
#
# Runs `riptide merge OUT_DIR/shard-1.json ... --json > OUT_DIR/merged.json`, prints merge's text
# summary (counts, failures with repro lines, coverage, the verdict), then one line
# `merged.json {...}` holding the merged JSON (ci/k8s/run.sh saves it from the pod's log).
# Exit code: riptide merge's, 0 pass, 1 findings, 2 could not run or harness errors; also 2 when a
# shard is missing or the merged result does not count every seed of SEEDS.
set -euo pipefail

die() {
  echo "merge.sh: $*" >&2
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

shards="${SHARDS:-}"
seeds="${SEEDS:-}"
out_dir="${OUT_DIR:-/shards}"
bin="${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}"

[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "SHARDS must be a positive whole number, not '$shards'"
[ -x "$bin" ] || die "no riptide binary at '$bin' (set RIPTIDE_BIN)"

# The number of seeds in A..=B or A..B (riptide's own syntax; riptide checked it in each shard).
if [[ "$seeds" =~ ^([0-9]{1,18})\.\.(=?)([0-9]{1,18})$ ]]; then
  first=$((10#${BASH_REMATCH[1]}))
  end=$((10#${BASH_REMATCH[3]}))
  [ -z "${BASH_REMATCH[2]}" ] || end=$((end + 1))
  expected=$((end > first ? end - first : 0))
else
  die "SEEDS must be A..=B or A..B (whole numbers of at most 18 digits), not '$seeds'"
fi

files=()
missing=()
for ((i = 1; i <= shards; i++)); do
  f="$out_dir/shard-$i.json"
  if [ -s "$f" ]; then files+=("$f"); else missing+=("$f"); fi
done
[ "${#missing[@]}" = 0 ] || die "missing shard results (did the sweep Job complete?): ${missing[*]}"

merged="$out_dir/merged.json"
rc=0
"$bin" merge "${files[@]}" --json >"$merged.partial" || rc=$?
if [ "$rc" -gt 2 ] || ! [ -s "$merged.partial" ]; then
  rm -f "$merged.partial"
  die "riptide merge exited $rc without a result (see above)"
fi
mv "$merged.partial" "$merged"

# The top-level "seeds" is the object's third key (scenario, backend, seeds): the first match.
counted="$(grep -o '"seeds":[0-9]*' "$merged" | head -n 1 | cut -d: -f2)"
if [ "$counted" != "$expected" ]; then
  echo "merge.sh: the merged result counts ${counted:-no} seeds, SEEDS=$seeds has $expected: shards of another sweep?" >&2
  rc=2
fi

# The readable summary (the same merge, as text), then the JSON for machines.
"$bin" merge "${files[@]}" || true
echo "merged.json $(cat "$merged")"
echo "merge.sh: merged $shards shards of $seeds into $merged; exit $rc" >&2
exit "$rc"
