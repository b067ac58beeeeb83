"""Helpers for the trigger tests: a real Desk over synthetic audio (recorder, spool, uploader,
folder store), with a source held at frame 0 until the test has started its call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from callrec_desktop.archive import ArchiveError, load_manifest
from callrec_desktop.audio.sources import AudioBlock, SyntheticSource
from callrec_desktop.config import load_lines
from callrec_desktop.desk import Desk, DeskStatus
from callrec_desktop.spool import Spool
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.uploader import Uploader
from tests.support.recording import IDENTITY, RATE, settings

LINES_FILE = Path(__file__).resolve().parents[3] / "resources" / "lines.toml"


class GatedSource:
    """Wraps a SyntheticSource: hands out no audio until ``go`` is set (so a call can be
    started at capture frame 0 through the desk, which stamps at the current frame), and sets
    ``ended`` when the audio has run out."""

    def __init__(self, inner: SyntheticSource) -> None:
        self.inner = inner
        self.go = threading.Event()
        self.ended = threading.Event()

    def __getattr__(self, name: str):  # noqa: ANN204 - delegates everything else
        return getattr(self.inner, name)

    def read(self, timeout: float | None = None) -> AudioBlock | None:
        if not self.go.wait(timeout):
            return AudioBlock(self.inner.frames_captured, np.zeros((0, self.inner.channels), dtype=np.float32))
        block = self.inner.read(timeout)
        if block is None:
            self.ended.set()
        return block


@dataclass
class DeskRig:
    desk: Desk
    source: GatedSource
    store: FolderStore
    statuses: list[DeskStatus]
    observers: list[Callable[[AudioBlock], None]] = field(default_factory=list)

    def wait_complete(self, call_id: str, timeout: float = 30.0):
        """The stored manifest once the call is finished and uploaded."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = load_manifest(self.store, call_id)
                if m.status == "complete":
                    return m
            except ArchiveError:
                pass
            assert time.monotonic() < deadline, f"call {call_id} not complete in the store after {timeout} s"
            time.sleep(0.02)


def desk_rig(tmp_path: Path, audio: np.ndarray, *, lookbehind_seconds: float = 2.0,
             block_frames: int = 320) -> DeskRig:
    """A started Desk over ``audio`` (not realtime: frames are what matter). Block observers
    appended to ``rig.observers`` run on the recorder thread (the Desk takes its observer list
    at construction, before the trigger that needs the desk exists, hence the forwarding)."""
    spool = Spool(tmp_path / "spool")
    (tmp_path / "store").mkdir(exist_ok=True)
    store = FolderStore(tmp_path / "store")
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    source = GatedSource(SyntheticSource(audio, sample_rate=RATE, block_frames=block_frames))
    observers: list[Callable[[AudioBlock], None]] = []

    def forward(block: AudioBlock) -> None:
        for observe in observers:
            observe(block)

    desk = Desk(
        lines=load_lines(LINES_FILE), spool=spool, uploader=Uploader(spool, store),
        settings=settings("flac", chunk_seconds=2.0, lookbehind_seconds=lookbehind_seconds, channels=channels),
        identity=IDENTITY, source_factory=lambda: source, block_observers=[forward],
    )
    statuses: list[DeskStatus] = []
    desk.add_listener(statuses.append)
    desk.start()
    return DeskRig(desk, source, store, statuses, observers)
