"""Shared pieces of the benchmarks: speech-like audio, default settings, RSS, band energy.

Not a test helper: the benchmarks are run by hand (see bench/README.md) and assert nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the project root
    sys.path.insert(0, str(ROOT))

from callrec_desktop.audio.encoders import CodecSettings  # noqa: E402
from callrec_desktop.config import RecorderSettings  # noqa: E402
from callrec_desktop.recorder import Identity, RecordingSettings  # noqa: E402
from tests.support.recording import band_db  # noqa: E402,F401 (the tests' measure, shared)

RATE = 16000
IDENTITY = Identity(agent="bench", workstation="bench", app_version="bench")


def default_settings(codec: str = "opus", channels: int = 2) -> RecordingSettings:
    """The recorder's default settings (config.RecorderSettings), built as cli.py builds them."""
    r = RecorderSettings()
    return RecordingSettings(
        codec=CodecSettings(
            codec=codec, sample_rate=r.sample_rate, channels=channels,
            opus_bitrate_per_channel=r.opus_bitrate_per_channel, opus_complexity=r.opus_complexity,
        ),
        chunk_frames=round(r.chunk_seconds * r.sample_rate),
        lookbehind_frames=round(r.lookbehind_seconds * r.sample_rate),
    )


def _burst(rate: int, n: int, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-sounding burst (n frames): 8 harmonics with a little vibrato, a 3-6 Hz
    syllable envelope, and a short unvoiced (noise) onset per syllable."""
    t = np.arange(n, dtype=np.float64) / rate
    f0 = pitch * (1 + 0.06 * np.sin(2 * np.pi * rng.uniform(0.8, 1.8) * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = np.zeros(n)
    for k in range(1, 9):
        voice += np.sin(k * phase) * (1.0 / k) * (1.0 + 0.5 * np.sin(2 * np.pi * 0.7 * k * t))
    syl = rng.uniform(3.0, 6.0)
    env_phase = 2 * np.pi * syl * t + rng.uniform(0, 6)
    envelope = np.clip(np.sin(env_phase), 0, None) ** 0.7
    # fricative-ish noise where each syllable starts (the envelope's rising edge)
    onset = np.clip(np.cos(env_phase), 0, None) ** 8 * (np.sin(env_phase) > -0.3)
    noise = rng.standard_normal(n) * onset * 0.25
    return (0.15 * voice * envelope + 0.05 * noise).astype(np.float32)


def speech_like(seconds: float, rate: int = RATE, seed: int = 11) -> np.ndarray:
    """Deterministic stereo "conversation", float32 (frames, 2): turns of 0.6-4 s alternating
    between left (agent, ~110-140 Hz) and right (caller, ~180-240 Hz), 0.1-0.8 s gaps, the
    occasional short backchannel on the other side, and low noise (about -60 dBFS) on both."""
    rng = np.random.default_rng(seed)
    frames = int(round(seconds * rate))
    out = np.empty((frames, 2), dtype=np.float32)
    step = 60 * rate  # noise a minute at a time: no float64 copy of the whole audio
    for i in range(0, frames, step):
        m = min(step, frames - i)
        out[i : i + m] = rng.standard_normal((m, 2), dtype=np.float32) * np.float32(0.001)
    pitches = (float(rng.uniform(110, 140)), float(rng.uniform(180, 240)))
    i = int(0.3 * rate)
    side = 0
    while i < frames:
        n = min(int(rng.uniform(0.6, 4.0) * rate), frames - i)
        out[i : i + n, side] += _burst(rate, n, pitches[side] * rng.uniform(0.9, 1.1), rng)
        if rng.random() < 0.2 and n > rate:  # "mm-hm" from the other side
            j = i + int(rng.uniform(0.2, 0.6) * n)
            m = min(int(0.3 * rate), frames - j)
            out[j : j + m, 1 - side] += _burst(rate, m, pitches[1 - side], rng)
        i += n + int(rng.uniform(0.1, 0.8) * rate)
        side ^= 1
    np.clip(out, -1, 1, out=out)
    return out


def two_tones(seconds: float, left_hz: float = 440.0, right_hz: float = 1250.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * left_hz * t), 0.3 * np.sin(2 * np.pi * right_hz * t)],
                    axis=1).astype(np.float32)


def separation_db(out: np.ndarray, left_hz: float = 440.0, right_hz: float = 1250.0,
                  rate: int = RATE, skip_seconds: int = 1) -> tuple[float, float, float]:
    """Worst 1-s window of (left: own tone over the other's, right: likewise); returns
    (worst overall, worst left, worst right). The first ``skip_seconds`` (encoder start-up)
    are left out, as in the unit test."""
    lefts, rights = [], []
    for s in range(skip_seconds, len(out) // rate):
        w = out[s * rate : (s + 1) * rate]
        lefts.append(band_db(w[:, 0], left_hz, rate) - band_db(w[:, 0], right_hz, rate))
        rights.append(band_db(w[:, 1], right_hz, rate) - band_db(w[:, 1], left_hz, rate))
    return min(min(lefts), min(rights)), min(lefts), min(rights)


def rss_bytes() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def maxrss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def cpu_seconds() -> tuple[float, float]:
    """(time.process_time(), getrusage user+sys) for this process, all threads."""
    import resource
    import time

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.process_time(), ru.ru_utime + ru.ru_stime
