#!/usr/bin/env bash
# Durable acknowledgement on the embedded default (a 202 only after the fsync'd commit):
#   1. batches of BATCH events, closed loop (wrk, CONNECTIONS connections): acknowledged and
#      stored events/s, commits (fsyncs) per second, service CPU per event
#   2. one event per request, the same
#   3. one event per request, open loop at half the rate measured in 2 (vegeta, constant
#      arrival rate): latency percentiles
#   4. memory per queued event: queued acknowledgement with one writer storing one event per
#      commit, so the queue fills to ingest.queue_capacity; (RSS growth) / (queue depth)
# Counts only 2xx answers, and checks that every acknowledged event is stored.
# Needs wrk (apt), jq, and vegeta (go install github.com/tsenart/vegeta/v12@v12.13.0).
# Usage: load-tests/durable.sh [duration, default 15s] [connections, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15s}
CONNECTIONS=${2:-64}
PORT=${PORT:-18080}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
VEGETA=${VEGETA:-$(command -v vegeta || echo "$HOME/go/bin/vegeta")}
export BATCH=${BATCH:-100}

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
. load-tests/service.sh

metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$SERVER/status"; }

# Runs wrk with SCRIPT; prints "<2xx answers> <seconds> <p99>".
closed_loop() {
  local output requests non_2xx seconds
  output=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$1" "$2")
  echo "$output" >&2
  requests=$(echo "$output" | awk '/requests in/ {print $1}')
  seconds=$(echo "$output" | awk '/requests in/ {gsub("s,", "", $4); print $4}')
  non_2xx=$(echo "$output" | awk '/Non-2xx/ {print $5}')
  echo "$((requests - ${non_2xx:-0})) $seconds $(echo "$output" | awk '$1 == "99%" {print $2}')"
}

# Prints the phase's line: acknowledged and stored events/s, commits/s, CPU µs per event.
phase() {
  local name=$1 events_per_request=$2 script=$3 path=$4
  local stored_before commits_before ticks_before ok seconds p99 stored commits ticks
  stored_before=$(metric volcanion_events_stored_total)
  commits_before=$(metric volcanion_batch_write_duration_seconds_count)
  ticks_before=$(cpu_ticks)
  read -r ok seconds p99 < <(closed_loop "$script" "$API$path")
  ticks=$(($(cpu_ticks) - ticks_before))
  stored=$(awk -v a="$(metric volcanion_events_stored_total)" -v b="$stored_before" 'BEGIN {print a - b}')
  commits=$(awk -v a="$(metric volcanion_batch_write_duration_seconds_count)" -v b="$commits_before" 'BEGIN {print a - b}')
  local acknowledged=$((ok * events_per_request))
  if [ "$(awk -v s="$stored" -v a="$acknowledged" 'BEGIN {print (s >= a)}')" != 1 ]; then
    echo "FAIL: $acknowledged events acknowledged but only $stored stored" >&2; exit 1
  fi
  awk -v n="$name" -v a="$acknowledged" -v st="$stored" -v s="$seconds" -v c="$commits" -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v p="$p99" \
    'BEGIN {printf "%-26s %8.0f ev/s acknowledged, %8.0f ev/s stored, %6.0f commits/s, p99 %s (closed loop), CPU %.1f us/event\n", n, a / s, st / s, c / s, p, t / hz * 1e6 / a}'
  LAST_RATE=$(awk -v a="$acknowledged" -v s="$seconds" 'BEGIN {printf "%d", a / s}')
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GB"
start_service "$TARGET_DIR/release/volcanion" "$PORT"
create_tenant
phase "batches of $BATCH (stored)" "$BATCH" load-tests/wrk/batch.lua /api/v1/events/batch
phase "single events (stored)" 1 load-tests/wrk/single.lua /api/v1/events
SINGLE_RATE=$LAST_RATE
BODY=$(mktemp)
sed -n "s/^wrk.body = '\(.*\)'$/\1/p" load-tests/wrk/single.lua > "$BODY"
# Open loop at OPEN_RATE (default 4000/s: half the 8,000/s the issue asks for) and at half
# the closed-loop rate just measured.
for RATE in "${OPEN_RATE:-4000}" $((SINGLE_RATE / 2)); do
  printf 'POST %s/api/v1/events\nContent-Type: application/json\nX-API-Key: %s\n@%s\n' "$API" "$KEY" "$BODY" \
    | "$VEGETA" attack -rate="$RATE/s" -duration="$DURATION" -max-workers=512 \
    | "$VEGETA" report -type=text > "$BODY.report"
  cat "$BODY.report" >&2
  echo "single events, open loop at $RATE/s: $(awk '/^Latencies/ {print "p50", $(NF-4), "p90", $(NF-3), "p95", $(NF-2), "p99", $(NF-1), "max", $NF}' "$BODY.report" | tr -d ','); $(grep '^Status Codes' "$BODY.report" | tr -s ' ')"
done
echo "resident memory after the stored phases: $(( $(rss_kib) / 1024 )) MiB"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
rm -rf "$DATA" "$BODY" "$BODY.report"

# 4. A full queue: queued acknowledgement, one writer, one event per commit.
export VOLCANION_INGEST__ACKNOWLEDGE=queued VOLCANION_INGEST__WRITERS=1 VOLCANION_INGEST__BATCH_SIZE=1
start_service "$TARGET_DIR/release/volcanion" "$PORT"
create_tenant
BASE=$(rss_kib)
wrk -t2 -c16 -d5s -s load-tests/wrk/batch.lua "$API/api/v1/events/batch" >/dev/null
HEALTH=$(curl -s "$API/health")
DEPTH=$(echo "$HEALTH" | jq .components.queue.depth)
BYTES=$(echo "$HEALTH" | jq .components.queue.bytes)
FULL=$(rss_kib)
awk -v d="$DEPTH" -v b="$BASE" -v f="$FULL" -v q="$BYTES" \
  'BEGIN {printf "queue full: %d events queued (%.1f MiB accounted), resident memory grew %.1f MiB: %.0f bytes per queued event\n", d, q / 1048576, (f - b) / 1024, (f - b) * 1024 / d}'
