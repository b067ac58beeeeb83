"""One call's chunk writer: frames in, sealed chunk files out.

A chunk is sealed every ``chunk_frames`` frames and whenever the recorder asks (a pause, the
call's end): encoder closed, file flushed and fsynced, ``.part`` renamed, directory fsynced,
then its size and SHA-256 are known and it is reported. Runs on the recorder thread.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from callrec_desktop.audio.encoders import ChunkEncoder, CodecSettings, make_encoder
from callrec_desktop.core.manifest import ChunkEntry, chunk_file_name
from callrec_desktop.durable import sha256_file
from callrec_desktop.spool import CallSpool


@dataclass
class _OpenChunk:
    seq: int
    first_frame: int
    frames: int
    part: object  # Path
    file: object  # raw file object
    encoder: ChunkEncoder


class ChunkWriter:
    def __init__(self, spool: CallSpool, settings: CodecSettings, chunk_frames: int) -> None:
        if chunk_frames <= 0:
            raise ValueError("chunk_frames must be positive")
        self._spool = spool
        self._settings = settings
        self._chunk_frames = chunk_frames
        self._open: _OpenChunk | None = None
        self._next_seq = 1
        self.sealed: list[ChunkEntry] = []

    @property
    def has_open_chunk(self) -> bool:
        return self._open is not None

    def write(self, call_frame: int, data: np.ndarray) -> list[ChunkEntry]:
        """Write frames that start at ``call_frame`` on the call's timeline. Returns chunks sealed
        on the way (a chunk fills up), in order."""
        sealed = []
        pos = 0
        n = len(data)
        while pos < n:
            c = self._open
            if c is not None and c.first_frame + c.frames != call_frame + pos:
                sealed.append(self.seal())  # a gap on the timeline: never bridge it inside a chunk
                c = None
            if c is None:
                c = self._start(call_frame + pos)
            take = min(n - pos, self._chunk_frames - c.frames)
            c.encoder.write(data[pos : pos + take])
            c.frames += take
            pos += take
            if c.frames >= self._chunk_frames:
                sealed.append(self.seal())
        return [s for s in sealed if s is not None]

    def seal(self) -> ChunkEntry | None:
        """Close the open chunk durably and return its entry (None if nothing is open)."""
        c = self._open
        if c is None:
            return None
        self._open = None
        try:
            c.encoder.close()
            c.file.flush()
            os.fsync(c.file.fileno())
        except BaseException:
            c.file.close()  # the .part stays for recovery; the descriptor must not leak
            raise
        c.file.close()
        final = self._spool.seal(c.part)
        size, sha = sha256_file(final)
        entry = ChunkEntry(c.seq, c.first_frame, c.frames, size, sha, chunk_file_name(c.seq, self._settings.codec))
        self.sealed.append(entry)
        return entry

    def abort(self) -> None:
        """Drop the open chunk's encoder without sealing (error paths); the .part stays for recovery."""
        if self._open is not None:
            try:
                self._open.file.close()
            finally:
                self._open = None

    def _start(self, first_frame: int) -> _OpenChunk:
        part, f = self._spool.open_part(self._next_seq, first_frame, self._settings.codec)
        try:
            enc = make_encoder(f, self._settings)
        except BaseException:
            f.close()
            raise
        self._open = _OpenChunk(self._next_seq, first_frame, 0, part, f, enc)
        self._next_seq += 1
        return self._open
