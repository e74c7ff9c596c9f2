#!/usr/bin/env bash
# Does the operator stay flat? Runs `flux-reporter run` against the API server
# double with N objects:
#  1. a fast interval (INTERVAL, default 200ms) for DURATION seconds: prints
#     the resident memory as the run count grows (it must not grow run after run);
#  2. a 1h interval: the CPU time used while idle for IDLE seconds (must be ~0).
#   N=2000 DURATION=120 IDLE=30 hack/bench-operator.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}; DURATION=${DURATION:-120}; IDLE=${IDLE:-30}; INTERVAL=${INTERVAL:-200ms}; PORT=${PORT:-18481}
work=$(mktemp -d)
trap 'kill ${op:-0} ${double:-0} 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p flux-reporter -p flux-reporter-e2e --bin flux-reporter --bin apiserver-double
bin=target/release
python3 hack/gen-objects.py "$N" >"$work/objects.json"
"$bin/apiserver-double" --port "$PORT" --kubeconfig "$work/kubeconfig" "$work/objects.json" config/crd/bases/*.yaml >"$work/double.log" 2>&1 &
double=$!
for _ in $(seq 1 100); do grep -q serving "$work/double.log" 2>/dev/null && break; sleep 0.2; done
export KUBECONFIG="$work/kubeconfig"

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
runs() { grep -c '"report computed"' "$work/op.log" || true; }

"$bin/flux-reporter" run --reporting-interval "$INTERVAL" --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
  --notifications-disabled >"$work/op.log" 2>&1 &
op=$!
echo "runs rss_KiB (N=$N objects, interval $INTERVAL)"
end=$((SECONDS + DURATION))
while [ $SECONDS -lt $end ]; do sleep 10; echo "$(runs) $(rss $op)"; done
kill -TERM $op; wait $op || true

"$bin/flux-reporter" run --reporting-interval 1h --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
  --notifications-disabled >"$work/op.log" 2>&1 &
op=$!
sleep 5
t0=$(cpu_ticks $op); sleep "$IDLE"; t1=$(cpu_ticks $op)
hz=$(getconf CLK_TCK)
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "idle CPU over %ds: %.2fs (%.3f%% of one core)\n", s, d/hz, 100*d/hz/s }'
echo "idle rss_KiB: $(rss $op)"
kill -TERM $op; wait $op || true
