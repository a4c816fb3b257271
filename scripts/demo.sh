#!/usr/bin/env bash
# Sets up and runs the main job: the miniature SFT-vs-DPO study on ShapesWorld, headless.
# Extra arguments go to `pivot demo` (e.g. --preset mini --workspace DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
exec build/app/pivot demo "$@"
