#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, torch-free parsers only) in build-fuzz/ and runs
# each one for SECONDS (default 30) or for RUNS executions, starting from the committed corpus in
# tests/fuzz/corpus/<target>. New inputs go to a scratch corpus, so the committed one stays as it is.
# A crash, a leak or a sanitizer report fails the script and leaves the input in build-fuzz/.
# Usage: scripts/fuzz.sh [SECONDS] [RUNS]        (CI: scripts/fuzz.sh 20; long run: scripts/fuzz.sh 0 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-30}"
RUNS="${2:--1}"
BUILD=build-fuzz

if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DPIVOT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" > "$BUILD/build.log" 2>&1 || { tail -40 "$BUILD/build.log"; exit 1; }

for target in fuzz_safetensors_header fuzz_preset_json fuzz_config_json fuzz_masked_records \
  fuzz_tokenizer_text fuzz_tokenizer_json fuzz_chat_messages fuzz_export_target \
  fuzz_record_index_cache; do
  scratch="$BUILD/corpus/$target"
  mkdir -p "$scratch"
  args=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -artifact_prefix="$BUILD/$target-")
  if [ "$RUNS" -gt 0 ]; then args+=(-runs="$RUNS"); else args+=(-max_total_time="$SECONDS_EACH"); fi
  if ! "$BUILD/tests/fuzz/$target" "${args[@]}" "$scratch" "tests/fuzz/corpus/$target" > "$BUILD/$target.log" 2>&1; then
    tail -60 "$BUILD/$target.log"
    echo "fuzz: $target FAILED (log: $BUILD/$target.log)"
    exit 1
  fi
  runs=$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$target.log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz: $target clean, $runs executions"
done
