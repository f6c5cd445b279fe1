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
SRC=$SCRIPT_DIR/cassandra                      # pom.xml + conf/ kept in the repo
V=${CASSANDRA_VERSION:-5.0.5}
CACHE=${CASSANDRA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/cassandra}
HOME_DIR=${CASSANDRA_HOME:-$CACHE/dist/$V}
STATE=${CASSANDRA_STATE_DIR:-$CACHE/state}
PORT=${CASSANDRA_PORT:-9042}
STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-7000}
JMX_PORT=${CASSANDRA_JMX_PORT:-7199}
HEAP=${CASSANDRA_HEAP:-1G}
TIMEOUT=${CASSANDRA_START_TIMEOUT:-240}
FRESH=${CASSANDRA_FRESH:-0}
HOST=127.0.0.1
PIDFILE=$STATE/cassandra.pid
LOG=$STATE/logs/stdout.log
M2=$CACHE/m2
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
QUERY="SELECT release_version FROM system.local"

say() { echo "cassandra: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root (or sudo) to run: $*"; fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*; install it manually"
  say "installing $* via apt ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; then
    as_root apt-get update -qq >/dev/null
    as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  fi
}

java_bin() {
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then echo "$JAVA_HOME/bin/java"; else echo java; fi
}

ensure_java() {
  command -v "$(java_bin)" >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  local major
  major=$("$(java_bin)" -XX:+IgnoreUnrecognizedVMOptions -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  case "$major" in
    17) ;;
    11) die "Java 11 found; these scripts use the Java 17 flag set (conf/jvm17.args). Install Java 17 or set JAVA_HOME." ;;
    *) die "Java 17 required for Cassandra 5.0 (found '${major:-none}'); set JAVA_HOME to a JDK/JRE 17" ;;
  esac
}

# ---------------------------------------------------------------- download (cached)
ensure_dist() {
  if [ -f "$HOME_DIR/.complete" ] && ls "$HOME_DIR"/lib/cassandra-all-*.jar >/dev/null 2>&1; then return 0; fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
  say "downloading cassandra-all $V and dependencies from Maven Central (one-time, cached in $CACHE) ..."
  local t0=$SECONDS tmp="$HOME_DIR.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp/lib"
  if ! mvn -B -q -ntp -Dmaven.repo.local="$M2" -f "$SRC/pom.xml" -Dcassandra.version="$V" \
      "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
    tail -n 30 "$tmp/mvn.log" >&2; rm -rf "$tmp"; die "maven download of cassandra-all $V failed"
  fi
  ls "$tmp"/lib/cassandra-all-"$V".jar >/dev/null 2>&1 || { rm -rf "$tmp"; die "cassandra-all-$V.jar missing after download"; }
  rm -f "$tmp/mvn.log"; touch "$tmp/.complete"
  rm -rf "$HOME_DIR"; mkdir -p "$(dirname "$HOME_DIR")"; mv "$tmp" "$HOME_DIR"
  say "downloaded $(find "$HOME_DIR/lib" -name '*.jar' | wc -l) jars in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- cqlsh
CQLSH_BIN=""
ensure_cqlsh() {
  [ -n "$CQLSH_BIN" ] && return 0
  if [ -n "${CQLSH:-}" ]; then CQLSH_BIN=$CQLSH; return 0; fi
  if command -v cqlsh >/dev/null 2>&1; then CQLSH_BIN=$(command -v cqlsh); return 0; fi
  local venv=$CACHE/cqlsh-venv
  if [ ! -x "$venv/bin/cqlsh" ]; then
    say "installing cqlsh==6.2.2 (pip, into $venv) ..."
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv" >/dev/null 2>&1 || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q --disable-pip-version-check cqlsh==6.2.2 >&2 || die "pip install cqlsh==6.2.2 failed"
  fi
  CQLSH_BIN=$venv/bin/cqlsh
}

# cqlsh 6.2.2 prints "WARNING: cqlsh was built against 5.0.x, but this server is 5.0.5" on
# every connection; it is harmless (same major version), so non-interactive runs drop it.
run_cqlsh() {
  ensure_cqlsh
  if [ $# -eq 0 ] && [ -t 0 ] && [ -t 1 ]; then exec "$CQLSH_BIN" "$HOST" "$PORT"; fi
  local statuses
  set +e
  "$CQLSH_BIN" "$HOST" "$PORT" "$@" | grep -v '^WARNING: cqlsh was built against'
  statuses=("${PIPESTATUS[@]}")
  set -e
  return "${statuses[0]}"
}

cql_ok() {
  ensure_cqlsh
  timeout 20 "$CQLSH_BIN" "$HOST" "$PORT" --connect-timeout=3 --request-timeout=5 -e "$QUERY" >/dev/null 2>&1 </dev/null
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

jvm_pid() {
  # pid of our JVM: the pidfile if it is alive and is a CassandraDaemon
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q CassandraDaemon || return 1
  echo "$pid"
}

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
  for p in "$STORAGE_PORT" "$JMX_PORT"; do
    port_open "$p" && die "port $p (storage/JMX) is already in use; another Cassandra? Set CASSANDRA_STORAGE_PORT / CASSANDRA_JMX_PORT"
  done

  ensure_java
  ensure_dist
  ensure_cqlsh

  if [ "$FRESH" = 1 ]; then say "wiping $STATE/data (fresh start)"; rm -rf "$STATE/data"; fi
  mkdir -p "$STATE/conf" "$STATE/data" "$STATE/logs"
  cp "$SRC/conf/jvm17.args" "$SRC/conf/logback.xml" "$STATE/conf/"
  sed -e "s/^native_transport_port:.*/native_transport_port: $PORT/" \
    -e "s/^storage_port:.*/storage_port: $STORAGE_PORT/" \
    -e "s/\"127.0.0.1:7000\"/\"127.0.0.1:$STORAGE_PORT\"/" \
    "$SRC/conf/cassandra.yaml" >"$STATE/conf/cassandra.yaml"
  [ -f "$LOG" ] && mv -f "$LOG" "$LOG.1"

  local jamms extra=()
  jamms=("$HOME_DIR"/lib/jamm-*.jar)
  [ -f "${jamms[0]}" ] || die "jamm jar not found in $HOME_DIR/lib"
  read -r -a extra <<<"${CASSANDRA_JVM_OPTS:-}"

  say "starting Cassandra $V (heap $HEAP, state $STATE) ..."
  T0=$SECONDS
  # setsid: own session, so the JVM outlives this shell/CI step's process group.
  setsid "$(java_bin)" -Xms"$HEAP" -Xmx"$HEAP" @"$STATE/conf/jvm17.args" \
    -javaagent:"${jamms[0]}" \
    -Dcassandra.config=file://"$STATE/conf/cassandra.yaml" \
    -Dcassandra.storagedir="$STATE/data" -Dcassandra.logdir="$STATE/logs" \
    -Dlogback.configurationFile=file://"$STATE/conf/logback.xml" \
    -Dcassandra.jmx.local.port="$JMX_PORT" \
    -Dcassandra-foreground=yes \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 \
    -Dcassandra.shutdown_announce_in_ms=0 \
    -XX:+ExitOnOutOfMemoryError \
    -XX:ErrorFile="$STATE/logs/hs_err_%p.log" -XX:HeapDumpPath="$STATE/logs" \
    ${extra[@]+"${extra[@]}"} \
    -cp "$STATE/conf:$HOME_DIR/lib/*" org.apache.cassandra.service.CassandraDaemon \
    >"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  wait_ready "$(cat "$PIDFILE")"
}

wait_ready() {
  local pid=$1 deadline=$((SECONDS + TIMEOUT))
  : "${T0:=$SECONDS}"
  while [ "$SECONDS" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "JVM (pid $pid) exited during startup; last log lines ($LOG):"
      tail -n 40 "$LOG" >&2 2>/dev/null || true
      rm -f "$PIDFILE"; exit 1
    fi
    if port_open "$PORT"; then
      if cql_ok; then say "ready on $HOST:$PORT after $((SECONDS - T0))s (pid $pid)"; return 0; fi
      sleep 1
    else
      sleep 0.5
    fi
  done
  say "no CQL answer within ${TIMEOUT}s; last log lines ($LOG):"
  tail -n 40 "$LOG" >&2 2>/dev/null || true
  say "stopping the unready JVM (pid $pid)"
  stop || true
  exit 1
}

# ---------------------------------------------------------------- stop / status
stop() {
  local pid i
  if ! pid=$(jvm_pid); then
    rm -f "$PIDFILE"
    if port_open "$PORT"; then die "port $PORT is open but no pidfile JVM found in $STATE; not started by this script?"; fi
    say "not running"; return 0
  fi
  say "stopping (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "still alive after 60s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 10; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
  for ((i = 0; i < 30; i++)); do port_open "$PORT" || break; sleep 1; done
  port_open "$PORT" && die "port $PORT still open after stopping pid $pid"
  rm -f "$PIDFILE"; say "stopped"
}

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
