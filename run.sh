#!/usr/bin/env bash
# Quick start, step 1: set up and start the call handler's window (callrec-desktop).
# On a machine without a screen it records the headless demo call instead (callrec demo).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/scripts/setup.sh" run
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "run: no screen here (DISPLAY is not set): recording the headless demo call instead." >&2
  echo "run: on a desktop this starts the window; try it here with: xvfb-run $0" >&2
  exec "$here/.venv/bin/callrec" demo
fi
exec "$here/.venv/bin/callrec-desktop" "$@"
