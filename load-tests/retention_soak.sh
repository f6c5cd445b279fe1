#!/usr/bin/env bash
# The retention soak (issue 27), embedded store, release build on 127.0.0.1: a partner
# with `retentionDays` 7 and the sweep every 5 s.
#   1. BASE events (default 1,000,000) inside the retention (the last 6 days), kept;
#   2. ROUNDS rounds (default 12), each sending CHURN events (default 500,000) dated on one
#      day past the retention, a day further back each round (old data arriving as it
#      expires: weeks of churn compressed into minutes), waiting until the sweeper has
#      deleted them (volcanion_events_expired_total), then taking the data file's size.
# Passes when every round's size is within 10% of the first round's: freed pages are
# reused, so the file stops growing after the first sweep cycle.
# Usage: load-tests/retention_soak.sh [--base N] [--churn N] [--rounds N]   (BINARY=… a build)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=1000000
CHURN=500000
ROUNDS=12
while [ $# -gt 0 ]; do
  case $1 in
    --base) BASE=$2; shift 2 ;;
    --churn) CHURN=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 [--base N] [--churn N] [--rounds N]" >&2; exit 2 ;;
  esac
done
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=${PORT:-18087}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BINARY=${BINARY:-$TARGET_DIR/release/volcanion}
say() { echo "soak: $*" >&2; }
. load-tests/bench_venv.sh
[ -x "$BINARY" ] || cargo build --release --quiet --bin volcanion

. load-tests/service.sh
export VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=1000000000
export VOLCANION_STORE__RETENTION_SWEEP=5s VOLCANION_STORE__BREAKDOWN_SETTLE=5s
start_service "$BINARY" "$PORT"
create_tenant
curl -sf -X PATCH "$API/api/v1/partners/$PARTNER" -H "Authorization: Bearer bench-admin" \
  -H 'Content-Type: application/json' -d '{"retentionDays":7}' >/dev/null
metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
send() {  # COUNT FIRST_DAY_BACK LAST_DAY_BACK TAG: COUNT events spread over those days
  "$PY" - "$API" "$KEY" "$@" <<'PYTHON'
import concurrent.futures, json, random, sys, time, urllib.request
api, key, count, oldest, newest, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
rng = random.Random(tag)
now = time.time()
types = ["page_view", "click", "signup", "purchase", "search"]
def batch(first):
    events = []
    for n in range(first, min(first + 500, count)):
        at = now - rng.uniform(newest, oldest) * 86400
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
        events.append({"eventId": f"{tag}-{n}", "eventType": rng.choice(types), "userId": f"u{rng.randrange(20000)}",
                       "subsystem": "web", "timestamp": stamp, "context": {"page": {"path": f"/p/{rng.randrange(30)}"}}})
    request = urllib.request.Request(f"{api}/api/v1/events/batch", data=json.dumps({"events": events}).encode(),
                                     method="POST", headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 202, response.status
with concurrent.futures.ThreadPoolExecutor(6) as pool:
    list(pool.map(batch, range(0, count, 500)))
PYTHON
}
stored_at_least() { for _ in $(seq 1 3000); do [ "$(metric volcanion_events_stored_total)" -ge "$1" ] && return 0; sleep 0.2; done; return 1; }

send "$BASE" 6 0.01 base
stored_at_least "$BASE"
say "seeded $BASE events inside the retention"
SIZES=()
STORED=$BASE
for round in $(seq 1 "$ROUNDS"); do
  back=$((8 + round))
  began=$(date +%s.%N)
  send "$CHURN" "$back" "$((back - 1))" "round$round"
  STORED=$((STORED + CHURN))
  stored_at_least "$STORED"
  for _ in $(seq 1 3000); do [ "$(metric volcanion_events_expired_total)" = "$((round * CHURN))" ] && break; sleep 0.2; done
  [ "$(metric volcanion_events_expired_total)" = "$((round * CHURN))" ] || { say "round $round: not swept"; exit 1; }
  size=$(stat -c %s "$DATA/volcanion.redb")
  SIZES+=("$size")
  awk -v r="$round" -v s="$size" -v t="$(echo "$(date +%s.%N) - $began" | bc)" \
    'BEGIN {printf "round %2d: %.0f MiB data file, %.1f s to send and sweep\n", r, s / 1048576, t}' >&2
done

echo
echo "Retention soak: $BASE events kept, $ROUNDS rounds of $CHURN expired events, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' (src modified)'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before $LOAD_BEFORE"
printf '%s\n' "${SIZES[@]}" | awk -v first="${SIZES[0]}" '
  { size[NR] = $1; if ($1 > max) max = $1; if (min == "" || $1 < min) min = $1 }
  END {
    printf "data file after each round (MiB):"; for (i = 1; i <= NR; i++) printf " %.0f", size[i] / 1048576; print ""
    printf "largest %.1f%% above the first round, smallest %.1f%% below it\n", (max - first) * 100 / first, (first - min) * 100 / first
    exit (max > first * 1.10 || min < first * 0.90) }'
