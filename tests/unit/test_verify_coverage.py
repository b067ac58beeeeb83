"""Coverage: every frame of a call's timeline is a chunk or a pause, or ``verify`` says so.

``archive.coverage_gaps`` on crafted manifests (frames exact: chunks ``[first_frame,
first_frame + frames)``, pauses ``[offset_frames, offset_frames + duration_frames)``), and
``callrec verify`` (a real subprocess) on a real folder store holding a real recorded call
and two crafted from it: one with a gap between chunks, one whose end runs past its last
chunk. Recordings the suite makes verify clean: the integration tests (test_cli.py,
test_crash_recording.py, test_upload_s3.py, test_hostile_store.py, test_payment_leaks.py)
run ``verify`` / ``verify_call`` on theirs.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from callrec_desktop.archive import CoverageGap, coverage_gaps, verify_call
from callrec_desktop.core.ids import new_call_id
from callrec_desktop.core.manifest import AudioFormat, ChunkEntry, EndInfo, Manifest, PauseEntry, chunk_file_name
from callrec_desktop.core.timeline import EventSource
from callrec_desktop.storage.layout import chunk_key, manifest_key
from tests.support.recording import RATE, finish, pipeline, settings, two_tones

ROOT = Path(__file__).resolve().parents[2]
SHA = "0" * 64


def crafted(frames: int, chunks=(), pauses=(), status="complete") -> Manifest:
    """A manifest with chunks given as (first, n) and pauses as (offset, duration) frames."""
    from datetime import datetime, timezone

    start = datetime(2026, 11, 29, 9, 22, 33, tzinfo=timezone.utc)
    return Manifest(
        call_id="20261129T092233Z-3f9a1c0b7d2e", status=status, line_number="01443 425002",
        department="Council Tax", direction="inbound", caller=None, external_id=None, agent="a",
        workstation="w", started_at=start, ended_at=start + timedelta(seconds=frames / RATE) if status == "complete" else None,
        frames=frames, audio=AudioFormat("flac", RATE, 2, ("agent", "caller"), None),
        chunks=tuple(ChunkEntry(i, a, n, 100, SHA, chunk_file_name(i, "flac")) for i, (a, n) in enumerate(chunks, 1)),
        pauses=tuple(PauseEntry("payment", "agent", a, n, a / RATE, n / RATE, "agent") for a, n in pauses),
        end=EndInfo("hangup", "agent") if status == "complete" else None)


def test_chunks_and_pauses_that_tile_the_timeline_have_no_gap():
    # starts paused, a chunk sealed by a pause, a pause up to the end: frame-exact tiling
    m = crafted(10 * RATE, chunks=[(RATE, 2 * RATE), (3 * RATE, RATE), (6 * RATE, 3 * RATE)],
                pauses=[(0, RATE), (4 * RATE, 2 * RATE), (9 * RATE, RATE)])
    assert coverage_gaps(m) == []
    assert coverage_gaps(crafted(0)) == []  # a call that kept no frame at all


def test_a_gap_between_chunks_and_a_tail_past_the_last_chunk_are_each_named():
    m = crafted(10 * RATE, chunks=[(0, 2 * RATE), (3 * RATE, 2 * RATE)], pauses=[(5 * RATE, RATE)])
    assert coverage_gaps(m) == [CoverageGap(2 * RATE, 3 * RATE), CoverageGap(6 * RATE, 10 * RATE)]
    between, tail = (g.describe(m) for g in coverage_gaps(m))
    assert between.startswith(f"{m.call_id}: 2.000-3.000 s") and "between chunks and pauses" in between
    assert tail.startswith(f"{m.call_id}: 6.000-10.000 s") and "after the last chunk and pause" in tail
    assert "not recorded" in tail
    # one frame is a gap too: frames are the authority, not the rounded seconds
    assert coverage_gaps(crafted(RATE, chunks=[(0, RATE // 2), (RATE // 2 + 1, RATE // 2 - 1)])) == [
        CoverageGap(RATE // 2, RATE // 2 + 1)]


def test_a_call_with_no_chunk_nor_pause_is_one_gap():
    assert coverage_gaps(crafted(3 * RATE)) == [CoverageGap(0, 3 * RATE)]


def test_a_provisional_manifest_is_checked_only_up_to_its_last_chunk_or_pause():
    """The chunk being written is not listed yet: the tail of a call in progress is no gap,
    a hole before its last chunk is."""
    assert coverage_gaps(crafted(5 * RATE, chunks=[(0, 2 * RATE)], status="recording")) == []
    assert coverage_gaps(crafted(5 * RATE, chunks=[(0, RATE), (2 * RATE, RATE)], status="recording")) == [
        CoverageGap(RATE, 2 * RATE)]
    assert coverage_gaps(crafted(5 * RATE, status="recording")) == []


# ---- callrec verify on a real store ---------------------------------------------------------
def copy_call(store_root: Path, m: Manifest, **changes) -> Manifest:
    """A new call in ``store_root`` made of ``m``'s stored chunks and ``m`` with ``changes``."""
    new = dataclasses.replace(m, call_id=new_call_id(m.started_at + timedelta(seconds=1)), **changes)
    for c in new.chunks:
        dest = store_root / chunk_key(new.call_id, c.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store_root / chunk_key(m.call_id, c.name), dest)
    dest = store_root / manifest_key(new.call_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(new.to_json())
    return new


def test_verify_names_a_gap_between_chunks_and_a_tail_beyond_the_last_chunk_and_fails(tmp_path):
    p = pipeline(tmp_path, two_tones(8.0), settings("flac", chunk_seconds=1.0))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=round(2.5 * RATE))
    p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=round(3.75 * RATE))
    p.recorder.end_call(source=EventSource.SCRIPT, at_frame=round(6.5 * RATE))
    [real] = finish(p)
    assert coverage_gaps(real) == [] and verify_call(p.store, real) == []
    root = tmp_path / "store"
    # a chunk left out of the manifest (its frames claimed, no audio), and 2 s claimed after the end
    [dropped] = [c for c in real.chunks if c.first_frame == round(3.75 * RATE)]  # resumed here
    holed = copy_call(root, real, chunks=tuple(c for c in real.chunks if c is not dropped))
    tail = copy_call(root, real, frames=real.frames + 2 * RATE,
                     ended_at=real.ended_at + timedelta(seconds=2), end=EndInfo("interrupted", "system"))
    assert coverage_gaps(holed) == [CoverageGap(round(3.75 * RATE), round(4.75 * RATE))]
    assert coverage_gaps(tail) == [CoverageGap(round(6.5 * RATE), round(8.5 * RATE))]

    env = dict(os.environ, CALLREC_CONFIG=str(tmp_path / "none.toml"), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"), PYTHONPATH=str(ROOT))
    (tmp_path / "none.toml").write_text(f'[paths]\nspool_dir = "{tmp_path / "s2"}"\nlog_dir = "{tmp_path / "log"}"\n')
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop", "verify", "--store", str(root)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    faults = [line for line in proc.stdout.splitlines() if line.startswith("FAULT")]
    assert sorted(faults) == sorted([
        f"FAULT {holed.call_id}: 3.750-4.750 s (frames 60000-76000, 1.000 s between chunks and pauses) "
        f"is covered by neither a chunk nor a pause: not recorded",
        f"FAULT {tail.call_id}: 6.500-8.500 s (frames 104000-136000, 2.000 s after the last chunk and pause) "
        f"is covered by neither a chunk nor a pause: not recorded",
    ])
    assert real.call_id not in "\n".join(faults)  # the real recording stays clean
    assert "3 recording(s)" in proc.stdout and "2 fault(s)" in proc.stdout


@pytest.mark.parametrize("start_paused", [False, True])
def test_recorded_calls_starting_paused_or_sealed_by_pauses_verify_clean(tmp_path, start_paused):
    """The recorder's own calls tile exactly: a call that starts paused, chunks sealed by a
    pause mid-chunk, a pause upgraded to a payment, a payment open at the transfer."""
    p = pipeline(tmp_path, two_tones(9.0), settings("flac", chunk_seconds=1.0))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    if start_paused:
        p.recorder.pause(source=EventSource.SCRIPT, at_frame=0)
        p.recorder.resume(source=EventSource.SCRIPT, at_frame=round(0.7 * RATE))
    p.recorder.pause(source=EventSource.SCRIPT, at_frame=round(1.3 * RATE) + 7)
    p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=round(2.1 * RATE) + 3)
    p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=round(3.9 * RATE) + 1)
    p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=round(7.2 * RATE))
    p.recorder.transfer("Planning", source=EventSource.SCRIPT, at_frame=round(8.1 * RATE))
    [m] = finish(p)
    assert len(m.pauses) == (4 if start_paused else 3)
    assert coverage_gaps(m) == [] and verify_call(p.store, m) == []
