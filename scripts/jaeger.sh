#!/usr/bin/env bash
# Builds Jaeger (v2, all-in-one: an OTLP receiver, an in-memory store and the query API)
# from the Go module proxy into DIR (default ~/.cache/volcanion/jaeger), for the trace
# test in tests/api/traces.rs.
#
#   scripts/jaeger.sh install [DIR]    then: VOLCANION_TEST_JAEGER=DIR/jaeger cargo test -- --include-ignored
#
# Jaeger's go.mod has replace directives, so `go install pkg@version` refuses it: the
# build goes through a small module of ours that requires it as a tool. Idempotent: a
# binary built at the pinned version is kept (the first build takes several minutes).
set -euo pipefail
VERSION=v1.76.0
DIR=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/jaeger}

say() { echo "jaeger: $*" >&2; }

install() {
  if [[ -x $DIR/jaeger && -f $DIR/.version && $(cat "$DIR/.version") == "$VERSION" ]]; then
    say "$VERSION up to date in $DIR"
    return
  fi
  command -v go >/dev/null || { say "needs Go (the go command) on PATH"; exit 1; }
  mkdir -p "$DIR/module"
  cd "$DIR/module"
  [[ -f go.mod ]] || go mod init volcanion-jaeger-build >/dev/null 2>&1
  say "building github.com/jaegertracing/jaeger/cmd/jaeger@$VERSION into $DIR (minutes, once)"
  go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$VERSION" >/dev/null 2>&1
  # One package at a time: the machine has two cores and cargo may be building too.
  GOFLAGS=-p=1 go build -o "$DIR/jaeger.new" github.com/jaegertracing/jaeger/cmd/jaeger
  mv "$DIR/jaeger.new" "$DIR/jaeger"
  echo "$VERSION" > "$DIR/.version"
  say "built $DIR/jaeger"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install [DIR]" >&2; exit 2 ;;
esac
