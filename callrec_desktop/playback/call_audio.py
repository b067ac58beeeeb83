"""A stored call on its own timeline, decoded lazily chunk by chunk.

``archive.decode_call`` decodes the whole call at once (an hour of 16 kHz stereo is 460 MB of
float32); the player needs the first second quickly and then a little at a time. A
:class:`CallAudio` fetches and decodes a chunk only when a read touches it, keeps the last
``cache_chunks`` decoded chunks (LRU), and verifies every chunk (size and SHA-256 against the
manifest, ``archive.read_chunk``) before decoding it. Chunks are decoded by libsndfile, which
reads stereo Ogg Opus under channel mapping family 1 (written since issue 9) and family 255
(written before; a sample is kept in tests/data/family255) alike.

Timeline: frame 0 is the call start; frame ``frames`` is its end (hang-up or transfer).
Frames that no chunk covers (payment and agent pauses, gaps) read as digital silence (0.0),
exactly as ``decode_call`` returns them.
"""

from __future__ import annotations

import bisect
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from callrec_desktop.archive import ArchiveError, read_chunk
from callrec_desktop.core.manifest import ChunkEntry, Manifest
from callrec_desktop.storage.base import Store

__all__ = ["CallAudio", "Mark"]


@dataclass(frozen=True)
class Mark:
    """Something to show on the player's time line.

    ``kind`` is ``"pause"`` (a payment or agent pause: ``start_frame``..``end_frame`` is
    silence on the timeline) or ``"end"`` (where the call ended: ``start_frame ==
    end_frame == frames``; ``reason`` is hangup, transferred, interrupted or error and
    ``department`` is set for a transfer).
    """

    kind: str
    start_frame: int
    end_frame: int
    reason: str
    source: str | None
    department: str | None = None


class CallAudio:
    """The call's audio, read at any frame. Thread-safe: the player's feeder thread and a
    waveform thread may read at the same time (the cache is guarded by a lock; fetching and
    decoding happen outside it, and a chunk being decoded by one thread is waited for, not
    decoded twice)."""

    def __init__(self, store: Store, manifest: Manifest, *, cache_chunks: int = 8) -> None:
        if cache_chunks < 1:
            raise ValueError(f"cache_chunks must be at least 1, got {cache_chunks}")
        self.store = store
        self.manifest = manifest
        self.call_id = manifest.call_id
        self.sample_rate = manifest.audio.sample_rate
        self.channels = manifest.audio.channels
        self.frames = manifest.frames
        self._chunks = tuple(c for c in manifest.chunks if c.frames > 0 and c.first_frame < manifest.frames)
        self._starts = [c.first_frame for c in self._chunks]
        self._cache_size = cache_chunks
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._loading: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.chunks_decoded = 0  # how many chunk decodes happened (cache misses), for tests and benches

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def chunks(self) -> tuple[ChunkEntry, ...]:
        return self._chunks

    @property
    def marks(self) -> tuple[Mark, ...]:
        """Pauses (payment / agent request) in timeline order, then the end point."""
        out = [Mark("pause", p.offset_frames, min(p.offset_frames + p.duration_frames, self.frames),
                    p.reason, p.source) for p in sorted(self.manifest.pauses, key=lambda p: p.offset_frames)]
        end = self.manifest.end
        if end is not None:
            out.append(Mark("end", self.frames, self.frames, end.reason, end.source, end.department))
        return tuple(out)

    def read(self, frame: int, n: int) -> np.ndarray:
        """``n`` frames from ``frame`` as a new float32 array ``(n, channels)``.

        Always ``n`` rows: frames before 0 or at/after ``frames`` (past the end), and frames in
        pauses and gaps, are zeros. Only the chunks the range touches are fetched and decoded.
        Raises ``ArchiveError`` (naming the chunk) when a chunk is missing, does not match its
        manifest entry, or does not decode.
        """
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        out = np.zeros((n, self.channels), dtype=np.float32)
        lo, hi = max(frame, 0), min(frame + n, self.frames)
        if lo >= hi:
            return out
        i = max(bisect.bisect_right(self._starts, lo) - 1, 0)
        while i < len(self._chunks) and self._chunks[i].first_frame < hi:
            entry = self._chunks[i]
            i += 1
            a = max(lo, entry.first_frame)
            b = min(hi, entry.first_frame + entry.frames)
            if a >= b:
                continue
            audio = self._decoded(entry)
            a_rel, b_rel = a - entry.first_frame, min(b - entry.first_frame, len(audio))
            if a_rel < b_rel:
                out[a - frame : a - frame + (b_rel - a_rel)] = audio[a_rel:b_rel]
        return out

    def silent_until(self, frame: int) -> int | None:
        """If ``frame`` lies in no chunk (a pause or gap), the first frame a chunk starts after it
        (or ``frames``); else None. Cheap: no decoding. Lets a scan skip a pause at once."""
        if frame >= self.frames:
            return None
        i = bisect.bisect_right(self._starts, frame) - 1
        if i >= 0 and frame < self._chunks[i].first_frame + self._chunks[i].frames:
            return None
        nxt = self._chunks[i + 1].first_frame if i + 1 < len(self._chunks) else self.frames
        return min(nxt, self.frames)

    # ---- internals -----------------------------------------------------------------------
    def _decoded(self, entry: ChunkEntry) -> np.ndarray:
        while True:
            with self._lock:
                audio = self._cache.get(entry.seq)
                if audio is not None:
                    self._cache.move_to_end(entry.seq)
                    return audio
                pending = self._loading.get(entry.seq)
                if pending is None:
                    pending = self._loading[entry.seq] = threading.Event()
                    break
            pending.wait()  # another thread decodes this chunk; then take it from the cache
            # (if that thread failed, the loop tries again and raises the same error here)
        try:
            audio = self._decode(entry)
            with self._lock:
                self._cache[entry.seq] = audio
                self.chunks_decoded += 1
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return audio
        finally:
            with self._lock:
                del self._loading[entry.seq]
            pending.set()

    def _decode(self, entry: ChunkEntry) -> np.ndarray:
        data = read_chunk(self.store, self.manifest, entry)  # size + SHA-256 checked first
        # Decode at most the frames the (validated) manifest gives this chunk: a small chunk
        # whose header claims hours of audio cannot make the player allocate them.
        n = max(0, min(entry.frames, self.frames - entry.first_frame))
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                rate, channels = f.samplerate, f.channels
                if rate != self.sample_rate:
                    raise ArchiveError(f"{self.call_id}: chunk {entry.seq} is {rate} Hz, manifest says {self.sample_rate}")
                if channels != self.channels:
                    raise ArchiveError(f"{self.call_id}: chunk {entry.seq} has {channels} channels, "
                                       f"manifest says {self.channels}")
                audio = f.read(frames=n, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise ArchiveError(f"{self.call_id}: chunk {entry.seq} does not decode: {exc}") from None
        return np.ascontiguousarray(audio[:n])
