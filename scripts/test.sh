#!/usr/bin/env bash
# Sets up (packages, build) and runs the whole test suite: the format check (.clang-format), a short
# bounded run of each parser fuzz target (ASan + UBSan), then the Qt Test suites with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
scripts/check-format.sh
scripts/fuzz.sh "${PIVOT_FUZZ_SECONDS:-20}"
export QT_QPA_PLATFORM=offscreen
ctest --test-dir build --output-on-failure -j2 "$@"
