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
# Each section says how long the run has taken so far (seconds), so a slow stage shows.
section() { printf '\n==== %s ==== (%ss)\n' "$*" "$SECONDS"; }

section "environment"
echo "repo: $ROOT"
echo "rustc: $(rustc --version 2>/dev/null || echo missing)  cargo: $(cargo --version 2>/dev/null || echo missing)"
echo "python: $($PYTHON --version 2>&1)"

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy -D warnings (ordinary build; the madsim build's in ci/madsim.sh)"
cargo clippy --workspace --all-targets -- -D warnings

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
  cargo clippy --all-targets -- -D warnings
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
bash ci/madsim.sh

section "end-to-end tests (pytest tests/e2e)"
# About 12 minutes on this 2-core machine (2026-12-07: 47 tests, 626 s without kcat's); the bound
# leaves room for a slower one and still stops a hung client well inside CI's 90 minutes.
# shellcheck disable=SC2086
timeout --signal=INT --kill-after=30 1500 \
  "$VENV_PY" -m pytest -v tests/e2e ${E2E_ARGS:-}

section "done"
