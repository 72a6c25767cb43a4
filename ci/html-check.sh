#!/usr/bin/env bash
# Render a riptide report.html (riptide sim/repro/certify) in headless Chromium and check it:
# no JavaScript console error, one timeline <svg> per partition (the page's data-partitions, and
# report.json's summary when it sits beside the page), window bars with a size for every window
# declared (and every window of the figures beside the page), a latency chart with a size and
# its points, and a screenshot of the whole page not more than 95 % one colour (ci/html_check.py
# says each).
# Exit 0 when it passes, 1 when it does not (each failure on a "FAIL:" line), 2 when it cannot
# run.
#
#   bash ci/html-check.sh riptide-out/seed-1/report.html
#   bash ci/html-check.sh --self-test riptide-out/seed-1/report.html   # also: pages made bad
#       from it (a JavaScript error, a hidden body, a chart removed, an empty page, the latency
#       chart removed or hidden, the window bars removed or hidden) must fail
#   bash ci/html-check.sh --sim [--self-test]    # first `riptide sim --seed 1 --scenario chaos`
#       ($RIPTIDE_BIN, else target/release/riptide), then check its report.html
#   bash ci/html-check.sh --install-only          # install what it needs, check nothing (exit 2
#       when it cannot: the e2e test skips then)
#
# Installs what it needs when it is missing: Debian's chromium and chromium-driver (apt-get,
# sudo when not root), and selenium and Pillow into the venv of ci/python-env.sh (.venv-ci/, or
# RIPTIDE_VENV); exit 2 when it cannot. Environment: CHROMIUM, CHROMEDRIVER (the binaries),
# SCREENSHOT (keep the screenshot there).
set -euo pipefail
cd "$(dirname "$0")/.."

self_test=""
sim=""
page=""
install_only=""
for a in "$@"; do
  case "$a" in
    --self-test) self_test="--self-test" ;;
    --sim) sim=1 ;;
    --install-only) install_only=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) page="$a" ;;
  esac
done

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != "0" ]; then
    command -v sudo >/dev/null 2>&1 || { echo "html-check: need root or sudo to apt-get install chromium chromium-driver" >&2; exit 2; }
    sudo="sudo"
  fi
  echo "html-check: installing chromium chromium-driver (apt-get)"
  { $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; } ||
    { echo "html-check: could not install chromium chromium-driver" >&2; exit 2; }
fi

# shellcheck source=ci/python-env.sh
. ci/python-env.sh >/dev/null
if ! "$VENV_PY" -c 'import selenium, PIL' >/dev/null 2>&1; then
  echo "html-check: installing selenium and Pillow into $VENV"
  "$VENV_PY" -m pip install --quiet --disable-pip-version-check selenium Pillow ||
    { echo "html-check: could not install selenium and Pillow into $VENV" >&2; exit 2; }
fi
[ -z "$install_only" ] || { echo "html-check: chromium, chromedriver, selenium and Pillow are there"; exit 0; }

if [ -n "$sim" ]; then
  bin="${RIPTIDE_BIN:-${CARGO_TARGET_DIR:-target}/release/riptide}"
  [ -x "$bin" ] || { echo "html-check: no riptide binary at $bin (set RIPTIDE_BIN)" >&2; exit 2; }
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
  rc=0
  "$bin" sim --seed 1 --scenario chaos --out "$out" >"$out/sim.txt" || rc=$?
  # 0 pass, 1 anomaly: either way there is a report to look at; 2 is a harness error.
  if [ "$rc" -gt 1 ]; then
    cat "$out/sim.txt"
    echo "html-check: riptide sim exited $rc" >&2
    exit 2
  fi
  grep '^html ' "$out/sim.txt"
  page="$out/report.html"
fi
[ -n "$page" ] || { echo "usage: bash ci/html-check.sh [--self-test] REPORT.html | --sim [--self-test]" >&2; exit 2; }

args=("$page")
[ -n "$self_test" ] && args+=("$self_test")
[ -n "${SCREENSHOT:-}" ] && args+=(--screenshot "$SCREENSHOT")
exec "$VENV_PY" ci/html_check.py "${args[@]}"
