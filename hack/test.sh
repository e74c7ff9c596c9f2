#!/usr/bin/env bash
# The project's test command: format, lints, every test (unit, the API server
# double, e2e, the CRD drift check). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "--- cargo fmt --check"
cargo fmt --all -- --check
echo "--- cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "--- tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast
fi
