#!/usr/bin/env bash
# A/B of two release builds on the ingest path: batches of 100 browser page views (the
# context a browser library sends: user agent, page URL with UTM parameters, referrer,
# IP; load-tests/wrk/batch_browser.lua), embedded store, ROUNDS rounds alternating the
# builds. Prints per round the 2xx events/s, the service's CPU per event (from /proc) and
# the acknowledged and stored counts (the summary must hold every acknowledged event).
#
#   OLD=path/to/volcanion NEW=path/to/volcanion load-tests/ab_batch.sh [duration, default 10s]
#
# Needs wrk and jq; targets 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-18090}
: "${OLD:?OLD=path of the first build}" "${NEW:?NEW=path of the second build}"
. load-tests/service.sh
HZ=$(getconf CLK_TCK)
ticks_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq 1 "$ROUNDS"); do
  for name in OLD NEW; do
    start_service "${!name}" "$PORT" >/dev/null
    create_tenant
    before=$(ticks_of "$SERVER")
    out=$(wrk -t2 -c32 -d"$DURATION" -s load-tests/wrk/batch_browser.lua "$API/api/v1/events/batch")
    ticks=$(( $(ticks_of "$SERVER") - before ))
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    non_2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non_2xx=${non_2xx:-0}
    seconds=$(awk '/requests in/ {gsub("s,", "", $4); print $4}' <<<"$out")
    events=$(( (requests - non_2xx) * 100 ))
    for _ in $(seq 1 100); do   # the writers finish what they hold
      depth=$(curl -sf "$API/metrics" | awk '$1 == "volcanion_ingest_queue_depth" {print $2}')
      [ "$depth" = 0 ] && break; sleep 0.1
    done
    from=$(date -u -d "-2 hours" +%Y-%m-%dT%H:00:00Z); to=$(date -u -d "+2 hours" +%Y-%m-%dT%H:00:00Z)
    stored=$(curl -sf "$API/api/v1/reports/summary?from=$from&to=$to&includeBots=true" -H "X-API-Key: $KEY" | jq .totalEvents)
    [ "$stored" -ge "$events" ] || { echo "FAIL: $events acknowledged, $stored stored" >&2; exit 1; }
    printf 'round %s %s: %s events/s, %s µs CPU/event, %s acknowledged, %s stored, %s not 2xx\n' \
      "$round" "$name" "$(awk -v e="$events" -v s="$seconds" 'BEGIN {printf "%.0f", e / s}')" \
      "$(awk -v t="$ticks" -v e="$events" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz * 1e6 / e}')" \
      "$events" "$stored" "$non_2xx"
    kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; rm -rf "$DATA"
  done
done
