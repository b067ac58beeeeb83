#!/usr/bin/env bash
# Build the one-folder PyInstaller bundle dist/callrec-desktop/ (programs callrec-desktop and
# callrec) from build.spec with the project venv's PyInstaller (`pip install -e ".[build]"`,
# which scripts/setup.sh test does).
#
#   scripts/build_bundle.sh [--distpath DIR] [--workpath DIR]     default: dist/ and build/
#   .venv/bin/python scripts/smoke_bundle.py [--bundle DIR/callrec-desktop]
#
# Needs the system PortAudio (Debian: libportaudio2): it is copied into the bundle.
# Prints the bundle's size and the build time.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
distpath="$here/dist"
workpath="$here/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --distpath) distpath="$2"; shift 2 ;;
    --workpath) workpath="$2"; shift 2 ;;
    *) echo "build_bundle: unknown argument $1 (use --distpath DIR, --workpath DIR)" >&2; exit 2 ;;
  esac
done
pyinstaller="$here/.venv/bin/pyinstaller"
if [ ! -x "$pyinstaller" ]; then
  echo "build_bundle: $pyinstaller not found; install the build extra: .venv/bin/pip install -e '.[build]'" >&2
  exit 2
fi
if ! ldconfig -p 2>/dev/null | grep -q 'libportaudio\.so'; then
  echo "build_bundle: the system PortAudio library is missing (it is bundled from the system);" \
       "install it: sudo apt-get install -y libportaudio2" >&2
  exit 2
fi
cd "$here"
SECONDS=0
"$pyinstaller" --noconfirm --clean --log-level WARN --distpath "$distpath" --workpath "$workpath" build.spec
elapsed=$SECONDS
bundle="$distpath/callrec-desktop"
for exe in callrec-desktop callrec; do
  [ -x "$bundle/$exe" ] || { echo "build_bundle: $bundle/$exe was not built" >&2; exit 1; }
done
size=$(du -sm "$bundle" | cut -f1)
files=$(find "$bundle" -type f | wc -l)
echo "build_bundle: built $bundle in ${elapsed} s: ${size} MB, ${files} files"
