#!/usr/bin/env bash
# Bytes of embedded-store disk per stored event (issue 8's measure): sends EVENTS copies of
# the reference 383-byte event through the batch endpoint (batches of 100), waits until
# all are stored, stops the service (SIGTERM: drain, close) and reports `du` of the data
# dir divided by the event count. Needs curl, jq and python3.
# Usage: load-tests/disk_per_event.sh [events, default 300000]   (BINARY=… to pick a build)
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-300000}
PORT=${PORT:-18081}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BINARY=${BINARY:-$TARGET_DIR/release/volcanion}
[ -x "$BINARY" ] || cargo build --release --quiet --bin volcanion
. load-tests/service.sh
start_service "$BINARY" "$PORT"
create_tenant
# Partner and subsystem as in load-tests/service.sh: the subsystem code is "web".

python3 - "$API" "$KEY" "$EVENTS" <<'PY'
import http.client, json, sys, time, urllib.parse
api, key, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
event = {"eventType":"page_view","userId":"user_12345","anonymousId":"anon_67890",
  "subsystem":"web",
  "properties":{"page":"/products/42","referrer":"https://example.com/search?q=widgets",
    "price":29.99,"currency":"USD","category":"widgets","tags":["a","b","c"]},
  "context":{"ip":"203.0.113.9","userAgent":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36","locale":"en-US"}}
body = json.dumps({"events": [event] * 100}).encode()
host = urllib.parse.urlparse(api).netloc
connection = http.client.HTTPConnection(host)
sent = 0
while sent < total:
    connection.request("POST", "/api/v1/events/batch", body, {"X-API-Key": key, "Content-Type": "application/json"})
    response = connection.getresponse(); response.read()
    if response.status == 202:
        sent += 100
    elif response.status in (429, 503):
        time.sleep(float(response.getheader("Retry-After", "1")) / 10)
    else:
        sys.exit(f"unexpected {response.status}")
deadline = time.time() + 120
while time.time() < deadline:
    connection.request("GET", "/metrics"); metrics = connection.getresponse().read().decode()
    stored = sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("volcanion_events_stored_total"))
    if stored >= total:
        break
    time.sleep(0.2)
else:
    sys.exit(f"only {stored} of {total} events stored")
PY
kill -TERM $SERVER; wait $SERVER || true
BYTES=$(du -sb "$DATA" | cut -f1)
echo "events=$EVENTS data_dir_bytes=$BYTES bytes_per_event=$((BYTES / EVENTS))"
