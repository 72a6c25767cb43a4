#!/usr/bin/env bash
# One wire module (issue 13): Kafka framing, the KIP-511 ApiVersions fallback and Kafka error codes
# live in wire/ only. Fails, naming file and line, if riptide's Rust code outside wire/ (and the
# vendored kafka-protocol) grows another frame reader or numbers a Kafka error code by hand.
#
#   bash ci/wire-check.sh            # check the tree
#   bash ci/wire-check.sh DIR...     # check only these directories (used by its own self-test)
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=("$@")
if [ ${#dirs[@]} -eq 0 ]; then
  mapfile -t dirs < <(find . -mindepth 2 -maxdepth 2 -name Cargo.toml -printf '%h\n' \
    | sed 's|^\./||' | grep -vxE 'wire|vendor/.*|target.*' | sort)
  dirs+=(bench)
fi
existing=()
for d in "${dirs[@]}"; do [ -d "$d" ] && existing+=("$d"); done

fail=0
check() {
  local what="$1" pattern="$2" hits
  # An API version constant is an i16 too but no error code.
  hits="$(grep -rnE --include='*.rs' "$pattern" "${existing[@]}" \
    | grep -vE 'const +[A-Z_]*VERSION[A-Z_]*: *i16' || true)"
  if [ -n "$hits" ]; then
    printf 'wire-check: %s outside wire/ (use riptide_wire instead):\n%s\n\n' "$what" "$hits"
    fail=1
  fi
}

# A frame reader: reading a length prefix off a stream, or a function named for it.
check "a Kafka frame reader" \
  'fn +read_(owed_)?frame\b|\.read_[iu]32\(\)\s*\.await|\.read_exact\(|from_be_bytes\(\s*len\b'
# A hand-written length prefix on a frame being built.
check "a hand-written frame length prefix" \
  'copy_from_slice\(&len\.to_be_bytes\(\)\)|\[\.\.4\]\.copy_from_slice'
# The KIP-511 fallback: decoding an ApiVersions body at v0 after the asked version failed.
check "a second KIP-511 ApiVersions fallback" \
  'ApiVersionsResponse::decode\([^)]*, *0\)'
# Kafka error codes numbered by hand: a table of i16 constants, or a literal code compared or set.
check "a hand-numbered Kafka error code" \
  'const +[A-Z_]+: *i16 *= *-?[0-9]+ *;|\bmod +codes\b|(error_code|\bcode) *(==|!=|=|:) *-?[1-9][0-9]*\b|with_error_code\( *-?[1-9]'

if [ "$fail" = 0 ]; then
  echo "wire-check: framing, KIP-511 and error codes only in wire/ (${existing[*]})"
fi
exit "$fail"
