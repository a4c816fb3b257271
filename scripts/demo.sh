#!/usr/bin/env bash
# Sets up, builds and runs the main job on the built-in miniature world:
#   with a display: the PIVOT Workbench window, starting a tiny DPO run (align and instruct first);
#   without one:    the same study headless (`pivot demo`), printing progress and where results are.
# Extra arguments go to the program (e.g. --workspace DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec build/app/pivot-workbench --start tiny:dpo "$@"
fi
echo "no display: running the study headless (the window needs X11 or Wayland; try xvfb-run)"
exec build/app/pivot demo "$@"
