#!/usr/bin/env bash
# Throughput of the service on this machine, back to back with the same load generator:
#   L1  GET /health/live (the HTTP stack alone)
#   E2E POST /api/v1/events (one event per request) and /api/v1/events/batch (BATCH events)
# Starts its own release build on 127.0.0.1 with a fresh data dir; needs wrk (apt) and jq.
# Usage: load-tests/bench.sh [duration, default 15s] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15s}
CONNECTIONS=${2:-64}
PORT=${PORT:-18080}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export BATCH=${BATCH:-100}

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
. load-tests/service.sh
start_service "$TARGET_DIR/release/volcanion" "$PORT"
create_tenant

# Runs wrk and prints "<2xx responses per second>" (429/503 answers are not counted).
run() {
  local output requests non_2xx seconds
  output=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  echo "$output" >&2
  requests=$(echo "$output" | awk '/requests in/ {print $1}')
  seconds=$(echo "$output" | awk '/requests in/ {gsub("s,", "", $4); print $4}')
  non_2xx=$(echo "$output" | awk '/Non-2xx/ {print $5}')
  awk -v r="$requests" -v n="${non_2xx:-0}" -v s="$seconds" 'BEGIN {printf "%.0f", (r - n) / s}'
}
stored() { curl -sf $API/metrics | awk '/^volcanion_events_stored_total/ {print $2}'; }
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
L1=$(run $API/health/live)
SINGLE=$(run -s load-tests/wrk/single.lua $API/api/v1/events)
BEFORE=$(stored); STARTED=$(date +%s.%N)
BATCHED=$(run -s load-tests/wrk/batch.lua $API/api/v1/events/batch)
# Let the writers catch up, then the sustained store rate over the whole batch phase.
for _ in $(seq 1 600); do
  [ "$(curl -sf $API/metrics | awk '/^volcanion_ingest_queue_depth/ {print $2}')" = "0" ] && break; sleep 0.1
done
AFTER=$(stored); FINISHED=$(date +%s.%N)
echo
echo "L1  no-op GET                 $L1 req/s"
echo "E2E single event POST (202)   $SINGLE events/s"
echo "E2E batches of $BATCH (202)     $((BATCHED * BATCH)) events/s accepted ($BATCHED req/s)"
echo "store: $(awk -v a="$AFTER" -v b="$BEFORE" -v f="$FINISHED" -v s="$STARTED" 'BEGIN {printf "%.0f", (a - b) / (f - s)}') events/s written during the batch phase (incl. drain)"
