#!/usr/bin/env bash
# The project's test command: format, lints, every test (unit, e2e against a real
# kube-apiserver, the CRD drift check). Run from anywhere.
#
# The e2e tests (and the leader-election tests) need a real Kubernetes API server: with
# E2E_KUBECONFIG set, that cluster (a throwaway one without Flux); otherwise an envtest server
# (etcd + kube-apiserver from KUBEBUILDER_ASSETS, started by hack/envtest.sh for this run and
# stopped at its end). There is no fallback: without either, this fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if [ -z "${E2E_KUBECONFIG:-}" ]; then
  for b in kube-apiserver etcd kubectl; do
    if [ -z "${KUBEBUILDER_ASSETS:-}" ] || [ ! -x "$KUBEBUILDER_ASSETS/$b" ]; then
      echo "hack/test.sh: no API server for the e2e tests: set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, etcd and kubectl (setup-envtest use 1.36.x -p path), or E2E_KUBECONFIG to a throwaway cluster" >&2
      exit 1
    fi
  done
fi

echo "--- cargo fmt --check"
cargo fmt --all -- --check
echo "--- cargo clippy -D warnings"
cargo clippy --locked --workspace --all-targets -- -D warnings

if [ -z "${E2E_KUBECONFIG:-}" ]; then
  echo "--- envtest: starting kube-apiserver and etcd from $KUBEBUILDER_ASSETS"
  export ENVTEST_DIR="${ENVTEST_DIR:-$PWD/target/envtest-test}"
  trap 'hack/envtest.sh stop' EXIT
  eval "$(hack/envtest.sh start)"
fi

# Every operator the e2e tests start runs as its own ServiceAccount under only config/rbac (plus
# config/metrics-secure where it applies), as it runs in a cluster: least privilege is tested in
# every scenario, not in one. E2E_RBAC=0 runs them as the admin.
export E2E_RBAC="${E2E_RBAC:-1}"
echo "--- tests"
cargo build --locked -p flux-reporter
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --workspace --no-fail-fast
else
  cargo test --locked --workspace --no-fail-fast -- --test-threads 1
fi
