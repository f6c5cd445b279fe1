#!/usr/bin/env bash
# The erasure benchmark (issue 27): EVENTS events (default 10,000,000) of one partner (the
# people benchmark's dataset: 30 days, 200,000 people) seeded through the batch endpoint
# into a release build on 127.0.0.1, plus one person with PERSON_EVENTS events (default
# 1,000) spread over the 30 days: 70% as `user_heavy`, 30% as `anon_heavy` before an
# identify joins the two. Once every hour is folded:
#   1. baseline: single events at RATE/s (default 200) for 30 s (vegeta, open loop): p99;
#   2. the same load again, and after 5 s the person's erasure is asked for; the time from
#      the request to `done`, and the p99 of the requests sent meanwhile;
#   3. checks: the receipt counts every event of the person, and their lookup is a 404.
# Reports the service's CPU during the erasure too (ingest load included).
# STORE=cassandra runs on Cassandra (CASSANDRA_NODES, default 127.0.0.1:9042; a keyspace
# of its own, dropped at the end).
# Usage: load-tests/erasure.sh [--events N] [--person-events N]   (BINARY=… a build;
# PERF_OUT=FILE records a perf profile of the service during the erasure)
# Needs vegeta (go install github.com/tsenart/vegeta/v12@v12.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=10000000
PERSON_EVENTS=1000
RATE=${RATE:-200}
while [ $# -gt 0 ]; do
  case $1 in
    --events) EVENTS=$2; shift 2 ;;
    --person-events) PERSON_EVENTS=$2; shift 2 ;;
    *) echo "usage: $0 [--events N] [--person-events N]" >&2; exit 2 ;;
  esac
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=${PORT:-18086}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BINARY=${BINARY:-$TARGET_DIR/release/volcanion}
VEGETA=${VEGETA:-$(command -v vegeta || echo "$HOME/go/bin/vegeta")}
say() { echo "erasure: $*" >&2; }
. load-tests/bench_venv.sh
[ -x "$BINARY" ] || cargo build --release --quiet --bin volcanion

# Hours fold soon after the seed stops writing to them.
export VOLCANION_STORE__BREAKDOWN_SETTLE=5s VOLCANION_CASSANDRA__ROLLUP_SETTLE=15s
. load-tests/people/seeded.sh
seed_people erasure
# The heavy person, over the same 30 days (ids of their own: stored once however sent).
"$PY" - "$API" "$KEY" "$PERSON_EVENTS" "$(date -u -d "$TODAY" +%s)" <<'PYTHON'
import json, random, sys, urllib.request
api, key, count, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(27)
start = end - 30 * 86400
stamps = sorted(rng.uniform(start, end) for _ in range(count))
events = []
for n, at in enumerate(stamps):
    ids = {"anonymousId": "anon_heavy"} if n < count * 3 // 10 else {"userId": "user_heavy"}
    if n == count * 3 // 10:
        ids = {"userId": "user_heavy", "anonymousId": "anon_heavy"}  # the identify
    stamp = __import__("datetime").datetime.fromtimestamp(at, __import__("datetime").timezone.utc)
    events.append({"eventId": f"heavy-{n}", "eventType": "page_view", "subsystem": "web",
                   "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                   "context": {"page": {"path": "/heavy"}}, **ids})
for first in range(0, count, 500):
    body = json.dumps({"events": events[first:first + 500]}).encode()
    request = urllib.request.Request(f"{api}/api/v1/events/batch", data=body, method="POST",
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
        assert response.status == 202 and answer["rejected"] == 0, answer
PYTHON
TOTAL=$((ACCEPTED + PERSON_EVENTS))
for _ in $(seq 1 3000); do [ "$(metric volcanion_events_stored_total)" -ge "$TOTAL" ] && break; sleep 0.2; done
say "seeded $TOTAL events; waiting for the folds"
wait_for_folds
ADMIN="Authorization: Bearer bench-admin"
BEFORE=$(curl -sf "$API/api/v1/people/user_heavy?partnerId=$PARTNER" -H "$ADMIN" | jq -r .events)
[ "$BEFORE" = "$PERSON_EVENTS" ] || { say "the person's lookup counts $BEFORE events before the erasure"; exit 1; }

echo "POST $API/api/v1/events" > "$WORK/targets"
echo "X-API-Key: $KEY" >> "$WORK/targets"
echo "Content-Type: application/json" >> "$WORK/targets"
echo "@$WORK/body.json" >> "$WORK/targets"
echo '{"eventType":"tick","userId":"load","subsystem":"web"}' > "$WORK/body.json"
attack() {  # DURATION OUT
  "$VEGETA" attack -targets="$WORK/targets" -rate="$RATE/s" -duration="$1" -max-workers=256 > "$2"
}
p99_ms() {  # RESULTS [FROM_NS TO_NS]: the p99 of the requests sent in the window (2xx only)
  "$VEGETA" encode --to csv < "$1" | "$PY" -c '
import csv, sys
lo, hi = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (0, 1 << 63)
rows = [r for r in csv.reader(sys.stdin) if lo <= int(r[0]) <= hi]
ok = sorted(int(r[2]) for r in rows if r[1].startswith("2"))
assert ok, "no answer in the window"
print(f"{ok[min(len(ok) - 1, int(len(ok) * 0.99))] / 1e6:.1f} {len(ok)} {len(rows)}")' "${@:2}"
}
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVER/stat"; }
written() { awk '$1 == "write_bytes:" {print $2}' "/proc/$SERVER/io"; }
BASE_WRITTEN=$(written)
attack 30s "$WORK/base.bin"
BASE_WRITTEN_MIB=$(( ($(written) - BASE_WRITTEN) / 1048576 ))
read -r BASE_P99 BASE_OK BASE_SENT < <(p99_ms "$WORK/base.bin")

# vegeta itself in the background (a background shell would ignore the SIGINT below).
"$VEGETA" attack -targets="$WORK/targets" -rate="$RATE/s" -duration=600s -max-workers=256 > "$WORK/during.bin" &
VEGETA_PID=$!
sleep 5
CPU_BEFORE=$(cpu)
WRITTEN_BEFORE=$(written)
# PERF_OUT=FILE: a perf profile of the service during the erasure (perf report -i FILE).
[ -z "${PERF_OUT:-}" ] || { perf record -q -F 499 -g -p "$SERVER" -o "$PERF_OUT" & PERF_PID=$!; }
STARTED_NS=$(date +%s%N)
JOB=$(curl -sf -X POST "$API/api/v1/partners/$PARTNER/erasures" -H "$ADMIN" \
  -H 'Content-Type: application/json' -d '{"userId":"user_heavy"}' | jq -r .id)
for _ in $(seq 1 30000); do
  STATUS=$(curl -sf "$API/api/v1/partners/$PARTNER/erasures/$JOB" -H "$ADMIN")
  [ "$(jq -r .status <<<"$STATUS")" = done ] && break
  [ "$(jq -r .status <<<"$STATUS")" = failed ] && { say "the erasure failed: $STATUS"; exit 1; }
  sleep 0.05
done
DONE_NS=$(date +%s%N)
[ -z "${PERF_OUT:-}" ] || { kill -INT "$PERF_PID"; wait "$PERF_PID" || true; }
CPU_DURING=$(echo "$(cpu) - $CPU_BEFORE" | bc)
WRITTEN_MIB=$(( ($(written) - WRITTEN_BEFORE) / 1048576 ))
kill -INT $VEGETA_PID; wait $VEGETA_PID || true
read -r DURING_P99 DURING_OK DURING_SENT < <(p99_ms "$WORK/during.bin" "$STARTED_NS" "$DONE_NS")
DELETED=$(jq -r .eventsDeleted <<<"$STATUS")
HOURS=$(jq -r .hoursRecounted <<<"$STATUS")
LOOKUP=$(curl -s -o /dev/null -w '%{http_code}' "$API/api/v1/people/user_heavy?partnerId=$PARTNER" -H "$ADMIN")

echo
echo "Erasure benchmark: $TOTAL events ($STORE), one person with $PERSON_EVENTS, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)')," \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before $LOAD_BEFORE"
echo
awk -v s="$STARTED_NS" -v d="$DONE_NS" -v e="$DELETED" -v h="$HOURS" -v c="$CPU_DURING" -v w="$WRITTEN_MIB" 'BEGIN {
  printf "erasure: %.2f s from the request to done; %d events deleted, %d hours recounted; service CPU %.2f s and %d MiB written to disk meanwhile (ingest load included)\n", (d - s) / 1e9, e, h, c, w }'
echo "ingest at $RATE/s: p99 $BASE_P99 ms without ($BASE_OK of $BASE_SENT answered 2xx, $BASE_WRITTEN_MIB MiB written to disk in the 30 s), $DURING_P99 ms during the erasure ($DURING_OK of $DURING_SENT)"
echo "lookup of the erased person: $LOOKUP"
FAILED=0
[ "$DELETED" = "$PERSON_EVENTS" ] || { say "the receipt counts $DELETED events, $PERSON_EVENTS were the person's"; FAILED=1; }
[ "$LOOKUP" = 404 ] || { say "the erased person's lookup answered $LOOKUP"; FAILED=1; }
exit $FAILED
