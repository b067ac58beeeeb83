"""The spool: how call folders are published, and how a crashed spool is made consistent.

Partial chunk files are real: they are what the real encoders had written to the OS at a
given moment (a copy of the ``.part`` taken mid-write is exactly what SIGKILL leaves), or a
real sealed chunk cut at a byte offset.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.archive import coverage_gaps
from callrec_desktop.audio.chunk_writer import ChunkWriter
from callrec_desktop.audio.encoders import CodecSettings, make_encoder
from callrec_desktop.core.manifest import AudioFormat, Manifest, PauseEntry
from callrec_desktop.durable import DirLock
from callrec_desktop.spool import LOCK, MANIFEST, Spool, spool_chunk_name

RATE = 16000
STARTED = datetime(2026, 3, 2, 9, 15, 0, tzinfo=timezone.utc)


def make_manifest(call_id: str = "20260302T091500Z-0123456789ab", settings: CodecSettings = CodecSettings(),
                  **overrides) -> Manifest:
    fields = dict(
        call_id=call_id, status="recording", line_number="01443 425002", department="Council Tax",
        direction="inbound", caller="07700900123", external_id=None, agent="agent007", workstation="ws-test",
        started_at=STARTED, ended_at=None, frames=0,
        audio=AudioFormat(settings.codec, settings.sample_rate, settings.channels,
                          ("agent", "caller") if settings.channels == 2 else ("agent",), settings.bitrate),
        app_version="test",
    )
    fields.update(overrides)
    return Manifest(**fields)


def tones(frames: int, start: int = 0) -> np.ndarray:
    t = np.arange(start, start + frames) / RATE
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1250 * t)], axis=1).astype(np.float32)


def q16(x: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(x * 32768), -32768, 32767) / 32768).astype(np.float32)


def band_db(x: np.ndarray, freq: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(10 * np.log10(spec[(f > freq - 20) & (f < freq + 20)].sum() + 1e-30))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_with_snapshots(path: Path, settings: CodecSettings, data: np.ndarray, at: list[int]) -> dict[int, bytes]:
    """Encode ``data`` into ``path`` the way the chunk writer does (unbuffered, 20 ms blocks);
    after ``n`` frames for each ``n`` in ``at``, copy what the OS has: what a kill leaves."""
    snaps = {}
    with open(path, "xb", buffering=0) as f:
        enc = make_encoder(f, settings)
        for i in range(0, len(data), 320):
            enc.write(data[i : i + 320])
            done = min(len(data), i + 320)
            for n in at:
                if n not in snaps and done >= n:
                    snaps[n] = path.read_bytes()
        enc.close()
    return snaps


def new_call(spool: Spool, settings: CodecSettings, **overrides):
    """A published call folder whose recorder died (lock released), with its CallSpool."""
    call = spool.create_call(make_manifest(settings=settings, **overrides))
    call.release()
    return call


def call_files(spool: Spool, call_id: str) -> set[str]:
    return {p.name for p in spool.call_path(call_id).iterdir()}


def quarantined(spool: Spool) -> dict[str, bytes]:
    return {str(p.relative_to(spool.quarantine_dir)): p.read_bytes()
            for p in spool.quarantine_dir.rglob("*") if p.is_file()}


# ---- publishing ----------------------------------------------------------------------------------


def test_create_call_publishes_only_a_locked_folder_with_its_manifest(tmp_path, monkeypatch):
    spool = Spool(tmp_path / "spool")
    m = make_manifest()
    seen = []
    real_rename = os.rename

    def rename(src, dst):
        # the moment the folder becomes visible: it must already hold a manifest and its lock
        src = Path(src)
        seen.append((src.name, Path(dst).name, (src / MANIFEST).read_bytes(),
                     DirLock(src / LOCK).acquire(), spool.call_ids()))
        return real_rename(src, dst)

    monkeypatch.setattr("callrec_desktop.spool.os.rename", rename)
    call = spool.create_call(m)
    [(src, dst, manifest_at_publish, lock_was_free, visible_before)] = seen
    assert src.startswith(".new-") and dst == m.call_id
    assert manifest_at_publish == m.to_json()
    assert lock_was_free is False
    assert visible_before == []  # the half-built folder was never listed as a call
    assert spool.call_ids() == [m.call_id]
    assert call_files(spool, m.call_id) == {LOCK, MANIFEST}
    assert Manifest.from_json(spool.manifest_bytes(m.call_id)) == m
    assert spool.is_locked(m.call_id)
    assert not [p for p in spool.calls_dir.iterdir() if p.name.startswith(".new-")]
    call.release()
    assert not spool.is_locked(m.call_id)


def test_create_call_survives_a_recovery_racing_it_between_mkdir_and_lock(tmp_path, monkeypatch):
    """Another process's recovery may see the fresh ``.new-*`` folder before its lock is taken,
    take it for a dead one and remove it. The call must still be created, locked."""
    import callrec_desktop.spool as spool_mod

    spool = Spool(tmp_path / "spool")
    other = Spool(tmp_path / "spool")  # stands for `callrec record` starting up elsewhere
    real = spool_mod.DirLock
    raced = []

    class RacingLock(real):
        def acquire(self):
            if not raced and self.path.parent.name.startswith(".new-"):
                raced.append(self.path.parent)
                monkeypatch.setattr(spool_mod, "DirLock", real)
                other.recover()
            return super().acquire()

    monkeypatch.setattr(spool_mod, "DirLock", RacingLock)
    m = make_manifest()
    call = spool.create_call(m)
    assert raced and not raced[0].exists()  # the recovery did remove the first folder
    assert spool.call_ids() == [m.call_id]
    assert Manifest.from_json(spool.manifest_bytes(m.call_id)) == m
    assert spool.is_locked(m.call_id)
    call.release()


def test_create_call_refuses_a_bad_call_id(tmp_path):
    spool = Spool(tmp_path / "spool")
    with pytest.raises(Exception):
        spool.create_call(replace(make_manifest(), call_id="../../etc"))
    assert list(spool.calls_dir.iterdir()) == []


# ---- recovery: torn .part files --------------------------------------------------------------


OPUS_CUTS = ["header-bytes", "headers-only", 0.3, 0.55, 0.8, "minus-1"]


@pytest.mark.parametrize("cut", OPUS_CUTS)
def test_a_torn_opus_part_is_repaired_into_a_sealed_chunk_or_quarantined(tmp_path, cut):
    settings = CodecSettings("opus")
    spool = Spool(tmp_path / "spool")
    call = new_call(spool, settings, frames=3 * RATE)
    data = tones(2 * RATE + 123, start=RATE)
    full = tmp_path / "full.opus"
    write_with_snapshots(full, settings, data, [])
    whole = full.read_bytes()
    n = {"header-bytes": 20, "headers-only": 133, "minus-1": len(whole) - 1}.get(cut) or int(len(whole) * cut)
    part = call.path / (spool_chunk_name(1, RATE, "opus") + ".part")
    part.write_bytes(whole[:n])
    report = spool.recover()
    final = call.path / spool_chunk_name(1, RATE, "opus")
    assert not part.exists()
    m = Manifest.from_json(spool.manifest_bytes(call.path.name))
    assert m.status == "complete" and m.recovered
    if cut in ("header-bytes", "headers-only"):  # no audio page: nothing decodes
        assert not final.exists() and m.chunks == ()
        q = quarantined(spool)
        assert q[f"{call.path.name}/{part.name}"] == whole[:n]  # moved aside byte for byte, not deleted
        assert b"could not be repaired" in q[f"{call.path.name}/{part.name}.reason.txt"]
        assert report.repaired_chunks == ()
        return
    assert report.repaired_chunks == (str(part),)
    out, rate = sf.read(str(final), dtype="float32", always_2d=True)
    assert rate == RATE and 0 < len(out) <= len(data)
    if cut == "minus-1":  # only the last page is torn: at most a page (200 ms) lost
        assert len(out) >= len(data) - 0.25 * RATE
    # the repaired audio is the beginning of what was written (agent 440 Hz left, caller 1250 Hz right)
    mid = out[len(out) // 4 : len(out) // 4 + 2048]
    assert band_db(mid[:, 0], 440) - band_db(mid[:, 0], 1250) > 25
    assert band_db(mid[:, 1], 1250) - band_db(mid[:, 1], 440) > 25
    [e] = m.chunks
    assert (e.seq, e.first_frame, e.frames, e.bytes, e.sha256) == (1, RATE, len(out), final.stat().st_size, sha(final))


@pytest.mark.parametrize("written", [3520, 6720, 9920, 2 * RATE + 77])
def test_an_opus_part_copied_mid_write_keeps_every_page_that_reached_the_disk(tmp_path, written):
    settings = CodecSettings("opus")
    spool = Spool(tmp_path / "spool")
    call = new_call(spool, settings)
    data = tones(3 * RATE)
    snaps = write_with_snapshots(tmp_path / "w.opus", settings, data, [written])
    part = call.path / (spool_chunk_name(1, 0, "opus") + ".part")
    part.write_bytes(snaps[written])
    spool.recover()
    final = call.path / spool_chunk_name(1, 0, "opus")
    pages_on_disk = snaps[written].count(b"OggS") - 2  # minus the two header pages
    if pages_on_disk == 0:
        assert not final.exists() and (spool.quarantine_dir / call.path.name / part.name).exists()
        return
    frames = sf.info(str(final)).frames
    assert frames <= written
    assert frames >= pages_on_disk * 3200 - 104 - 320  # a page is 200 ms; the encoder's pre-skip is 104


@pytest.mark.parametrize("written", [5000, 6720, 20000, 29120])
def test_a_flac_part_whose_header_claims_2_63_frames_is_repaired_losslessly(tmp_path, written):
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = new_call(spool, settings)
    data = tones(2 * RATE + 77)
    snaps = write_with_snapshots(tmp_path / "w.flac", settings, data, [written])
    part = call.path / (spool_chunk_name(2, 48000, "flac") + ".part")
    part.write_bytes(snaps[written])
    with sf.SoundFile(str(part)) as f:
        assert f.frames > 2**40  # the header was never finalised: this is what a kill leaves
    spool.recover()
    final = call.path / spool_chunk_name(2, 48000, "flac")
    assert not part.exists()
    out, _ = sf.read(str(final), dtype="float32", always_2d=True)
    # libFLAC writes each 4096-frame block as soon as it is full: all of those come back, exactly
    assert len(out) == written // 4096 * 4096
    np.testing.assert_array_equal(out, q16(data[: len(out)]))
    [e] = Manifest.from_json(spool.manifest_bytes(call.path.name)).chunks
    assert (e.seq, e.first_frame, e.frames, e.sha256) == (2, 48000, len(out), sha(final))


def test_a_flac_part_with_no_complete_block_is_quarantined_not_deleted(tmp_path):
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = new_call(spool, settings)
    snaps = write_with_snapshots(tmp_path / "w.flac", settings, tones(RATE), [3000])
    part = call.path / (spool_chunk_name(1, 0, "flac") + ".part")
    part.write_bytes(snaps[3000])
    report = spool.recover()
    q = quarantined(spool)
    assert q[f"{call.path.name}/{part.name}"] == snaps[3000]
    assert q[f"{call.path.name}/{part.name}.reason.txt"].startswith(b"could not be repaired")
    assert report.quarantined and not report.repaired_chunks
    assert call_files(spool, call.path.name) == {LOCK, MANIFEST}


# ---- recovery: the call ----------------------------------------------------------------------


@pytest.mark.parametrize("torn", [False, True])
def test_an_interrupted_call_is_ended_with_what_survived_and_its_payment_pause_closed(tmp_path, torn):
    """Killed during a payment pause that began at 3.5 s. Chunk 4 (from 3 s) holds every frame
    up to the pause (``torn=False``: sealed, not yet listed), or is a torn ``.part`` whose
    complete FLAC block ends at 3 s + 4096 frames (``torn=True``). The recovered call never
    claims frames no chunk holds: it ends where chunk 4 ends, carried on through the pause
    only when the pause begins there (closed by "system" at the last frame gated)."""
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = spool.create_call(make_manifest(settings=settings))
    writer = ChunkWriter(call, settings, RATE)
    data = tones(5 * RATE)
    writer.write(0, data[: 2 * RATE])  # chunks 1, 2: sealed and listed
    listed = list(writer.sealed)
    pause = PauseEntry("payment", "agent", 3 * RATE + 8000, RATE // 2, 3.5, 0.5, None)  # open: no end_source
    call.write_manifest(make_manifest(settings=settings, chunks=tuple(listed), pauses=(pause,), frames=3 * RATE + 8000 + RATE // 2))
    writer.write(2 * RATE, data[2 * RATE : 3 * RATE])  # chunk 3 sealed, the process died before listing it
    chunk3 = writer.sealed[-1]
    part = call.path / (spool_chunk_name(4, 3 * RATE, "flac") + ".part")
    if torn:  # chunk 4: torn, its last complete block ends before the pause
        snaps = write_with_snapshots(tmp_path / "w.flac", settings, data[3 * RATE : 3 * RATE + 8000], [4096 + 100])
        part.write_bytes(snaps[4196])
    else:  # chunk 4: sealed up to the pause (the gate sealed it there), not listed
        writer.write(3 * RATE, data[3 * RATE : 3 * RATE + 8000])
        writer.seal()
    call.release()  # the recorder is gone (SIGKILL drops the lock the same way)

    report = spool.recover()
    call_id = call.path.name
    assert report.interrupted_calls == (call_id,)
    assert report.repaired_chunks == ((str(part),) if torn else ())
    m = Manifest.from_json(spool.manifest_bytes(call_id))
    assert m.status == "complete" and m.recovered is True
    assert (m.end.reason, m.end.source) == ("interrupted", "system")
    assert [c.seq for c in m.chunks] == [1, 2, 3, 4]
    assert list(m.chunks[:2]) == listed  # what the manifest already said is kept as it was
    c3, c4 = m.chunks[2], m.chunks[3]
    assert (c3.first_frame, c3.frames, c3.bytes, c3.sha256) == (2 * RATE, RATE, chunk3.bytes, chunk3.sha256)
    sealed4 = call.path / spool_chunk_name(4, 3 * RATE, "flac")
    assert (c4.first_frame, c4.frames, c4.sha256, c4.bytes) == (
        3 * RATE, 4096 if torn else 8000, sha(sealed4), sealed4.stat().st_size)
    for c in m.chunks:  # every listed chunk is in the spool with the listed size and checksum
        f = call.path / spool_chunk_name(c.seq, c.first_frame, "flac")
        assert (f.stat().st_size, sha(f)) == (c.bytes, c.sha256)
    if torn:
        # frames 3 s + 4096 ... 3.5 s never reached the disk: the call ends before them, and
        # the pause, which began after that end, is not part of it
        assert m.frames == 3 * RATE + 4096 and m.pauses == ()
    else:
        # the payment pause is closed at the end of the call: the call is not resumed after it
        [p] = m.pauses
        assert (p.offset_frames, p.end_source) == (pause.offset_frames, "system")
        assert p.offset_frames + p.duration_frames == m.frames
        assert m.frames == pause.offset_frames + RATE // 2
        assert all(c.first_frame + c.frames <= p.offset_frames for c in m.chunks)
    assert coverage_gaps(m) == []  # every frame of the recovered timeline is a chunk or a pause
    assert m.ended_at == STARTED + timedelta(seconds=m.frames / RATE)
    assert not [n for n in call_files(spool, call_id) if n.endswith((".part", ".rpart"))]
    # running it again changes nothing
    before = spool.manifest_bytes(call_id)
    assert spool.recover().interrupted_calls == ()
    assert spool.manifest_bytes(call_id) == before


def test_a_listed_chunk_changed_after_sealing_is_quarantined_not_relisted(tmp_path):
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = spool.create_call(make_manifest(settings=settings))
    writer = ChunkWriter(call, settings, RATE)
    writer.write(0, tones(2 * RATE))
    call.write_manifest(make_manifest(settings=settings, chunks=tuple(writer.sealed), frames=2 * RATE))
    call.release()
    f2 = call.path / spool_chunk_name(2, RATE, "flac")
    rotten = bytearray(f2.read_bytes())
    rotten[-100] ^= 0xFF
    f2.write_bytes(bytes(rotten))
    report = spool.recover()
    m = Manifest.from_json(spool.manifest_bytes(call.path.name))
    assert list(m.chunks) == writer.sealed  # never re-listed under the changed file's checksum
    q = quarantined(spool)
    assert q[f"{call.path.name}/{f2.name}"] == bytes(rotten)
    assert b"differs from its manifest entry" in q[f"{call.path.name}/{f2.name}.reason.txt"]
    assert str(spool.quarantine_dir / call.path.name / f2.name) in report.quarantined


def test_a_call_still_locked_by_a_live_process_is_left_untouched(tmp_path):
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = spool.create_call(make_manifest(settings=settings))
    call.release()
    snaps = write_with_snapshots(tmp_path / "w.flac", settings, tones(RATE), [9000])
    part = call.path / (spool_chunk_name(1, 0, "flac") + ".part")
    part.write_bytes(snaps[9000])
    before = {p.name: p.read_bytes() for p in call.path.iterdir()}
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from callrec_desktop.durable import DirLock;"
         "l = DirLock(Path(sys.argv[1])); assert l.acquire(); print('locked', flush=True); sys.stdin.read()",
         str(call.path / LOCK)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout.readline().strip() == "locked"
        report = spool.recover()
        assert report == type(report)()
        assert {p.name: p.read_bytes() for p in call.path.iterdir()} == before
        assert quarantined(spool) == {}
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    # and once that process is gone, the same call is recovered
    report = spool.recover()
    assert report.interrupted_calls == (call.path.name,)
    assert not part.exists()


def test_a_call_locked_in_this_process_is_left_untouched(tmp_path):
    spool = Spool(tmp_path / "spool")
    call = spool.create_call(make_manifest())
    part = call.path / (spool_chunk_name(1, 0, "opus") + ".part")
    part.write_bytes(b"OggS")
    report = spool.recover()
    assert report.interrupted_calls == () and report.quarantined == ()
    assert part.read_bytes() == b"OggS"
    assert Manifest.from_json(spool.manifest_bytes(call.path.name)).status == "recording"
    call.release()


def test_a_corrupt_manifest_sends_its_chunks_to_quarantine_with_reasons(tmp_path):
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = spool.create_call(make_manifest(settings=settings))
    writer = ChunkWriter(call, settings, RATE)
    writer.write(0, tones(RATE + 5000))
    writer.abort()  # leaves 000002@16000.flac.part
    call.release()
    call_id = call.path.name
    originals = {p.name: p.read_bytes() for p in call.path.iterdir() if p.name.startswith("0000")}
    assert set(originals) == {"000001@0.flac", "000002@16000.flac.part"}
    (call.path / MANIFEST).write_bytes(b'{"schema_version": 1, "call_id": "trunc')
    report = spool.recover()
    assert spool.call_ids() == []
    q = quarantined(spool)
    for name, data in originals.items():
        assert q[f"{call_id}/{name}"] == data
        assert b"no readable manifest" in q[f"{call_id}/{name}.reason.txt"]
    assert q[f"{call_id}/{MANIFEST}"].startswith(b'{"schema_version": 1')
    assert b"not valid JSON" in q[f"{call_id}/{MANIFEST}.reason.txt"]
    assert len(report.quarantined) == 3


def test_new_folder_leftovers_are_cleared_and_stray_files_quarantined(tmp_path):
    spool = Spool(tmp_path / "spool")
    m = make_manifest()
    dead = spool.calls_dir / f".new-{m.call_id}-aaaaaa"  # a process died before publishing
    dead.mkdir()
    (dead / LOCK).touch()
    (dead / MANIFEST).write_bytes(m.to_json())
    (dead / "stray.bin").write_bytes(b"keep me")
    live = spool.calls_dir / f".new-{m.call_id}-bbbbbb"  # another process is publishing right now
    live.mkdir()
    lock = DirLock(live / LOCK)
    assert lock.acquire()
    try:
        report = spool.recover()
        assert not dead.exists()
        assert live.exists() and (live / LOCK).exists()
        q = quarantined(spool)
        assert q[f"new-{m.call_id}-aaaaaa/stray.bin"] == b"keep me"
        assert b"unpublished" in q[f"new-{m.call_id}-aaaaaa/stray.bin.reason.txt"]
        assert len(report.quarantined) == 1
        assert spool.call_ids() == []
    finally:
        lock.release()


def test_a_part_beside_a_complete_manifest_is_quarantined(tmp_path):
    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    from callrec_desktop.core.manifest import EndInfo

    call = new_call(spool, settings, status="complete", ended_at=STARTED + timedelta(seconds=1), frames=RATE,
                    end=EndInfo("error", "system"))
    part = call.path / (spool_chunk_name(1, 0, "flac") + ".part")
    part.write_bytes(b"fLaC-torn")
    report = spool.recover()
    assert report.interrupted_calls == ()
    assert quarantined(spool)[f"{call.path.name}/{part.name}"] == b"fLaC-torn"
    assert not part.exists()
