#!/usr/bin/env bash
# The benchmark, in one run, back to back on this machine (docs/BENCHMARKS.md holds the
# latest table). Each round measures:
#   noop       GET /health/live: the HTTP stack alone (the ceiling)
#   parse      parse + field rules + schema check of one event, no HTTP, no store
#              (criterion, benches/validation.rs `parse_and_check_event`; once, not per round)
#   raw        the Cassandra ceilings with the service's row shape, no HTTP
#              (examples/cassandra_insert_rate: single inserts, unlogged one-partition batches,
#              and those batches into both events tables: the two rows the service writes)
#   embedded   the service on the embedded store: single events, batches of 100
#   cassandra  the service on Cassandra: single events, batches of 100
#   open loop  single events at half the embedded closed-loop rate (vegeta), latency
# Closed loops are wrk (2 threads, CONNECTIONS connections). Only 2xx answers count; after
# each service run the partner's summary report must hold every acknowledged event, or the
# run fails. CPU is per process from /proc (service, wrk, Cassandra's JVM); peak RSS is the
# service's VmHWM. ROUNDS rounds (default 3); the table shows each figure's median.
#
#   load-tests/benchmark.sh [duration per phase, default 10s] [connections, default 64]
#
# CASSANDRA_NODES=127.0.0.1:9042 (default) must reach a running Cassandra (scripts/cassandra.sh
# start) and CASSANDRA_PID be its JVM (default: scripts/cassandra.sh pid); NO_CASSANDRA=1
# skips the Cassandra rows. Needs wrk (apt), jq, vegeta (go install
# github.com/tsenart/vegeta/v12@v12.13.0). Writes the table to $OUT (default
# target/benchmark.md) as well as stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNECTIONS=${2:-64}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18083}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET_DIR/benchmark.md}
VEGETA=${VEGETA:-$(command -v vegeta || echo "$HOME/go/bin/vegeta")}
CASSANDRA_NODES=${CASSANDRA_NODES:-127.0.0.1:9042}
export BATCH=100
HZ=$(getconf CLK_TCK)
RESULTS=$(mktemp)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK" "$RESULTS"' EXIT

if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --release --quiet --bin volcanion --example cassandra_insert_rate
fi
if [ -z "${NO_CASSANDRA:-}" ]; then
  CASSANDRA_PID=${CASSANDRA_PID:-$(scripts/cassandra.sh pid)}
fi
. load-tests/service.sh

record() { echo "$1 $2" >> "$RESULTS"; }              # record FIGURE VALUE (one per round)
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU, in clock ticks
metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }

# closed NAME EVENTS_PER_REQUEST URL [wrk args]: a wrk run; records NAME.rate (2xx events/s),
# NAME.cpu_us (service CPU per event), NAME.wrk_us, NAME.db_us (Cassandra's JVM, if any), NAME.p99_ms.
closed() {
  local name=$1 per=$2 url=$3; shift 3
  local service_before db_before output requests non_2xx seconds ok events wrk_cpu
  service_before=$(ticks_of "$SERVER")
  db_before=$([ -n "${DB_PID:-}" ] && ticks_of "$DB_PID" || echo 0)
  /usr/bin/time -f "%U %S" -o "$WORK/wrk.time" wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" > "$WORK/wrk.out"
  output=$(cat "$WORK/wrk.out")
  requests=$(awk '/requests in/ {print $1}' <<<"$output")
  seconds=$(awk '/requests in/ {gsub("s,", "", $4); print $4}' <<<"$output")
  non_2xx=$(awk '/Non-2xx/ {print $5}' <<<"$output"); non_2xx=${non_2xx:-0}
  ok=$((requests - non_2xx)); events=$((ok * per))
  ACKNOWLEDGED=$((ACKNOWLEDGED + events))
  wrk_cpu=$(awk '{print $1 + $2}' "$WORK/wrk.time")
  record "$name.rate" "$(awk -v e="$events" -v s="$seconds" 'BEGIN {printf "%.0f", e / s}')"
  record "$name.cpu_us" "$(awk -v t="$(( $(ticks_of "$SERVER") - service_before ))" -v e="$events" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz * 1e6 / e}')"
  record "$name.wrk_us" "$(awk -v c="$wrk_cpu" -v e="$events" 'BEGIN {printf "%.2f", c * 1e6 / e}')"
  if [ -n "${DB_PID:-}" ]; then
    record "$name.db_us" "$(awk -v t="$(( $(ticks_of "$DB_PID") - db_before ))" -v e="$events" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz * 1e6 / e}')"
  fi
  record "$name.p99_ms" "$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else {sub("s","",v); v*=1000}; print v}' <<<"$output")"
  record "$name.not_2xx" "$non_2xx"
  echo "  $name: $(grep "^$name.rate" "$RESULTS" | tail -1 | cut -d' ' -f2) events/s, $non_2xx not 2xx" >&2
}

# Every acknowledged event of this service run is in the partner's summary, or the run fails.
check_stored() {
  local from to total
  from=$(date -u -d "-2 hours" +%Y-%m-%dT%H:00:00Z); to=$(date -u -d "+2 hours" +%Y-%m-%dT%H:00:00Z)
  for _ in $(seq 1 100); do   # the writers finish what they hold (durable: nothing left)
    [ "$(metric volcanion_ingest_queue_depth)" = 0 ] && break; sleep 0.1
  done
  total=$(curl -sf "$API/api/v1/reports/summary?from=$from&to=$to&includeBots=true" -H "X-API-Key: $KEY" | jq .totalEvents)
  if [ "$total" -lt "$ACKNOWLEDGED" ]; then
    echo "FAIL: $ACKNOWLEDGED events acknowledged, but the summary counts $total" >&2; exit 1
  fi
  echo "  stored: $total events counted, $ACKNOWLEDGED acknowledged" >&2
}

# service_round STORE: one round of noop, single and batch phases on a fresh service.
service_round() {
  local store=$1
  if [ "$store" = cassandra ]; then
    export VOLCANION_STORE__BACKEND=cassandra VOLCANION_CASSANDRA__NODES=$CASSANDRA_NODES
    export VOLCANION_CASSANDRA__KEYSPACE=bench_$$_$ROUND
    DB_PID=$CASSANDRA_PID
  else
    unset VOLCANION_STORE__BACKEND VOLCANION_CASSANDRA__NODES VOLCANION_CASSANDRA__KEYSPACE DB_PID
  fi
  start_service "$TARGET_DIR/release/volcanion" "$PORT"
  create_tenant
  ACKNOWLEDGED=0
  if [ "$store" = embedded ]; then
    closed noop 1 "$API/health/live"
    ACKNOWLEDGED=0   # requests, not events
  fi
  closed "$store.single" 1 "$API/api/v1/events" -s load-tests/wrk/single.lua
  closed "$store.batch" "$BATCH" "$API/api/v1/events/batch" -s load-tests/wrk/batch.lua
  check_stored
  if [ "$store" = embedded ]; then
    # Open loop at half the closed-loop single-event rate just measured.
    local rate body
    rate=$(( $(grep "^embedded.single.rate" "$RESULTS" | tail -1 | cut -d' ' -f2) / 2 ))
    body=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" load-tests/wrk/single.lua)
    echo "$body" > "$WORK/single.json"
    printf 'POST %s/api/v1/events\nContent-Type: application/json\nX-API-Key: %s\n@%s\n' "$API" "$KEY" "$WORK/single.json" \
      | "$VEGETA" attack -rate="$rate/s" -duration="$DURATION" -max-workers=1024 | "$VEGETA" report -type=json > "$WORK/open.json"
    record open.rate "$rate"
    record open.p99_ms "$(jq '.latencies."99th" / 1e6' "$WORK/open.json")"
    record open.success "$(jq '.success' "$WORK/open.json")"
    echo "  open loop at $rate/s: p99 $(jq '.latencies."99th" / 1e6' "$WORK/open.json") ms" >&2
  fi
  record "$store.peak_rss_mib" "$(awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$SERVER/status")"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  rm -rf "$DATA"
  if [ "$store" = cassandra ]; then
    scripts/cassandra.sh cqlsh -e "DROP KEYSPACE IF EXISTS $VOLCANION_CASSANDRA__KEYSPACE" >/dev/null 2>&1 || true
  fi
}

raw_round() {
  local output db_before
  db_before=$(ticks_of "$CASSANDRA_PID")
  output=$("$TARGET_DIR/release/examples/cassandra_insert_rate" --nodes "$CASSANDRA_NODES" \
    --keyspace "bench_raw_$$" --events "${RAW_EVENTS:-100000}" --batch-rows 100 --modes single,batch,both --drop)
  echo "$output" | sed 's/^/  raw /' >&2
  record raw.single.rate "$(awk '$1 == "single:" {print $(NF-1)}' <<<"$output")"
  record raw.batch.rate "$(awk '$1 == "batch:" {print $(NF-1)}' <<<"$output")"
  record raw.both.rate "$(awk '$1 == "both:" {print $(NF-1)}' <<<"$output")"
}

parse_bench() {
  local estimate
  cargo bench --quiet --bench validation -- parse_and_check_event --warm-up-time 1 --measurement-time 3 > "$WORK/criterion.out" 2>&1
  estimate=$(jq '.median.point_estimate / 1000' "$TARGET_DIR/criterion/parse_and_check_event/new/estimates.json")
  record parse.us "$estimate"
  echo "  parse + validate: $estimate us/event (criterion median)" >&2
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GB; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)'); $DURATION per phase, $CONNECTIONS connections, $ROUNDS rounds"
parse_bench
for ROUND in $(seq 1 "$ROUNDS"); do
  echo "round $ROUND" >&2
  service_round embedded
  if [ -z "${NO_CASSANDRA:-}" ]; then
    raw_round
    service_round cassandra
  fi
done

median() { grep "^$1 " "$RESULTS" | cut -d' ' -f2 | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "n/a" || b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b}'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {if (v == "n/a") print "not measured"; else if ((op == "<=" && v <= t) || (op == ">=" && v >= t)) print "met"; else print "**not met**"}'; }
{
  echo "| figure (medians of $ROUNDS rounds, same run) | measured | target | |"
  echo "|---|---|---|---|"
  r=$(ratio "$(median embedded.single.cpu_us)" "$(median noop.cpu_us)")
  echo "| service CPU per single-event request ÷ per no-op request ($(median embedded.single.cpu_us) ÷ $(median noop.cpu_us) µs) | $r | ≤ 1.6 | $(verdict "$r" 1.6 '<=') |"
  v=$(median embedded.batch.cpu_us)
  echo "| service CPU per event, batches of 100 (embedded) | $v µs | ≤ 8 µs | $(verdict "$v" 8 '<=') |"
  r=$(ratio "$(median embedded.single.rate)" "$(median noop.rate)")
  echo "| embedded, single events: stored ev/s ÷ no-op req/s ($(median embedded.single.rate) ÷ $(median noop.rate)) | $r | ≥ 0.5 | $(verdict "$r" 0.5 '>=') |"
  r=$(ratio "$(median cassandra.single.rate)" "$(median raw.single.rate)")
  echo "| Cassandra, single events: stored ev/s ÷ raw single-insert ceiling ($(median cassandra.single.rate) ÷ $(median raw.single.rate)) | $r | ≥ 0.6 | $(verdict "$r" 0.6 '>=') |"
  r=$(ratio "$(median cassandra.batch.rate)" "$(median raw.batch.rate)")
  echo "| Cassandra, batches of 100: stored ev/s ÷ raw one-partition batch ceiling ($(median cassandra.batch.rate) ÷ $(median raw.batch.rate)) | $r | ≥ 0.7 | $(verdict "$r" 0.7 '>=') |"
  v=$(median open.p99_ms)
  echo "| p99 at 50% of the maximum single-event rate, open loop ($(median open.rate)/s) | $v ms | ≤ 10 ms | $(verdict "$v" 10 '<=') |"
  echo
  echo "| phase | events/s (2xx only) | service CPU µs/event | wrk CPU µs/event | Cassandra CPU µs/event | p99 ms (closed loop) | not 2xx |"
  echo "|---|---|---|---|---|---|---|"
  for phase in noop embedded.single embedded.batch cassandra.single cassandra.batch; do
    echo "| $phase | $(median "$phase.rate") | $(median "$phase.cpu_us") | $(median "$phase.wrk_us") | $(median "$phase.db_us") | $(median "$phase.p99_ms") | $(median "$phase.not_2xx") |"
  done
  echo "| raw Cassandra single inserts (no HTTP) | $(median raw.single.rate) | | | | | |"
  echo "| raw Cassandra batches of 100, one partition (no HTTP) | $(median raw.batch.rate) | | | | | |"
  echo "| raw Cassandra batches of 100 into both events tables, each event's two rows (no HTTP) | $(median raw.both.rate) | | | | | |"
  echo "| parse + validate, no HTTP, no store (criterion) | | $(median parse.us) | | | | |"
  echo
  echo "Peak RSS of the service: embedded $(median embedded.peak_rss_mib) MiB, Cassandra $(median cassandra.peak_rss_mib) MiB. Load average after: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$OUT"
