"""Helpers to run the real pipeline (recorder → spool → uploader → folder store) in tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callrec_desktop.archive import decode_call, load_manifest
from callrec_desktop.audio.encoders import CodecSettings
from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.recorder import Identity, Recorder, RecordingSettings
from callrec_desktop.spool import Spool
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.uploader import Uploader

RATE = 16000
IDENTITY = Identity(agent="agent007", workstation="ws-test", app_version="test")


def settings(codec: str = "flac", chunk_seconds: float = 2.0, lookbehind_seconds: float = 0.5,
             channels: int = 2, rate: int = RATE) -> RecordingSettings:
    return RecordingSettings(
        codec=CodecSettings(codec=codec, sample_rate=rate, channels=channels),
        chunk_frames=round(chunk_seconds * rate),
        lookbehind_frames=round(lookbehind_seconds * rate),
    )


def two_tones(seconds: float, left_hz: float = 440.0, right_hz: float = 1250.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * left_hz * t), 0.3 * np.sin(2 * np.pi * right_hz * t)], axis=1).astype(np.float32)


def band_db(x: np.ndarray, freq: float, rate: int = RATE) -> float:
    """Energy (dB) within ±20 Hz of ``freq``."""
    if len(x) == 0:
        return -300.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(10 * np.log10(spec[(f > freq - 20) & (f < freq + 20)].sum() + 1e-30))


@dataclass
class Pipeline:
    recorder: Recorder
    spool: Spool
    store: FolderStore
    uploader: Uploader


def pipeline(tmp_path: Path, audio: np.ndarray, rec_settings: RecordingSettings, block_frames: int = 1600,
             source=None) -> Pipeline:
    spool = Spool(tmp_path / "spool")
    (tmp_path / "store").mkdir(exist_ok=True)
    store = FolderStore(tmp_path / "store")
    src = source or SyntheticSource(audio, sample_rate=rec_settings.codec.sample_rate, block_frames=block_frames)
    uploader = Uploader(spool, store)
    rec = Recorder(src, spool, rec_settings, IDENTITY, listeners=[lambda e: uploader.wake()])
    return Pipeline(rec, spool, store, uploader)


def finish(p: Pipeline) -> list:
    """Run the recorder to the end, upload everything, return the stored manifests."""
    results = p.recorder.run()
    assert p.uploader.drain(30), p.uploader.status()
    assert not p.spool.call_ids(), "spool not empty after upload"
    return [load_manifest(p.store, m.call_id) for m in results.manifests]


def decoded(p: Pipeline, manifest) -> np.ndarray:
    return decode_call(p.store, manifest)


def record_calls(spool_dir: Path, store, when, calls: list[dict], agent: str = "agent007",
                 uploaded_at=None) -> list:
    """Record ``calls`` one after another through the real pipeline, starting at ``when``, and
    upload them at ``uploaded_at`` (default: ``when``, as a PC that is online does); returns
    the stored manifests.

    Each call: ``line`` (number, department), optional ``caller``, ``seconds``, optional
    ``payment`` (start, end) and ``transfer`` (department), in seconds into the call."""
    from callrec_desktop.audio.sources import SyntheticSource

    gap = 0.25
    total = sum(c["seconds"] + gap for c in calls) + 0.5
    spool = Spool(spool_dir)
    uploader = Uploader(spool, store, utc_now=lambda: uploaded_at or when)
    rec = Recorder(SyntheticSource(two_tones(total), sample_rate=RATE, block_frames=1600), spool,
                   settings(chunk_seconds=2.0, lookbehind_seconds=0.25), Identity(agent, "ws-" + agent, "test"),
                   clock=lambda: when)
    t = 0.0
    for c in calls:
        f = lambda s: round((t + s) * RATE)  # noqa: E731
        rec.start_call(*c["line"], caller=c.get("caller"), at_frame=f(0))
        if "payment" in c:
            rec.start_payment(at_frame=f(c["payment"][0]))
            rec.end_payment(at_frame=f(c["payment"][1]))
        if "transfer" in c:
            rec.transfer(c["transfer"], at_frame=f(c["seconds"]))
        else:
            rec.end_call(at_frame=f(c["seconds"]))
        t += c["seconds"] + gap
    results = rec.run()
    assert uploader.drain(30), uploader.status()
    return [load_manifest(store, m.call_id) for m in results.manifests]


def record_interrupted(spool_dir: Path, store, when, line: tuple[str, str], seconds: float = 3.0):
    """A call whose recorder died (FLAC chunks sealed, no end): the spool's real recovery ends
    it as ``interrupted``; then it is uploaded. Returns the stored manifest."""
    import dataclasses

    from callrec_desktop.audio.chunk_writer import ChunkWriter
    from callrec_desktop.core.ids import new_call_id
    from callrec_desktop.core.manifest import AudioFormat, Manifest

    spool = Spool(spool_dir)
    m = Manifest(call_id=new_call_id(when), status="recording", line_number=line[0], department=line[1],
                 direction="inbound", caller="07700 900999", external_id=None, agent="agent042",
                 workstation="ws-agent042", started_at=when, ended_at=None, frames=0,
                 audio=AudioFormat("flac", RATE, 2, ("agent", "caller"), None), app_version="test")
    call = spool.create_call(m)
    writer = ChunkWriter(call, CodecSettings("flac", sample_rate=RATE, channels=2), RATE)
    writer.write(0, two_tones(seconds))
    call.write_manifest(dataclasses.replace(m, chunks=tuple(writer.sealed), frames=round(seconds * RATE)))
    call.release()  # the recorder is gone
    assert spool.recover().interrupted_calls == (m.call_id,)
    assert Uploader(spool, store, utc_now=lambda: when).drain(30)
    return load_manifest(store, m.call_id)
