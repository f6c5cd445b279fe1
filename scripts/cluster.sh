#!/usr/bin/env bash
# A local 3-node Cassandra 5.0 cluster on 127.0.0.1, 127.0.0.2 and 127.0.0.3 without Docker:
# one JVM and state dir per node, the same download, config template and readiness wait as
# scripts/cassandra.sh (scripts/cassandra/lib.sh). For scale-out and node-loss testing.
#
#   scripts/cluster.sh start [--fresh]   start node 1 (the seed), then 2, then 3, one at a time,
#                                        each once CQL answers; ready when every node shows all
#                                        three Up/Normal in `nodetool status`
#   scripts/cluster.sh stop              stop all nodes
#   scripts/cluster.sh status            per-node CQL and ring state; exit 0 iff all three are UN
#   scripts/cluster.sh stop-node N       SIGTERM node N (it drains and tells the others), wait
#                                        until it has exited and its CQL port is closed
#   scripts/cluster.sh kill-node N       SIGKILL node N (a crash: nothing announced), likewise
#   scripts/cluster.sh start-node N      start node N on its data, wait until all see it UN
#   scripts/cluster.sh nodes             print the contact points (host:port,host:port,host:port)
#   scripts/cluster.sh cqlsh N [ARGS]    cqlsh against node N
#   scripts/cluster.sh nodetool N ARGS   nodetool against node N (its local JMX port)
#
# 127.0.0.2 and .3 are loopback addresses Linux answers without configuration. The ports stay
# clear of a developer's node (127.0.0.1:9042/7000/7199) and CI's (19042/17000/17199):
#   CLUSTER_CQL_PORT      29042  CQL port, the same on every node's own address
#   CLUSTER_STORAGE_PORT  27000  inter-node port, likewise (node 1's is the seed)
#   CLUSTER_JMX_PORT      27190  node N's JMX listens on 127.0.0.1:(this + N)
#   CLUSTER_STATE_DIR     ${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/cluster (nodeN/ each)
#   CLUSTER_HEAP          1G     per node: three nodes take ~5 GB resident on a 24 GB machine
#   CLUSTER_START_TIMEOUT 240    seconds per node to answer CQL, and to join the ring
# plus CASSANDRA_VERSION, CASSANDRA_CACHE_DIR, CASSANDRA_HOME, CQLSH as for cassandra.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NODES=3
CLUSTER_STATE=${CLUSTER_STATE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/cluster}
CQL_PORT=${CLUSTER_CQL_PORT:-29042}
CLUSTER_STORAGE=${CLUSTER_STORAGE_PORT:-27000}
JMX_BASE=${CLUSTER_JMX_PORT:-27190}
HEAP=${CLUSTER_HEAP:-1G}
TIMEOUT=${CLUSTER_START_TIMEOUT:-240}
FRESH=0
SEEDS=127.0.0.1:$CLUSTER_STORAGE
# A new cluster's nodes hold no data to stream, so they join without bootstrapping (and
# its 30 s ring delay); a restarted node is never bootstrapped anyway.
EXTRA_YAML="auto_bootstrap: false"
SAY_PREFIX=cluster
# shellcheck source=cassandra/lib.sh
. "$SCRIPT_DIR/cassandra/lib.sh"

# Points the lib's globals at node N.
use_node() {
  local n=$1
  [[ "$n" =~ ^[1-3]$ ]] || die "node must be 1, 2 or 3 (got '$n')"
  NODE=$n
  HOST=127.0.0.$n
  PORT=$CQL_PORT
  STORAGE_PORT=$CLUSTER_STORAGE
  JMX_PORT=$((JMX_BASE + n))
  STATE=$CLUSTER_STATE/node$n
  SAY_PREFIX="cluster node $n"
  node_files
}

# The ring as node M sees it: "UN 127.0.0.1", … (state and address per line).
ring_seen_by() {
  use_node "$1"
  run_nodetool status 2>/dev/null | awk '$1 ~ /^[UD][NLJM]$/ { sub(/:.*/, "", $2); print $1, $2 }'
}

# Whether every running node other than N reports node N in state $2 (UN or DN).
others_see() {
  local n=$1 want=$2 m seen=0
  for ((m = 1; m <= NODES; m++)); do
    [ "$m" = "$n" ] && continue
    use_node "$m"; jvm_pid >/dev/null || continue
    ring_seen_by "$m" | grep -qx "$want 127.0.0.$n" || return 1
    seen=$((seen + 1))
  done
  [ "$seen" -gt 0 ]
}

wait_others_see() {
  local n=$1 want=$2 t0=$SECONDS deadline=$((SECONDS + TIMEOUT))
  until others_see "$n" "$want"; do
    [ "$SECONDS" -lt "$deadline" ] || { use_node "$n"; die "the other nodes do not see node $n as $want within ${TIMEOUT}s"; }
    sleep 1
  done
  use_node "$n"; say "the other nodes see it $want after $((SECONDS - t0))s"
}

start_node() {
  use_node "$1"
  if port_open "$PORT" && cql_ok; then say "already running on $HOST:$PORT"; return 0; fi
  if pid=$(jvm_pid); then say "JVM (pid $pid) is starting; waiting"; wait_ready "$pid"; return 0; fi
  T0=$SECONDS
  launch_jvm
  wait_ready "$(cat "$PIDFILE")"
  [ "$1" = 1 ] || wait_others_see "$1" UN
}

start_cluster() {
  local t0=$SECONDS n
  if [ "$FRESH" = 1 ]; then
    stop_cluster
    say "wiping $CLUSTER_STATE/node*/data (fresh start)"
    rm -rf "$CLUSTER_STATE"/node*/data
  fi
  FRESH=0
  # One at a time: Cassandra 5.0 refuses simultaneous joins, and each needs the seed.
  for ((n = 1; n <= NODES; n++)); do start_node "$n"; done
  all_up || { SAY_PREFIX=cluster; die "not every node sees all three Up/Normal"; }
  SAY_PREFIX=cluster
  say "ready: $(contact_points) (3 nodes UN) after $((SECONDS - t0))s"
}

stop_cluster() {
  local n
  for ((n = NODES; n >= 1; n--)); do use_node "$n"; stop; done
}

stop_node() {
  local signal=$1 n=$2 pid i
  use_node "$n"
  pid=$(jvm_pid) || { say "not running"; return 0; }
  if [ "$signal" = KILL ]; then
    kill -KILL "$pid"
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for ((i = 0; i < 100; i++)); do port_open "$PORT" || break; sleep 0.1; done
    port_open "$PORT" && die "port $PORT still open after SIGKILL of pid $pid"
    rm -f "$PIDFILE"; say "killed (pid $pid)"
  else
    stop
  fi
}

# Every node answers CQL and sees all three Up/Normal.
all_up() {
  local m ring
  for ((m = 1; m <= NODES; m++)); do
    use_node "$m"
    cql_ok || return 1
    ring=$(ring_seen_by "$m")
    [ "$(grep -c '^UN ' <<<"$ring")" = "$NODES" ] || return 1
  done
}

status() {
  local m ok=0
  for ((m = 1; m <= NODES; m++)); do
    use_node "$m"
    if port_open "$PORT" && cql_ok; then
      say "CQL on $HOST:$PORT; sees: $(ring_seen_by "$m" | tr '\n' ' ')"
    elif pid=$(jvm_pid); then say "JVM (pid $pid) alive, CQL not answering"; ok=1
    else say "not running"; ok=1; fi
  done
  [ "$ok" = 0 ] && all_up && { SAY_PREFIX=cluster; say "all three nodes UN"; return 0; }
  return 1
}

contact_points() {
  local m out=()
  for ((m = 1; m <= NODES; m++)); do out+=("127.0.0.$m:$CQL_PORT"); done
  (IFS=,; echo "${out[*]}")
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in
  start)
    for a in "$@"; do
      case "$a" in --fresh) FRESH=1 ;; *) echo "unknown option: $a" >&2; exit 2 ;; esac
    done
    start_cluster ;;
  stop) stop_cluster ;;
  status) status ;;
  stop-node) stop_node TERM "${1:?node number}" ;;
  kill-node) stop_node KILL "${1:?node number}" ;;
  start-node) start_node "${1:?node number}" ;;
  nodes) contact_points ;;
  cqlsh) use_node "${1:?node number}"; shift; run_cqlsh "$@" ;;
  nodetool) use_node "${1:?node number}"; shift; ensure_java; run_nodetool "$@" ;;
  *) echo "usage: $0 start [--fresh]|stop|status|stop-node N|kill-node N|start-node N|nodes|cqlsh N [ARGS]|nodetool N ARGS" >&2; exit 2 ;;
esac
