"""Decode a stored file the way ordinary players do: the ffmpeg program, ``opusdec``
(opus-tools, on libopusfile like most Linux players) and GStreamer (``gst-launch-1.0 filesrc !
oggdemux ! opusdec``). Each returns float32 ``(frames, channels)`` at the rate asked for, or
raises ``PlayerRefused`` with the tool's own words, so a test can check content, not only that
a program exited 0. Runs on the test's thread; each call starts one subprocess."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

PLAYERS = ("ffmpeg", "opusdec", "gstreamer")
_TOOLS = {"ffmpeg": "ffmpeg", "opusdec": "opusdec", "gstreamer": "gst-launch-1.0"}


class PlayerRefused(Exception):
    """The player could not open or decode the file; the message holds its error output."""


def have(player: str) -> bool:
    return shutil.which(_TOOLS[player]) is not None


def _run(args: list[str], what: str) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise PlayerRefused(f"{what} exit {out.returncode}: {out.stderr.decode(errors='replace').strip()[-600:]}")
    return out


def decode(player: str, path: Path, rate: int, channels: int = 2, tmp: Path | None = None) -> np.ndarray:
    """``path`` decoded by ``player`` (one of ``PLAYERS``) to float32 at ``rate`` Hz."""
    path = Path(path)
    if player == "ffmpeg":
        raw = _run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", str(channels),
                    "-ar", str(rate), "-"], f"ffmpeg on {path.name}").stdout
        return np.frombuffer(raw, np.float32).reshape(-1, channels).copy()
    out = (tmp or path.parent) / f"{path.name}.{player}.wav"  # opusdec writes WAV only to a .wav name
    try:
        if player == "opusdec":
            # --no-dither: opusdec otherwise adds shaped noise when it writes 16 bits; --float
            # writes 32-bit float WAV so nothing is rounded either.
            _run(["opusdec", "--quiet", "--no-dither", "--float", "--rate", str(rate), str(path), str(out)],
                 f"opusdec on {path.name}")
            data, got_rate = sf.read(out, dtype="float32", always_2d=True)
            if got_rate != rate:
                raise PlayerRefused(f"opusdec wrote {got_rate} Hz, asked for {rate}")
            return data
        if player == "gstreamer":
            _run(["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "oggdemux", "!", "opusdec", "!",
                  "audioconvert", "!", "audioresample", "!",
                  f"audio/x-raw,format=F32LE,rate={rate},channels={channels},layout=interleaved", "!",
                  "filesink", f"location={out}"], f"GStreamer on {path.name}")
            return np.fromfile(out, np.float32).reshape(-1, channels)
    finally:
        out.unlink(missing_ok=True)
    raise ValueError(f"unknown player {player!r} (expected one of {', '.join(PLAYERS)})")
