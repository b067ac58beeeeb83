"""A per-channel peak overview of a call (min and max per 10 ms), for drawing the waveform.

Computed once by streaming through the call (``CallAudio.read`` in blocks of a few seconds,
never the whole call in memory) and cached on disk as ``.npz``. The cache file name carries a
SHA-256 over the call id, the bucket rate and every chunk's seq, position, length and
checksum, so a re-uploaded or corrected recording never shows a stale overview. Files are
written ``NAME.part`` (mode ``x``), fsynced and renamed (atomic), then the folder is fsynced.

Pauses and gaps are digital silence on the timeline, so their buckets are exactly 0.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callrec_desktop.durable import write_atomic
from callrec_desktop.private_files import private_dir
from callrec_desktop.playback.call_audio import CallAudio, Mark

__all__ = ["DEFAULT_RATE_HZ", "Waveform", "cache_path", "compute", "load_or_compute"]

DEFAULT_RATE_HZ = 100  # buckets per second: 10 ms
_FORMAT_VERSION = 1
_BLOCK_SECONDS = 10  # frames read per step while computing


@dataclass(frozen=True)
class Waveform:
    """``mins`` and ``maxs`` are float32 ``(channels, buckets)``; bucket ``i`` covers frames
    ``[i * bucket_frames, (i + 1) * bucket_frames)`` (the last one may be shorter)."""

    rate_hz: int
    sample_rate: int
    frames: int
    mins: np.ndarray
    maxs: np.ndarray
    marks: tuple[Mark, ...] = field(default=())

    @property
    def bucket_frames(self) -> int:
        return self.sample_rate // self.rate_hz

    @property
    def peak(self) -> float:
        """The largest absolute sample of the whole call."""
        if self.mins.size == 0:
            return 0.0
        return float(max(np.abs(self.mins).max(), np.abs(self.maxs).max()))


def cache_key(call_audio: CallAudio, rate_hz: int = DEFAULT_RATE_HZ) -> str:
    h = hashlib.sha256()
    h.update(f"v{_FORMAT_VERSION}|{call_audio.call_id}|{rate_hz}|{call_audio.sample_rate}|"
             f"{call_audio.channels}|{call_audio.frames}".encode())
    for c in call_audio.manifest.chunks:
        h.update(f"|{c.seq}:{c.first_frame}:{c.frames}:{c.sha256}".encode())
    return h.hexdigest()


def cache_path(call_audio: CallAudio, cache_dir: Path, rate_hz: int = DEFAULT_RATE_HZ) -> Path:
    return Path(cache_dir) / f"{call_audio.call_id}-{cache_key(call_audio, rate_hz)[:32]}.npz"


def compute(call_audio: CallAudio, rate_hz: int = DEFAULT_RATE_HZ,
            progress: Callable[[float], None] | None = None) -> Waveform:
    """Stream through the call once. ``progress(fraction)`` is called on the calling thread."""
    rate = call_audio.sample_rate
    if rate % rate_hz:
        raise ValueError(f"{rate_hz} buckets per second do not divide {rate} Hz")
    bucket = rate // rate_hz
    frames, ch = call_audio.frames, call_audio.channels
    n_buckets = -(-frames // bucket)
    mins = np.zeros((ch, n_buckets), dtype=np.float32)
    maxs = np.zeros((ch, n_buckets), dtype=np.float32)
    step = bucket * rate_hz * _BLOCK_SECONDS  # a whole number of buckets
    for start in range(0, frames, step):
        n = min(step, frames - start)
        block = call_audio.read(start, n)
        full = n // bucket
        b0 = start // bucket
        if full:
            view = block[: full * bucket].reshape(full, bucket, ch)
            mins[:, b0 : b0 + full] = view.min(axis=1).T
            maxs[:, b0 : b0 + full] = view.max(axis=1).T
        if n % bucket:  # the call's last, shorter bucket
            tail = block[full * bucket :]
            mins[:, b0 + full] = tail.min(axis=0)
            maxs[:, b0 + full] = tail.max(axis=0)
        if progress is not None:
            progress(min(1.0, (start + n) / frames))
    if progress is not None and frames == 0:
        progress(1.0)
    return Waveform(rate_hz, rate, frames, mins, maxs, call_audio.marks)


def load_or_compute(call_audio: CallAudio, cache_dir: Path | str, progress: Callable[[float], None] | None = None,
                    rate_hz: int = DEFAULT_RATE_HZ) -> Waveform:
    """The cached overview if there is a valid one, else compute it and cache it.

    An unreadable cache file is ignored (recomputed and replaced). Runs on the calling thread
    (call it from a worker; ``progress`` is called there too).
    """
    path = cache_path(call_audio, Path(cache_dir), rate_hz)
    try:
        with np.load(path, allow_pickle=False) as z:
            mins, maxs = z["mins"], z["maxs"]
            meta = z["meta"]
        if (int(meta[0]), int(meta[1]), int(meta[2])) == (rate_hz, call_audio.sample_rate, call_audio.frames) \
                and mins.shape == maxs.shape == (call_audio.channels, -(-call_audio.frames // (call_audio.sample_rate // rate_hz))):
            if progress is not None:
                progress(1.0)
            return Waveform(rate_hz, call_audio.sample_rate, call_audio.frames, mins, maxs, call_audio.marks)
    except (OSError, KeyError, ValueError, IndexError):
        pass  # missing or damaged: compute again
    wf = compute(call_audio, rate_hz, progress)
    _write_atomic(path, wf)
    return wf


def _write_atomic(path: Path, wf: Waveform) -> None:
    """The cache file, replaced atomically (durable.write_atomic gives each writer its own temp)."""
    buf = io.BytesIO()
    np.savez(buf, mins=wf.mins, maxs=wf.maxs, meta=np.array([wf.rate_hz, wf.sample_rate, wf.frames], dtype=np.int64))
    private_dir(path.parent)  # 0700, the file 0600: a waveform is derived from a call
    write_atomic(path, buf.getvalue())
