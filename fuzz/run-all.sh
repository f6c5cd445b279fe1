#!/usr/bin/env bash
# Runs every fuzz target for the given seconds, one after another, at the lowest CPU
# priority, on the stable toolchain (README.md: RUSTC_BOOTSTRAP=1 lets stable rustc take
# cargo-fuzz's -Z flags). Each run grows fuzz/corpus/<target>/ and stops at the first crash,
# whose input lands in fuzz/artifacts/<target>/; the script then exits non-zero.
#
#   fuzz/run-all.sh 360                    six minutes per target
#   SANITIZER=none fuzz/run-all.sh 60      without AddressSanitizer (faster, fewer findings)
#   TARGETS="batch legacy" fuzz/run-all.sh 60
set -euo pipefail
cd "$(dirname "$0")"

seconds=${1:?usage: fuzz/run-all.sh <seconds-per-target>}
sanitizer=${SANITIZER:-address}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/volcanion/target-fuzz}
# The same flags for build and run, so `run` does not rebuild.
flags=(--sanitizer "$sanitizer" --codegen-units 16)
targets=${TARGETS:-$(cargo fuzz list)}
mkdir -p logs

cargo fuzz build "${flags[@]}"
for target in $targets; do
  echo "== $target: ${seconds}s"
  mkdir -p "corpus/$target"
  # One process (libFuzzer's default); the log keeps libFuzzer's own statistics.
  set +e
  nice -n 19 cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"logs/$target.log" 2>&1
  status=$?
  set -e
  grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|==[0-9]+==|SUMMARY)|panicked" \
    "logs/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "$target failed (exit $status): see fuzz/logs/$target.log and fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
done
