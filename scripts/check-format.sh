#!/usr/bin/env bash
# Checks that every C++ file follows .clang-format (clang-format 14, Debian 12's). With --fix,
# formats them in place instead. New files count before they are added to git (an untracked file
# that --fix skipped used to fail CI once committed); ignored ones (build folders) do not.
set -euo pipefail
cd "$(dirname "$0")/.."
files=()
while IFS= read -r f; do
  [ -f "$f" ] && files+=("$f")
done < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.h' | sort -u)
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
