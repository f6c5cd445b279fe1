# Sourced by the load scripts: start_service BINARY PORT starts a quiet service on
# 127.0.0.1:PORT with a fresh data dir (removed on exit) and waits until it is ready;
# create_tenant then sets PARTNER and KEY (a partner "bench" with subsystem "web" and an
# ingest+read key, both with limits far above any load these scripts make).
start_service() {
  local binary=$1 port=$2
  DATA=$(mktemp -d)
  export VOLCANION_LISTEN=127.0.0.1:$port VOLCANION_DATA_DIR=$DATA VOLCANION_ADMIN_TOKEN=bench-admin
  # Quiet server: no access line per request (hundreds of thousands of them), warnings only.
  export VOLCANION_TELEMETRY__LOG_FILTER=warn VOLCANION_TELEMETRY__ACCESS_LOG=false
  export VOLCANION_LIMITS__KEY_RATE_LIMIT_PER_MINUTE=1000000000
  "$binary" serve &
  SERVER=$!
  trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA"' EXIT
  API=http://127.0.0.1:$port
  for _ in $(seq 1 100); do curl -sf "$API/health/ready" >/dev/null && return 0; sleep 0.1; done
  echo "the service did not become ready on $API" >&2
  return 1
}

create_tenant() {
  local admin="Authorization: Bearer bench-admin" json='Content-Type: application/json'
  PARTNER=$(curl -sf -X POST "$API/api/v1/partners" -H "$admin" -H "$json" \
    -d '{"code":"bench","name":"Bench","rateLimitPerMinute":100000000}' | jq -r .id)
  curl -sf -X POST "$API/api/v1/partners/$PARTNER/subsystems" -H "$admin" -H "$json" \
    -d '{"code":"web","name":"Web","type":"web"}' >/dev/null
  KEY=$(curl -sf -X POST "$API/api/v1/partners/$PARTNER/api-keys" -H "$admin" -H "$json" \
    -d '{"scopes":["ingest","read"]}' | jq -r .key)
  export PARTNER KEY
}
