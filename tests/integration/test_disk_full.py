"""A call recorded onto a spool that really fills up: a small tmpfs mounted for the test.

The recorder writes a stereo call (noise, so chunks do not compress away) into a spool on a
tmpfs of a few hundred KiB, with the uploader not yet running, as when the central store is
down: the disk fills mid-chunk. Then:

- the call ends at once as ``disk_full`` (the recorder's status says so before the run ends),
  and the error says the disk is full;
- its final manifest does not fit either (the disk is exactly full): the recorder keeps it
  and holds the call folder's lock, so the spool still shows the last provisional manifest;
- the uploader starts and moves sealed chunks to the store, which frees space: the recorder's
  next retry (once a second) writes the final manifest, listing exactly the sealed chunk
  files that exist (never the ``.part`` the failure left), ending at the last one's end;
- after upload, ``verify_call`` and ``callrec verify`` find no fault and no coverage gap,
  and FLAC chunks hold exactly the source's frames at their place.

Mounting needs root (as in the sandbox and CI). Where it is refused the test is skipped,
saying so; the same paths with an injected ENOSPC are in tests/unit/test_recorder.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.archive import coverage_gaps, load_manifest, verify_call
from callrec_desktop.audio.sources import AudioBlock, SyntheticSource
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.core.timeline import CallState
from callrec_desktop.recorder import Recorder
from callrec_desktop.spool import Spool, parse_chunk_name
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.layout import chunk_key
from callrec_desktop.uploader import UploadSettings, Uploader
from tests.support.recording import IDENTITY, RATE, settings

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # bound on every wait for the recorder (a condition, never a sleep)


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A real tmpfs of ``size`` at ``where``, or None if this process may not mount one."""
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=10)


class HeldSource:
    """A synthetic source that, once all its audio is handed out, keeps returning empty blocks
    (the read contract on a timeout) until ``release`` is set: the recorder keeps running, as
    it does all shift on a live device, without more audio to gate."""

    def __init__(self, inner: SyntheticSource, frames: int) -> None:
        self.inner = inner
        self.frames = frames
        self.held = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, timeout=None):
        if self.inner.frames_captured >= self.frames and not self.release.is_set():
            self.held.set()
            self.release.wait(0.05 if timeout is None else min(timeout, 0.05))
            return AudioBlock(self.inner.frames_captured, np.zeros((0, self.inner.channels), np.float32))
        return self.inner.read(timeout)


def q16(x: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(x * 32768), -32768, 32767) / 32768).astype(np.float32)


@pytest.mark.parametrize("codec, size, seconds", [("flac", "256k", 12), ("opus", "64k", 30)])
def test_a_full_spool_disk_ends_the_call_at_once_and_claims_only_the_chunks_on_disk(tmp_path, codec, size, seconds):
    with tmpfs(tmp_path / "spool", size) as spool_root:
        if spool_root is None:
            pytest.skip("mounting a tmpfs is not permitted here; the injected-ENOSPC cases are in "
                        "tests/unit/test_recorder.py")
        audio = (0.3 * np.random.default_rng(7).standard_normal((seconds * RATE, 2))).astype(np.float32)
        source = HeldSource(SyntheticSource(audio, sample_rate=RATE, block_frames=1600), len(audio))
        spool = Spool(spool_root)
        (tmp_path / "store").mkdir()
        store = FolderStore(tmp_path / "store")
        uploader = Uploader(spool, store, UploadSettings(0.01, 0.05, 3, 0.01))
        errors, finished = [], []
        failed, done = threading.Event(), threading.Event()

        def on_event(e):  # recorder thread
            if e.kind == "error":
                errors.append(e)
                failed.set()
            elif e.kind == "call_finished":
                finished.append(e.detail)
                done.set()

        recorder = Recorder(source, spool, settings(codec, chunk_seconds=1.0), IDENTITY,
                            listeners=[on_event, lambda e: uploader.wake()])
        call_id = recorder.start_call("01443 425002", "Council Tax", at_frame=0)
        recorder.start()
        try:
            assert failed.wait(WAIT), "the disk never filled"
            [error] = errors
            assert error.call_id == call_id and "disk is full" in str(error.detail)
            status = recorder.status()
            assert (status.state, status.end_reason) == (CallState.ENDED, "disk_full")
            assert source.held.wait(WAIT)
            # the disk is exactly full: the final manifest is held in memory, the folder locked
            path = spool.call_path(call_id)
            on_disk = Manifest.from_json(spool.manifest_bytes(call_id))
            assert on_disk.status == "recording" and not done.is_set() and spool.is_locked(call_id)
            sealed = {c.seq: c for c in spool.chunks(call_id) if c.sealed}
            parts = [c for c in spool.chunks(call_id) if not c.sealed]
            assert sealed and len(parts) <= 1
            files = {seq: c.path.read_bytes() for seq, c in sealed.items()}

            uploader.start()  # moves listed chunks to the store: space comes back
            assert done.wait(WAIT), "the final manifest was never written"
            [m] = finished
            assert (m.status, m.end.reason, m.end.source, m.pauses) == ("complete", "disk_full", "system", ())
            assert [c.seq for c in m.chunks] == sorted(files)  # exactly the sealed files, never the .part
            for c in m.chunks:
                assert sealed[c.seq].first_frame == c.first_frame
                data = files[c.seq]
                assert (len(data), hashlib.sha256(data).hexdigest()) == (c.bytes, c.sha256)
            last = m.chunks[-1]
            assert m.frames == last.first_frame + last.frames < len(audio)
            assert all(p.first_frame >= m.frames for p in parts)  # the torn chunk lies after the end
        finally:
            source.release.set()
            recorder.join(WAIT)
            uploader.stop(timeout=10)
        assert not recorder.is_alive()
        assert uploader.drain(30), uploader.status()
        assert spool.call_ids() == []
        for q in (spool.quarantine_dir / call_id).glob("*.part"):  # the torn chunk: kept aside, never listed
            assert parse_chunk_name(q).first_frame >= m.frames

    stored = load_manifest(store, call_id)
    assert stored == m
    assert coverage_gaps(stored) == [] and verify_call(store, stored) == []
    for c in stored.chunks:
        back, rate = sf.read(io.BytesIO(store.get(chunk_key(call_id, c.name))), dtype="float32", always_2d=True)
        assert rate == RATE and len(back) == c.frames
        if codec == "flac":  # lossless: exactly the source's frames at that place
            np.testing.assert_array_equal(back, q16(audio[c.first_frame : c.first_frame + c.frames]))
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "cli-spool"}"\nlog_dir = "{tmp_path / "log"}"\n')
    env = dict(os.environ, CALLREC_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop", "verify", "--store", str(tmp_path / "store")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "1 recording(s)" in proc.stdout and "no faults" in proc.stdout, proc.stdout


def test_the_desk_says_the_call_ended_because_the_disk_is_full(tmp_path):
    """The handler's desk over a spool on a real 128 KiB tmpfs, with a central store that is
    itself full (a 4 KiB tmpfs, filled first), so nothing leaves the spool: the call ends as
    ``disk_full`` from the recorder's own state, the DISK_FULL fault says the call ended
    because the PC's disk is full, and the store's fault says the store is full. The final
    manifest never fits; at shutdown the recorder says so and the next start's recovery ends
    the call at its last chunk's end, as ``interrupted``."""
    from callrec_desktop.config import Line, Lines
    from callrec_desktop.desk import Desk
    from callrec_desktop.status import Fault

    with tmpfs(tmp_path / "spool", "128k") as spool_root, tmpfs(tmp_path / "store", "4k") as store_root:
        if spool_root is None or store_root is None:
            pytest.skip("mounting a tmpfs is not permitted here; the injected-ENOSPC cases are in "
                        "tests/unit/test_recorder.py")
        with contextlib.suppress(OSError), open(store_root / "ballast", "wb") as f:
            f.write(b"\0" * 8192)  # fills the store's tmpfs
        rng = np.random.default_rng(3)

        def noise_blocks():
            while True:
                yield (0.3 * rng.standard_normal((320, 2))).astype(np.float32)

        spool = Spool(spool_root)
        store = FolderStore(store_root)
        statuses = threading.Condition()
        desk = Desk(lines=Lines(lines=(Line("council_tax", "01443 425002", "Council Tax"),), transfer_departments=()),
                    spool=spool, uploader=Uploader(spool, store, UploadSettings(0.01, 0.05, 3, 0.01)),
                    settings=settings("flac", chunk_seconds=0.5, lookbehind_seconds=0.25), identity=IDENTITY,
                    source_factory=lambda: SyntheticSource(noise_blocks(), sample_rate=RATE, block_frames=320,
                                                           realtime=True, channels=2))

        def notify(_status):
            with statuses:
                statuses.notify_all()

        desk.add_listener(notify)
        try:
            desk.start()
            call_id = desk.start_call("01443 425002")
            with statuses:
                assert statuses.wait_for(lambda: Fault.DISK_FULL in desk.status().faults, WAIT), desk.status()
            st = desk.status()
            assert (st.state, st.last_end_reason, st.call_id) == (CallState.ENDED, "disk_full", call_id)
            text = st.faults[Fault.DISK_FULL]
            assert text.startswith(f"Call {call_id} ended because this PC's disk is full"), text
            assert "No space left on device" in text
        finally:
            assert desk.shutdown(timeout=10, upload_timeout=1) is not None
        assert not spool.is_locked(call_id)
        # the next start, the disk still full: recovery cannot repair the torn chunk nor write
        # the manifest, and says so without failing; once IT frees space it finishes the call
        report = spool.recover()
        assert (report.interrupted_calls, report.deferred) == ((), (call_id,))
        assert Manifest.from_json(spool.manifest_bytes(call_id)).status == "recording"
        subprocess.run(["mount", "-o", "remount,size=1m", str(spool_root)], check=True, capture_output=True, timeout=10)
        assert spool.recover().interrupted_calls == (call_id,)
        m = Manifest.from_json(spool.manifest_bytes(call_id))
        last = m.chunks[-1]
        assert m.end.reason == "interrupted" and m.frames == last.first_frame + last.frames
        assert coverage_gaps(m) == []
        subprocess.run(["mount", "-o", "remount,size=2m", str(store_root)], check=True, capture_output=True, timeout=10)
        assert Uploader(spool, store, UploadSettings(0.01, 0.05, 3, 0.01)).drain(30)
        assert load_manifest(store, call_id) == m and verify_call(store, m) == []
