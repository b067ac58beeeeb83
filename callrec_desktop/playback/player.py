"""The player: a sounddevice output stream fed from a ring buffer by a feeder thread.

Three activities, none blocks another (STYLE.md, "Threads"):

* the **PortAudio callback** only copies frames out of the ring buffer (or zeros) and moves
  a read counter: no decoding, no allocation, no logging, no locks;
* the **feeder thread** keeps about ``ahead_seconds`` (0.5 s) of output decoded ahead: it
  reads the call (``CallAudio``), skips long silences, applies the channel mode and the gain,
  changes the speed (``TempoStretcher``) and writes into the ring. Controls (seek, speed,
  ...) are commands on a queue that the feeder applies between blocks. Listeners
  (``position_changed``, ``finished``) are called on this thread;
* the **caller** (the GUI thread through a Qt adapter, or a test) calls the API.

The ring is single-producer / single-consumer: only the feeder moves the write counter, only
the callback moves the read counter (Python ints, each assignment atomic under the GIL). To
throw buffered audio away after a seek the feeder sets ``_discard_to``; the callback moves its
read counter there at its next call — so the callback remains the only writer of ``_r``.

Position: every run of output written to the ring is recorded as a segment (ring index where
it starts, timeline frame where it starts, timeline frames per output frame). ``position``
maps the callback's read counter, minus the device's output latency, through those segments:
it is the call-timeline time being heard now, accurate to about one device block.

Volume normalisation (``normalise=True``, needs a :class:`Waveform`): the per-call gain puts
the 95th percentile of the non-silent 10 ms bucket peaks (both channels) at −12 dBFS, which
puts speech at roughly −20 dBFS RMS (speech has about 8 dB between 10 ms peak and RMS). The
gain is limited to −12…+18 dB and never lets the call's overall peak clip. Without a waveform
the gain is 1.

Skip silence: when both channels stay below ``SILENCE_DBFS`` (after gain) for more than
``SKIP_AFTER_SECONDS`` (2 s), the feeder jumps ahead, keeping ``KEEP_SECONDS`` (0.5 s: a
quarter second on each side) so the listener hears that there was a gap. Pauses and gaps are
silence too. The position jumps with it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from callrec_desktop.playback.call_audio import CallAudio
from callrec_desktop.playback.tempo import TempoStretcher, atempo_factors
from callrec_desktop.playback.waveform import Waveform

__all__ = ["CHANNEL_MODES", "Player", "PlayerError"]

log = logging.getLogger(__name__)

CHANNEL_MODES = ("both", "agent", "caller")
OUT_CHANNELS = 2
SILENCE_DBFS = -45.0
SKIP_AFTER_SECONDS = 2.0
KEEP_SECONDS = 0.5
TARGET_PEAK_DBFS = -12.0
_SCAN_LIMIT_SECONDS = 120.0  # how far one feeder step scans a silence before writing again
_POSITION_EVERY_SECONDS = 0.1


class PlayerError(Exception):
    """The player cannot do what was asked (no device, closed)."""


@dataclass(frozen=True)
class _Segment:
    ring_start: int  # write index of the segment's first output frame
    timeline_start: float  # call frame heard at that output frame
    step: float  # call frames per output frame (speed * call rate / output rate)


def normalising_gain(waveform: Waveform) -> float:
    """The per-call gain (see the module docstring)."""
    if waveform.mins.size == 0:
        return 1.0
    peaks = np.maximum(np.abs(waveform.mins), np.abs(waveform.maxs)).max(axis=0)
    loud = peaks[peaks > 10 ** (-50 / 20)]
    if loud.size == 0:
        return 1.0
    level = float(np.percentile(loud, 95))
    gain = 10 ** (TARGET_PEAK_DBFS / 20) / level
    gain = min(max(gain, 10 ** (-12 / 20)), 10 ** (18 / 20))
    return min(gain, 0.99 / max(waveform.peak, 1e-9))


def _default_output(*, samplerate: int, channels: int, blocksize: int, device: Any, callback: Callable) -> Any:
    import sounddevice as sd  # lazily: the rest of the player works without PortAudio

    return sd.OutputStream(samplerate=samplerate, channels=channels, blocksize=blocksize, device=device,
                           dtype="float32", callback=callback)


class Player:
    """Plays one call. See the module docstring for threads, position, gain and skipping.

    ``output_factory(samplerate=, channels=, blocksize=, device=, callback=)`` returns an object
    with ``start()``, ``stop()``, ``close()`` and ``latency`` (seconds); the default builds a
    ``sounddevice.OutputStream``. Unit tests may pass a fake and call the callback themselves.
    """

    def __init__(self, call_audio: CallAudio, *, device: Any = None, rate: int | None = None,
                 blocksize: int = 320, output_factory: Callable[..., Any] | None = None,
                 waveform: Waveform | None = None, normalise: bool = True, volume: float = 1.0,
                 speed: float = 1.0, channel_mode: str = "both", skip_silence: bool = False,
                 ahead_seconds: float = 0.5) -> None:
        self.audio = call_audio
        self.rate = int(rate or call_audio.sample_rate)
        self.blocksize = int(blocksize)
        self._check_mode(channel_mode)
        atempo_factors(speed)
        self._speed = float(speed)
        self._mode = channel_mode
        self._skip = bool(skip_silence)
        self._volume = float(volume)
        self._gain = normalising_gain(waveform) if (waveform is not None and normalise) else 1.0
        self._ahead = max(int(ahead_seconds * self.rate), 2 * self.blocksize)
        self._in_block = max(call_audio.sample_rate // 20, 1)  # 50 ms of call per feeder step
        # ring: room for the look-ahead plus a generous margin (a whole tempo burst)
        self._cap = self._ahead + 4 * self._in_block * 4 + 4 * self.blocksize
        self._ring = np.zeros((self._cap, OUT_CHANNELS), dtype=np.float32)
        self._w = 0  # frames written (feeder only)
        self._r = 0  # frames read (callback only)
        self._discard_to = 0  # feeder asks the callback to skip to this write index
        self._playing = False  # read by the callback: plain bool, no lock
        self.underflows = 0  # output underflows reported by PortAudio (counted in the callback)
        self._segments: deque[_Segment] = deque([_Segment(0, 0.0, self._step())])
        self._seg_lock = threading.Lock()  # guards _segments; never taken by the callback
        self._pos = 0  # next call frame the feeder reads
        self._end_written_at: int | None = None  # write index where the call's end was written
        self._finished_sent = False
        self._silence_from: int | None = None
        self._pending_jump: tuple[int, int, bool] | None = None  # (from, to, scan hit its limit)
        self._seek_target: float | None = None  # seconds, until the feeder applied the seek
        self._stretch = TempoStretcher(call_audio.sample_rate, OUT_CHANNELS, self._speed, out_rate=self.rate)
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closed = False
        self._listeners: dict[str, list[Callable[..., None]]] = {"position_changed": [], "finished": []}
        self.error: BaseException | None = None
        self._stream = (output_factory or _default_output)(
            samplerate=self.rate, channels=OUT_CHANNELS, blocksize=self.blocksize, device=device,
            callback=self._callback)
        self._stream_started = False
        self._thread = threading.Thread(target=self._feed, name="callrec-player-feeder", daemon=True)
        self._thread.start()

    # ---- API: any thread -------------------------------------------------------------------
    def add_listener(self, event: str, listener: Callable[..., None]) -> None:
        """``position_changed(seconds)`` (about every 0.1 s while playing, and after a seek) and
        ``finished()`` (the end was heard). Called on the feeder thread; must be quick."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r} (expected one of {', '.join(self._listeners)})")
        self._listeners[event].append(listener)

    def play(self) -> None:
        self._alive()
        if not self._stream_started:
            self._stream.start()
            self._stream_started = True
        if self._finished_sent:  # play after the end starts again from the beginning
            self._send("seek", 0)
        self._playing = True
        self._wake.set()

    def pause(self) -> None:
        self._playing = False

    @property
    def playing(self) -> bool:
        return self._playing

    def seek(self, seconds: float) -> None:
        """Jump to ``seconds`` on the call's timeline (clamped to the call)."""
        self._alive()
        frame = int(round(min(max(seconds, 0.0), self.audio.duration) * self.audio.sample_rate))
        self._seek_target = frame / self.audio.sample_rate  # position answers the new place at once
        self._send("seek", frame)

    @property
    def position(self) -> float:
        """Seconds on the call's timeline being heard now (see the module docstring)."""
        target = self._seek_target
        if target is not None:
            return target
        r = max(self._r, self._discard_to)
        try:
            latency = float(self._stream.latency) if self._playing else 0.0
        except Exception:  # noqa: BLE001 - a fake or closed stream
            latency = 0.0
        heard = r - latency * self.rate
        with self._seg_lock:
            seg = self._segments[0]
            for s in self._segments:
                if s.ring_start <= r:
                    seg = s
                else:
                    break
        frame = seg.timeline_start + max(heard - seg.ring_start, 0.0) * seg.step
        return min(max(frame, 0.0), self.audio.frames) / self.audio.sample_rate

    @property
    def duration(self) -> float:
        return self.audio.duration

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        atempo_factors(speed)
        self._send("speed", float(speed))

    @property
    def channel_mode(self) -> str:
        return self._mode

    def set_channel_mode(self, mode: str) -> None:
        """``both`` (as recorded), ``agent`` (left on both ears) or ``caller`` (right on both)."""
        self._check_mode(mode)
        self._send("mode", mode)

    def set_skip_silence(self, on: bool) -> None:
        self._send("skip", bool(on))

    def set_volume(self, volume: float) -> None:
        if volume < 0:
            raise ValueError(f"volume must not be negative, got {volume}")
        self._send("volume", float(volume))

    @property
    def gain(self) -> float:
        return self._gain

    def close(self) -> None:
        """Stop the stream and the feeder. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._playing = False
        self._wake.set()
        self._thread.join(timeout=5)
        try:
            if self._stream_started:
                self._stream.stop()
        finally:
            self._stream.close()

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the PortAudio callback --------------------------------------------------------------
    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        """Runs on the PortAudio thread; must not block: it only copies."""
        if status and getattr(status, "output_underflow", False):
            self.underflows += 1
        r = self._r
        d = self._discard_to
        if d > r:
            r = d
        if not self._playing:
            self._r = r
            outdata.fill(0)
            return
        n = min(frames, self._w - r)
        start = r % self._cap
        first = min(n, self._cap - start)
        outdata[:first] = self._ring[start : start + first]
        if n > first:
            outdata[first:n] = self._ring[: n - first]
        if n < frames:
            outdata[n:] = 0
        self._r = r + n

    # ---- the feeder thread ---------------------------------------------------------------------
    def _send(self, what: str, value: Any) -> None:
        self._commands.put((what, value))
        self._wake.set()

    def _alive(self) -> None:
        if self._closed:
            raise PlayerError("the player is closed")

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in CHANNEL_MODES:
            raise ValueError(f"channel mode must be one of {', '.join(CHANNEL_MODES)}, got {mode!r}")

    def _step(self) -> float:
        return self._speed * self.audio.sample_rate / self.rate

    def _emit(self, event: str, *args: Any) -> None:
        for listener in list(self._listeners[event]):
            try:
                listener(*args)
            except Exception:  # a listener's bug must not stop playback
                log.exception("player %s listener failed", event)

    def _feed(self) -> None:
        """Runs on the feeder thread: decode ahead, apply the commands, tell the listeners."""
        last_told = -1.0
        try:
            while not self._closed:
                self._apply_commands()
                if self._playing:
                    pos = self.position
                    if abs(pos - last_told) >= _POSITION_EVERY_SECONDS:
                        last_told = pos
                        self._emit("position_changed", pos)
                    if self._end_written_at is not None and not self._finished_sent \
                            and max(self._r, self._discard_to) >= self._end_written_at:
                        self._finished_sent = True
                        self._playing = False
                        self._emit("position_changed", self.audio.duration)
                        self._emit("finished")
                        continue
                buffered = self._w - max(self._r, self._discard_to)
                if self._end_written_at is not None or buffered >= self._ahead:
                    # Enough ahead (or all written): wait for the callback to consume some.
                    self._wake.wait(max(self.blocksize / self.rate, 0.005))
                    self._wake.clear()
                    continue
                self._produce()
        except BaseException as exc:  # noqa: BLE001 - reported, playback stops
            self.error = exc
            self._playing = False
            log.exception("player feeder stopped")
            self._emit("finished")

    def _apply_commands(self) -> None:
        while True:
            try:
                what, value = self._commands.get_nowait()
            except queue.Empty:
                return
            if what == "seek":
                self._restart_at(value)
                self._seek_target = None
                self._emit("position_changed", value / self.audio.sample_rate)
            elif what == "speed":
                if value != self._speed:
                    self._speed = value
                    self._stretch.set_speed(value)
                    # a new segment starts where the stretcher's tail ends; keep it simple: the
                    # feeder restarts at the frame being written now (drops <50 ms of tail)
                    self._restart_at(self._pos, keep_buffer=True)
            elif what == "mode":
                self._mode = value
            elif what == "skip":
                self._skip = value
                self._silence_from = None
            elif what == "volume":
                self._volume = value

    def _restart_at(self, frame: int, keep_buffer: bool = False) -> None:
        self._stretch.reset()
        self._pos = frame
        self._silence_from = None
        self._pending_jump = None
        self._end_written_at = None
        self._finished_sent = False
        if not keep_buffer:
            self._discard_to = self._w
        with self._seg_lock:
            if not keep_buffer:
                # drop every segment the discarded audio belonged to (keep the seek's own)
                while len(self._segments) > 1 and self._segments[1].ring_start <= self._w:
                    self._segments.popleft()
            self._segments.append(_Segment(self._w, float(frame), self._step()))

    def _produce(self) -> None:
        """Read one feeder block of the call, process it, write it into the ring."""
        audio = self.audio
        if self._pos >= audio.frames:
            self._write(self._stretch.flush())
            self._end_written_at = self._w
            return
        n = min(self._in_block, audio.frames - self._pos)
        block = audio.read(self._pos, n)
        if self._skip and self._maybe_skip(block):
            return
        self._pos += n
        self._write(self._stretch.process(self._shape(block)))

    def _shape(self, block: np.ndarray) -> np.ndarray:
        """Channel mode, gain and volume; always two output channels."""
        if block.shape[1] == 1 or self._mode == "agent":
            out = np.repeat(block[:, :1], OUT_CHANNELS, axis=1)
        elif self._mode == "caller":
            out = np.repeat(block[:, 1:2], OUT_CHANNELS, axis=1)
        else:
            out = block
        g = self._gain * self._volume
        if g != 1.0:
            out = out * np.float32(g)
        return np.clip(out, -1.0, 1.0, dtype=np.float32) if g > 1.0 else out.astype(np.float32, copy=False)

    def _is_silent(self, block: np.ndarray) -> bool:
        if block.size == 0:
            return True
        return float(np.abs(block).max()) * self._gain < 10 ** (SILENCE_DBFS / 20)

    def _maybe_skip(self, block: np.ndarray) -> bool:
        """With skip-silence on: when a silent run longer than 2 s starts here, jump to a
        quarter second before its end. True when the feeder jumped (nothing written)."""
        if not self._is_silent(block):
            self._silence_from = None
            return False
        if self._silence_from is not None:
            return False  # inside the kept lead-in of a run already measured
        rate = self.audio.sample_rate
        start = self._pos
        limit = start + int(_SCAN_LIMIT_SECONDS * rate)
        end = self._silence_end(start, limit)
        self._silence_from = start
        if end - start <= SKIP_AFTER_SECONDS * rate:
            return False
        keep = int(KEEP_SECONDS * rate / 2)
        # Play `keep` frames of the silence now, then jump: the jump is taken in _write once the
        # lead-in has been written.
        self._pending_jump = (start + keep, end - keep, end >= limit and end < self.audio.frames)
        return False

    def _silence_end(self, start: int, limit: int) -> int:
        """First frame at or after ``start`` that is not silent (or ``limit`` / the end)."""
        audio = self.audio
        step = self._in_block
        f = start
        limit = min(limit, audio.frames)
        while f < limit:
            gap_end = audio.silent_until(f)
            if gap_end is not None:
                f = gap_end
                continue
            blk = audio.read(f, min(step, limit - f))
            loud = np.flatnonzero(np.abs(blk).max(axis=1) * self._gain >= 10 ** (SILENCE_DBFS / 20))
            if loud.size:
                return f + int(loud[0])
            f += blk.shape[0]
        return min(f, audio.frames)

    def _write(self, out: np.ndarray) -> None:
        """Copy into the ring; the caller made sure there is room for a feeder block."""
        jump = self._pending_jump
        n = out.shape[0]
        if n:
            free = self._cap - (self._w - max(self._r, self._discard_to))
            if n > free:  # cannot happen with the sizes chosen; never overwrite unplayed audio
                out, n = out[:free], free
            start = self._w % self._cap
            first = min(n, self._cap - start)
            self._ring[start : start + first] = out[:first]
            if n > first:
                self._ring[: n - first] = out[first:n]
            self._w += n  # publish after the copy: the callback never reads unwritten frames
        if jump is not None and self._pos >= jump[0]:
            self._pending_jump = None
            self._stretch.reset()
            self._pos = jump[1]
            if jump[2]:
                self._silence_from = None  # the scan stopped at its limit: measure again from there
            with self._seg_lock:
                self._segments.append(_Segment(self._w, float(jump[1]), self._step()))
        with self._seg_lock:  # forget segments surely heard long ago
            while len(self._segments) > 1 and self._segments[1].ring_start <= self._r - self._cap:
                self._segments.popleft()
