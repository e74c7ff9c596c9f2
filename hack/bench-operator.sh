#!/usr/bin/env bash
# Does the operator stay flat? Runs `flux-reporter run` against the API server
# double with N objects:
#  1. a fast interval (INTERVAL, default 200ms) for DURATION seconds, or until
#     RUNS runs when RUNS is set: prints the resident memory (and its peak) as
#     the run count grows (it must not grow run after run);
#  2. a 1h interval: after its first run, SCRAPES timed `GET /metrics` (median
#     time and body size, OpenMetrics), then the CPU time used while idle for
#     IDLE seconds (must be ~0).
#   N=2000 DURATION=120 IDLE=30 hack/bench-operator.sh
#   N=100000 INTERVAL=1s RUNS=50 IDLE=5 hack/bench-operator.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000}; DURATION=${DURATION:-120}; IDLE=${IDLE:-30}; INTERVAL=${INTERVAL:-200ms}; PORT=${PORT:-18481}
RUNS=${RUNS:-0}; SCRAPES=${SCRAPES:-10}
work=$(mktemp -d)
trap 'kill ${op:-0} ${double:-0} 2>/dev/null || true; rm -rf "$work"' EXIT
cargo build -q --release -p flux-reporter -p flux-reporter-e2e --bin flux-reporter --bin apiserver-double
bin=target/release
python3 hack/gen-objects.py "$N" >"$work/objects.json"
"$bin/apiserver-double" --port "$PORT" --kubeconfig "$work/kubeconfig" "$work/objects.json" config/crd/bases/*.yaml >"$work/double.log" 2>&1 &
double=$!
for _ in $(seq 1 600); do grep -q serving "$work/double.log" 2>/dev/null && break; sleep 0.2; done
export KUBECONFIG="$work/kubeconfig"

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
runs() { grep -c '"report computed"' "$work/op.log" || true; }
metrics="127.0.0.1:$((PORT + 1))"

"$bin/flux-reporter" run --reporting-interval "$INTERVAL" --metrics-addr "$metrics" --health-addr 127.0.0.1:0 \
  --notifications-disabled >"$work/op.log" 2>&1 &
op=$!
echo "runs rss_KiB peak_KiB (N=$N objects, interval $INTERVAL)"
end=$((SECONDS + DURATION)); seen=0
while if [ "$RUNS" -gt 0 ]; then [ "$seen" -lt "$RUNS" ]; else [ $SECONDS -lt $end ]; fi; do
  sleep 0.25; r=$(runs)
  # Sampled as each run is logged (it then publishes its metrics).
  if [ "$r" -ne "$seen" ]; then seen=$r; echo "$r $(rss $op) $(hwm $op)"; fi
done
kill -TERM $op; wait $op || true

"$bin/flux-reporter" run --reporting-interval 1h --metrics-addr "$metrics" --health-addr 127.0.0.1:0 \
  --notifications-disabled >"$work/op.log" 2>&1 &
op=$!
for _ in $(seq 1 1200); do [ "$(runs)" -ge 1 ] && break; sleep 0.25; done
sleep 1
echo "after 1 run: rss_KiB $(rss $op) peak_KiB $(hwm $op)"
accept='application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5'
for _ in $(seq 1 "$SCRAPES"); do
  curl -s -o /dev/null -H "Accept: $accept" -w '%{time_total} %{size_download}\n' "http://$metrics/metrics"
done | sort -n | awk '{t[NR]=$1; b=$2} END { if (NR) printf "GET /metrics: median %.1f ms of %d (%.1f-%.1f ms), %.1f MB\n", 1000*t[int((NR+1)/2)], NR, 1000*t[1], 1000*t[NR], b/1e6 }'
echo "after scrapes: rss_KiB $(rss $op) peak_KiB $(hwm $op)"
t0=$(cpu_ticks $op); sleep "$IDLE"; t1=$(cpu_ticks $op)
hz=$(getconf CLK_TCK)
awk -v d=$((t1 - t0)) -v hz="$hz" -v s="$IDLE" 'BEGIN { printf "idle CPU over %ds: %.2fs (%.3f%% of one core)\n", s, d/hz, 100*d/hz/s }'
echo "idle rss_KiB: $(rss $op)"
kill -TERM $op; wait $op || true
