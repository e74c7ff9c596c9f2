#!/usr/bin/env bash
# Benchmark a report run against `kubectl get <every Flux kind> -A -o json` on
# the same API server double and objects. Prints wall time and peak memory
# (medians of RUNS runs) for each size, and their ratios.
#   hack/bench.sh                 # sizes 1000 10000 30000
#   SIZES="500 5000" RUNS=3 hack/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1000 10000 30000"}
RUNS=${RUNS:-5}
PORT=${PORT:-18480}
work=$(mktemp -d)
trap 'kill ${double:-0} 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build -q --release -p flux-reporter -p flux-reporter-e2e --bin flux-reporter --bin apiserver-double
bin=target/release
kinds=gitrepositories,ocirepositories,helmrepositories,helmcharts,kustomizations,helmreleases

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
measure() { # prints "seconds maxrss_kib" of the command
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  cat "$work/time"
}

printf "%-8s %-12s %-12s %-8s %-14s %-14s %-8s\n" objects report_s kubectl_s ratio report_MiB kubectl_MiB ratio
for n in $SIZES; do
  python3 hack/gen-objects.py "$n" >"$work/objects.json"
  "$bin/apiserver-double" --port "$PORT" --kubeconfig "$work/kubeconfig" "$work/objects.json" >"$work/double.log" 2>&1 &
  double=$!
  for _ in $(seq 1 100); do grep -q serving "$work/double.log" 2>/dev/null && break; sleep 0.2; done
  export KUBECONFIG="$work/kubeconfig"
  : >"$work/r"; : >"$work/k"
  for _ in $(seq 1 "$RUNS"); do
    measure "$bin/flux-reporter" report -n flux-system -o json >>"$work/r"
    measure kubectl get "$kinds" -A -o json >>"$work/k"
  done
  rs=$(cut -d' ' -f1 "$work/r" | median); rm_=$(cut -d' ' -f2 "$work/r" | median)
  ks=$(cut -d' ' -f1 "$work/k" | median); km=$(cut -d' ' -f2 "$work/k" | median)
  awk -v n="$n" -v rs="$rs" -v ks="$ks" -v rm="$rm_" -v km="$km" 'BEGIN {
    printf "%-8d %-12.2f %-12.2f %-8.2f %-14.1f %-14.1f %-8.2f\n", n, rs, ks, rs/ks, rm/1024, km/1024, rm/km }'
  kill "$double"; wait "$double" 2>/dev/null || true
done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; medians of $RUNS runs; report = flux-reporter report (every section), kubectl = kubectl get $kinds -A -o json"
