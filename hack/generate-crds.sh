#!/usr/bin/env bash
# Regenerate config/crd/bases from the Rust types in api/ (the drift test fails until you do).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q -p flux-reporter-api --example write_crds -- config/crd/bases
