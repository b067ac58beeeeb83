"""A child process for the crash test: records one synthetic call IN REAL TIME into a spool,
uploading into a folder store as it goes (as ``callrec record`` does), until it is killed.

    python -m tests.support.crashchild SPOOL_DIR SEED [STORE_DIR]

Run with the project root as the working directory. The scenario (codec, the payment window)
follows from SEED, so the test that kills the child knows what it was recording. Agent left
440 Hz, caller right 1250 Hz; inside the payment window both channels carry a 2750 Hz tone
("card digits") that must never reach a chunk.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16000
CALL_SECONDS = 4.5  # longer than the latest kill (3 s after the call folder appears + start-up)
CHUNK_SECONDS = 1.0
LOOKBEHIND_SECONDS = 0.3
BLOCK_FRAMES = 320  # 20 ms, as from a capture device
AGENT_HZ, CALLER_HZ, PAYMENT_HZ = 440.0, 1250.0, 2750.0


@dataclass(frozen=True)
class Scenario:
    seed: int
    codec: str
    payment_start: int  # call frames (the call starts at capture frame 0)
    payment_end: int


def scenario(seed: int) -> Scenario:
    rng = random.Random(f"crashchild-{seed}")
    start = rng.uniform(0.7, 2.2)
    return Scenario(seed, "opus" if seed % 2 == 0 else "flac",
                    round(start * RATE), round((start + rng.uniform(0.3, 1.0)) * RATE))


def call_audio(s: Scenario) -> np.ndarray:
    t = np.arange(round(CALL_SECONDS * RATE)) / RATE
    left = 0.3 * np.sin(2 * np.pi * AGENT_HZ * t)
    right = 0.3 * np.sin(2 * np.pi * CALLER_HZ * t)
    pay = slice(s.payment_start, s.payment_end)
    left[pay] = right[pay] = 0.3 * np.sin(2 * np.pi * PAYMENT_HZ * t[pay])
    return np.stack([left, right], axis=1).astype(np.float32)


def main(argv: list[str]) -> int:
    from callrec_desktop.audio.encoders import CodecSettings
    from callrec_desktop.audio.sources import SyntheticSource
    from callrec_desktop.core.timeline import EventSource
    from callrec_desktop.recorder import Identity, Recorder, RecordingSettings
    from callrec_desktop.spool import Spool
    from callrec_desktop.storage.folder import FolderStore
    from callrec_desktop.uploader import UploadSettings, Uploader

    spool = Spool(Path(argv[0]))
    s = scenario(int(argv[1]))
    uploader = None
    if len(argv) > 2:
        uploader = Uploader(spool, FolderStore(Path(argv[2])),
                            UploadSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.2, idle_poll_seconds=0.05))
    settings = RecordingSettings(CodecSettings(s.codec, sample_rate=RATE, channels=2),
                                 round(CHUNK_SECONDS * RATE), round(LOOKBEHIND_SECONDS * RATE))
    source = SyntheticSource(call_audio(s), sample_rate=RATE, block_frames=BLOCK_FRAMES, realtime=True)
    listeners = [lambda e: uploader.wake()] if uploader else []
    rec = Recorder(source, spool, settings, Identity("agent007", "ws-crash", "test"), listeners=listeners)
    rec.start_call("01443 425002", "Council Tax", caller="07700900123", source=EventSource.SCRIPT, at_frame=0)
    rec.start_payment(source=EventSource.SCRIPT, at_frame=s.payment_start)
    rec.end_payment(source=EventSource.SCRIPT, at_frame=s.payment_end)
    if uploader:
        uploader.start()
    print("recording", flush=True)
    results = rec.run()
    if uploader:
        uploader.stop(timeout=5)
    print("finished", len(results.manifests), flush=True)
    return 1 if results.errors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
