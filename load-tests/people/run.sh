#!/usr/bin/env bash
# The people benchmark (issue 26): a 3-step funnel with a 7-day window and a 4-week
# retention grid over 30 days of one partner, answered by our endpoints (release build,
# on 127.0.0.1 with its own data dir, removed at the end) and the funnel by chDB's
# windowFunnel, printed as a markdown table with whether the answers agree exactly.
#   1. dataset.py: EVENTS events (default 10,000,000) over the 30 days before today 00:00
#      UTC, 200,000 people, 50 event types, a planted funnel, 40% of people anonymous
#      until they sign in (an identify joins them), 10% never
#   2. engines.py: chDB's native table, sorted by time and then by (event type, time); the
#      funnel's first run (fresh process) and the median of 5 after it; the exact
#      retention grid; visits by window functions (time-sorted table), timed the same way
#   3. seed.py: the events through POST /api/v1/events/batch (BATCH=500, CONCURRENCY=6),
#      2xx only, with folds held back (on 2 cores they would share the CPU with the seed);
#      then the service restarts with a 2 s settle and folds every hour and day; the
#      summary's totalEvents must equal the accepted count. The service's CPU time per
#      stored event is printed for the seed and for the folds (/proc/PID/stat), and the
#      data dir's bytes per event after a clean stop
#   4. ours.py: REQUESTS sequential requests per question, cold (caches off, restarted
#      service, its first request shown apart), then warm (caches on, warmed by one)
# STORE=cassandra runs our part on Cassandra (CASSANDRA_NODES, default 127.0.0.1:9042; a
# keyspace of its own, dropped at the end; no disk figure). Python deps (pinned) go into
# breakdowns/run.sh's venv.
# Usage: load-tests/people/run.sh [--events N]   (BINARY=… a build)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=load-tests/people
EVENTS=10000000
while [ $# -gt 0 ]; do
  case $1 in
    --events) EVENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--events N]" >&2; exit 2 ;;
  esac
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=${PORT:-18084}
REQUESTS=${REQUESTS:-200}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BINARY=${BINARY:-$TARGET_DIR/release/volcanion}
say() { echo "people: $*" >&2; }
. load-tests/bench_venv.sh
[ -x "$BINARY" ] || cargo build --release --quiet --bin volcanion

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TODAY=$(date -u +%Y-%m-%dT00:00:00Z)
FROM=$(date -u -d "$TODAY - 30 days" +%Y-%m-%dT%H:%M:%SZ)

# 1 and 2, before our service starts: nothing else of ours runs while chDB is timed.
"$PY" $HERE/dataset.py --events "$EVENTS" --start "$(date -u -d "$TODAY" +%s)" --out "$WORK/data"
# chDB twice: the table sorted by time (as a tracker's events table usually is), then by
# event type and time (the best layout for a funnel: it reads only the steps' events).
for order in ts "event_type, ts"; do
  name=chdb-${order%%,*}
  mkdir -p "$WORK/$name-db"
  "$PY" $HERE/engines.py load "$WORK/data/events.parquet" "$WORK/$name-db" "$order"
  "$PY" $HERE/engines.py funnel "$WORK/$name-db" "${FROM%Z}" "${TODAY%Z}" > "$WORK/$name.json"
done
"$PY" $HERE/engines.py retention "$WORK/$name-db" "${FROM%Z}" "${TODAY%Z}" > "$WORK/chdb-retention.json"
"$PY" $HERE/engines.py sessions "$WORK/chdb-ts-db" "${FROM%Z}" "${TODAY%Z}" > "$WORK/chdb-sessions.json"
rm -rf "$WORK"/chdb-*-db
say "chDB done"

# 3: seed our service, folds held back.
. load-tests/service.sh
export VOLCANION_REPORTS__CACHE_TTL=0s VOLCANION_REPORTS__SETTLED_CACHE_TTL=0s
export VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=1000000000
export VOLCANION_STORE__BREAKDOWN_SETTLE=4h VOLCANION_STORE__BREAKDOWN_FOLD_INTERVAL=1s
STORE=${STORE:-embedded}
if [ "$STORE" = cassandra ]; then
  export VOLCANION_STORE__BACKEND=cassandra VOLCANION_CASSANDRA__NODES=${CASSANDRA_NODES:-127.0.0.1:9042}
  export VOLCANION_CASSANDRA__KEYSPACE=people_$$
  export VOLCANION_CASSANDRA__ROLLUP_SETTLE=4h VOLCANION_CASSANDRA__ROLLUP_FOLD_INTERVAL=1s
fi
start_service "$BINARY" "$PORT"
cleanup() {
  kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK" "$DATA"
  if [ "$STORE" = cassandra ]; then
    scripts/cassandra.sh cqlsh -e "DROP KEYSPACE IF EXISTS $VOLCANION_CASSANDRA__KEYSPACE" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
# CPU seconds (user + system) the service has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVER/stat"; }
serve() {
  "$BINARY" serve &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "$API/health/ready" >/dev/null && return 0; sleep 0.1; done
  say "the service did not become ready"; exit 1
}
metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
create_tenant
SEED_START=$(date +%s)
ACCEPTED=$("$PY" $HERE/seed.py "$API" "$KEY" "$WORK/data" --batch "${BATCH:-500}" --concurrency "${CONCURRENCY:-6}")
for _ in $(seq 1 600); do [ "$(metric volcanion_events_stored_total)" -ge "$ACCEPTED" ] && break; sleep 0.2; done
SEEDING=$(( $(date +%s) - SEED_START ))
SEED_CPU=$(cpu)
say "seeded $ACCEPTED events in $SEEDING s, $SEED_CPU s of service CPU"
kill -TERM $SERVER; wait $SERVER || true
export VOLCANION_STORE__BREAKDOWN_SETTLE=2s VOLCANION_CASSANDRA__ROLLUP_SETTLE=12s
FOLD_START=$(date +%s)
serve
for _ in $(seq 1 7200); do
  [ "$(metric volcanion_rollup_hours_folded_total)" -gt 0 ] && [ "$(metric volcanion_rollup_hours_waiting)" = 0 ] && break
  sleep 1
done
[ "$(metric volcanion_rollup_hours_waiting)" = 0 ] || { say "the seeded hours did not fold within two hours"; exit 1; }
FOLDING=$(( $(date +%s) - FOLD_START ))
FOLD_CPU=$(cpu)
say "every seeded hour and day folded in $FOLDING s, $FOLD_CPU s of service CPU"
STORED=$(curl -sf "$API/api/v1/reports/summary?from=$FROM&to=$TODAY&includeBots=true" -H "X-API-Key: $KEY" | jq .totalEvents)
if [ "$STORED" != "$ACCEPTED" ]; then
  say "the summary counts $STORED events, $ACCEPTED were accepted"
  exit 1
fi
kill -TERM $SERVER; wait $SERVER || true
BYTES=$(( $(du -sk "$DATA" | cut -f1) * 1024 ))

# 4: our endpoints, cold then warm, each on a restarted service over the same data.
serve
"$PY" $HERE/ours.py "$API" "$KEY" "$FROM" "$TODAY" "$REQUESTS" > "$WORK/cold.json"
kill -TERM $SERVER; wait $SERVER || true
export VOLCANION_REPORTS__CACHE_TTL=10m VOLCANION_REPORTS__SETTLED_CACHE_TTL=10m
serve
"$PY" $HERE/ours.py "$API" "$KEY" "$FROM" "$TODAY" 1 >/dev/null
"$PY" $HERE/ours.py "$API" "$KEY" "$FROM" "$TODAY" "$REQUESTS" > "$WORK/warm.json"

echo
echo "People benchmark: $EVENTS events, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)')," \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before $LOAD_BEFORE"
echo "chDB $("$PY" -c 'import chdb; print(chdb.__version__)'); ours: $REQUESTS sequential requests per question"
awk -v n="$ACCEPTED" -v s="$SEEDING" -v c="$SEED_CPU" -v f="$FOLDING" -v fc="$FOLD_CPU" 'BEGIN {
  printf "seed: %d events in %d s (%.0f events/s), service CPU %.1f us/event; folds: %d s, CPU %.1f us/event\n",
    n, s, n / s, c * 1e6 / n, f, fc * 1e6 / n }'
if [ "$STORE" = cassandra ]; then
  echo "our store: Cassandra at $VOLCANION_CASSANDRA__NODES (keyspace $VOLCANION_CASSANDRA__KEYSPACE)"
else
  awk -v b="$BYTES" -v n="$STORED" 'BEGIN {printf "our data dir: %.0f bytes for %d events, %.0f bytes/event\n", b, n, b / n}'
fi
"$PY" $HERE/report.py "$WORK"
