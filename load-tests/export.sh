#!/usr/bin/env bash
# The export benchmark (issue 27): EVENTS events (default 10,000,000) of one partner (the
# people benchmark's dataset: 30 days, 200,000 people, 50 types) seeded through the batch
# endpoint into a release build on 127.0.0.1 with its own data dir (removed at the end),
# then the whole range exported once as NDJSON without compression and once as Parquet,
# each read by curl to its end. For each: events/s end to end (events counted in what was
# received: lines, and the Parquet file's rows read back by pyarrow, which must equal the
# seeded count), the service's CPU per event (/proc/PID/stat), and its memory growth: peak
# resident (VmHWM) during the exports over the resident size before them, in a service
# restarted after the seed.
# STORE=cassandra exports from Cassandra instead (CASSANDRA_NODES, default 127.0.0.1:9042;
# a keyspace of its own, dropped at the end).
# Usage: load-tests/export.sh [--events N]   (BINARY=… a build)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=10000000
while [ $# -gt 0 ]; do
  case $1 in
    --events) EVENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--events N]" >&2; exit 2 ;;
  esac
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=${PORT:-18085}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BINARY=${BINARY:-$TARGET_DIR/release/volcanion}
say() { echo "export: $*" >&2; }
. load-tests/bench_venv.sh
[ -x "$BINARY" ] || cargo build --release --quiet --bin volcanion

# Hours fold soon after the seed stops writing to them.
export VOLCANION_STORE__BREAKDOWN_SETTLE=5s VOLCANION_CASSANDRA__ROLLUP_SETTLE=15s
. load-tests/people/seeded.sh
seed_people export
FROM=$(date -u -d "$TODAY - 30 days" +%Y-%m-%dT%H:%M:%SZ)
for _ in $(seq 1 600); do [ "$(metric volcanion_events_stored_total)" -ge "$ACCEPTED" ] && break; sleep 0.2; done
say "seeded $ACCEPTED events; waiting for the folds"
# Folded first, so the exports' memory is theirs, not a fold's.
wait_for_folds

# A fresh process for the exports: its memory before them is the baseline.
kill -TERM $SERVER; wait $SERVER || true
"$BINARY" serve &
SERVER=$!
for _ in $(seq 1 600); do curl -sf "$API/health/ready" >/dev/null && break; sleep 0.1; done
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVER/stat"; }
kib() { awk -v field="$1:" '$1 == field {print $2}' "/proc/$SERVER/status"; }
URL="$API/api/v1/export?from=$FROM&to=$TODAY"
curl -sf "$URL&format=ndjson&eventType=purchase" -H "X-API-Key: $KEY" > /dev/null  # warm the process
BASE_KIB=$(kib VmRSS)

run() {  # FORMAT → "events seconds cpu"
  local before elapsed began counted
  before=$(cpu)
  began=$(date +%s.%N)
  if [ "$1" = ndjson ]; then
    counted=$(curl -sf --no-buffer "$URL&format=ndjson" -H "X-API-Key: $KEY" | wc -l)
  else
    curl -sf "$URL&format=parquet" -H "X-API-Key: $KEY" -o "$WORK/export.parquet"
    counted=$("$PY" -c 'import sys, pyarrow.parquet as pq; print(pq.ParquetFile(sys.argv[1]).metadata.num_rows)' "$WORK/export.parquet")
  fi
  elapsed=$(echo "$(date +%s.%N) - $began" | bc)
  echo "$counted $elapsed $(echo "$(cpu) - $before" | bc)"
}
read -r NDJSON_EVENTS NDJSON_S NDJSON_CPU < <(run ndjson)
NDJSON_PEAK_KIB=$(kib VmHWM)
read -r PARQUET_EVENTS PARQUET_S PARQUET_CPU < <(run parquet)
PEAK_KIB=$(kib VmHWM)
PARQUET_BYTES=$(stat -c %s "$WORK/export.parquet")

echo
echo "Export benchmark: $ACCEPTED events ($STORE), $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)')," \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before $LOAD_BEFORE"
echo
echo "| format | events received | seconds | events/s | service CPU µs/event |"
echo "|---|---|---|---|---|"
for f in NDJSON PARQUET; do
  eval "n=\$${f}_EVENTS s=\$${f}_S c=\$${f}_CPU"
  awk -v f="$f" -v n="$n" -v s="$s" -v c="$c" 'BEGIN {printf "| %s | %d | %.1f | %.0f | %.2f |\n", tolower(f), n, s, n / s, c * 1e6 / n}'
done
awk -v b="$BASE_KIB" -v j="$NDJSON_PEAK_KIB" -v p="$PEAK_KIB" -v z="$PARQUET_BYTES" -v n="$ACCEPTED" 'BEGIN {
  printf "\nservice memory: %.1f MiB before the exports; peak %.1f MiB after NDJSON (growth %.1f MiB), %.1f MiB after Parquet (growth %.1f MiB = %.1f MB)\n", b / 1024, j / 1024, (j - b) / 1024, p / 1024, (p - b) / 1024, (p - b) * 1.024 / 1000
  printf "parquet file: %.0f MiB, %.0f bytes/event\n", z / 1048576, z / n }'
FAILED=0
for n in "$NDJSON_EVENTS" "$PARQUET_EVENTS"; do
  [ "$n" = "$ACCEPTED" ] || { say "an export held $n events, $ACCEPTED were accepted"; FAILED=1; }
done
exit $FAILED
