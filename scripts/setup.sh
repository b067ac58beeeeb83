#!/usr/bin/env bash
# Set up everything callrec-desktop needs on a Debian/Ubuntu machine, idempotently.
#   scripts/setup.sh run    system audio library + Python venv with the app
#   scripts/setup.sh test   also the virtual audio server, ffprobe/opusinfo and test tools
# As root on Debian/Ubuntu it installs missing system packages with apt-get; otherwise it
# prints the exact install line and stops.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-run}"
cd "$here"

# PortAudio for capture; the libraries Qt's widgets need on a bare system.
pkgs=(libportaudio2 libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libglib2.0-0 libdbus-1-3 libx11-6
      libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0 libxcb-render-util0
      libxcb-shape0 libxcb-sync1 libxcb-xfixes0 libxcb-xkb1 libxkbcommon-x11-0 libx11-xcb1)
if [ "$mode" = test ]; then
  # The virtual audio server, the validity checkers for produced files, a virtual screen
  # for window screenshots and the focus trigger; the independent references the tests check
  # against: DTMF decoders (multimon-ng, spandsp's dtmf_rx built with the C compiler), other
  # players (opusdec above, GStreamer), speech for talk-off material, and age.
  pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins ffmpeg opus-tools xvfb
         multimon-ng libspandsp-dev gcc libc6-dev espeak-ng
         gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good age)
fi

py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  pkgs+=(python3 python3-venv)
  py=python3
elif ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  pkgs+=(python3-venv)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "setup: Python 3.11 or newer is needed ($py is $("$py" --version 2>&1))" >&2; exit 1; }

venv="$here/.venv"
extras="."
[ "$mode" = test ] && extras=".[test,build]"
stamp="$venv/.installed-$mode-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$extras"
  touch "$stamp"
fi
