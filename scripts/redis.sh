#!/usr/bin/env bash
# Local Redis for development and CI (no Docker needed).
#
#   scripts/redis.sh start    install redis-server via apt if missing, start it, wait for PONG
#   scripts/redis.sh stop     shut it down and wait until it is gone
#   scripts/redis.sh status   exit 0 iff it answers PING
#
# Env: REDIS_PORT (6379), REDIS_STATE_DIR (${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/redis),
#      REDIS_START_TIMEOUT (30 s).
set -euo pipefail

PORT=${REDIS_PORT:-6379}
STATE=${REDIS_STATE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/redis}
TIMEOUT=${REDIS_START_TIMEOUT:-30}
PIDFILE=$STATE/redis-$PORT.pid
LOGFILE=$STATE/redis-$PORT.log

say() { echo "redis: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root (or sudo) to run: $*"; fi
}

ensure_installed() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "redis-server not found and apt-get unavailable; install Redis manually"
  say "installing redis-server via apt ..."
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1; then
    as_root apt-get update -qq >/dev/null
    as_root apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
}

ping_ok() {
  command -v redis-cli >/dev/null 2>&1 || return 1
  [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null)" = "PONG" ]
}

pid_alive() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

start() {
  if ping_ok; then say "already running on 127.0.0.1:$PORT"; return 0; fi
  ensure_installed
  mkdir -p "$STATE"
  rm -f "$PIDFILE"
  redis-server --daemonize yes --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$STATE" --pidfile "$PIDFILE" --logfile "$LOGFILE" \
    || { tail -n 20 "$LOGFILE" 2>/dev/null >&2 || true; die "redis-server failed to launch"; }
  local i
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    if ping_ok; then say "ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE" 2>/dev/null || echo '?'))"; return 0; fi
    sleep 0.5
  done
  say "no PONG within ${TIMEOUT}s; last log lines ($LOGFILE):"
  tail -n 30 "$LOGFILE" >&2 2>/dev/null || true
  exit 1
}

stop() {
  if ! ping_ok && ! pid_alive; then say "not running"; rm -f "$PIDFILE"; return 0; fi
  local pid=""
  [ -f "$PIDFILE" ] && pid=$(cat "$PIDFILE")
  if ping_ok; then
    redis-cli -h 127.0.0.1 -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
  elif [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
  fi
  local i
  for ((i = 0; i < 40; i++)); do
    if ! ping_ok && { [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; }; then
      rm -f "$PIDFILE"; say "stopped"; return 0
    fi
    sleep 0.5
  done
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "did not exit in 20s; sending SIGKILL to $pid"; kill -9 "$pid" 2>/dev/null || true; sleep 0.5
  fi
  ping_ok && die "still answering on port $PORT (not started by this script?)"
  rm -f "$PIDFILE"; say "stopped"
}

status() {
  if ping_ok; then say "running on 127.0.0.1:$PORT"; return 0; fi
  say "not running on 127.0.0.1:$PORT"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
