#!/usr/bin/env bash
# Installs Segment's own libraries for tests/api/segment_sdks.rs into DIR (default
# ~/.cache/volcanion/segment-sdks), pinned by tests/segment/: analytics-python in a venv
# (requirements.txt), @segment/analytics-node, @segment/analytics-next and playwright-core
# with npm (package-lock.json), and Debian's chromium (apt) for analytics.js.
#
#   scripts/segment-sdks.sh install [DIR]    then: VOLCANION_TEST_SEGMENT_SDKS=DIR cargo test -- --include-ignored
#
# Idempotent: a DIR installed from the same pins is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PINS=$PWD/tests/segment
DIR=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/segment-sdks}

say() { echo "segment-sdks: $*" >&2; }

install() {
  mkdir -p "$DIR"
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
  local stamp
  stamp=$(cat "$PINS/requirements.txt" "$PINS/package.json" "$PINS/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [[ -f $DIR/.installed && $(cat "$DIR/.installed") == "$stamp" ]]; then
    say "up to date in $DIR"
    return
  fi
  say "installing the libraries into $DIR"
  rm -rf "$DIR/venv" "$DIR/node_modules"
  python3 -m venv "$DIR/venv"
  "$DIR/venv/bin/pip" install -q --disable-pip-version-check -r "$PINS/requirements.txt"
  cp "$PINS/package.json" "$PINS/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$stamp" > "$DIR/.installed"
  say "installed in $DIR"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install [DIR]" >&2; exit 2 ;;
esac
