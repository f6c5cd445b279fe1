#!/usr/bin/env bash
# A/B of two release builds on an identity-heavy ingest: the people benchmark's dataset
# (dataset.py: half the events anonymous, a sign-in joining 40% of the people) posted
# through the batch endpoint by seed.py, embedded store with the default settle (no fold
# runs during a short seed), ROUNDS rounds alternating the builds. Prints per round the
# 2xx events/s and the service's CPU per event (from /proc).
#
#   OLD=path/to/volcanion NEW=path/to/volcanion load-tests/people/ab_seed.sh [--events N]
#
# Default 2,000,000 events; targets 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=2000000
[ "${1:-}" = --events ] && EVENTS=$2
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18090}
say() { echo "ab_seed: $*" >&2; }
. load-tests/bench_venv.sh
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TODAY=$(date -u +%Y-%m-%dT00:00:00Z)
"$PY" load-tests/people/dataset.py --events "$EVENTS" --start "$(date -u -d "$TODAY" +%s)" --out "$WORK/data" >/dev/null
. load-tests/service.sh
export VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=1000000000
for round in $(seq 1 "$ROUNDS"); do
  for which in OLD NEW; do
    start_service "${!which}" "$PORT"
    create_tenant
    accepted=$("$PY" load-tests/people/seed.py "$API" "$KEY" "$WORK/data" 2>"$WORK/seed.err")
    cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVER/stat")
    echo "round $round $which: $(cat "$WORK/seed.err"); $(awk -v c="$cpu" -v n="$accepted" 'BEGIN {printf "%.1f", c * 1e6 / n}') us CPU/event"
    kill "$SERVER"; wait "$SERVER" || true; rm -rf "$DATA"
  done
done
