# Sourced by the benchmarks over the people dataset (export.sh, erasure.sh):
# seed_people NAME writes EVENTS events of dataset.py's dataset (30 days before today)
# into WORK/data, starts BINARY on 127.0.0.1:PORT (STORE=cassandra: on CASSANDRA_NODES,
# default 127.0.0.1:9042, in a keyspace NAME_<pid> dropped at the end), creates the tenant
# (PARTNER, KEY) and seeds it through the batch endpoint. Sets WORK, TODAY and ACCEPTED;
# everything is removed on exit. metric NAME reads one of the service's metrics;
# wait_for_folds returns once the seeded hours are folded.
seed_people() {
  WORK=$(mktemp -d)
  TODAY=$(date -u +%Y-%m-%dT00:00:00Z)
  "$PY" load-tests/people/dataset.py --events "$EVENTS" --start "$(date -u -d "$TODAY" +%s)" --out "$WORK/data" >&2
  . load-tests/service.sh
  export VOLCANION_LIMITS__DEFAULT_RATE_LIMIT_PER_MINUTE=1000000000
  STORE=${STORE:-embedded}
  if [ "$STORE" = cassandra ]; then
    export VOLCANION_STORE__BACKEND=cassandra VOLCANION_CASSANDRA__NODES=${CASSANDRA_NODES:-127.0.0.1:9042}
    export VOLCANION_CASSANDRA__KEYSPACE=$1_$$
  fi
  start_service "$BINARY" "$PORT"
  trap remove_people EXIT
  create_tenant
  ACCEPTED=$("$PY" load-tests/people/seed.py "$API" "$KEY" "$WORK/data" --batch 500 --concurrency 6)
}

remove_people() {
  kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK" "$DATA"
  if [ "$STORE" = cassandra ]; then
    scripts/cassandra.sh cqlsh -e "DROP KEYSPACE IF EXISTS $VOLCANION_CASSANDRA__KEYSPACE" >/dev/null 2>&1 || true
  fi
}

# Returns once no hour or day was folded for 15 s (the dataset's last day may not have
# ended, so one may wait).
wait_for_folds() {
  local folded=-1 now_folded
  for _ in $(seq 1 400); do
    now_folded=$(metric volcanion_rollup_hours_folded_total)
    [ "$now_folded" = "$folded" ] && [ "$(metric volcanion_rollup_hours_waiting)" -le 1 ] && return
    folded=$now_folded
    sleep 15
  done
}

metric() { curl -sf "$API/metrics" | awk -v name="$1" '$1 == name {print $2}'; }
