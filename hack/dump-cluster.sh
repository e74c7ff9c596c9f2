#!/usr/bin/env bash
# Write a cluster dump for `flux-reporter report --from FILE`.
#
# Usage: hack/dump-cluster.sh [FILE]     (no FILE, or "-", writes to stdout)
#
# Environment:
#   FLUX_NAMESPACE  namespace of the Flux controllers (default flux-system)
#   KUBECTL         kubectl binary to use (default kubectl); the current
#                   kubeconfig context is the cluster that is dumped
#
# The dump is a multi-document YAML file. Each document is exactly what one
# kubectl command prints, preceded by a comment naming that command:
#   1. kubectl version -o yaml
#   2. the Flux CRDs (label app.kubernetes.io/part-of=flux)
#   3. the nodes
#   4. the Flux Deployments in $FLUX_NAMESPACE
#   5. every object of every Flux CRD found in 2, in all namespaces
#   6. the FluxInstance / ResourceSet / ResourceSetInputProvider CRDs and
#      objects, when those CRDs exist
# Only `kubectl version` must succeed. Anything else that cannot be read (RBAC,
# a CRD without a served version, ...) is reported on stderr and skipped, so
# the report made from the dump can say what it could not see.
# examples/flux-cluster-dump.yaml is a sample of the result.
set -euo pipefail

FLUX_NAMESPACE="${FLUX_NAMESPACE:-flux-system}"
KUBECTL="${KUBECTL:-kubectl}"
OUT="${1:--}"
PART_OF="app.kubernetes.io/part-of=flux"
OPERATOR_GROUP="fluxcd.controlplane.io"
OPERATOR_PLURALS=(fluxinstances resourcesets resourcesetinputproviders)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
DUMP="$WORK/dump.yaml"
: >"$DUMP"
DOCS=0
SKIPPED=0

warn() {
  printf 'dump-cluster: warning: %s\n' "$*" >&2
}

# section DISPLAY CMD...
# Runs CMD; on success appends "---", "# DISPLAY" and its output to the dump.
# On failure prints a warning with kubectl's error and returns 1.
section() {
  local display="$1"
  shift
  if "$@" >"$WORK/out" 2>"$WORK/err"; then
    if [[ $DOCS -gt 0 ]]; then
      printf -- '---\n' >>"$DUMP"
    fi
    printf '# %s\n' "$display" >>"$DUMP"
    cat "$WORK/out" >>"$DUMP"
    DOCS=$((DOCS + 1))
    return 0
  fi
  SKIPPED=$((SKIPPED + 1))
  warn "skipped '${display}': $(tr '\n' ' ' <"$WORK/err")"
  return 1
}

# 1. API server version: the one read that must work (it proves the cluster answers).
if ! section "kubectl version -o yaml" "$KUBECTL" version -o yaml; then
  printf 'dump-cluster: error: cannot read the API server version; is the kubeconfig context right?\n' >&2
  exit 1
fi

# 2-4. Flux CRDs, nodes, Flux Deployments.
section "kubectl get crds -l ${PART_OF} -o yaml" \
  "$KUBECTL" get crds -l "$PART_OF" -o yaml || true
section "kubectl get nodes -o yaml" \
  "$KUBECTL" get nodes -o yaml || true
section "kubectl -n ${FLUX_NAMESPACE} get deployments -l ${PART_OF} -o yaml" \
  "$KUBECTL" -n "$FLUX_NAMESPACE" get deployments -l "$PART_OF" -o yaml || true

# 5. Every Flux kind, discovered from the CRDs as plural.group.
resources=""
if resources="$("$KUBECTL" get crds -l "$PART_OF" \
  -o jsonpath='{range .items[*]}{.spec.names.plural}.{.spec.group}{"\n"}{end}' 2>"$WORK/err")"; then
  resources="$(printf '%s\n' "$resources" | sed '/^$/d' | LC_ALL=C sort -t. -k2 -k1,1)"
  if [[ -z "$resources" ]]; then
    warn "no CRD has the label ${PART_OF}: is Flux installed?"
  fi
else
  warn "cannot list the Flux CRDs: $(tr '\n' ' ' <"$WORK/err")"
  resources=""
fi
while IFS= read -r res; do
  [[ -n "$res" ]] || continue
  section "kubectl get ${res} -A -o yaml" "$KUBECTL" get "$res" -A -o yaml || true
done <<<"$resources"

# 6. Operator kinds, when their CRDs exist. Naming several CRDs makes kubectl
# print a List even when only one of them is found.
operator_crds=()
for plural in "${OPERATOR_PLURALS[@]}"; do
  if "$KUBECTL" get crd "${plural}.${OPERATOR_GROUP}" -o name >/dev/null 2>&1; then
    operator_crds+=("${plural}.${OPERATOR_GROUP}")
  fi
done
if [[ ${#operator_crds[@]} -gt 0 ]]; then
  all_names=()
  for plural in "${OPERATOR_PLURALS[@]}"; do
    all_names+=("${plural}.${OPERATOR_GROUP}")
  done
  section "kubectl get crds ${all_names[*]} --ignore-not-found -o yaml" \
    "$KUBECTL" get crds "${all_names[@]}" --ignore-not-found -o yaml || true
  for res in "${operator_crds[@]}"; do
    section "kubectl get ${res} -A -o yaml" "$KUBECTL" get "$res" -A -o yaml || true
  done
fi

if [[ "$OUT" == "-" ]]; then
  cat "$DUMP"
else
  cp "$DUMP" "$OUT"
  printf 'dump-cluster: wrote %d documents to %s\n' "$DOCS" "$OUT" >&2
fi
if [[ $SKIPPED -gt 0 ]]; then
  warn "${SKIPPED} section(s) skipped; the report made from this dump will miss them"
fi
