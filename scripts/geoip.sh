#!/usr/bin/env bash
# Installs a free country database in MaxMind's format for `enrich.geoip_db` and for the
# GeoIP tests: the CC0 `@ip-location-db/geo-whois-asn-country-mmdb` package from npm (country
# by the registries' WHOIS and ASN data; no account, no licence key), pinned below.
#
#   scripts/geoip.sh install [DIR]   then: VOLCANION_TEST_GEOIP_DB=$(scripts/geoip.sh path [DIR]) cargo test -- --include-ignored
#   scripts/geoip.sh path [DIR]      prints the .mmdb file's path
#
# Idempotent: a DIR holding the pinned version is left as it is.
set -euo pipefail
PACKAGE=@ip-location-db/geo-whois-asn-country-mmdb
VERSION=2.3.2026061719
DIR=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/volcanion/geoip}
DB=$DIR/node_modules/$PACKAGE/geo-whois-asn-country.mmdb

say() { echo "geoip: $*" >&2; }

install() {
  mkdir -p "$DIR"
  if [[ -f $DB && -f $DIR/.installed && $(cat "$DIR/.installed") == "$VERSION" ]]; then
    say "up to date in $DIR"
    return
  fi
  say "installing $PACKAGE@$VERSION into $DIR"
  (cd "$DIR" && npm install --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$PACKAGE@$VERSION")
  [[ -f $DB ]] || { say "the package holds no $(basename "$DB")"; exit 1; }
  echo "$VERSION" > "$DIR/.installed"
  say "installed: $DB"
}

case "${1:-}" in
  install) install ;;
  path) echo "$DB" ;;
  *) echo "usage: $0 install|path [DIR]" >&2; exit 2 ;;
esac
