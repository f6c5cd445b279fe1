#!/usr/bin/env bash
# Local single-node Cassandra 5.0 on 127.0.0.1:9042 without Docker (Java 17 + Maven Central).
# Several can run side by side with their own CASSANDRA_STATE_DIR and ports (.ci/run does).
#
#   scripts/cassandra.sh start [--fresh]   download (once, cached), launch, wait for a real CQL query
#   scripts/cassandra.sh stop              kill the JVM (pidfile) and wait until the port is closed
#   scripts/cassandra.sh status            exit 0 iff `SELECT release_version FROM system.local` works
#   scripts/cassandra.sh cqlsh [ARGS...]   run the cqlsh this script uses against 127.0.0.1:PORT
#   scripts/cassandra.sh pause|resume      SIGSTOP / SIGCONT the JVM (outage tests: the port stays
#                                          open but nothing answers, like a hung node)
#   scripts/cassandra.sh kill              SIGKILL the JVM (a crashed node: no flush, no drain) and
#                                          wait until the port is closed; `start` brings it back
#   scripts/cassandra.sh pid               print the JVM's pid (exit 1 if not running)
#
# Launch method: `cassandra-all` and its runtime dependencies from Maven Central (copied by
# maven-dependency-plugin), started with a plain `java ... CassandraDaemon` command line. The
# binary tarball (org.apache.cassandra:apache-cassandra:*:tar.gz:bin) is not on Maven Central
# for 5.x (the last one published there is 4.0-alpha2), so bin/cassandra is not used.
#
# Env overrides:
#   CASSANDRA_VERSION        5.0.5
#   CASSANDRA_CACHE_DIR      ${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/cassandra (downloads, state)
#   CASSANDRA_HOME           $CASSANDRA_CACHE_DIR/dist/$CASSANDRA_VERSION (holds lib/*.jar)
#   CASSANDRA_STATE_DIR      $CASSANDRA_CACHE_DIR/state (conf/, data/, logs/, cassandra.pid)
#   CASSANDRA_PORT           9042 (CQL native port)
#   CASSANDRA_STORAGE_PORT   7000 (inter-node storage port; also the seed address)
#   CASSANDRA_JMX_PORT       7199 (local JMX, for nodetool)
#   CASSANDRA_HEAP           1G   (-Xms/-Xmx)
#   CASSANDRA_START_TIMEOUT  240  (seconds to wait for CQL)
#   CASSANDRA_FRESH=1        same as `start --fresh`: wipe data/ before starting
#   CASSANDRA_JVM_OPTS       extra JVM options (word-split), appended last
#   CQLSH                    path to a cqlsh to use (default: `cqlsh` on PATH, else a cached venv)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${CASSANDRA_STATE_DIR:-${CASSANDRA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/cassandra}/state}
PORT=${CASSANDRA_PORT:-9042}
STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-7000}
JMX_PORT=${CASSANDRA_JMX_PORT:-7199}
HEAP=${CASSANDRA_HEAP:-1G}
TIMEOUT=${CASSANDRA_START_TIMEOUT:-240}
FRESH=${CASSANDRA_FRESH:-0}
HOST=127.0.0.1
SAY_PREFIX=cassandra
# shellcheck source=cassandra/lib.sh
. "$SCRIPT_DIR/cassandra/lib.sh"
node_files

# ---------------------------------------------------------------- start
start() {
  if [ "$FRESH" = 1 ] && { jvm_pid >/dev/null || port_open "$PORT"; }; then
    say "--fresh requested while running: stopping first"; stop
  fi
  if port_open "$PORT"; then
    if cql_ok; then say "already running on $HOST:$PORT"; return 0; fi
    if pid=$(jvm_pid); then
      say "JVM (pid $pid) is up but CQL does not answer yet; waiting"; wait_ready "$pid"; return
    fi
    die "port $PORT is in use by something that does not answer CQL"
  fi
  if pid=$(jvm_pid); then say "JVM (pid $pid) is starting; waiting"; wait_ready "$pid"; return; fi
  launch_jvm
  wait_ready "$(cat "$PIDFILE")"
}

# ---------------------------------------------------------------- status / pause / kill
status() {
  if port_open "$PORT" && cql_ok; then say "running on $HOST:$PORT"; return 0; fi
  if pid=$(jvm_pid); then say "JVM (pid $pid) alive but CQL not answering on $HOST:$PORT"; return 1; fi
  say "not running"; return 1
}

pause() {
  local pid
  pid=$(jvm_pid) || die "not running (no live JVM in $PIDFILE)"
  kill -STOP "$pid"; say "paused (pid $pid); resume with: $0 resume"
}

kill_jvm() {
  local pid i
  pid=$(jvm_pid) || die "not running (no live JVM in $PIDFILE)"
  kill -KILL "$pid"
  for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  for ((i = 0; i < 100; i++)); do port_open "$PORT" || break; sleep 0.1; done
  port_open "$PORT" && die "port $PORT still open after SIGKILL of pid $pid"
  rm -f "$PIDFILE"; say "killed (pid $pid)"
}

resume() {
  local pid
  pid=$(jvm_pid) || die "not running (no live JVM in $PIDFILE)"
  kill -CONT "$pid"; say "resumed (pid $pid)"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case "$cmd" in
  start)
    for a in "$@"; do
      case "$a" in --fresh) FRESH=1 ;; *) echo "unknown option: $a" >&2; exit 2 ;; esac
    done
    start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  cqlsh) run_cqlsh "$@" ;;
  pause) pause ;;
  resume) resume ;;
  kill) kill_jvm ;;
  pid) jvm_pid || { say "not running"; exit 1; } ;;
  *) echo "usage: $0 start [--fresh]|stop|status|restart|pause|resume|kill|pid|cqlsh [ARGS...]" >&2; exit 2 ;;
esac
