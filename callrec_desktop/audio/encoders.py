"""Chunk encoders: turn float32 frames into one self-contained audio file.

Opus (default) goes through libopus via PyAV. For stereo it uses channel mapping family 255
with two *uncoupled* streams: the agent and the caller are encoded as two independent mono
streams in one Ogg Opus file. Opus's coupled stereo at speech bitrates folds the channels
together (about 0 dB separation measured), which would make "agent only / caller only"
listening useless; two mono streams at 10 kbit/s each keep them about 57 dB apart.

FLAC (lossless option) goes through libsndfile via soundfile.

Encoders write to a file object the caller owns; the caller makes the file durable.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Protocol

import av
import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class CodecSettings:
    codec: str = "opus"  # "opus" | "flac"
    sample_rate: int = 16000
    channels: int = 2
    opus_bitrate_per_channel: int = 10_000
    opus_complexity: int = 5

    @property
    def bitrate(self) -> int | None:
        return self.opus_bitrate_per_channel * self.channels if self.codec == "opus" else None


class ChunkEncoder(Protocol):
    def write(self, frames: np.ndarray) -> None:
        """Encode float32 frames shaped (n, channels)."""

    def close(self) -> None:
        """Flush the encoder and write the container's trailer. The file object stays open."""


class OpusEncoder:
    """Ogg Opus through libopus (PyAV). Pages are flushed to the file about every 200 ms, so a
    killed process leaves a ``.part`` whose audio reads back up to its last page."""

    PAGE_DURATION_US = 200_000

    def __init__(self, out: BinaryIO, settings: CodecSettings) -> None:
        self._layout = "stereo" if settings.channels == 2 else "mono"
        self._rate = settings.sample_rate
        self._container = av.open(
            out, "w", format="ogg",
            options={"page_duration": str(self.PAGE_DURATION_US), "flush_packets": "1"},
        )
        stream = self._container.add_stream("libopus", rate=settings.sample_rate, layout=self._layout)
        stream.bit_rate = settings.bitrate
        options = {"compression_level": str(settings.opus_complexity), "application": "voip"}
        if settings.channels == 2:
            options["mapping_family"] = "255"  # two uncoupled mono streams: see module docstring
        stream.options = options
        self._stream = stream
        self._time_base = Fraction(1, settings.sample_rate)
        self._pts = 0  # frames written so far

    def write(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        packed = np.ascontiguousarray(frames, dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=self._layout)
        frame.sample_rate = self._rate
        # Stamp every frame: without a pts, libopus's packets carry none either, the Ogg muxer
        # then counts the pre-skip twice, and every granule position is 312 samples (48 kHz)
        # too high. Readers that infer the start from the first page cope, except when the
        # whole chunk fits on one page (< 200 ms: a chunk sealed by a pause or the call's end):
        # libsndfile then refuses the file as malformed or returns 104 frames too many.
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += len(frames)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


class _WriteErrorTrap:
    """The file object as libsndfile's virtual I/O sees it, keeping the first write error.

    soundfile's I/O callbacks cannot raise (cffi only prints "Exception ignored"), so a write
    that fails (disk full) would reach the caller as a bare ``AssertionError`` from
    soundfile, or not at all (``python -O``, or an error while the header is rewritten on
    close). Here the error is kept, libsndfile is told nothing was written, and the encoder
    raises the real ``OSError``, which the recorder handles.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.error: OSError | None = None

    def _keep(self, exc: Exception) -> None:
        # ValueError: the file was closed under libsndfile (the chunk writer's abort path).
        if self.error is None:
            self.error = exc if isinstance(exc, OSError) else OSError(errno.EBADF, str(exc))

    def write(self, data) -> int:
        if self.error is not None:
            return 0
        try:
            written = self._raw.write(data)
        except (OSError, ValueError) as exc:
            self._keep(exc)
            return 0
        return len(data) if written is None else written

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._raw.seek(offset, whence)
        except (OSError, ValueError) as exc:
            self._keep(exc)
            return -1

    def tell(self) -> int:
        try:
            return self._raw.tell()
        except (OSError, ValueError) as exc:
            self._keep(exc)
            return -1

    def __getattr__(self, name: str):
        return getattr(self._raw, name)


class FlacEncoder:
    """FLAC, 16-bit, through libsndfile."""

    def __init__(self, out: BinaryIO, settings: CodecSettings) -> None:
        self._out = _WriteErrorTrap(out)
        self._file = sf.SoundFile(
            self._out, "w", samplerate=settings.sample_rate, channels=settings.channels,
            format="FLAC", subtype="PCM_16",
        )
        self._check()

    def write(self, frames: np.ndarray) -> None:
        if len(frames):
            try:
                self._file.write(frames)
            except AssertionError:  # soundfile's own check that every frame was written
                self._check()
                raise OSError(errno.EIO, "libsndfile wrote fewer frames than asked") from None
            self._check()

    def close(self) -> None:
        self._file.close()
        self._check()

    def _check(self) -> None:
        if self._out.error is not None:
            raise self._out.error


def make_encoder(out: BinaryIO, settings: CodecSettings) -> ChunkEncoder:
    if settings.codec == "opus":
        return OpusEncoder(out, settings)
    if settings.codec == "flac":
        return FlacEncoder(out, settings)
    raise ValueError(f"unknown codec {settings.codec!r} (expected opus or flac)")
