"""Small signal helpers for tests: tones, stereo assembly and a frequency estimate.

Pure numpy, no I/O.
"""

from __future__ import annotations

import numpy as np

__all__ = ["tone", "silence", "make_stereo", "peak_frequency"]


def tone(freq: float, seconds: float, sample_rate: int, amplitude: float = 0.3) -> np.ndarray:
    """A sine tone as float32 mono samples, shape ``(frames,)``, starting at phase 0."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    frames = int(round(seconds * sample_rate))
    t = np.arange(frames, dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2.0 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, sample_rate: int, channels: int = 1) -> np.ndarray:
    """Digital silence: shape ``(frames,)`` for mono, ``(frames, channels)`` otherwise."""
    frames = int(round(seconds * sample_rate))
    shape = (frames,) if channels == 1 else (frames, channels)
    return np.zeros(shape, dtype=np.float32)


def make_stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two mono signals as one ``(frames, 2)`` float32 array: left = agent, right = caller.

    The shorter side is padded with silence so neither signal is cut.
    """
    left = np.asarray(left, dtype=np.float32).reshape(-1)
    right = np.asarray(right, dtype=np.float32).reshape(-1)
    out = np.zeros((max(left.size, right.size), 2), dtype=np.float32)
    out[: left.size, 0] = left
    out[: right.size, 1] = right
    return out


def peak_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """The frequency (Hz) of the strongest spectral peak of a mono signal.

    Hann-windowed FFT with parabolic interpolation between bins, so a clean tone is found
    to well under one bin (a few Hz for a second of audio).
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.size < 4:
        raise ValueError("need at least 4 samples to estimate a frequency")
    spectrum = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(x.size)))
    k = int(np.argmax(spectrum[1:])) + 1
    offset = 0.0
    if 1 <= k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-30)
        denom = a - 2.0 * b + c
        if denom != 0.0:
            offset = 0.5 * (a - c) / denom
    return (k + offset) * sample_rate / x.size
