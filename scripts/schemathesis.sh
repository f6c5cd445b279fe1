#!/usr/bin/env bash
# Runs schemathesis (pinned below, installed into a cached venv) against a real
# `volcanion serve` on a free loopback port, driven by its own /openapi.json: management
# with the admin token, ingestion and reading with an API key (scopes ingest and read).
# Fails on any 5xx or any answer that breaks the description. Bounded: few examples per
# operation and a time budget, so a run takes a few minutes at most.
#
#   scripts/schemathesis.sh install [VENV]      (what .ci/run does first)
#   scripts/schemathesis.sh run BINARY [VENV]   (BINARY: target/debug/volcanion)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.32.5
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-20}
MAX_TIME=${SCHEMATHESIS_MAX_TIME:-75}

say() { echo "schemathesis: $*" >&2; }

install() {
  local venv=$1
  if [[ -x $venv/bin/schemathesis && $("$venv/bin/schemathesis" --version 2>/dev/null) == *"$VERSION"* ]]; then
    say "$VERSION up to date in $venv"
    return
  fi
  say "installing schemathesis==$VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
}

# One schemathesis run over the operations the filter selects, with one credential. One
# worker: with two threads, Hypothesis on CPython 3.11 can fail inside `ast.parse`
# ("AST constructor recursion depth mismatch"), an error of the tool, not of the service.
check() {
  local name=$1 base=$2 venv=$3
  shift 3
  say "operations for the $name credential"
  "$venv/bin/schemathesis" run "$base/openapi.json" "$@" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --workers 1 \
    --request-timeout 10 --seed 1 --no-color
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() {
  local binary=$1 venv=$2
  [[ -x $binary ]] || { say "no binary at $binary (cargo build first)"; exit 1; }
  local work port admin base server
  work=$(mktemp -d)
  port=$(free_port)
  admin="schemathesis-admin-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
  base="http://127.0.0.1:$port"
  VOLCANION_LISTEN=127.0.0.1:$port VOLCANION_DATA_DIR=$work/data VOLCANION_ADMIN_TOKEN=$admin \
    VOLCANION_AUTH__PBKDF2_ITERATIONS=1000 VOLCANION_TELEMETRY__ACCESS_LOG=false \
    VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=100000000 \
    VOLCANION_LIMITS__KEY_RATE_LIMIT_PER_MINUTE=100000000 \
    "$binary" serve > "$work/server.log" 2>&1 &
  server=$!
  # shellcheck disable=SC2064
  trap "kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf '$work'" EXIT
  for _ in $(seq 1 200); do
    curl -fsS "$base/health/ready" >/dev/null 2>&1 && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log"; say "the server exited"; exit 1; }
    sleep 0.1
  done
  curl -fsS "$base/health/ready" >/dev/null
  local auth=(-H "Authorization: Bearer $admin" -H 'Content-Type: application/json')
  local partner subsystem key
  partner=$(curl -fsS "${auth[@]}" -d '{"code":"fuzz","name":"Fuzz"}' "$base/api/v1/partners" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  subsystem=$(curl -fsS "${auth[@]}" -d '{"code":"web","name":"Web","type":"web"}' "$base/api/v1/partners/$partner/subsystems" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  # Pinned to the subsystem, so generated events need not name one.
  key=$(curl -fsS "${auth[@]}" -d "{\"scopes\":[\"ingest\",\"read\"],\"subsystemId\":\"$subsystem\"}" "$base/api/v1/partners/$partner/api-keys" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  say "against $base: at most $MAX_EXAMPLES examples per operation, ${MAX_TIME}s per credential"
  local status=0
  # Ingestion, Segment and reading with the API key, then management with the admin
  # token (last: it may deactivate the partner or revoke the key along the way).
  check key "$base" "$venv" --include-tag-regex '^(ingestion|segment|reading)$' \
    -H "X-API-Key: $key" || status=$?
  check admin "$base" "$venv" --exclude-tag-regex '^(ingestion|segment|reading)$' \
    -H "Authorization: Bearer $admin" || status=$?
  if [[ $status -ne 0 ]]; then
    say "failed; the server's log:"
    tail -50 "$work/server.log" >&2
  fi
  return $status
}

VENV_DEFAULT=${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/schemathesis
case "${1:-}" in
  install) install "${2:-$VENV_DEFAULT}" ;;
  run) run "${2:?binary}" "${3:-$VENV_DEFAULT}" ;;
  *) echo "usage: $0 install [VENV] | run BINARY [VENV]" >&2; exit 2 ;;
esac
