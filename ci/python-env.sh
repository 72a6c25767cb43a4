#!/usr/bin/env bash
# The Python side of riptide's tests: a virtual environment of riptide's own with the clients the
# end-to-end tests and the bench use (kafka-python, confluent-kafka, moto[server], boto3, pytest,
# cryptography: the TLS tests make their certificates with it).
# Never the system Python: Debian 12+, Ubuntu 24.04 and GitHub's runners mark it
# EXTERNALLY-MANAGED (PEP 668) and pip refuses to install into it. A venv that already has the
# packages is reused as it is (no network).
#
#   bash ci/python-env.sh       # create or reuse it, print what it has
#   . ci/python-env.sh          # the same, and set VENV and VENV_PY for the caller (ci/test.sh, ci/bench.sh)
#
# Environment: RIPTIDE_VENV (where, default .venv-ci/ in the repository), PYTHON (the interpreter
# the venv is made from, default python3). Where `$PYTHON -m venv` fails for want of Debian's
# python3-venv (no ensurepip), python3-venv is installed with apt-get (sudo when not root) and the
# venv is made once more.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then set -euo pipefail; fi

VENV="${RIPTIDE_VENV:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv-ci}"
VENV_PY="$VENV/bin/python"
_riptide_base_py="${PYTHON:-python3}"
_riptide_py_packages=(kafka-python confluent-kafka 'moto[server]' boto3 pytest cryptography)
_riptide_py_imports='import kafka, confluent_kafka, moto.server, boto3, pytest, cryptography'

_riptide_venv_has_packages() {
  [ -x "$VENV_PY" ] && "$VENV_PY" -c "$_riptide_py_imports" >/dev/null 2>&1
}

# A venv whose python runs and has pip (a `python3 -m venv` that failed for want of ensurepip
# leaves one without pip behind).
_riptide_venv_usable() {
  [ -x "$VENV_PY" ] && "$VENV_PY" -m pip --version >/dev/null 2>&1
}

# Remove a broken venv, but never a directory that is not one (RIPTIDE_VENV could point anywhere).
_riptide_venv_remove() {
  if [ -f "$VENV/pyvenv.cfg" ] || [ ! -e "$VENV" ] || [ -z "$(ls -A "$VENV")" ]; then
    rm -rf "$VENV"
  else
    echo "$VENV exists and is not a virtual environment: remove it or set RIPTIDE_VENV" >&2
    return 1
  fi
}

_riptide_apt_install() {
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "need root or sudo to apt-get install $*" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get here: install $* (or whatever gives $_riptide_base_py a working venv module) by hand" >&2
    return 1
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

if _riptide_venv_has_packages; then
  echo "venv $VENV: kafka-python, confluent-kafka, moto[server], boto3, pytest, cryptography present"
else
  if ! _riptide_venv_usable; then
    _riptide_venv_remove
    echo "creating venv $VENV with $_riptide_base_py ($("$_riptide_base_py" --version 2>&1))"
    if ! "$_riptide_base_py" -m venv "$VENV"; then
      _riptide_venv_remove
      echo "'$_riptide_base_py -m venv' failed: installing python3-venv with apt-get"
      _riptide_apt_install python3-venv
      if ! "$_riptide_base_py" -m venv "$VENV"; then
        _riptide_py_ver="$("$_riptide_base_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
        echo "'$_riptide_base_py -m venv' still fails: this Python may need python${_riptide_py_ver}-venv" >&2
        false
      fi
    fi
  fi
  echo "installing ${_riptide_py_packages[*]} into $VENV"
  "$VENV_PY" -m pip install --quiet --disable-pip-version-check "${_riptide_py_packages[@]}"
  if ! _riptide_venv_has_packages; then
    echo "the packages do not import from $VENV_PY after pip install:" >&2
    "$VENV_PY" -c "$_riptide_py_imports"
  fi
fi
"$VENV_PY" - <<'EOF'
import importlib.metadata as md
import sys
print(f"  python {sys.version.split()[0]} ({sys.executable}, prefix {sys.prefix})")
for p in ("kafka-python", "confluent-kafka", "moto", "boto3", "pytest", "cryptography"):
    print(f"  {p} {md.version(p)}")
EOF
