"""Generated audio for the headless demo: a 20 s two-sided "conversation" of speech-like
bursts, with the caller keying card digits (DTMF) inside the payment window so the demo's
export shows them gone."""

from __future__ import annotations

import numpy as np

DTMF = {"4": (770, 1209), "1": (697, 1209), "7": (852, 1209), "5": (770, 1336)}


def _burst(rate: int, seconds: float, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """A voiced-sounding burst: a few harmonics with a syllable-rate envelope."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.05 * np.sin(2 * np.pi * 1.3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None) ** 0.7
    return (0.15 * voice * envelope).astype(np.float32)


def demo_call_audio(rate: int = 16000, seconds: float = 20.0, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((int(seconds * rate), 2), dtype=np.float32)
    t = 0.0
    side = 0
    while t < seconds - 1:
        length = float(rng.uniform(0.8, 2.0))
        seg = _burst(rate, length, 120.0 if side == 0 else 210.0, rng)
        i = int(t * rate)
        out[i : i + len(seg), side] += seg[: len(out) - i]
        t += length + 0.2
        side ^= 1
    for n, digit in enumerate("4157" * 3):  # card digits keyed by the caller, 6.5-9.5 s
        lo, hi = DTMF[digit]
        i = int((6.5 + n * 0.25) * rate)
        tt = np.arange(int(0.1 * rate)) / rate
        out[i : i + len(tt), 1] += (0.2 * (np.sin(2 * np.pi * lo * tt) + np.sin(2 * np.pi * hi * tt))).astype(np.float32)
    return out
