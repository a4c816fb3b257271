#!/usr/bin/env bash
# Checks that every C++ file follows .clang-format (clang-format 14, Debian 12's). With --fix,
# formats them in place instead.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.h')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2> build-format.log; then
  grep -m 20 "error:" build-format.log || true
  echo "format: files differ from .clang-format; run scripts/check-format.sh --fix"
  exit 1
fi
rm -f build-format.log
echo "format: ${#files[@]} files follow .clang-format"
