#!/usr/bin/env bash
# Quick start, step 1: set up and record a demo call into the embedded default store.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/scripts/setup.sh" run
exec "$here/.venv/bin/callrec" demo "$@"
