#!/usr/bin/env bash
# riptide's test command: fmt and clippy (the ordinary build here, the madsim build in
# ci/madsim.sh), Rust tests, the release broker, planted bugs, the HTML report in headless Chromium
# (ci/html-check.sh), the madsim backend, then the end-to-end tests against real clients (kcat, kafka-python, confluent-kafka, moto). Installs what it needs when it is missing:
# kcat with apt-get, the Python packages into a virtual environment of its own (ci/python-env.sh:
# .venv-ci/, or RIPTIDE_VENV; never the system Python), made from $PYTHON (default python3).
#
#   bash ci/test.sh              # everything
#   E2E_ARGS='-k kcat' bash ci/test.sh   # extra pytest arguments for the e2e stage
#   SKIP_CARGO_TEST=1 bash ci/test.sh    # only build + e2e
#   bash ci/python-env.sh                # only the Python set-up
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"
PYTHON="${PYTHON:-python3}"
# Each section says how long the run has taken so far (seconds), so a slow stage shows, and the
# CPU seconds (user + system) of every command it has finished so far: on a machine shared with
# other work, the CPU figure is the one to compare between runs. (The madsim build running in the
# background is counted when it ends, in whichever stage that is.) What the stages cost, cold, in
# CPU seconds on this 2-core machine (2026-12-07): clippy --release 118 (449 in the dev profile,
# before it shared build scripts and proc macros with the test build); the release test build
# ~1,250 (1,359 with `debug = 1` everywhere and 33 test executables, now 20); running the tests ~70;
# own-broker 347 before its dev-dependencies matched riptide's features; mutants, k8s and the
# HTML check 15-25 each; the e2e tests about 12 minutes of wall time, mostly waiting.
clk_tck="$(getconf CLK_TCK)"
section() {
  local stat
  read -r -a stat <"/proc/$$/stat" || stat=()
  printf '\n==== %s ==== (%ss, cpu %ss)\n' "$*" "$SECONDS" "$(( (${stat[15]:-0} + ${stat[16]:-0}) / clk_tck ))"
}

section "environment"
echo "repo: $ROOT"
echo "rustc: $(rustc --version 2>/dev/null || echo missing)  cargo: $(cargo --version 2>/dev/null || echo missing)"
echo "python: $($PYTHON --version 2>&1)"

section "cargo fmt --check"
cargo fmt --all -- --check

section "madsim build: starts now, in the background, at the lowest CPU priority (nice 19)"
# `ci/madsim.sh build` (its clippy, its binary, its three test binaries: a second full build, in a
# target directory of its own) shares nothing with the stages below, so it runs beside them and
# takes only the CPU they leave idle: a core while the Rust tests run simulations one at a time,
# while mutants, own-broker's tests and the HTML check run, while packages install. The madsim
# stage below waits for it and prints its output. In a session of its own (setsid), so that an
# early exit of this script ends it too.
madsim_log="$(mktemp)"
setsid nice -n 19 bash ci/madsim.sh build >"$madsim_log" 2>&1 &
madsim_build=$!
trap 'kill -- -"$madsim_build" 2>/dev/null || true; rm -f "$madsim_log"' EXIT
echo "pid $madsim_build, output in $madsim_log"

section "cargo clippy --release -D warnings (ordinary build; the madsim build's in ci/madsim.sh)"
# --release: the build scripts (aws-lc-sys's and zstd-sys's C builds among them) and proc macros
# are then the release test build's own, built once for both; clippy's lints are the same.
cargo clippy --release --workspace --all-targets -- -D warnings

section "wire check (ci/wire-check.sh: framing, KIP-511 and error codes only in wire/)"
bash ci/wire-check.sh

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

section "install: python packages (virtual environment, ci/python-env.sh)"
# Sets VENV and VENV_PY; the e2e tests run under $VENV_PY (and start moto with it, sys.executable).
# shellcheck source=ci/python-env.sh
. ci/python-env.sh

if [ -z "${SKIP_CARGO_TEST:-}" ]; then
  # In the release profile: the release binary below reuses every dependency this builds, where
  # a debug test build would compile the ~400 dependencies a second time.
  section "cargo test --release --workspace"
  cargo test --release --workspace
fi

if [ -n "${SKIP_CARGO_TEST:-}" ]; then
  section "cargo build --release -p riptide-cli"
  cargo build --release -p riptide-cli
fi
# Otherwise the test build made it (cli/tests run the binary): building it again with
# `-p riptide-cli` would compile 17 crates a second time, with the features of that package alone.
export RIPTIDE_BIN="${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/riptide}"
echo "RIPTIDE_BIN=$RIPTIDE_BIN"
test -x "$RIPTIDE_BIN"

section "riptide as a library: examples/own-broker (its own broker in riptide's world)"
# An outside crate with a workspace of its own, sharing the target directory: fmt, clippy, its
# seeded tests (which include finding its planted bug); then, with the bug planted through the
# environment, its seeded test must fail.
(
  cd examples/own-broker
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  cargo fmt -- --check
  cargo clippy --release --all-targets -- -D warnings
  cargo test --release
  if OWN_BROKER_BUG=1 cargo test --release --test seeded seeded_runs_pass; then
    echo "examples/own-broker: the planted bug went unnoticed" >&2
    exit 1
  fi
  echo "examples/own-broker: the planted bug failed its seeded test, as it must"
)

section "planted bugs: every one must be caught (riptide mutants)"
"$RIPTIDE_BIN" mutants --seeds 60

section "Kubernetes sweep (ci/k8s/check.sh: manifests against the schema, broken ones rejected, a 4-shard dry run merged equals the unsharded sweep)"
# kustomize (built into kubectl) renders the manifests; a machine without kubectl skips this stage
# with a line saying so rather than fail on a tool riptide itself does not need.
if command -v kubectl >/dev/null 2>&1; then
  bash ci/k8s/check.sh
else
  echo "skipped: no kubectl on this machine (ci/k8s/check.sh needs its kustomize)"
fi

section "HTML report (ci/html-check.sh: sim chaos seed 1's report.html in headless Chromium; pages made bad from it must fail)"
# Installs chromium and chromium-driver (apt-get) and selenium and Pillow (the venv) when missing.
bash ci/html-check.sh --sim --self-test

section "madsim backend (ci/madsim.sh: its own build, determinism, small sweep, planted bugs)"
echo "waiting for the madsim build started at the beginning (pid $madsim_build)"
madsim_rc=0
wait "$madsim_build" || madsim_rc=$?
cat "$madsim_log"
if [ "$madsim_rc" != 0 ]; then
  echo "the madsim build (ci/madsim.sh build) failed: exit $madsim_rc" >&2
  exit 1
fi
# Built: its compile steps are no-ops now, then the tests, sweeps and planted bugs.
bash ci/madsim.sh

section "end-to-end tests (pytest tests/e2e)"
# About 12 minutes on this 2-core machine (2026-12-07: 47 tests, 626 s without kcat's); the bound
# leaves room for a slower one and still stops a hung client well inside CI's 90 minutes.
# shellcheck disable=SC2086
timeout --signal=INT --kill-after=30 1500 \
  "$VENV_PY" -m pytest -v tests/e2e ${E2E_ARGS:-}

section "done"
