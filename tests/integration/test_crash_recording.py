"""SIGKILL a process that is recording a call in real time, then recover and upload.

Each child (``tests/support/crashchild.py``) records one synthetic stereo call in real time
(1 s chunks, 0.3 s look-behind, a payment window carrying a 2750 Hz tone) into its own
spool, uploading into a folder store as it goes. It is killed at a seeded random moment
0.3-3 s after its call folder appeared, so kills land mid-chunk, mid-seal, mid-payment and
mid-upload. After each kill:

(i)   every sealed chunk still has the size/SHA-256 its manifest lists and decodes;
(ii)  ``Spool.recover()`` leaves a consistent spool, and nothing vanished unrepaired;
(iii) no frame of the payment window is in any chunk (by placement and by content);
(iv)  an Uploader drains it into the store, and ``verify_call`` finds no fault.
"""

from __future__ import annotations

import hashlib
import io
import random
import signal
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.archive import coverage_gaps, decode_call, load_manifest, verify_call
from callrec_desktop.audio.encoders import CodecSettings, make_encoder
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.spool import Spool, parse_chunk_name, spool_chunk_name
from callrec_desktop.storage.base import ObjectNotFoundError
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.layout import audio_prefix, chunk_key, manifest_key
from callrec_desktop.uploader import UploadSettings, Uploader
from tests.support.crashchild import AGENT_HZ, CALLER_HZ, PAYMENT_HZ, RATE, Scenario, call_audio, scenario

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KILLS = 24
PARALLEL = 4
MASTER_SEED = 20260302


def tone_amp(x: np.ndarray, hz: float) -> float:
    """Amplitude of a ``hz`` sinusoid in ``x`` (Hann-windowed projection)."""
    w = np.hanning(len(x))
    t = np.arange(len(x)) / RATE
    return float(2 * abs(np.sum(x * w * np.exp(-2j * np.pi * hz * t))) / w.sum())


def q16(x: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(x * 32768), -32768, 32767) / 32768).astype(np.float32)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ogg_audio_frames_on_complete_pages(data: bytes) -> int:
    """Frames (16 kHz) that the complete Ogg pages of a torn Opus file hold, by their granule
    positions (48 kHz, including the encoder's 312-sample pre-skip); 0 if no audio page is whole."""
    pos, pages, granule = 0, 0, None
    while pos + 27 <= len(data) and data[pos : pos + 4] == b"OggS":
        nseg = data[pos + 26]
        if pos + 27 + nseg > len(data):
            break
        size = 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
        if pos + size > len(data):
            break  # the torn last page
        pages += 1
        if pages > 2:  # after OpusHead and OpusTags
            granule = struct.unpack_from("<q", data, pos + 6)[0]
        pos += size
    return 0 if granule is None else (granule - 312) // 3


def flac_metadata_end(data: bytes) -> int:
    """Offset of the first audio frame of a FLAC file (after its metadata blocks)."""
    assert data[:4] == b"fLaC"
    pos = 4
    while True:
        last, length = data[pos] & 0x80, int.from_bytes(data[pos + 1 : pos + 4], "big")
        pos += 4 + length
        if last:
            return pos


def decode(data: bytes) -> np.ndarray:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    assert rate == RATE and audio.shape[1] == 2
    return audio


def test_the_payment_tone_is_detectable_through_the_encoder(tmp_path):
    """The detector used below would see the payment tone if it were in a chunk."""
    s = scenario(0)
    audio = call_audio(s)[s.payment_start - RATE // 2 : s.payment_end + RATE // 2]
    with open(tmp_path / "c.opus", "xb") as f:
        enc = make_encoder(f, CodecSettings("opus"))
        enc.write(audio)
        enc.close()
    out = decode((tmp_path / "c.opus").read_bytes())
    inside = out[RATE // 2 : RATE // 2 + (s.payment_end - s.payment_start)]
    assert min(tone_amp(inside[:, 0], PAYMENT_HZ), tone_amp(inside[:, 1], PAYMENT_HZ)) > 0.15
    assert tone_amp(out[: RATE // 2, 0], PAYMENT_HZ) < 0.02


class Child:
    def __init__(self, work: Path, seed: int) -> None:
        self.seed = seed
        self.spool_dir = work / f"spool-{seed}"
        self.store_dir = work / f"store-{seed}"
        self.store_dir.mkdir(parents=True)
        self.log = work / f"child-{seed}.log"
        self.scenario: Scenario = scenario(seed)

    def run_and_kill(self, delay: float) -> None:
        with open(self.log, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.crashchild", str(self.spool_dir), str(self.seed), str(self.store_dir)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            calls = self.spool_dir / "calls"
            for _ in range(1500):  # poll (bounded, 15 s) until the child has published its call
                if calls.is_dir() and any(not p.name.startswith(".") for p in calls.iterdir()):
                    break
                try:
                    proc.wait(timeout=0.01)
                    pytest.fail(f"child {self.seed} exited early: {self.log.read_text()}")
                except subprocess.TimeoutExpired:
                    pass
            else:
                pytest.fail(f"child {self.seed} never started a call: {self.log.read_text()}")
            try:  # a bounded wait that also notices a child dying on its own
                proc.wait(timeout=delay)
                pytest.fail(f"child {self.seed} finished before it was killed: {self.log.read_text()}")
            except subprocess.TimeoutExpired:
                pass
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

    def check(self) -> dict:
        s = self.scenario
        spool = Spool(self.spool_dir)
        store = FolderStore(self.store_dir)
        [call_id] = spool.call_ids()
        path = spool.call_path(call_id)

        # (i) the spool as the kill left it --------------------------------------------------
        before = Manifest.from_json(spool.manifest_bytes(call_id))  # written atomically: always whole
        assert before.status == "recording"
        listed = {c.seq: c for c in before.chunks}
        files_before = {p.name: p.read_bytes() for p in path.iterdir() if parse_chunk_name(p)}
        parts = [n for n in files_before if n.endswith(".part")]
        assert len(parts) <= 1, parts
        for c in spool.chunks(call_id):
            if not c.sealed:
                continue
            data = files_before[c.path.name]
            frames = len(decode(data))
            if c.seq in listed:
                e = listed[c.seq]
                assert (len(data), sha(data), frames, c.first_frame) == (e.bytes, e.sha256, e.frames, e.first_frame)
        for e in before.chunks:  # listed and gone from the spool: the child uploaded it
            if spool_chunk_name(e.seq, e.first_frame, s.codec) not in files_before:
                assert sha(store.get(chunk_key(call_id, e.name))) == e.sha256

        # (ii) recovery ----------------------------------------------------------------------
        report = spool.recover()
        assert report.interrupted_calls == (call_id,)
        m = Manifest.from_json(spool.manifest_bytes(call_id))
        assert m.status == "complete" and m.recovered is True
        assert (m.end.reason, m.end.source) == ("interrupted", "system")
        assert not [p.name for p in path.iterdir() if p.name.endswith((".part", ".rpart"))]
        for e in before.chunks:
            assert e in m.chunks  # what was listed stays listed, unchanged
        end = 0
        for e in m.chunks:
            assert e.first_frame >= end  # in order, never overlapping
            end = e.first_frame + e.frames
            local = path / spool_chunk_name(e.seq, e.first_frame, s.codec)
            data = local.read_bytes() if local.exists() else store.get(chunk_key(call_id, e.name))
            assert (len(data), sha(data)) == (e.bytes, e.sha256)
        assert end <= m.frames
        for name, data in files_before.items():  # nothing vanished without repair or quarantine
            if not name.endswith(".part"):
                assert (path / name).read_bytes() == data
                continue
            sealed = parse_chunk_name(path / name[: -len(".part")])
            q = spool.quarantine_dir / call_id / name
            # What reached the disk decides whether it must be repaired, and how much of it:
            # libFLAC writes whole 4096-frame blocks; Ogg pages are complete or torn.
            if s.codec == "flac":
                repairable = len(data) > flac_metadata_end(data)
            else:
                repairable = ogg_audio_frames_on_complete_pages(data) > 0
            if repairable:
                [e] = [e for e in m.chunks if e.seq == sealed.seq]
                assert e.first_frame == sealed.first_frame
                if s.codec == "flac":
                    assert e.frames > 0 and e.frames % 4096 == 0, e
                else:
                    assert e.frames == ogg_audio_frames_on_complete_pages(data), e
                assert str(path / name) in report.repaired_chunks
            else:
                assert not (path / sealed.path.name).exists()
                assert q.read_bytes() == data
                assert (q.parent / (name + ".reason.txt")).read_text().strip()
        for p in m.pauses:
            assert (p.reason, p.offset_frames) == ("payment", s.payment_start)
            if p.end_source == "system":  # killed during the payment: closed at the end, never resumed
                assert p.offset_frames + p.duration_frames == m.frames
                assert all(e.first_frame + e.frames <= s.payment_start for e in m.chunks)
            else:
                assert p.duration_frames == s.payment_end - s.payment_start
        # Nothing unrecorded is claimed: the call ends where its last surviving chunk ends, or,
        # if a pause begins right there, where that pause ends (closed by "system" at the last
        # frame gated if it died paused; where it was resumed if the chunk after it did not
        # survive). Frames gated into a chunk that did not survive are not in the call.
        chunk_end = max((e.first_frame + e.frames for e in m.chunks), default=0)
        paused_end = m.pauses[-1].offset_frames + m.pauses[-1].duration_frames if m.pauses else 0
        if paused_end > chunk_end:
            last = m.pauses[-1]
            assert (last.offset_frames, m.frames) == (chunk_end, paused_end)
            if last.end_source == "system":
                assert paused_end == max(before.frames, last.offset_frames)
        else:
            assert m.frames == chunk_end
        assert coverage_gaps(m) == []
        old_rule = max([chunk_end, before.frames] + [p.offset_frames for p in before.pauses])

        # (iii) the payment window is in no chunk ---------------------------------------------
        source = call_audio(s)
        timeline = np.zeros((m.frames, 2), dtype=np.float32)
        for e in m.chunks:
            assert e.first_frame + e.frames <= s.payment_start or e.first_frame >= s.payment_end, e
            local = path / spool_chunk_name(e.seq, e.first_frame, s.codec)
            audio = decode(local.read_bytes() if local.exists() else store.get(chunk_key(call_id, e.name)))
            assert len(audio) == e.frames
            timeline[e.first_frame : e.first_frame + e.frames] = audio
            if s.codec == "flac":  # lossless: exactly the source's frames at that place
                np.testing.assert_array_equal(audio, q16(source[e.first_frame : e.first_frame + e.frames]))
            if e.frames >= 640:
                assert tone_amp(audio[:, 0], PAYMENT_HZ) < 0.02 and tone_amp(audio[:, 1], PAYMENT_HZ) < 0.02
                assert tone_amp(audio[:, 0], AGENT_HZ) > 0.15 and tone_amp(audio[:, 1], CALLER_HZ) > 0.15
        window = timeline[s.payment_start : s.payment_end]
        assert not window.any()

        # (iv) upload and verify ----------------------------------------------------------------
        uploader = Uploader(spool, store, UploadSettings(0.01, 0.05, 3, 0.01))
        assert uploader.drain(15), uploader.status()
        assert spool.call_ids() == []
        stored = load_manifest(store, call_id)
        assert stored == m
        assert verify_call(store, stored) == []
        assert sorted(store.list(audio_prefix(call_id))) == sorted(chunk_key(call_id, e.name) for e in m.chunks)
        archived = decode_call(store, stored)
        assert not archived[s.payment_start : s.payment_end].any()
        try:
            store.get(manifest_key(call_id))
        except ObjectNotFoundError:  # pragma: no cover - a failure message, not a branch
            pytest.fail("manifest missing")
        return {"chunks": len(m.chunks), "repaired": len(report.repaired_chunks),
                "quarantined": len(report.quarantined), "in_payment": any(p.end_source == "system" for p in m.pauses),
                "tail_not_claimed": m.frames < old_rule,
                "uploaded_before_kill": sum(1 for e in before.chunks
                                            if spool_chunk_name(e.seq, e.first_frame, s.codec) not in files_before)}


def test_sigkill_mid_recording_never_loses_a_sealed_chunk_nor_keeps_payment_audio(tmp_path):
    rng = random.Random(MASTER_SEED)
    children = [Child(tmp_path, seed) for seed in range(KILLS)]
    # Uniform kill times, except that every third child is aimed at its payment window (the
    # look-behind roughly cancels the time the call folder takes to appear, so a kill `delay`
    # seconds after it lands about `delay` seconds into the call).
    delays = []
    for c in children:
        s = c.scenario
        if c.seed % 3 == 0:
            delays.append(rng.uniform(max(0.3, s.payment_start / RATE + 0.1), min(3.0, s.payment_end / RATE - 0.1)))
        else:
            delays.append(rng.uniform(0.3, 3.0))

    def one(i: int) -> dict:
        child = children[i]
        child.run_and_kill(delays[i])
        try:
            return child.check()
        except BaseException as exc:
            raise AssertionError(f"seed {i} ({child.scenario}, killed {delays[i]:.2f} s after its call "
                                 f"folder appeared): {exc!r}\nchild log: {child.log.read_text()}") from exc

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(one, range(KILLS)))
    # the kills really landed in the interesting places, at least some of the time
    assert sum(r["repaired"] for r in results) >= KILLS // 3, results
    assert any(r["in_payment"] for r in results), results
    assert any(r["uploaded_before_kill"] for r in results), results
    # the unrecorded tail the old recovery claimed as recorded silence: dropped in some kills
    assert any(r["tail_not_claimed"] for r in results), results
    assert {children[i].scenario.codec for i in range(KILLS)} == {"opus", "flac"}


def test_callrec_record_killed_mid_call_is_recovered_by_the_next_run_without_its_unrecorded_tail(tmp_path):
    """The real command: ``callrec record --realtime`` (FLAC, 1 s chunks) is killed while it
    writes a chunk of a call that would have lasted 20 s. The next ``callrec record`` recovers
    it from the spool and uploads it: the stored manifest ends at its last surviving chunk's
    end (the killed run's provisional manifest may say more: those frames were never on disk),
    ``callrec verify`` is clean, and the new run's JSON line gives only its own call's length."""
    import json
    import os
    import time

    def tones(path: Path, seconds: float) -> None:
        t = np.arange(round(seconds * RATE)) / RATE
        sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * AGENT_HZ * t), 0.3 * np.sin(2 * np.pi * CALLER_HZ * t)],
                                axis=1), RATE, subtype="FLOAT")

    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "spool"}"\nlog_dir = "{tmp_path / "log"}"\n')
    env = dict(os.environ, CALLREC_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"), PYTHONPATH=str(ROOT))
    (tmp_path / "store").mkdir()
    tones(tmp_path / "long.wav", 20.0)
    (tmp_path / "long.json").write_text(json.dumps([{"at": 0.0, "event": "call_started", "line": "01443 425002"},
                                                    {"at": 19.5, "event": "call_ended"}]))
    cmd = [sys.executable, "-m", "callrec_desktop", "record", "--store", str(tmp_path / "store"), "--codec", "flac",
           "--chunk-seconds", "1"]
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen([*cmd, "--source", str(tmp_path / "long.wav"), "--script", str(tmp_path / "long.json"),
                                 "--realtime"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    calls = tmp_path / "spool" / "calls"
    try:
        deadline = time.monotonic() + 60  # bounded poll for the condition: a third chunk begun (the uploader
        # moves sealed ones to the store at once, so they are not counted in the spool)
        while True:
            found = [p for p in calls.glob("*/*") if parse_chunk_name(p)] if calls.is_dir() else []
            if any(p.name.endswith(".part") and parse_chunk_name(p).seq >= 3 and p.stat().st_size > 0 for p in found):
                break
            assert time.monotonic() < deadline, (tmp_path / "killed.log").read_text()
            try:
                proc.wait(timeout=0.02)
                pytest.fail(f"callrec record exited early: {(tmp_path / 'killed.log').read_text()}")
            except subprocess.TimeoutExpired:
                pass
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    [killed_id] = [p.name for p in calls.iterdir() if not p.name.startswith(".")]
    provisional = Manifest.from_json((calls / killed_id / "manifest.json").read_bytes())

    tones(tmp_path / "short.wav", 2.0)
    (tmp_path / "short.json").write_text(json.dumps([{"at": 0.0, "event": "call_started", "line": "01443 425002"},
                                                     {"at": 1.5, "event": "call_ended"}]))
    rec = subprocess.run([*cmd, "--source", str(tmp_path / "short.wav"), "--script", str(tmp_path / "short.json")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rec.returncode == 0, (rec.stdout, rec.stderr)
    assert f"recovered interrupted call {killed_id}" in rec.stderr
    [line] = rec.stdout.splitlines()
    result = json.loads(line)
    assert result["call_id"] != killed_id and result["duration_seconds"] == 1.5 and result["end_reason"] == "hangup"

    store = FolderStore(tmp_path / "store")
    m = load_manifest(store, killed_id)
    assert (m.status, m.end.reason, m.recovered) == ("complete", "interrupted", True)
    last = m.chunks[-1]
    assert len(m.chunks) >= 2 and m.frames == last.first_frame + last.frames and m.pauses == ()
    assert m.frames >= provisional.chunks[-1].first_frame + provisional.chunks[-1].frames
    assert coverage_gaps(m) == [] and verify_call(store, m) == []
    out = subprocess.run([sys.executable, "-m", "callrec_desktop", "verify", "--store", str(tmp_path / "store")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "2 recording(s)" in out.stdout and "no faults" in out.stdout, out.stdout
