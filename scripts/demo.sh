#!/usr/bin/env bash
# Sets up, builds and runs the main job on the built-in miniature world:
#   with a display: the PIVOT Workbench window, starting a tiny DPO run (align and instruct first);
#   without one:    the whole miniature study headless (`pivot experiment --preset tiny`: stage 0,
#                   1a, 1b, SFT vs DPO over 3 seeds, transplants, probes), printing its progress and
#                   where its report (report.md, results.csv, figures) is; a few minutes on 2 cores.
# Extra arguments go to the program (e.g. --workspace DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec build/app/pivot-workbench --start tiny:dpo "$@"
fi
echo "no display: running the study headless (the window needs X11 or Wayland; try xvfb-run)"
exec build/app/pivot "$@" experiment --preset tiny
