#!/usr/bin/env bash
# Bounded fuzz run: the property-based fuzz targets of the dump parser and the
# list-page decoders (report/tests/fuzz_dumps.rs), FUZZ_SECONDS each (default
# 20), printing the executions per target; the corpus replay runs too.
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
echo "--- fuzz (${FUZZ_SECONDS}s per target)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo nextest run --locked -p flux-reporter-report --test fuzz_dumps --no-capture >"$log" 2>&1 || status=$?
grep -E "fuzz target|Summary" "$log" || true
if [ "$status" -ne 0 ]; then
  cat "$log"
  exit "$status"
fi
