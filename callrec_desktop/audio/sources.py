"""Audio sources behind one interface: the capture device, an audio file, synthetic audio.

The recorder thread consumes an :class:`AudioSource`::

    with open_source("device", sample_rate=16000, block_frames=320) as source:
        while (block := source.read(timeout=0.5)) is not None:
            ...  # block.start_frame, block.data (float32, frames x channels)

``read(timeout)`` contract, the same for every source:

* returns the next :class:`AudioBlock`; blocks are contiguous (each ``start_frame`` is the
  previous block's ``start_frame + frames``), so a frame index is a position on the capture
  timeline;
* returns an :class:`AudioBlock` with **0 frames** when no audio arrived within ``timeout``
  (``None`` waits as long as it takes), so the consumer can check its own stop flags;
* returns ``None`` at the end of the stream: end of a file, or after :meth:`stop` once the
  blocks captured before the stop have been handed out;
* raises :class:`DeviceLostError` when the capture device vanished (after handing out what
  it captured before that), and :class:`AudioFileError` when a file turns out unreadable.

Channel layout: 1 channel = agent only; 2 channels = left agent, right caller.

The device source follows python-sounddevice's ``rec_unlimited.py``: the PortAudio callback
only copies the block into a queue and counts; everything else (gap filling, interleaving two
devices, the watchdog) happens on the consumer thread inside ``read()``.

``sounddevice`` is imported lazily, so files and synthetic audio work on a machine without
the PortAudio library.
"""

from __future__ import annotations

import logging
import math
import queue
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "DEFAULT_BLOCK_FRAMES",
    "DEFAULT_SAMPLE_RATE",
    "NO_INPUT_DEVICE_MESSAGE",
    "AudioBlock",
    "AudioFileError",
    "AudioSource",
    "AudioSourceError",
    "DeviceLostError",
    "DeviceSource",
    "FileSource",
    "NoInputDeviceError",
    "SyntheticSource",
    "list_input_devices",
    "open_source",
    "resolve_input_device",
]

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_BLOCK_FRAMES = 320  # 20 ms at 16 kHz
NO_INPUT_DEVICE_MESSAGE = "no audio input device is available (PortAudio found none)"

# How long read() waits on a queue before it re-checks stop and liveness flags.
_POLL_SECONDS = 0.05


# --------------------------------------------------------------------------- errors


class AudioSourceError(Exception):
    """An audio source cannot deliver audio. The message is fit for a UI banner."""


class NoInputDeviceError(AudioSourceError):
    """No input device at all, or the configured one does not exist."""


class DeviceLostError(AudioSourceError):
    """The capture device vanished (unplugged, audio server gone) while recording."""


class AudioFileError(AudioSourceError):
    """An audio file is missing, unreadable, corrupt or in an unsupported layout."""


# --------------------------------------------------------------------------- interface


@dataclass(frozen=True)
class AudioBlock:
    """A run of captured frames.

    ``start_frame`` is the capture frame index of the first frame (0-based, counting every
    frame since the source started). ``data`` is float32, shape ``(frames, channels)``,
    C-contiguous, and owned by the consumer (never a view into a buffer the source reuses).
    """

    start_frame: int
    data: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.data.shape[0])

    @property
    def end_frame(self) -> int:
        """Index one past the last frame of this block."""
        return self.start_frame + self.frames


@runtime_checkable
class AudioSource(Protocol):
    """What the recorder consumes. See the module docstring for the ``read`` contract."""

    sample_rate: int
    channels: int

    def start(self) -> None: ...

    def read(self, timeout: float | None = None) -> AudioBlock | None: ...

    def stop(self) -> None: ...

    @property
    def frames_captured(self) -> int:
        """Frames delivered by the device or producer so far; safe to read from any thread."""
        ...

    @property
    def overflows(self) -> int:
        """Input overflows and dropped blocks (device source); 0 for other sources."""
        ...

    def __enter__(self) -> AudioSource: ...

    def __exit__(self, *exc_info: object) -> None: ...


class _ContextMixin:
    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):  # noqa: ANN204 - returns the concrete source type
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _as_2d_float32(data: Any, what: str) -> np.ndarray:
    """An owned, C-contiguous float32 copy of ``data`` shaped ``(frames, channels)``."""
    arr = np.array(data, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 1-D (mono) or 2-D (frames, channels), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class _Rebuffer:
    """FIFO of 2-D float32 arrays that hands out exact frame counts. Consumer-side only."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._parts: deque[np.ndarray] = deque()
        self.frames = 0

    def push(self, data: np.ndarray) -> None:
        if data.shape[0]:
            self._parts.append(data)
            self.frames += data.shape[0]

    def pop_part(self) -> np.ndarray:
        """The oldest pushed array, whole."""
        part = self._parts.popleft()
        self.frames -= part.shape[0]
        return part

    def take(self, n: int) -> np.ndarray:
        """Exactly ``n`` frames (``n <= self.frames``) as one new C-contiguous array."""
        if n > self.frames:
            raise ValueError(f"asked for {n} frames, {self.frames} buffered")
        if self._parts and self._parts[0].shape[0] == n:
            return self.pop_part()
        out = np.empty((n, self.channels), dtype=np.float32)
        filled = 0
        while filled < n:
            part = self._parts[0]
            k = min(n - filled, part.shape[0])
            out[filled : filled + k] = part[:k]
            filled += k
            if k == part.shape[0]:
                self._parts.popleft()
            else:
                self._parts[0] = part[k:]
        self.frames -= n
        return out

    def drop(self, n: int) -> None:
        self.take(min(n, self.frames))


# --------------------------------------------------------------------------- pulled sources


class _PulledSource(_ContextMixin):
    """Shared machinery for sources whose blocks are produced on demand in ``read()``.

    Subclasses supply ``_open_blocks()`` (an iterator of 2-D float32 arrays) and
    ``_close()``. With ``realtime=True`` a block is handed out only once the wall-clock
    time of its last frame has come, measured from ``start()`` on ``time.monotonic`` so
    pacing never drifts.
    """

    sample_rate: int
    channels: int

    def __init__(self, block_frames: int, realtime: bool) -> None:
        if block_frames <= 0:
            raise ValueError(f"block_frames must be positive, got {block_frames}")
        self.block_frames = int(block_frames)
        self.realtime = bool(realtime)
        self._blocks: Iterator[np.ndarray] | None = None
        self._held: np.ndarray | None = None
        self._next_frame = 0
        self._t0 = 0.0
        self._finished = False
        self._stop_event = threading.Event()
        # Guards the underlying reader against stop() closing it from another thread.
        self._io_lock = threading.Lock()

    def _open_blocks(self) -> Iterator[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _close(self) -> None:
        pass

    def start(self) -> None:
        if self._blocks is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._blocks = self._open_blocks()
        self._t0 = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()
        with self._io_lock:
            self._finish()

    def _finish(self) -> None:
        # Caller holds self._io_lock.
        if not self._finished:
            self._finished = True
            self._blocks = None
            self._close()

    @property
    def frames_captured(self) -> int:
        return self._next_frame

    @property
    def overflows(self) -> int:
        return 0

    def _empty_block(self) -> AudioBlock:
        return AudioBlock(self._next_frame, np.zeros((0, self.channels), dtype=np.float32))

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        """Next block, an empty block on timeout (realtime only), or None at the end.

        Call from one consumer thread.
        """
        if self._blocks is None and not self._finished:
            raise RuntimeError(f"{type(self).__name__}.read() before start()")
        if self._stop_event.is_set():
            return None
        if self._held is None:
            with self._io_lock:
                if self._finished:
                    return None
                try:
                    self._held = next(self._blocks)  # type: ignore[arg-type]
                except StopIteration:
                    self._finish()
                    return None
                except BaseException:
                    self._finish()
                    raise
        data = self._held
        if self.realtime:
            due = self._t0 + (self._next_frame + data.shape[0]) / self.sample_rate
            delay = due - time.monotonic()
            if delay > 0:
                if timeout is not None and timeout < delay:
                    if self._stop_event.wait(max(0.0, timeout)):
                        return None
                    return self._empty_block()
                if self._stop_event.wait(delay):
                    return None
        self._held = None
        block = AudioBlock(self._next_frame, data)
        self._next_frame += data.shape[0]
        return block


class SyntheticSource(_PulledSource):
    """Audio given in memory, for tests and demos.

    ``blocks_or_array`` is either one array (``(frames,)`` mono or ``(frames, channels)``),
    cut into blocks of ``block_frames``, or an iterable of such arrays, handed out as given
    (so a test controls block boundaries; an endless generator gives an endless source).
    Samples are floats in [-1, 1].
    """

    def __init__(
        self,
        blocks_or_array: np.ndarray | Iterable[np.ndarray],
        sample_rate: int,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        realtime: bool = False,
        *,
        channels: int | None = None,
    ) -> None:
        super().__init__(block_frames, realtime)
        self.sample_rate = int(sample_rate)
        if isinstance(blocks_or_array, np.ndarray):
            whole = _as_2d_float32(blocks_or_array, "audio")
            self._parts: Iterator[np.ndarray] = iter(
                np.ascontiguousarray(whole[i : i + self.block_frames].copy())
                for i in range(0, whole.shape[0], self.block_frames)
            )
            first: np.ndarray | None = None
            found = whole.shape[1]
        else:
            self._parts = iter(blocks_or_array)
            first = next(self._parts, None)
            if first is not None:
                first = _as_2d_float32(first, "block")
            found = first.shape[1] if first is not None else None
        self._first = first
        if channels is None:
            channels = found if found is not None else 1
        if found is not None and found != channels:
            raise ValueError(f"audio has {found} channels, {channels} were declared")
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.channels = channels

    def _open_blocks(self) -> Iterator[np.ndarray]:
        if self._first is not None:
            yield self._first
        for part in self._parts:
            block = _as_2d_float32(part, "block")  # a copy: the producer may reuse its array
            if block.shape[1] != self.channels:
                raise ValueError(f"block has {block.shape[1]} channels, expected {self.channels}")
            yield block


class FileSource(_PulledSource):
    """WAV, FLAC, Ogg (anything libsndfile reads) as blocks of ``block_frames``.

    Mono files give ``channels == 1`` (agent only), stereo files ``2`` (left agent, right
    caller). When ``sample_rate`` is given and differs from the file's, the audio is
    resampled with libswresample (PyAV) while streaming. The file is checked when the
    source is built, so a bad path fails before any recording starts.
    """

    def __init__(
        self,
        path: str | Path,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        realtime: bool = False,
        sample_rate: int | None = None,
    ) -> None:
        super().__init__(block_frames, realtime)
        import soundfile as sf

        self.path = Path(path)
        if not self.path.exists():
            raise AudioFileError(f"audio file not found: {self.path}")
        if self.path.is_dir():
            raise AudioFileError(f"cannot read audio file {self.path}: it is a folder")
        try:
            info = sf.info(str(self.path))
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise AudioFileError(f"cannot read audio file {self.path}: {_soundfile_reason(exc)}") from exc
        if info.channels not in (1, 2):
            raise AudioFileError(
                f"cannot use audio file {self.path}: it has {info.channels} channels; only mono "
                "(agent) or stereo (left agent, right caller) is supported"
            )
        if info.samplerate <= 0:
            raise AudioFileError(f"cannot use audio file {self.path}: invalid sample rate {info.samplerate}")
        self.channels = int(info.channels)
        self.file_sample_rate = int(info.samplerate)
        self.sample_rate = int(sample_rate) if sample_rate else self.file_sample_rate
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.file_frames = int(info.frames)
        self._file: Any = None

    @property
    def duration(self) -> float:
        """Length of the file in seconds (as its header states)."""
        return self.file_frames / self.file_sample_rate

    def _open_blocks(self) -> Iterator[np.ndarray]:
        import soundfile as sf

        try:
            self._file = sf.SoundFile(str(self.path))
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise AudioFileError(f"cannot read audio file {self.path}: {_soundfile_reason(exc)}") from exc
        if self.sample_rate == self.file_sample_rate:
            return self._plain_blocks()
        return self._resampled_blocks()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read_file(self, frames: int) -> np.ndarray:
        import soundfile as sf

        position = self._file.tell() if self._file.seekable() else "?"
        try:
            data = self._file.read(frames, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError, OSError) as exc:
            raise AudioFileError(
                f"cannot read audio file {self.path} after frame {position}: {_soundfile_reason(exc)}"
            ) from exc
        return np.ascontiguousarray(data)

    def _plain_blocks(self) -> Iterator[np.ndarray]:
        while True:
            data = self._read_file(self.block_frames)
            if data.shape[0] == 0:
                return
            yield data

    def _resampled_blocks(self) -> Iterator[np.ndarray]:
        import av

        layout = "mono" if self.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="flt", layout=layout, rate=self.sample_rate)
        buffer = _Rebuffer(self.channels)
        read_frames = max(1, round(self.block_frames * self.file_sample_rate / self.sample_rate))

        def convert(frames: list[Any]) -> None:
            for frame in frames:
                buffer.push(np.ascontiguousarray(frame.to_ndarray().reshape(-1, self.channels)))

        while True:
            data = self._read_file(read_frames)
            if data.shape[0] == 0:
                break
            frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="flt", layout=layout)
            frame.sample_rate = self.file_sample_rate
            convert(resampler.resample(frame))
            while buffer.frames >= self.block_frames:
                yield buffer.take(self.block_frames)
        convert(resampler.resample(None))  # flush the filter's tail
        while buffer.frames >= self.block_frames:
            yield buffer.take(self.block_frames)
        if buffer.frames:
            yield buffer.take(buffer.frames)


def _soundfile_reason(exc: BaseException) -> str:
    reason = (getattr(exc, "error_string", None) or str(exc)).strip()
    reason = re.sub(r"^Error\s*:\s*", "", reason)  # libsndfile's "Error : flac decoder lost sync"
    return reason.rstrip(".") or type(exc).__name__


# --------------------------------------------------------------------------- devices


def _sounddevice() -> ModuleType:
    try:
        import sounddevice
    except OSError as exc:  # "PortAudio library not found"
        raise AudioSourceError(
            f"audio capture is unavailable: {exc} (install the PortAudio library, e.g. libportaudio2)"
        ) from exc
    return sounddevice


def _list_devices(channels_key: str) -> list[dict[str, Any]]:
    """PortAudio's devices (``sd.query_devices()`` entries) with ``channels_key`` > 0."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
    except sd.PortAudioError:
        return []
    return [dict(d) for d in devices if d[channels_key] > 0]


def list_input_devices() -> list[dict[str, Any]]:
    """PortAudio's input devices; empty when there are none."""
    return _list_devices("max_input_channels")


def list_output_devices() -> list[dict[str, Any]]:
    """PortAudio's output devices; empty when there are none."""
    return _list_devices("max_output_channels")


def _describe_inputs() -> str:
    devices = list_input_devices()
    if not devices:
        return NO_INPUT_DEVICE_MESSAGE
    listed = "; ".join(f"{d['index']}: {d['name']} ({d['max_input_channels']} in)" for d in devices)
    return f"available input devices: {listed}"


def device_spec(device: str | int | None) -> str | int | None:
    """A device as settings write it, as sounddevice takes it: "" or "default" is None (the
    system default), "3" is the index 3, anything else a name (or part of one)."""
    if isinstance(device, str):
        device = device.strip()
        if not device or device.lower() == "default":
            return None
        if device.isdigit():
            return int(device)
    return device


def resolve_input_device(device: str | int | None, channels: int = 1) -> dict[str, Any]:
    """Find an input device as sounddevice describes it (a dict with ``index`` and ``name``).

    ``device`` is None (the system default input), an index (``3`` or ``"3"``) or a name
    substring as sounddevice matches it (case-insensitive; several words must all match).
    Raises NoInputDeviceError naming the available input devices when nothing matches,
    and AudioSourceError when the device has fewer input channels than ``channels``.
    """
    sd = _sounddevice()
    spec = device_spec(device)
    try:
        info = dict(sd.query_devices(spec, kind="input"))
    except (sd.PortAudioError, ValueError) as exc:
        available = _describe_inputs()
        if available == NO_INPUT_DEVICE_MESSAGE:
            message = NO_INPUT_DEVICE_MESSAGE
            if spec is not None:
                message = f"audio input device {device!r} not found: {message}"
        elif spec is None:
            message = f"no default audio input device is set; {available}"
        else:
            reason = str(exc).split("\n", 1)[0]
            message = f"audio input device {device!r} not found ({reason}); {available}"
        raise NoInputDeviceError(message) from exc
    if info["max_input_channels"] < channels:
        raise AudioSourceError(
            f"audio input device {info['name']!r} has {info['max_input_channels']} input channel(s) but "
            f"{channels} are needed"
            + (" (left agent, right caller): record mono or name a separate caller device" if channels == 2 else "")
        )
    return info


class _StreamCapture:
    """One input stream's callback (producer side) and its reassembly (consumer side).

    The producer side is ``callback``/``finished_callback`` only; every other method runs on
    the consumer thread. Counters have a single writer (the PortAudio thread) and are read
    elsewhere; a Python int attribute read is atomic, so no lock is needed.
    """

    def __init__(self, label: str, channels: int, max_blocks: int) -> None:
        self.label = label
        self.channels = channels
        self.queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=max_blocks)
        # Written by the PortAudio thread only.
        self.frames = 0
        self.overflows = 0
        self.finished = False
        # Consumer side.
        self.pending = _Rebuffer(channels)
        self.next_frame = 0  # the capture frame the next pending frame will have
        self.gap_frames = 0  # silence inserted for blocks dropped on a full queue
        self.seen_frames = 0
        self.seen_at = 0.0

    def callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Copy the block into the queue and count. Runs on the PortAudio thread; must not block.

        No logging, no locks held for long, no allocation beyond the copy (and its tuple).
        A full queue means the consumer fell behind: the block is dropped and counted as an
        overflow; ``read()`` later fills the hole with silence so frame indices stay true.
        """
        if status.input_overflow:
            self.overflows += 1
        try:
            self.queue.put_nowait((self.frames, indata.copy()))
        except queue.Full:
            self.overflows += 1
        self.frames += frames

    def finished_callback(self) -> None:
        """PortAudio calls this when the stream stops for any reason. Runs on the PortAudio thread."""
        self.finished = True

    def pull(self, timeout: float) -> bool:
        """Move queued blocks into ``pending``, waiting up to ``timeout`` for the first one."""
        try:
            item = self.queue.get(timeout=timeout) if timeout > 0 else self.queue.get_nowait()
        except queue.Empty:
            return False
        while True:
            start, data = item
            if start > self.next_frame:  # blocks were dropped: keep the timeline honest
                gap = start - self.next_frame
                self.pending.push(np.zeros((gap, self.channels), dtype=np.float32))
                self.gap_frames += gap
            self.pending.push(data)
            self.next_frame = start + data.shape[0]
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return True

    def idle(self) -> bool:
        return self.queue.empty() and self.pending.frames == 0


class DeviceSource(_ContextMixin):
    """Live capture through PortAudio (sounddevice ``InputStream``, float32).

    * one device, ``channels=2``: two channels from it, left agent, right caller;
    * one device, ``channels=1``: the agent only;
    * ``caller_device`` given: two mono streams, agent and caller, interleaved into stereo on
      the consumer thread, aligned by frame count (the agent's clock is the timeline; if the
      caller side lags or leads by more than ``max_skew_seconds`` it is padded with silence
      or trimmed).

    The configured rate is requested from the device; PortAudio through ALSA's ``pulse``
    device resamples as needed. A device that stops delivering (stream finished or
    inactive, or no callback for ``stall_timeout`` seconds; ``start_timeout`` before the
    first one) makes ``read()`` raise DeviceLostError once the audio captured before it has
    been handed out.
    """

    def __init__(
        self,
        agent_device: str | int | None = None,
        caller_device: str | int | None = None,
        channels: int = 2,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        block_frames: int = DEFAULT_BLOCK_FRAMES,
        *,
        queue_seconds: float = 10.0,
        stall_timeout: float = 2.0,
        start_timeout: float = 5.0,
        max_skew_seconds: float = 0.5,
    ) -> None:
        if channels not in (1, 2):
            raise AudioSourceError(f"channels must be 1 (agent) or 2 (agent and caller), got {channels}")
        if caller_device is not None and str(caller_device).strip() == "":
            caller_device = None
        if caller_device is not None and channels != 2:
            raise AudioSourceError("a separate caller device needs channels = 2 (left agent, right caller)")
        if sample_rate <= 0 or block_frames <= 0:
            raise ValueError("sample_rate and block_frames must be positive")
        self.agent_device = agent_device
        self.caller_device = caller_device
        self.channels = channels
        self.sample_rate = int(sample_rate)
        self.block_frames = int(block_frames)
        self.stall_timeout = stall_timeout
        self.start_timeout = start_timeout
        self._max_skew = int(max_skew_seconds * self.sample_rate)
        max_blocks = max(16, math.ceil(queue_seconds * self.sample_rate / self.block_frames))
        self.dual = caller_device is not None
        per_stream = 1 if self.dual else channels
        self._captures = [_StreamCapture(self._label(agent_device), per_stream, max_blocks)]
        if self.dual:
            self._captures.append(_StreamCapture(self._label(caller_device), 1, max_blocks))
        self._streams: list[Any] = []
        self._stream_lock = threading.Lock()  # consumer/controller threads only, never the callback
        self._started = False
        self._stopping = False
        self._lost: DeviceLostError | None = None
        self._emitted = 0
        self.caller_padded_frames = 0
        self.caller_trimmed_frames = 0

    @staticmethod
    def _label(device: str | int | None) -> str:
        return "default input" if device is None or str(device).strip() == "" else str(device)

    @property
    def device_names(self) -> list[str]:
        """The devices being recorded (resolved names after start, else as configured)."""
        return [c.label for c in self._captures]

    @property
    def frames_captured(self) -> int:
        return self._captures[0].frames

    @property
    def overflows(self) -> int:
        return sum(c.overflows for c in self._captures)

    def start(self) -> None:
        if self._started:
            raise RuntimeError("DeviceSource already started")
        sd = _sounddevice()
        specs = [self.agent_device] + ([self.caller_device] if self.dual else [])
        infos = [resolve_input_device(spec, capture.channels) for spec, capture in zip(specs, self._captures)]
        streams = []
        try:
            for info, capture in zip(infos, self._captures):
                capture.label = str(info["name"])
                try:
                    stream = sd.InputStream(
                        device=info["index"],
                        channels=capture.channels,
                        samplerate=self.sample_rate,
                        blocksize=self.block_frames,
                        dtype="float32",
                        callback=capture.callback,
                        finished_callback=capture.finished_callback,
                    )
                except sd.PortAudioError as exc:
                    raise self._open_error(info, capture.channels, exc) from exc
                streams.append(stream)
            now = time.monotonic()
            for stream, capture in zip(streams, self._captures):
                capture.seen_at = now
                try:
                    stream.start()
                except sd.PortAudioError as exc:
                    raise AudioSourceError(f"cannot start audio input device {capture.label!r}: {exc}") from exc
        except BaseException:
            for stream in streams:
                stream.close()
            raise
        self._streams = streams
        self._started = True
        log.info(
            "capturing from %s at %d Hz, %d channel(s), blocks of %d frames",
            " + ".join(repr(c.label) for c in self._captures),
            self.sample_rate,
            self.channels,
            self.block_frames,
        )

    def _open_error(self, info: dict[str, Any], channels: int, exc: Exception) -> AudioSourceError:
        if "querying device" in str(exc):
            return NoInputDeviceError(NO_INPUT_DEVICE_MESSAGE)
        return AudioSourceError(
            f"cannot open audio input device {info['name']!r} at {self.sample_rate} Hz, "
            f"{channels} channel(s): {exc}"
        )

    def stop(self) -> None:
        """Stop capturing. Blocks already captured are still handed out by ``read()``."""
        self._stopping = True
        with self._stream_lock:
            streams, self._streams = self._streams, []
            for stream in streams:
                try:
                    stream.abort()
                finally:
                    stream.close()
        if streams:
            log.info("capture stopped: %d frames, %d overflow(s)", self.frames_captured, self.overflows)

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        """Next block, a 0-frame block on timeout, None after stop(); see the module docstring.

        Call from one consumer thread (the recorder thread).
        """
        if not self._started:
            raise RuntimeError("DeviceSource.read() before start()")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            block = self._next_block(flush=self._stopping or self._lost is not None)
            if block is not None:
                return block
            if self._stopping:
                if all(c.queue.empty() for c in self._captures):
                    return None
            else:
                self._check_alive()
            wait = _POLL_SECONDS
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return AudioBlock(self._emitted, np.zeros((0, self.channels), dtype=np.float32))
                wait = min(wait, remaining)
            # Wait on the side that is short of audio; pick up whatever the other side has.
            short = min(self._captures, key=lambda c: c.pending.frames)
            short.pull(wait)
            for capture in self._captures:
                if capture is not short:
                    capture.pull(0)

    def _next_block(self, flush: bool = False) -> AudioBlock | None:
        """Assemble the next block from pending audio, or None if there is not enough yet."""
        agent = self._captures[0]
        if not self.dual:
            if agent.pending.frames == 0:
                return None
            data = agent.pending.pop_part()
        else:
            caller = self._captures[1]
            skew = agent.pending.frames - caller.pending.frames
            if skew > self._max_skew or (flush and skew > 0):
                # The caller device lags (stalled or slower clock): pad it so the agent's audio
                # keeps flowing on the agent's timeline.
                caller.pending.push(np.zeros((skew, 1), dtype=np.float32))
                self.caller_padded_frames += skew
            elif -skew > self._max_skew or (flush and skew < 0):
                caller.pending.drop(-skew)
                self.caller_trimmed_frames += -skew
            n = min(agent.pending.frames, caller.pending.frames, self.block_frames)
            if n == 0:
                return None
            data = np.empty((n, 2), dtype=np.float32)
            data[:, 0] = agent.pending.take(n)[:, 0]
            data[:, 1] = caller.pending.take(n)[:, 0]
        block = AudioBlock(self._emitted, data)
        self._emitted += data.shape[0]
        return block

    def _check_alive(self) -> None:
        if self._lost is not None:
            if all(c.idle() for c in self._captures):
                raise self._lost
            return
        now = time.monotonic()
        with self._stream_lock:
            if self._stopping:
                return
            for stream, capture in zip(self._streams, self._captures):
                reason = None
                if capture.finished or not stream.active:
                    reason = "the audio stream stopped"
                elif capture.frames != capture.seen_frames:
                    capture.seen_frames = capture.frames
                    capture.seen_at = now
                else:
                    limit = self.stall_timeout if capture.frames else self.start_timeout
                    if now - capture.seen_at > limit:
                        reason = f"no audio arrived for {now - capture.seen_at:.1f} s"
                if reason is not None:
                    self._lost = DeviceLostError(
                        f"audio input device {capture.label!r} was lost ({reason}; unplugged, or "
                        "the audio service stopped?): recording cannot continue"
                    )
                    log.warning("%s", self._lost)
                    break
        if self._lost is not None and all(c.idle() for c in self._captures):
            raise self._lost


# --------------------------------------------------------------------------- factory


def open_source(
    spec: str | Path,
    *,
    sample_rate: int | None = None,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    realtime: bool = False,
    agent_device: str | int | None = None,
    caller_device: str | int | None = None,
    channels: int = 2,
) -> AudioSource:
    """``"device"`` gives a DeviceSource (devices and ``channels`` from the arguments); any other
    spec is a file path and gives a FileSource (its channels come from the file; ``sample_rate``,
    if given, resamples it). Not started. Name a file called ``device`` as ``./device``.
    """
    if isinstance(spec, str) and spec == "device":
        return DeviceSource(
            agent_device,
            caller_device,
            channels,
            sample_rate or DEFAULT_SAMPLE_RATE,
            block_frames,
        )
    return FileSource(spec, block_frames, realtime=realtime, sample_rate=sample_rate)
