# Shared by scripts/cassandra.sh (one node) and scripts/cluster.sh (three): Java and the
# cached Maven download, cqlsh, the config template, launching one JVM and waiting for CQL.
# Sourced, not run. Every function acts on the node the caller's globals name:
#   HOST PORT STORAGE_PORT JMX_PORT STATE HEAP TIMEOUT FRESH (PIDFILE and LOG follow STATE)
#   SEEDS (default "$HOST:$STORAGE_PORT"), EXTRA_YAML (lines appended to cassandra.yaml)
# and SAY_PREFIX names the caller in messages.

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$LIB_DIR                                   # pom.xml + conf/ kept in the repo
V=${CASSANDRA_VERSION:-5.0.5}
CACHE=${CASSANDRA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/cassandra}
HOME_DIR=${CASSANDRA_HOME:-$CACHE/dist/$V}
M2=$CACHE/m2
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
QUERY="SELECT release_version FROM system.local"

say() { echo "${SAY_PREFIX:-cassandra}: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# PIDFILE and LOG live in the node's STATE dir; call after changing STATE.
node_files() {
  PIDFILE=$STATE/cassandra.pid
  LOG=$STATE/logs/stdout.log
}

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

# nodetool from the same jars (and Java 17 flags), over the node's local JMX port.
run_nodetool() {
  "$(java_bin)" -Xmx256m @"$SRC/conf/jvm17.args" \
    -Dlogback.configurationFile=file://"$SRC/conf/logback-tools.xml" \
    -cp "$HOME_DIR/lib/*" org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$JMX_PORT" "$@"
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
# The repo's cassandra.yaml with this node's address, ports and seeds.
write_config() {
  mkdir -p "$STATE/conf" "$STATE/data" "$STATE/logs"
  cp "$SRC/conf/jvm17.args" "$SRC/conf/logback.xml" "$STATE/conf/"
  sed -e "s/^native_transport_port:.*/native_transport_port: $PORT/" \
    -e "s/^storage_port:.*/storage_port: $STORAGE_PORT/" \
    -e "s/^listen_address:.*/listen_address: $HOST/" \
    -e "s/^rpc_address:.*/rpc_address: $HOST/" \
    -e "s/\"127.0.0.1:7000\"/\"${SEEDS:-$HOST:$STORAGE_PORT}\"/" \
    "$SRC/conf/cassandra.yaml" >"$STATE/conf/cassandra.yaml"
  if [ -n "${EXTRA_YAML:-}" ]; then printf '%s\n' "$EXTRA_YAML" >>"$STATE/conf/cassandra.yaml"; fi
}

# Starts one JVM in the background (pid in PIDFILE) without waiting for it.
launch_jvm() {
  for p in "$STORAGE_PORT" "$JMX_PORT"; do
    port_open "$p" && die "port $p (storage/JMX) on $HOST is already in use; another Cassandra? Set its port variables"
  done
  ensure_java
  ensure_dist
  ensure_cqlsh
  if [ "$FRESH" = 1 ]; then say "wiping $STATE/data (fresh start)"; rm -rf "$STATE/data"; fi
  write_config
  [ -f "$LOG" ] && mv -f "$LOG" "$LOG.1"

  local jamms extra=()
  jamms=("$HOME_DIR"/lib/jamm-*.jar)
  [ -f "${jamms[0]}" ] || die "jamm jar not found in $HOME_DIR/lib"
  read -r -a extra <<<"${CASSANDRA_JVM_OPTS:-}"

  say "starting Cassandra $V on $HOST:$PORT (heap $HEAP, state $STATE) ..."
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
}

# Waits until a real CQL query answers on HOST:PORT; stops the JVM and exits on failure.
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

# ---------------------------------------------------------------- stop
stop() {
  local pid i
  if ! pid=$(jvm_pid); then
    rm -f "$PIDFILE"
    if port_open "$PORT"; then die "port $PORT on $HOST is open but no pidfile JVM found in $STATE; not started by this script?"; fi
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
  port_open "$PORT" && die "port $PORT on $HOST still open after stopping pid $pid"
  rm -f "$PIDFILE"; say "stopped"
}
