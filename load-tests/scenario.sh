#!/usr/bin/env bash
# Runs one scenario of load-tests/scenarios.json (the file k6/volcanion.js reads too) with
# permissively licensed tools: wrk (Apache-2.0) for closed loops, vegeta (MIT) for constant
# arrival rates. Checks the scenario's thresholds and exits 1 when one is missed.
#
#   load-tests/scenario.sh single|batch|dashboard|soak|open_loop
#
# Against a running service: BASE_URL=http://host:port KEY=vt_... (ingest + read scopes),
# and SERVICE_PID=<pid> on the same machine for CPU and memory figures. Without BASE_URL it
# starts its own release build on 127.0.0.1 with a fresh embedded data dir (removed after).
# DURATION=5s shortens every phase (a smoke run); RATE=… overrides an open loop's rate.
# Needs wrk (apt), jq, vegeta (go install github.com/tsenart/vegeta/v12@v12.13.0).
set -euo pipefail
cd "$(dirname "$0")/.."
SPEC=load-tests/scenarios.json
NAME=${1:?usage: load-tests/scenario.sh SCENARIO}
jq -e --arg n "$NAME" '.scenarios[$n]' "$SPEC" >/dev/null || { echo "unknown scenario '$NAME'" >&2; exit 2; }
VEGETA=${VEGETA:-$(command -v vegeta || echo "$HOME/go/bin/vegeta")}
WORK=$(mktemp -d)
scenario() { jq -r --arg n "$NAME" ".scenarios[\$n]$1" "$SPEC"; }

if [ -z "${BASE_URL:-}" ]; then
  TARGET_DIR=${CARGO_TARGET_DIR:-target}
  [ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet
  . load-tests/service.sh
  start_service "$TARGET_DIR/release/volcanion" "${PORT:-18082}"
  create_tenant
  BASE_URL=$API SERVICE_PID=$SERVER
  trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$DATA" "$WORK"' EXIT
else
  : "${KEY:?KEY (an API key with the ingest and read scopes) is required}"
  trap 'rm -rf "$WORK"' EXIT
fi

# The body of request ID, as scenarios.json describes it.
body() {
  jq -c --arg id "$1" '
    .requests[$id] as $r | (.event | tojson) as $e
    | def ev($i): $e | gsub("\\{i\\}"; ($i | tostring)) | fromjson;
      if ($r.events // 0) == 0 then empty
      elif ($r.path | endswith("/batch")) then {events: [range(1; $r.events + 1) | ev(.)]}
      else ev(123) end' "$SPEC"
}
path() {
  local to from
  to=$(date -u -d "@$(( ($(date +%s) / 3600 + 1) * 3600 ))" +%Y-%m-%dT%H:%M:%SZ)
  from=$(date -u -d "@$(( ($(date +%s) / 3600 + 1) * 3600 - 86400 ))" +%Y-%m-%dT%H:%M:%SZ)
  jq -r --arg id "$1" '.requests[$id].path' "$SPEC" | sed "s/{from}/$from/; s/{to}/$to/"
}
cpu_ticks() { [ -n "${SERVICE_PID:-}" ] && awk '{print $14 + $15}' "/proc/$SERVICE_PID/stat" || echo 0; }
rss_kib() { [ -n "${SERVICE_PID:-}" ] && awk '/VmRSS/ {print $2}' "/proc/$SERVICE_PID/status" || echo 0; }
events_of() { jq -r --arg id "$1" '.requests[$id].events // 0' "$SPEC"; }
threshold() { jq -r --arg n "$NAME" ".scenarios[\$n].thresholds.$1 // empty" "$SPEC"; }
FAILED=0
verdict() { # verdict LABEL VALUE LIMIT: fails the run when VALUE > LIMIT
  if awk -v v="$2" -v l="$3" 'BEGIN {exit !(v > l)}'; then echo "THRESHOLD MISSED: $1 = $2 > $3"; FAILED=1; fi
}

# Closed loop: wrk with the scenario's one request.
closed() {
  local id method output requests non_2xx seconds p99 ticks
  id=$(scenario '.mix[0].request'); method=$(jq -r --arg id "$id" '.requests[$id].method' "$SPEC")
  body "$id" > "$WORK/body.json"
  cat > "$WORK/request.lua" <<LUA
wrk.method = "$method"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$KEY"
local f = io.open("$WORK/body.json"); wrk.body = f:read("*a"):gsub("\n$", ""); f:close()
LUA
  ticks=$(cpu_ticks)
  output=$(wrk -t2 -c"$(scenario .closed.connections)" -d"${DURATION:-$(scenario .closed.duration)}" --latency -s "$WORK/request.lua" "$BASE_URL$(path "$id")")
  ticks=$(( $(cpu_ticks) - ticks ))
  requests=$(echo "$output" | awk '/requests in/ {print $1}')
  seconds=$(echo "$output" | awk '/requests in/ {gsub("s,", "", $4); print $4}')
  non_2xx=$(echo "$output" | awk '/Non-2xx/ {print $5}'); non_2xx=${non_2xx:-0}
  p99=$(echo "$output" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}')
  local ok=$((requests - non_2xx)) events; events=$(( ok * $(events_of "$id") ))
  awk -v ok="$ok" -v e="$events" -v s="$seconds" -v p="$p99" -v bad="$non_2xx" -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v r="$(rss_kib)" \
    'BEGIN {printf "closed loop: %.0f 2xx/s (%.0f events/s), %d not 2xx, p99 %.2f ms, service CPU %s, RSS %d MiB\n", ok / s, e / s, bad, p, (t > 0 ? sprintf("%.1f us/event", t / hz * 1e6 / e) : "n/a"), r / 1024}'
  MAX_RATE=$(awk -v ok="$ok" -v s="$seconds" 'BEGIN {printf "%d", ok / s}')
  verdict "p99_ms" "$p99" "$(threshold p99_ms)"
  verdict "failed ratio" "$(awk -v b="$non_2xx" -v r="$requests" 'BEGIN {print b / r}')" "$(threshold max_failed_ratio)"
}

# The mix as vegeta JSON targets, each request as often as its weight.
targets() {
  local id
  for id in $(jq -r --arg n "$NAME" '.scenarios[$n].mix[] | range(.weight) as $_ | .request' "$SPEC"); do
    jq -nc --arg m "$(jq -r --arg id "$id" '.requests[$id].method' "$SPEC")" --arg u "$BASE_URL$(path "$id")" \
      --arg k "$KEY" --arg b "$(body "$id" | base64 -w0)" \
      '{method: $m, url: $u, header: {"Content-Type": ["application/json"], "X-API-Key": [$k]}} + (if $b == "" then {} else {body: $b} end)'
  done > "$WORK/targets.json"
}

# Open loop at RATE/s for DURATION; prints the line and checks p99 against LIMIT.
open_loop() {
  local rate=$1 duration=$2 limit=$3 label=$4 ticks p99 success requests p50 max codes
  ticks=$(cpu_ticks)
  "$VEGETA" attack -format=json -targets="$WORK/targets.json" -rate="$rate/s" -duration="$duration" -max-workers=2048 \
    | "$VEGETA" report -type=json > "$WORK/report.json"
  ticks=$(( $(cpu_ticks) - ticks ))
  p99=$(jq '.latencies."99th" / 1e6' "$WORK/report.json")
  success=$(jq '.success' "$WORK/report.json")
  read -r requests rate p50 max codes < <(jq -r '[.requests, .rate, .latencies."50th" / 1e6, .latencies.max / 1e6, (.status_codes | tojson)] | @tsv' "$WORK/report.json")
  awk -v l="$label" -v n="$requests" -v r="$rate" -v s="$success" -v p50="$p50" -v p99="$p99" -v m="$max" -v c="$codes" \
    -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v rss="$(rss_kib)" \
    'BEGIN {printf "%s: %d requests at %.0f/s, %.2f%% 2xx, p50 %.2f ms, p99 %.2f ms, max %.0f ms, service CPU %s, RSS %d MiB; codes %s\n", l, n, r, s * 100, p50, p99, m, (t > 0 ? sprintf("%.1f us/request", t / hz * 1e6 / n) : "n/a"), rss / 1024, c}'
  [ -z "$limit" ] || verdict "$label p99_ms" "$p99" "$limit"
  verdict "$label failed ratio" "$(awk -v s="$success" 'BEGIN {print 1 - s}')" "$(threshold max_failed_ratio)"
}

echo "scenario $NAME: $(scenario .about)"
if [ "$(scenario .closed)" != null ]; then
  closed
elif [ "$(scenario .fractions_of_max)" != null ]; then
  NAME_SAVED=$NAME; NAME=single closed >/dev/null; NAME=$NAME_SAVED
  echo "maximum (closed loop, single): $MAX_RATE requests/s"
  targets
  for fraction in $(scenario '.fractions_of_max[]'); do
    limit=""; [ "$fraction" = 0.5 ] && limit=$(threshold p99_ms_at_half)
    open_loop "$(awk -v m="$MAX_RATE" -v f="$fraction" 'BEGIN {printf "%d", m * f}')" "${DURATION:-$(scenario .open.duration)}" "$limit" "open loop at $(awk -v f="$fraction" 'BEGIN {print f * 100}')% of max"
  done
else
  targets
  BASE=$(rss_kib)
  if [ "$NAME" = soak ]; then
    # Memory sampled every 10 s: the growth over the second half. The first half fills the
    # embedded store's page cache (store.cache_size) and the allocator's pools.
    ( while sleep 10; do rss_kib; done > "$WORK/rss" ) & SAMPLER=$!
  fi
  open_loop "${RATE:-$(scenario .open.rate_per_second)}" "${DURATION:-$(scenario .open.duration)}" "$(threshold p99_ms)" "open loop"
  if [ "$NAME" = soak ]; then
    kill $SAMPLER
    read -r first last < <(awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)], v[NR]}' "$WORK/rss")
    growth=$(awk -v f="$first" -v l="$last" 'BEGIN {print (f > 0 ? (l - f) / f : 0)}')
    echo "resident memory: $((BASE / 1024)) MiB at start, $((first / 1024)) MiB half-way, $((last / 1024)) MiB at the end (growth $growth)"
    verdict "rss growth ratio" "$growth" "$(threshold max_rss_growth_ratio)"
  fi
fi
[ "$FAILED" = 0 ] && echo "thresholds: met" || { echo "thresholds: missed"; exit 1; }
