#!/usr/bin/env bash
# Quick start, step 2: set up everything the tests need and run the whole suite.
# The tests start their own virtual audio server (PulseAudio null sink) and S3 server
# (SeaweedFS on 127.0.0.1); nothing is left running afterwards.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/scripts/setup.sh" test
cd "$here"
echo "== architecture contracts (import-linter)"
.venv/bin/lint-imports
echo "== tests"
exec .venv/bin/python -m pytest "$@"
