#!/usr/bin/env bash
# A real Kubernetes API server (etcd + kube-apiserver from KUBEBUILDER_ASSETS, the envtest
# convention; e2e/src/envtest.rs) for the test suite and for people:
#
#   eval "$(hack/envtest.sh start)"   # a throwaway cluster with the CRDs: exports KUBECONFIG,
#                                     # E2E_KUBECONFIG (the tests' cluster) and
#                                     # E2E_DEPLOYMENT_CONTROLLER=0
#   hack/envtest.sh seed FILE...      # put the objects of dumps into it, statuses included
#                                     # (e.g. examples/flux-cluster-dump.yaml)
#   hack/envtest.sh stop
#
# KUBEBUILDER_ASSETS names a directory holding kube-apiserver, etcd and kubectl, as
# `setup-envtest use 1.36.x -p path` prints it. The state (certificates, logs, the admin
# kubeconfig) is in ENVTEST_DIR (default target/envtest-run); etcd's data is on /dev/shm.
# Starting again stops the pair that ENVTEST_DIR names first.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ENVTEST_DIR:-$PWD/target/envtest-run}

missing() {
  echo "envtest: $1; set KUBEBUILDER_ASSETS to a directory holding kube-apiserver, etcd and kubectl (setup-envtest use 1.36.x -p path)" >&2
  exit 1
}

case "${1:-}" in
start)
  [ -n "${KUBEBUILDER_ASSETS:-}" ] || missing "KUBEBUILDER_ASSETS is not set"
  for b in kube-apiserver etcd kubectl; do
    [ -x "$KUBEBUILDER_ASSETS/$b" ] || missing "$KUBEBUILDER_ASSETS/$b is missing"
  done
  cargo build -q --locked -p flux-reporter -p flux-reporter-e2e --bin envtest >&2
  bin=${CARGO_TARGET_DIR:-target}/debug/envtest
  "$bin" stop "$dir"
  kubeconfig=$("$bin" start "$dir")
  # The project's CRDs and the Flux CRDs of the e2e fixtures, established.
  KUBECONFIG=$kubeconfig "$KUBEBUILDER_ASSETS/kubectl" apply --server-side -o name \
    -f config/crd/bases -f e2e/tests/fixtures/flux-crds.yaml >/dev/null
  KUBECONFIG=$kubeconfig "$KUBEBUILDER_ASSETS/kubectl" wait --for condition=established \
    --timeout=60s crd --all >/dev/null
  # An API server alone: nothing writes Deployment status (the e2e harness does, see e2e/README.md).
  echo "export KUBECONFIG=$kubeconfig E2E_KUBECONFIG=$kubeconfig E2E_DEPLOYMENT_CONTROLLER=0"
  ;;
seed)
  shift
  cargo build -q --locked -p flux-reporter -p flux-reporter-e2e --bin envtest >&2
  "${CARGO_TARGET_DIR:-target}/debug/envtest" seed "$@"
  ;;
stop)
  bin=${CARGO_TARGET_DIR:-target}/debug/envtest
  if [ -x "$bin" ]; then "$bin" stop "$dir"; fi
  ;;
*)
  echo "usage: hack/envtest.sh start|stop|seed FILE..." >&2
  exit 2
  ;;
esac
