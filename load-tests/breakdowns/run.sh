#!/usr/bin/env bash
# The breakdown benchmark (issue 25): the same seeded dataset answered by chDB, DuckDB and
# our breakdown endpoint (release build, embedded store, on 127.0.0.1 with its own data
# dir, removed at the end), printed as a markdown table.
#   1. dataset.py: EVENTS events (default 10,000,000) over the 30 days before today 00:00
#      UTC, one partner, 10,000 pages (Zipf), 500 referrers, 50 countries, 200,000 users
#   2. engines.py: chDB and DuckDB native tables from it; per question the first run (cold,
#      fresh process) and the median of 5 after it
#   3. seed.py: the events through POST /api/v1/events/batch (batches of BATCH=500,
#      CONCURRENCY=6), 2xx only; then the summary's totalEvents (includeBots=true) must
#      equal the accepted count, and check.py compares the enrichment of the newest 1000
#      stored events with the dataset's columns; disk per event of the data dir after a clean stop
#   4. ours.py: GET /api/v1/reports/breakdown?dimension=page&limit=10[&where=country:DE]
#      and GET /api/v1/reports/summary?where=country:DE, REQUESTS=200 sequential requests per question (Python, time.perf_counter): cold =
#      restarted service with reports.cache_ttl and settled_cache_ttl 0s (every request
#      computes), its first request shown apart; warm = restarted with caches on, warmed
#      by one request. Skipped, saying so, while the endpoint answers 404.
# STORE=cassandra runs our part on Cassandra instead (CASSANDRA_NODES, default
# 127.0.0.1:9042, e.g. scripts/cassandra.sh start; a keyspace of its own, dropped at the
# end; no disk figure: Cassandra's own files are shared). Python deps (pinned) go into a venv
# under ~/.cache/volcanion/. Needs curl, jq, npm (for scripts/geoip.sh).
# Usage: load-tests/breakdowns/run.sh [--events N]   (BINARY=… a build)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=load-tests/breakdowns
EVENTS=10000000
while [ $# -gt 0 ]; do
  case $1 in
    --events) EVENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--events N]" >&2; exit 2 ;;
  esac
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=${PORT:-18083}
REQUESTS=${REQUESTS:-200}
COUNTRY=${COUNTRY:-DE}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BINARY=${BINARY:-$TARGET_DIR/release/volcanion}
say() { echo "breakdowns: $*" >&2; }
. load-tests/bench_venv.sh
scripts/geoip.sh install
GEOIP_DB=$(scripts/geoip.sh path)
[ -x "$BINARY" ] || cargo build --release --quiet --bin volcanion

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TODAY=$(date -u +%Y-%m-%dT00:00:00Z)
FROM=$(date -u -d "$TODAY - 30 days" +%Y-%m-%dT%H:%M:%SZ)

# 1 and 2: the dataset, and the engines over it (before our service starts: nothing else
# of ours runs while they are timed).
"$PY" $HERE/dataset.py --events "$EVENTS" --start "$(date -u -d "$TODAY" +%s)" --geoip-db "$GEOIP_DB" --out "$WORK/data"
for engine in chdb duckdb; do
  mkdir -p "$WORK/$engine"
  "$PY" $HERE/engines.py load $engine "$WORK/data/events.parquet" "$WORK/$engine"
  "$PY" $HERE/engines.py query $engine "$WORK/$engine" "${FROM%Z}" "${TODAY%Z}" "$COUNTRY" > "$WORK/$engine.json"
  say "$engine done"
done

# 3: seed our service.
. load-tests/service.sh
export VOLCANION_ENRICH__GEOIP_DB=$GEOIP_DB
export VOLCANION_REPORTS__CACHE_TTL=0s VOLCANION_REPORTS__SETTLED_CACHE_TTL=0s
export VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=1000000000
# Seeded hours fold into breakdown cells soon after the seed (the default waits 2 minutes).
export VOLCANION_STORE__BREAKDOWN_SETTLE=2s VOLCANION_STORE__BREAKDOWN_FOLD_INTERVAL=1s
STORE=${STORE:-embedded}
if [ "$STORE" = cassandra ]; then
  export VOLCANION_STORE__BACKEND=cassandra VOLCANION_CASSANDRA__NODES=${CASSANDRA_NODES:-127.0.0.1:9042}
  export VOLCANION_CASSANDRA__KEYSPACE=breakdowns_$$
  # Folds wait while seeding (on 2 cores they would share the CPU with Cassandra's
  # writes), then the service restarts with the shortest settle accepted
  # (2 × request_timeout + 1 s) and folds every seeded hour.
  export VOLCANION_CASSANDRA__ROLLUP_SETTLE=4h VOLCANION_CASSANDRA__ROLLUP_FOLD_INTERVAL=1s
fi
start_service "$BINARY" "$PORT"
# KEEP_DATA=1 keeps the data dir (its path is printed) to look at the service afterwards.
cleanup() {
  kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"
  if [ -n "${KEEP_DATA:-}" ]; then say "data dir kept: $DATA"; else rm -rf "$DATA"; fi
  if [ "$STORE" = cassandra ]; then
    scripts/cassandra.sh cqlsh -e "DROP KEYSPACE IF EXISTS $VOLCANION_CASSANDRA__KEYSPACE" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
create_tenant
SEED_START=$(date +%s)
ACCEPTED=$("$PY" $HERE/seed.py "$API" "$KEY" "$WORK/data" --batch "${BATCH:-500}" --concurrency "${CONCURRENCY:-6}")
SEEDING=$(( $(date +%s) - SEED_START ))
metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
for _ in $(seq 1 600); do [ "$(metric volcanion_events_stored_total)" -ge "$ACCEPTED" ] && break; sleep 0.2; done
say "seeded $ACCEPTED events in $SEEDING s"
FOLD_START=$(date +%s)
if [ "$STORE" = cassandra ]; then
  kill -TERM $SERVER; wait $SERVER || true
  export VOLCANION_CASSANDRA__ROLLUP_SETTLE=12s
  "$BINARY" serve &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "$API/health/ready" >/dev/null && break; sleep 0.1; done
fi
for _ in $(seq 1 3600); do
  [ "$(metric volcanion_rollup_hours_folded_total)" -gt 0 ] && [ "$(metric volcanion_rollup_hours_waiting)" = 0 ] && break
  sleep 1
done
[ "$(metric volcanion_rollup_hours_waiting)" = 0 ] || { say "the seeded hours did not fold within an hour"; exit 1; }
say "every seeded hour and day folded into breakdown cells in $(( $(date +%s) - FOLD_START )) s"
SUMMARY="$API/api/v1/reports/summary?from=$FROM&to=$TODAY&includeBots=true"
STORED=$(curl -sf "$SUMMARY" -H "X-API-Key: $KEY" | jq .totalEvents)
if [ "$STORED" != "$ACCEPTED" ]; then
  say "the summary counts $STORED events, $ACCEPTED were accepted"
  exit 1
fi
say "summary totalEvents $STORED = accepted $ACCEPTED"
"$PY" $HERE/check.py "$API" "$KEY" "$WORK/data" "$FROM" "$TODAY"
kill -TERM $SERVER; wait $SERVER || true
# Bytes in use (du without -b): redb grows its file ahead of what it holds.
BYTES=$(( $(du -sk "$DATA" | cut -f1) * 1024 ))

# 4: our endpoint, cold then warm, each on a restarted service over the same data dir.
serve() {
  "$BINARY" serve &
  SERVER=$!
  for _ in $(seq 1 600); do curl -sf "$API/health/ready" >/dev/null && return 0; sleep 0.1; done
  say "the service did not become ready"; exit 1
}
serve
OURS=yes
"$PY" $HERE/ours.py "$API" "$KEY" "$FROM" "$TODAY" "$COUNTRY" "$REQUESTS" > "$WORK/cold.json" || {
  status=$?; [ $status = 3 ] || exit $status; OURS=; rm "$WORK/cold.json"; }
if [ -n "$OURS" ]; then
  kill -TERM $SERVER; wait $SERVER || true
  export VOLCANION_REPORTS__CACHE_TTL=10m VOLCANION_REPORTS__SETTLED_CACHE_TTL=10m
  serve
  "$PY" $HERE/ours.py "$API" "$KEY" "$FROM" "$TODAY" "$COUNTRY" 1 >/dev/null
  "$PY" $HERE/ours.py "$API" "$KEY" "$FROM" "$TODAY" "$COUNTRY" "$REQUESTS" > "$WORK/warm.json"
fi

echo
echo "Breakdown benchmark: $EVENTS events, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)')," \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before $LOAD_BEFORE"
echo "engines: chDB $("$PY" -c 'import chdb; print(chdb.__version__)'), DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)');" \
  "ours: $REQUESTS sequential requests per question (Python http.client, time.perf_counter)"
if [ "$STORE" = cassandra ]; then
  echo "our store: Cassandra at $VOLCANION_CASSANDRA__NODES (keyspace $VOLCANION_CASSANDRA__KEYSPACE)"
else
  awk -v b="$BYTES" -v n="$STORED" 'BEGIN {printf "our data dir: %.0f bytes for %d events, %.0f bytes/event\n", b, n, b / n}'
fi
"$PY" $HERE/report.py "$WORK"
