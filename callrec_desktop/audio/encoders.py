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

from dataclasses import dataclass
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

    def write(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        packed = np.ascontiguousarray(frames, dtype=np.float32).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=self._layout)
        frame.sample_rate = self._rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()


class FlacEncoder:
    """FLAC, 16-bit, through libsndfile."""

    def __init__(self, out: BinaryIO, settings: CodecSettings) -> None:
        self._file = sf.SoundFile(
            out, "w", samplerate=settings.sample_rate, channels=settings.channels,
            format="FLAC", subtype="PCM_16",
        )

    def write(self, frames: np.ndarray) -> None:
        if len(frames):
            self._file.write(frames)

    def close(self) -> None:
        self._file.close()


def make_encoder(out: BinaryIO, settings: CodecSettings) -> ChunkEncoder:
    if settings.codec == "opus":
        return OpusEncoder(out, settings)
    if settings.codec == "flac":
        return FlacEncoder(out, settings)
    raise ValueError(f"unknown codec {settings.codec!r} (expected opus or flac)")
