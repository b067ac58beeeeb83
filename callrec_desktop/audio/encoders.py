"""Chunk encoders: turn float32 frames into one self-contained audio file.

Opus (default) goes through libopus via PyAV. For stereo the agent and the caller are encoded
as two *uncoupled* mono streams in one Ogg Opus file. Opus's coupled stereo at speech bitrates
folds the channels together (about 0 dB separation measured), which would make "agent only /
caller only" listening useless; two mono streams at 10 kbit/s each keep them apart (a 440 Hz agent tone and
a 1250 Hz caller tone: 46 dB and 65 dB in the worst second, the same in libsndfile, ffmpeg,
opusdec and GStreamer).

The file says so with Ogg Opus channel mapping family 1 (RFC 7845 section 5.1.1.2: 2 channels,
2 streams, 0 coupled, mapping [0, 1], Vorbis order: left then right). libopus's encoder gives
two uncoupled streams only when asked for family 255, which libopusfile (opusdec, and the
players built on it), VLC 3 and others refuse to open; the packets are the same either way, so
the encoder is opened for family 255 and the header it hands to the Ogg muxer is rewritten to
say family 1 before anything is written. Files written before that change (family 255) still
read back with libsndfile, ffmpeg and GStreamer (tests/data/family255).

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


OPUS_HEAD_MAGIC = b"OpusHead"


def family1_head(head: bytes) -> bytes:
    """The OpusHead of a stereo stream of two uncoupled mono streams, rewritten from channel
    mapping family 255 to family 1 (same streams, same mapping [0, 1]).

    Only that exact layout is rewritten: family 1 with 2 channels means left then right, and
    [0, 1] with 0 coupled puts stream 0 (the agent) left and stream 1 (the caller) right. Any
    other header means libopus did not do what this module relies on: ``ValueError`` naming
    what it found, rather than a file that mislabels its channels.
    """
    # OpusHead: magic (8), version, channels, pre-skip (2), rate (4), gain (2), family,
    # streams, coupled, then one mapping byte per channel: 23 bytes for 2 channels.
    if len(head) != 23 or not head.startswith(OPUS_HEAD_MAGIC):
        raise ValueError(f"libopus gave an unexpected Opus header ({len(head)} bytes: {head[:32].hex()}), "
                         "expected a 23-byte OpusHead for 2 channels")
    channels, family, streams, coupled, mapping = head[9], head[18], head[19], head[20], list(head[21:23])
    if (channels, family, streams, coupled, mapping) != (2, 255, 2, 0, [0, 1]):
        raise ValueError(f"libopus gave channels={channels} family={family} streams={streams} "
                         f"coupled={coupled} mapping={mapping}; expected 2 channels in 2 uncoupled "
                         "streams (family 255, mapping [0, 1])")
    out = bytearray(head)
    out[18] = 1
    return bytes(out)


class OpusEncoder:
    """Ogg Opus through libopus (PyAV). Pages are flushed to the file about every 200 ms, so a
    killed process leaves a ``.part`` whose audio reads back up to its last page. Stereo is
    two uncoupled streams under channel mapping family 1 (module docstring). Runs on the
    caller's thread (the recorder thread for chunks, a worker for exports)."""

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
        if settings.channels == 2:
            # Open the encoder now (the muxer would open it on the first packet) so its header
            # can say family 1 before the muxer copies it into the file's first page.
            try:
                stream.codec_context.open()
                stream.codec_context.extradata = family1_head(stream.codec_context.extradata or b"")
            except BaseException:
                self._container.close()  # nothing written yet: no header, no trailer
                raise
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
        # A full disk first gives a short write, with no error: libsndfile does not check the
        # count, so the chunk would be sealed torn. Write the rest: the next write raises ENOSPC.
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                written = self._raw.write(view[done:])
                if written is None:  # non-blocking raw file: never for a spool file
                    raise OSError(errno.EAGAIN, "the file took nothing")
                if written == 0:
                    raise OSError(errno.ENOSPC, "No space left on device (a write took no byte)")
                done += written
        except (OSError, ValueError) as exc:
            self._keep(exc)
            return done
        return done

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
        try:
            self._file = sf.SoundFile(
                self._out, "w", samplerate=settings.sample_rate, channels=settings.channels,
                format="FLAC", subtype="PCM_16",
            )
        except (sf.LibsndfileError, RuntimeError):
            self._check()  # a write error (disk full) said as itself, not as libsndfile's guess
            raise
        self._check()

    def write(self, frames: np.ndarray) -> None:
        if len(frames):
            try:
                self._file.write(frames)
            except AssertionError:  # soundfile's own check that every frame was written
                self._check()
                raise OSError(errno.EIO, "libsndfile wrote fewer frames than asked") from None
            except (sf.LibsndfileError, RuntimeError):
                self._check()
                raise
            self._check()

    def close(self) -> None:
        try:
            self._file.close()
        except (sf.LibsndfileError, RuntimeError):
            self._check()
            raise
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
