#!/usr/bin/env bash
# Proves the Dockerfile's build stage without a Docker engine: copies exactly the paths its
# COPY lines name (parsed from the Dockerfile, not listed here) into an empty directory,
# then runs the stage's `cargo build ...` line there.
#
#   scripts/docker-build-check.sh          `cargo check` with the build line's arguments
#   DOCKER_CHECK_MODE=build scripts/...     the build line itself (a release build)
#   DOCKER_CHECK_MODE=list scripts/...      only copy, then list the files and the command
#
# Why `check` by default: what breaks an image build without breaking `cargo build` in a
# clone is a file the build needs but the Dockerfile does not copy (a target declared in
# Cargo.toml, an include_str!, a module), or a stale Cargo.lock (--locked). `cargo check`
# loads the same manifest and compiles the same crate graph up to code generation, so it
# fails on every one of those, in about a minute warm instead of ~18 minutes for a cold
# release build on a 2-core machine. Code generation itself is what `cargo build` in CI
# already proves.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DOCKERFILE=${DOCKERFILE:-$ROOT/Dockerfile}
MODE=${DOCKER_CHECK_MODE:-check}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/volcanion
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
# A fixed path: cargo fingerprints the package by its path, so a new temp dir per run would
# recompile it from scratch every time.
CONTEXT=$CACHE/docker-build-check/context

say() { echo "docker-build-check: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# The build stage: from the first FROM up to the next one, continuation lines joined.
stage=$(awk '
  /^[[:space:]]*FROM[[:space:]]/ { froms++; if (froms > 1) exit }
  froms == 1 { print }
' "$DOCKERFILE" | sed -e ':join' -e '/\\$/{N;s/\\\n//;b join' -e '}' | grep -v '^[[:space:]]*#')

workdir=$(echo "$stage" | awk '/^[[:space:]]*WORKDIR[[:space:]]/ { dir = $2 } END { print dir }')
[ -n "$workdir" ] || die "no WORKDIR in the build stage of $DOCKERFILE"

ignored() {
  # A COPY source the .dockerignore excludes would be missing from the real build context.
  [ -f "$ROOT/.dockerignore" ] || return 1
  grep -v '^[[:space:]]*#' "$ROOT/.dockerignore" | sed 's:/*$::' | grep -qxF "${1%/}"
}

rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
copies=0
while read -r line; do
  read -r -a words <<<"$line"
  args=()
  for word in "${words[@]:1}"; do
    case "$word" in
      --from=*) continue 2 ;;     # a copy from another stage, not from the context
      --*) ;;                     # --chown, --link, --chmod: no effect on which files
      \[*) die "JSON-form COPY is not supported by this check: $line" ;;
      *) args+=("$word") ;;
    esac
  done
  [ "${#args[@]}" -ge 2 ] || die "cannot read: $line"
  dest=${args[-1]}
  unset 'args[-1]'
  into_directory=0
  if [ "${#args[@]}" -gt 1 ] || [[ $dest == */ ]] || [ "$dest" = . ]; then into_directory=1; fi
  dest=${dest%/}
  case "$dest" in
    . | "") target=$CONTEXT$workdir ;;
    /*) target=$CONTEXT$dest ;;
    *) target=$CONTEXT$workdir/${dest#./} ;;
  esac
  for source in "${args[@]}"; do
    [ -e "$ROOT/$source" ] || die "COPY $source: no such path in the repository"
    ignored "$source" && die "COPY $source: excluded by .dockerignore"
    if [ "$into_directory" = 1 ]; then
      mkdir -p "$target"
      cp -a "$ROOT/$source" "$target/"
    else
      mkdir -p "$(dirname "$target")"
      cp -a "$ROOT/$source" "$target"
    fi
    copies=$((copies + 1))
  done
done < <(echo "$stage" | grep -E '^[[:space:]]*(COPY|ADD)[[:space:]]')
[ "$copies" -gt 0 ] || die "no COPY lines in the build stage of $DOCKERFILE"

# The `cargo build ...` command of the RUN line, without the --mount flags and what follows `&&`.
build=$(echo "$stage" | grep -E '^[[:space:]]*RUN[[:space:]].*cargo build' | head -1 \
  | sed -E 's/.*(cargo build[^&;]*).*/\1/' | sed -E 's/[[:space:]]+$//')
[ -n "$build" ] || die "no RUN line with 'cargo build' in the build stage of $DOCKERFILE"
case "$MODE" in
  check) command=${build/cargo build/cargo check} ;;
  build | list) command=$build ;;
  *) die "DOCKER_CHECK_MODE must be check, build or list, got '$MODE'" ;;
esac

say "copied $copies paths into $CONTEXT$workdir; running: $command"
cd "$CONTEXT$workdir"
if [ "$MODE" = list ]; then find . -type f | sort; echo "$command"; exit 0; fi
read -r -a argv <<<"$command"
"${argv[@]}"
say "ok: the Dockerfile's build stage compiles from the files it copies"
