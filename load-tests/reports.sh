#!/usr/bin/env bash
# Report latency over a large partner (release build), on the embedded store, or with
# STORE=cassandra on the Cassandra at CASSANDRA_NODES (default 127.0.0.1:9042, e.g.
# scripts/cassandra.sh start) in a fresh keyspace, dropped at the end:
#   1. seeds EVENTS events (default 10,000,000) for one partner over the 30 days before
#      today 00:00 UTC: 200,000 distinct users, 4 subsystems, 50 event types
#      (wrk + load-tests/wrk/seed.lua, batches of 100, time moving forward as live traffic
#      would); reports the seeding rate and the
#      data dir's bytes per event
#   2. summary and 30-day daily time series (UTC and Europe/Berlin) over those whole days,
#      20 concurrent requests (wrk -c20), cold (reports.cache_ttl and settled_cache_ttl
#      0s: every request computes) and warm (cached), p50/p99
#   3. uniqueUsers against the exact distinct count (all 200,000 users appear: each is
#      missing with probability e^-50 at 10M events)
# On Cassandra, the cold runs start once every seeded hour is folded into rollups
# (rollup_settle 5s here, which needs request_timeout 1500ms: the settle must exceed two
# request timeouts plus 1s), and disk per event is not measured.
# Needs wrk (apt) and jq. Usage: load-tests/reports.sh [events] [duration per run, 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
DURATION=${2:-10s}
PORT=${PORT:-18081}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export USERS=${USERS:-200000} EVENTS
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
. load-tests/service.sh
STORE=${STORE:-embedded}
if [ "$STORE" = cassandra ]; then
  export VOLCANION_STORE__BACKEND=cassandra VOLCANION_CASSANDRA__NODES=${CASSANDRA_NODES:-127.0.0.1:9042}
  export VOLCANION_CASSANDRA__KEYSPACE=bench_reports_$$
  export VOLCANION_CASSANDRA__ROLLUP_SETTLE=5s VOLCANION_CASSANDRA__ROLLUP_FOLD_INTERVAL=1s
  export VOLCANION_CASSANDRA__REQUEST_TIMEOUT=1500ms
fi

TODAY=$(date -u +%Y-%m-%dT00:00:00Z)
FROM=$(date -u -d "$TODAY - 30 days" +%Y-%m-%dT%H:%M:%SZ)
export START=$(date -u -d "$TODAY" +%s) DAYS=30
metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }

# 1. Seed, cache off.
export VOLCANION_REPORTS__CACHE_TTL=0s VOLCANION_REPORTS__SETTLED_CACHE_TTL=0s
export VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=1000000000
start_service "$TARGET_DIR/release/volcanion" "$PORT"
KEEP_DATA=$DATA
cleanup() {
  kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$KEEP_DATA"
  if [ "$STORE" = cassandra ]; then
    scripts/cassandra.sh cqlsh -e "DROP KEYSPACE IF EXISTS $VOLCANION_CASSANDRA__KEYSPACE" || true
  fi
}
trap cleanup EXIT
create_tenant
for n in 1 2 3 4; do
  curl -sf -X POST "$API/api/v1/partners/$PARTNER/subsystems" -H "Authorization: Bearer bench-admin" \
    -H 'Content-Type: application/json' -d "{\"code\":\"sub$n\",\"name\":\"Sub $n\",\"type\":\"web\"}" >/dev/null
done
SEED_START=$(date +%s.%N)
while [ "$(metric volcanion_events_stored_total)" -lt "$EVENTS" ]; do
  OFFSET=$(metric volcanion_events_stored_total) wrk -t2 -c32 -d10s -s load-tests/wrk/seed.lua "$API/api/v1/events/batch" >/dev/null
done
SEED_END=$(date +%s.%N)
STORED=$(metric volcanion_events_stored_total)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
awk -v n="$STORED" -v a="$SEED_START" -v b="$SEED_END" 'BEGIN {printf "seeded %d events in %.0f s: %.0f events/s\n", n, b - a, n / (b - a)}'
if [ "$STORE" = cassandra ]; then
  FOLD_START=$(date +%s)
  until [ "$(metric volcanion_rollup_hours_folded_total)" -gt 0 ] && [ "$(metric volcanion_rollup_hours_waiting)" = 0 ]; do sleep 1; done
  echo "every hour folded into rollups $(( $(date +%s) - FOLD_START )) s after seeding ($(metric volcanion_rollup_hours_folded_total) partner-hours)"
else
  echo "data dir: $(du -sb "$DATA" | awk -v n="$STORED" '{printf "%.0f bytes/event (%.1f GB)", $1 / n, $1 / 1e9}')"
fi

RANGE="from=$FROM&to=$TODAY"
SUMMARY="$API/api/v1/reports/summary?$RANGE"
DAILY="$API/api/v1/reports/timeseries?$RANGE&interval=day"
BERLIN="$DAILY&tz=Europe/Berlin"
UNIQUE=$(curl -sf "$SUMMARY" -H "X-API-Key: $KEY" | jq .uniqueUsers)
TOTAL=$(curl -sf "$SUMMARY" -H "X-API-Key: $KEY" | jq .totalEvents)
awk -v u="$UNIQUE" -v e="$USERS" -v t="$TOTAL" 'BEGIN {printf "summary: %d events; uniqueUsers %d for %d exact (%.2f%% off)\n", t, u, e, (u - e) * 100 / e}'

latency() {
  local output
  output=$(wrk -t2 -c20 -d"$DURATION" --latency -H "X-API-Key: $KEY" "$2")
  echo "$output" >&2
  printf "%-30s p50 %s  p99 %s  (%s req/s)\n" "$1" \
    "$(echo "$output" | awk '$1 == "50%" {print $2}')" "$(echo "$output" | awk '$1 == "99%" {print $2}')" \
    "$(echo "$output" | awk '/Requests\/sec/ {print $2}')"
}
latency "cold summary (30 days)" "$SUMMARY"
latency "cold daily series (UTC)" "$DAILY"
latency "cold daily series (Berlin)" "$BERLIN"

# The rollups against a recount of the raw events (embedded: on the stopped service's data
# dir; Cassandra: beside it), and the raw events in the range against the stored count.
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
echo "rollups verify: $(VOLCANION_DATA_DIR=$KEEP_DATA "$TARGET_DIR/release/volcanion" rollups verify --partner "$PARTNER" --from "$FROM" --to "$TODAY" 2>&1 | tail -1)"

# 2. Warm: the same data dir, reports cached.
export VOLCANION_REPORTS__CACHE_TTL=10m VOLCANION_REPORTS__SETTLED_CACHE_TTL=10m VOLCANION_DATA_DIR=$KEEP_DATA
"$TARGET_DIR/release/volcanion" serve &
SERVER=$!
for _ in $(seq 1 600); do curl -sf "$API/health/ready" >/dev/null && break; sleep 0.1; done
# Warm the cache once, so every measured request is answered from it.
curl -sf "$SUMMARY" -H "X-API-Key: $KEY" >/dev/null; curl -sf "$DAILY" -H "X-API-Key: $KEY" >/dev/null
latency "warm summary (30 days)" "$SUMMARY"
latency "warm daily series (UTC)" "$DAILY"
