"""Independent DTMF decoders, for leak tests and the DTMF bench: nothing here is ours.

* ``multimon_digits``: multimon-ng (Debian ``multimon-ng``), which reads signed 16-bit mono at
  22050 Hz on stdin (``-t raw``).
* ``spandsp_digits``: spandsp's ``dtmf_rx`` (Debian ``libspandsp-dev``), through the small C
  wrapper beside this file, built once into the venv with the system C compiler. It reads
  signed 16-bit mono at 8000 Hz.
* ``decode_caller`` / ``decode_channel``: any stored audio file (Ogg Opus, FLAC, WAV) decoded
  by ffmpeg, one channel, at the rate a decoder wants.

``leaked_digits(path)`` runs both decoders on both channels of a stored file and returns
what either found: the assertion every payment-pause leak test makes is that it is empty.

The packages are installed by ``scripts/setup.sh test``; a missing one is an error here, not
a skip (a leak test that cannot look must not pass).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WRAPPER_SOURCE = HERE / "dtmf_rx" / "dtmf_rx.c"
MULTIMON_RATE = 22050
SPANDSP_RATE = 8000


class ReferenceMissing(RuntimeError):
    """A reference decoder is not installed (run scripts/setup.sh test)."""


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ReferenceMissing(f"{name} not found: install the Debian package {package} (scripts/setup.sh test does)")
    return path


def _build_dir() -> Path:
    # Beside the interpreter's venv (ignored by git); falls back to the support folder's cache.
    venv = Path(sys.prefix)
    base = venv if (venv / "pyvenv.cfg").exists() else HERE / ".cache"
    d = base / "callrec-test-tools"
    d.mkdir(parents=True, exist_ok=True)
    return d


def spandsp_binary() -> Path:
    """The built wrapper, rebuilt when its source is newer than the binary."""
    out = _build_dir() / "dtmf_rx"
    if out.exists() and out.stat().st_mtime >= WRAPPER_SOURCE.stat().st_mtime:
        return out
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ReferenceMissing("no C compiler (cc) to build the spandsp dtmf_rx wrapper: install gcc")
    tmp = out.with_suffix(".tmp")
    built = subprocess.run([cc, "-O2", str(WRAPPER_SOURCE), "-lspandsp", "-o", str(tmp)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise ReferenceMissing(f"cannot build the spandsp dtmf_rx wrapper (install libspandsp-dev): {built.stderr.strip()}")
    tmp.replace(out)
    return out


def resample(x: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """``x`` at ``to_rate``, resampled by ffmpeg (band-limited, as a real decoder would be fed)."""
    if rate == to_rate:
        return np.asarray(x, dtype=np.float64)
    return _ffmpeg_resample(np.asarray(x, dtype=np.float64), rate, to_rate)


def _ffmpeg_resample(x: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    ffmpeg = _tool("ffmpeg", "ffmpeg")
    raw = np.clip(x, -1.0, 1.0).astype("<f4").tobytes()
    proc = subprocess.run(
        [ffmpeg, "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
         "-ar", str(to_rate), "-f", "f32le", "pipe:1"],
        input=raw, capture_output=True, check=True,
    )
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float64)


def _s16(x: np.ndarray) -> bytes:
    return (np.clip(np.asarray(x, dtype=np.float64), -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


def multimon_digits(x: np.ndarray, rate: int) -> str:
    """Digits multimon-ng finds in mono float audio ``x`` (full scale ±1) at ``rate``."""
    exe = _tool("multimon-ng", "multimon-ng")
    pcm = _s16(resample(x, rate, MULTIMON_RATE))
    proc = subprocess.run([exe, "-q", "-c", "-a", "DTMF", "-t", "raw", "-"], input=pcm,
                          capture_output=True, check=True)
    digits = []
    for line in proc.stdout.decode(errors="replace").splitlines():
        if line.startswith("DTMF:"):
            digits.append(line.split(":", 1)[1].strip())
    return "".join(digits)


def spandsp_digits(x: np.ndarray, rate: int) -> str:
    """Digits spandsp's dtmf_rx finds in mono float audio ``x`` at ``rate``."""
    return "".join(d for _, d in spandsp_hits(x, rate))


def spandsp_hits(x: np.ndarray, rate: int) -> list[tuple[float, str]]:
    """(seconds into ``x`` when reported, digit) for each digit dtmf_rx finds."""
    exe = spandsp_binary()
    pcm = _s16(resample(x, rate, SPANDSP_RATE))
    proc = subprocess.run([str(exe)], input=pcm, capture_output=True, check=True)
    out = []
    for line in proc.stdout.decode().splitlines():
        pos, digit = line.split()
        out.append((int(pos) / SPANDSP_RATE, digit))
    return out


def decode_channel(path: Path | str, channel: int, rate: int) -> np.ndarray:
    """One channel (0 left/agent, 1 right/caller; a mono file gives its only channel on both)
    of any file ffmpeg reads, as float64 at ``rate``."""
    return decode_stereo(path, rate)[:, channel]


def decode_stereo(path: Path | str, rate: int) -> np.ndarray:
    """Both channels of any file ffmpeg reads (a mono file upmixed), float64 at ``rate``: one
    ffmpeg run (tests/support/players.py); a file it cannot read is a ``ValueError``."""
    from tests.support.players import PlayerRefused, decode

    _tool("ffmpeg", "ffmpeg")
    try:
        return decode("ffmpeg", Path(path), rate, channels=2).astype(np.float64)
    except PlayerRefused as exc:
        raise ValueError(f"ffmpeg cannot decode {path}: {exc}") from None


def decode_caller(path: Path | str, rate: int = SPANDSP_RATE) -> np.ndarray:
    return decode_channel(path, 1, rate)


def leaked_digits(path: Path | str) -> dict[str, str]:
    """What each reference decoder finds on each channel of a stored file:
    ``{"multimon-ng/caller": "1234…", "dtmf_rx/agent": "", …}``; every value empty = no leak.
    The file is decoded once per decoder's rate."""
    found: dict[str, str] = {}
    at_multimon, at_spandsp = decode_stereo(path, MULTIMON_RATE), decode_stereo(path, SPANDSP_RATE)
    for channel, side in ((0, "agent"), (1, "caller")):
        found[f"multimon-ng/{side}"] = multimon_digits(at_multimon[:, channel], MULTIMON_RATE)
        found[f"dtmf_rx/{side}"] = spandsp_digits(at_spandsp[:, channel], SPANDSP_RATE)
    return found


def leaked_digits_in(paths) -> dict[str, str]:
    """``leaked_digits`` for several files (a call's chunks), only the non-empty findings,
    keyed ``"<file name> <decoder>/<side>"``."""
    out = {}
    for p in paths:
        for k, v in leaked_digits(p).items():
            if v:
                out[f"{Path(p).name} {k}"] = v
    return out


def dtmf_tone(digit: str, rate: int, seconds: float, level_dbfs: float = -10.0, *, ramp_seconds: float = 0.0,
              offset: float = 0.0, twist_db: float = 0.0) -> np.ndarray:
    """One key's tone: ``level_dbfs`` is the RMS of each of the two sines (dBFS, full-scale
    sine = -3 dBFS); ``offset`` a relative frequency error (0.015 = +1.5 %); ``twist_db`` >0 makes
    the high (column) group louder, <0 the low (row) group louder."""
    rows, cols = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    keys = ("123A", "456B", "789C", "*0#D")
    for r, row in enumerate(keys):
        if digit in row:
            f1, f2 = rows[r], cols[row.index(digit)]
            break
    else:
        raise ValueError(f"not a DTMF key: {digit!r}")
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    amp = np.sqrt(2) * 10 ** (level_dbfs / 20)
    lo = amp * 10 ** (-max(twist_db, 0) / 40) * 10 ** (max(-twist_db, 0) / 40)
    hi = amp * 10 ** (max(twist_db, 0) / 40) * 10 ** (-max(-twist_db, 0) / 40)
    x = lo * np.sin(2 * np.pi * f1 * (1 + offset) * t) + hi * np.sin(2 * np.pi * f2 * (1 + offset) * t)
    r = int(round(ramp_seconds * rate))
    if r > 0 and 2 * r < n:
        w = np.linspace(0, 1, r, endpoint=False)
        x[:r] *= w
        x[-r:] *= w[::-1]
    return x


def dtmf_sequence(digits: str, rate: int, tone_seconds: float = 0.1, gap_seconds: float = 0.1,
                  **tone_args) -> np.ndarray:
    """Digits keyed one after another, each tone followed by a gap of silence."""
    gap = np.zeros(int(round(gap_seconds * rate)))
    parts = []
    for d in digits:
        parts.append(dtmf_tone(d, rate, tone_seconds, **tone_args))
        parts.append(gap)
    return np.concatenate(parts) if parts else np.zeros(0)


# ---- Q.24 acceptance conditions (tests/unit/audio/test_dtmf.py and bench/bench_dtmf.py) ----------

DBM0_OF_FULL_SCALE_SINE = 3.14  # G.711 μ-law: a full-scale sine is +3.14 dBm0


def dbm0_to_dbfs(level_dbm0: float) -> float:
    """``dtmf_tone``'s ``level_dbfs`` (RMS re full scale 1.0) of a tone at ``level_dbm0``:
    0 dBm0 is 3.14 dB below a full-scale sine, whose RMS is -3.01 dBFS."""
    return level_dbm0 - DBM0_OF_FULL_SCALE_SINE - 10 * np.log10(2)


def keyed_digits(digits: str, rate: int, *, tone_seconds: float = 0.05, gap_seconds: float = 0.06,
                 level_dbm0: float = -10.0, ramp_seconds: float = 0.001, offset: float = 0.0,
                 twist_db: float = 0.0, lead_seconds: float = 0.2, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """``digits`` keyed one after another (each tone at ``level_dbm0`` per tone, see
    ``dtmf_tone`` for ``offset`` and ``twist_db``), gaps of ``gap_seconds`` to 1.5 times that
    (random, from ``seed``), after ``lead_seconds`` of silence and before as much again.
    Returns the audio and the frame of each tone's first sample."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(round(lead_seconds * rate)))]
    onsets = []
    at = len(parts[0])
    for d in digits:
        tone = dtmf_tone(d, rate, tone_seconds, dbm0_to_dbfs(level_dbm0), ramp_seconds=ramp_seconds,
                         offset=offset, twist_db=twist_db)
        gap = np.zeros(int(round(rng.uniform(gap_seconds, 1.5 * gap_seconds) * rate)))
        onsets.append(at)
        parts += [tone, gap]
        at += len(tone) + len(gap)
    parts.append(np.zeros(int(round(lead_seconds * rate))))
    return np.concatenate(parts), onsets


def with_white_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """``x`` plus white noise ``snr_db`` below the mean power of its non-silent samples (the
    tones while they sound), over the whole band of ``x``'s rate."""
    on = x[np.abs(x) > 0]
    power = float(np.mean(on**2)) if len(on) else 0.0
    rng = np.random.default_rng(seed)
    return x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), len(x))


CODECS = {  # name: (ffmpeg encoder arguments, container), all at 8000 Hz mono
    "g711-ulaw": (["-c:a", "pcm_mulaw"], "wav"),
    "gsm-fr": (["-c:a", "libgsm"], "gsm"),
    "opus-10k": (["-c:a", "libopus", "-b:a", "10k"], "ogg"),
}


def codec_round_trip(x: np.ndarray, rate: int, codec: str) -> np.ndarray:
    """``x`` (float, full scale ±1) encoded at 8000 Hz mono by ffmpeg with ``codec`` (a key of
    CODECS: G.711 μ-law, GSM 06.10 full rate via libgsm, Opus at 10 kbit/s via libopus) and
    decoded back at ``rate``, trimmed or padded to ``len(x)``."""
    import tempfile

    ffmpeg = _tool("ffmpeg", "ffmpeg")
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}: one of {', '.join(CODECS)}")
    args, container = CODECS[codec]
    raw = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0).astype("<f4").tobytes()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"coded.{container}"
        enc = subprocess.run([ffmpeg, "-v", "error", "-f", "f32le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
                              "-ar", "8000", *args, str(path)], input=raw, capture_output=True)
        if enc.returncode != 0:
            raise ReferenceMissing(f"ffmpeg cannot encode {codec}: {enc.stderr.decode(errors='replace').strip()}")
        y = decode_channel(path, 0, rate)
    return y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))


def espeak_speech(text: str, voice: str, rate: int, *, pitch: int = 50, speed: int = 160) -> np.ndarray:
    """``text`` spoken by espeak-ng (Debian ``espeak-ng``) in ``voice`` (e.g. ``cy``,
    ``en-gb+f3``), resampled to ``rate``, as float64 mono."""
    import io
    import wave

    exe = _tool("espeak-ng", "espeak-ng")
    proc = subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", text],
                          capture_output=True)
    if proc.returncode != 0 or not proc.stdout:
        raise ReferenceMissing(f"espeak-ng cannot speak with voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}")
    with wave.open(io.BytesIO(proc.stdout)) as w:
        native = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    return resample(pcm, native, rate)
