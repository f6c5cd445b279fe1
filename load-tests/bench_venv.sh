# Sourced by the benchmarks that compare with chDB and DuckDB (breakdowns/, people/):
# makes sure the pinned Python dependencies are in VENV (default
# ~/.cache/volcanion/breakdowns-venv) and sets PY to its python. Needs `say`.
# chDB 4.4 and DuckDB 2.0 as issue 25 names them; numpy 2.4 is the last for Python 3.11.
VENV=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/breakdowns-venv}
PINS="chdb==4.4.0 duckdb==2.0.0 numpy==2.4.6 pyarrow==26.0.1 maxminddb==3.2.0"
if [[ ! -f $VENV/.pins || $(cat "$VENV/.pins") != "$PINS" ]]; then
  say "installing $PINS into $VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $PINS
  echo "$PINS" > "$VENV/.pins"
fi
PY=$VENV/bin/python
