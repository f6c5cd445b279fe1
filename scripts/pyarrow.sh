#!/usr/bin/env bash
# Installs pyarrow (PyPI, pinned below) into a venv of its own: the real Parquet reader the
# export test (tests/api/export.rs) reads an exported file back with.
#
#   scripts/pyarrow.sh install [DIR]   then: VOLCANION_TEST_PYARROW=$(scripts/pyarrow.sh path [DIR]) cargo test -- --include-ignored
#   scripts/pyarrow.sh path [DIR]      prints the venv's python
#
# Idempotent: a DIR holding the pinned version is left as it is.
set -euo pipefail
PINS="pyarrow==26.0.1"
DIR=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/pyarrow}

say() { echo "pyarrow: $*" >&2; }

case ${1:-} in
  install)
    if [[ -x $DIR/bin/python && -f $DIR/.pins && $(cat "$DIR/.pins") == "$PINS" ]]; then
      say "up to date in $DIR"
      exit 0
    fi
    say "installing $PINS into $DIR"
    python3 -m venv "$DIR"
    # shellcheck disable=SC2086
    "$DIR/bin/pip" install --quiet --disable-pip-version-check $PINS
    "$DIR/bin/python" -c 'import pyarrow.parquet' || { say "pyarrow does not import"; exit 1; }
    echo "$PINS" > "$DIR/.pins"
    ;;
  path) echo "$DIR/bin/python" ;;
  *) echo "usage: $0 install|path [DIR]" >&2; exit 2 ;;
esac
