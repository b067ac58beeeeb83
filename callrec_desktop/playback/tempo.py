"""Playback speed with the pitch kept: ffmpeg's ``atempo`` filter through PyAV, streaming.

``TempoStretcher(rate, channels, speed)`` takes float32 blocks ``(frames, channels)`` and
returns what the filter graph has ready (maybe nothing yet: ``atempo`` works on overlapping
windows, so output lags input by a few tens of ms). ``flush()`` drains the tail.
``set_speed(x)`` takes effect at the next ``process()``: the old graph is flushed (its tail
is returned with the new output) and a new graph is built, so a speed change never drops or
repeats audio. Speeds 0.5–2 use one ``atempo``; outside that, factors are chained (0.25–4).

Optionally ``out_rate`` resamples in the same graph (``aresample``), for an output device
that will not run at the call's rate. At speed 1 with no resampling the block is passed
through untouched (no latency, no CPU).

Not thread-safe: one thread (the player's feeder) owns a stretcher.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["MAX_SPEED", "MIN_SPEED", "TempoStretcher", "atempo_factors"]

MIN_SPEED, MAX_SPEED = 0.25, 4.0
_LAYOUTS = {1: "mono", 2: "stereo"}


def atempo_factors(speed: float) -> list[float]:
    """``speed`` as a product of factors each within atempo's sweet range 0.5–2."""
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ValueError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, got {speed}")
    factors = []
    while speed > 2.0:
        factors.append(2.0)
        speed /= 2.0
    while speed < 0.5:
        factors.append(0.5)
        speed /= 0.5
    factors.append(speed)
    return factors


class TempoStretcher:
    def __init__(self, rate: int, channels: int, speed: float = 1.0, *, out_rate: int | None = None) -> None:
        if channels not in _LAYOUTS:
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        atempo_factors(speed)  # validates
        self.rate, self.channels = int(rate), int(channels)
        self.out_rate = int(out_rate or rate)
        self.speed = float(speed)
        self._pending_speed: float | None = None
        self._graph = None
        self._pts = 0
        self._empty = np.zeros((0, self.channels), dtype=np.float32)

    @property
    def passthrough(self) -> bool:
        return self.speed == 1.0 and self.out_rate == self.rate

    def set_speed(self, speed: float) -> None:
        atempo_factors(speed)
        self._pending_speed = float(speed)

    def reset(self) -> None:
        """Drop whatever is inside the graph (after a seek: that audio belongs elsewhere)."""
        self._graph = None
        if self._pending_speed is not None:
            self.speed, self._pending_speed = self._pending_speed, None

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``block`` (float32 ``(frames, channels)``); return the output ready so far."""
        head = self._empty
        if self._pending_speed is not None:
            head = self.flush()
            self.speed, self._pending_speed = self._pending_speed, None
        if self.passthrough:
            out = np.ascontiguousarray(block, dtype=np.float32)
        else:
            out = self._push(np.ascontiguousarray(block, dtype=np.float32))
        return out if head.shape[0] == 0 else np.concatenate([head, out])

    def flush(self) -> np.ndarray:
        """Everything still inside the graph; the next ``process()`` starts a fresh graph."""
        if self._graph is None:
            return self._empty
        graph, self._graph = self._graph, None
        graph.push(None)
        return self._pull(graph)

    # ---- internals -----------------------------------------------------------------------
    def _build(self):
        import av.filter

        graph = av.filter.Graph()
        layout = _LAYOUTS[self.channels]
        node = graph.add_abuffer(format="flt", sample_rate=self.rate, layout=layout, channels=self.channels)
        if self.speed != 1.0:
            for factor in atempo_factors(self.speed):
                nxt = graph.add("atempo", f"{factor:.6f}")
                node.link_to(nxt)
                node = nxt
        if self.out_rate != self.rate:
            nxt = graph.add("aresample", str(self.out_rate))
            node.link_to(nxt)
            node = nxt
        nxt = graph.add("aformat", f"sample_fmts=flt:channel_layouts={layout}:sample_rates={self.out_rate}")
        node.link_to(nxt)
        sink = graph.add("abuffersink")
        nxt.link_to(sink)
        graph.configure()
        self._pts = 0
        return graph

    def _push(self, block: np.ndarray) -> np.ndarray:
        import av

        if block.shape[0] == 0:
            return self._empty
        if self._graph is None:
            self._graph = self._build()
        frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="flt", layout=_LAYOUTS[self.channels])
        frame.sample_rate = self.rate
        frame.time_base = Fraction(1, self.rate)
        frame.pts = self._pts
        self._pts += block.shape[0]
        self._graph.push(frame)
        return self._pull(self._graph)

    def _pull(self, graph) -> np.ndarray:
        import av

        parts = []
        while True:
            try:
                out = graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            parts.append(out.to_ndarray().reshape(-1, self.channels))
        if not parts:
            return self._empty
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
