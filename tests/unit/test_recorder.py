"""The recorder through the real encoders, spool, uploader and folder store.

Frames are checked exactly with FLAC (lossless); Opus is checked by tone energy."""

from __future__ import annotations

import os

import numpy as np
import pytest

from callrec_desktop.core.manifest import Manifest
from callrec_desktop.core.timeline import EventSource, PaymentInProgressError
from tests.support.recording import RATE, band_db, decoded, finish, pipeline, settings, two_tones


def q16(x: np.ndarray) -> np.ndarray:
    """What 16-bit FLAC gives back for float input."""
    return np.clip(np.round(x * 32768), -32768, 32767) / 32768


def test_payment_window_is_exact_digital_silence_and_the_rest_is_kept(tmp_path):
    audio = two_tones(10.0)
    p = pipeline(tmp_path, audio, settings("flac", chunk_seconds=2.0))
    p.recorder.start_call("01443 425002", "Council Tax", caller="07700900123", source=EventSource.SCRIPT, at_frame=0)
    p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=round(3.1 * RATE))
    p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=round(5.3 * RATE))
    p.recorder.transfer("Planning", source=EventSource.SCRIPT, at_frame=round(8.0 * RATE))
    [m] = finish(p)
    assert m.frames == 8 * RATE
    assert m.end.reason == "transferred" and m.end.department == "Planning"
    [pause] = m.pauses
    assert (pause.reason, pause.source, pause.offset_frames, pause.duration_frames) == (
        "payment", "script", round(3.1 * RATE), round(5.3 * RATE) - round(3.1 * RATE))
    out = decoded(p, m)
    a, b = round(3.1 * RATE), round(5.3 * RATE)
    assert not out[a:b].any(), "audio inside the payment window reached the store"
    np.testing.assert_allclose(out[:a], q16(audio[:a]), atol=1 / 32768)
    np.testing.assert_allclose(out[b:], q16(audio[b : 8 * RATE]), atol=1 / 32768)
    # chunks tile the kept frames exactly: never across the pause, never past the transfer
    kept = sum(c.frames for c in m.chunks)
    assert kept == 8 * RATE - (b - a)
    assert all(c.first_frame + c.frames <= a or c.first_frame >= b for c in m.chunks)


def test_opus_keeps_channels_apart_and_drops_the_payment_tone(tmp_path):
    t = np.arange(8 * RATE) / RATE
    agent = 0.3 * np.sin(2 * np.pi * 440 * t)
    caller = 0.3 * np.sin(2 * np.pi * 1250 * t)
    caller[3 * RATE : 5 * RATE] = 0.3 * np.sin(2 * np.pi * 1850 * t[3 * RATE : 5 * RATE])  # "card digits"
    audio = np.stack([agent, caller], axis=1).astype(np.float32)
    p = pipeline(tmp_path, audio, settings("opus", chunk_seconds=10.0))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=3 * RATE)
    p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=5 * RATE)
    [m] = finish(p)
    out = decoded(p, m)
    assert band_db(out[:, 1], 1850) < band_db(audio[:, 1], 1850) - 40, "the payment tone survived"
    assert not out[3 * RATE : 5 * RATE].any()
    sep_left = band_db(out[RATE : 2 * RATE, 0], 440) - band_db(out[RATE : 2 * RATE, 0], 1250)
    sep_right = band_db(out[RATE : 2 * RATE, 1], 1250) - band_db(out[RATE : 2 * RATE, 1], 440)
    assert min(sep_left, sep_right) >= 30, (sep_left, sep_right)


def test_a_pause_stamped_in_the_past_within_the_look_behind_still_removes_the_frames(tmp_path):
    audio = two_tones(6.0)
    late_by = round(1.5 * RATE)  # look-behind is 2 s here
    fired = []

    class LateSignalSource:
        """Wraps the synthetic source: when capture reaches 4 s, a detector stamps a pause at 2.5 s."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def read(self, timeout=None):
            block = self.inner.read(timeout)
            if block is not None and not fired and block.start_frame >= 4 * RATE:
                fired.append(True)
                p.recorder.start_payment(source=EventSource.AUTOMATIC, at_frame=4 * RATE - late_by)
            return block

    from callrec_desktop.audio.sources import SyntheticSource

    rs = settings("flac", lookbehind_seconds=2.0)
    p = pipeline(tmp_path, audio, rs, source=LateSignalSource(SyntheticSource(audio, sample_rate=RATE, block_frames=800)))
    p.recorder.start_call("01443 425005", "General Enquiries", source=EventSource.SCRIPT, at_frame=0)
    [m] = finish(p)
    assert fired
    out = decoded(p, m)
    start = 4 * RATE - late_by
    assert np.count_nonzero(out[:start].any(axis=1)) > 0.99 * start
    assert not out[start:].any(), "frames after the late-stamped pause reached the store"
    assert m.pauses[0].source == "automatic" and m.pauses[0].offset_frames == start


def test_resume_is_refused_during_a_payment_and_nothing_changes(tmp_path):
    p = pipeline(tmp_path, two_tones(1.0), settings())
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    p.recorder.start_payment(at_frame=100)
    with pytest.raises(PaymentInProgressError, match="payment"):
        p.recorder.resume(at_frame=200)
    assert p.recorder.status().payment_in_progress
    p.recorder.end_call(at_frame=300)  # ending during a payment is allowed
    [m] = finish(p)
    assert m.end.reason == "hangup" and m.frames == 300
    assert m.pauses[0].duration_frames == 200


def test_several_calls_in_one_stream_each_get_their_own_recording(tmp_path):
    audio = two_tones(9.0)
    p = pipeline(tmp_path, audio, settings("flac"))
    r = p.recorder
    r.start_call("01443 425001", "Environmental Services", at_frame=0)
    r.end_call(at_frame=2 * RATE)
    r.start_call("01443 425004", "Planning", at_frame=3 * RATE)
    r.start_payment(at_frame=3 * RATE)  # payment from the first frame: nothing kept until it ends
    r.end_payment(at_frame=4 * RATE)
    r.end_call(at_frame=6 * RATE)
    r.start_call("lifeline", "Lifeline Emergency Alarm", at_frame=7 * RATE)
    r.end_call(at_frame=7 * RATE)  # a call with no frames still gets a manifest
    ms = sorted(finish(p), key=lambda m: m.started_at)
    assert [m.department for m in ms] == ["Environmental Services", "Planning", "Lifeline Emergency Alarm"]
    assert [m.frames for m in ms] == [2 * RATE, 3 * RATE, 0]
    planning = decoded(p, ms[1])
    assert not planning[:RATE].any()
    assert np.count_nonzero(planning[RATE:].any(axis=1)) > 0.99 * 2 * RATE  # (sines cross zero on a few frames)
    assert ms[2].chunks == ()


def test_a_call_open_when_the_source_ends_is_finished_and_uploaded(tmp_path):
    p = pipeline(tmp_path, two_tones(3.0), settings("opus", chunk_seconds=1.0))
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    [m] = finish(p)
    assert m.status == "complete" and m.end.reason == "hangup" and m.frames == 3 * RATE
    assert [c.seq for c in m.chunks] == [1, 2, 3]
    assert [c.first_frame for c in m.chunks] == [0, RATE, 2 * RATE]


@pytest.mark.parametrize("err, reason", [("ENOSPC", "disk_full"), ("EDQUOT", "disk_full"), ("EIO", "error")])
def test_a_failed_write_ends_the_call_at_once_and_claims_only_the_sealed_chunks(tmp_path, monkeypatch, err, reason):
    """A full disk (or another write error) is simulated by making the chunk writer's file
    creation raise after the first two chunks (the real full disk, a tmpfs, is in
    tests/integration/test_disk_full.py). The manifest is final at once, ends where the
    second chunk ends (not where capture got to, 6 s), and verifies with no gap."""
    import errno

    from callrec_desktop.archive import coverage_gaps, load_manifest, verify_call
    from callrec_desktop.audio import chunk_writer

    p = pipeline(tmp_path, two_tones(6.0), settings("flac", chunk_seconds=1.0))
    events = []
    p.recorder.add_listener(events.append)
    real_start = chunk_writer.ChunkWriter._start
    code = getattr(errno, err)

    def start(self, first_frame):
        if first_frame >= 2 * RATE:
            raise OSError(code, os.strerror(code))
        return real_start(self, first_frame)

    monkeypatch.setattr(chunk_writer.ChunkWriter, "_start", start)
    call_id = p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    results = p.recorder.run()
    [error] = [e for e in events if e.kind == "error"]
    assert error.call_id == call_id
    assert ("disk is full" in str(error.detail)) == (reason == "disk_full")
    # final on the recorder's side as soon as the failure was seen: before the run ended
    finished = [i for i, e in enumerate(events) if e.kind == "call_finished"]
    assert finished and [e.detail.end.reason for e in events if e.kind == "call_finished"] == [reason]
    local = Manifest.from_json((p.spool.call_path(call_id) / "manifest.json").read_bytes()) \
        if p.spool.call_path(call_id).exists() else None
    assert p.uploader.drain(10)
    m = load_manifest(p.store, call_id)
    assert local is None or local == m
    assert (m.status, m.end.reason, m.end.source) == ("complete", reason, "system")
    assert [c.first_frame for c in m.chunks] == [0, RATE]
    assert m.frames == 2 * RATE  # the end of the last durable chunk, not the 6 s captured
    assert coverage_gaps(m) == [] and verify_call(p.store, m) == []
    assert p.recorder.status().end_reason == reason


def test_a_call_paused_when_the_disk_fills_ends_at_the_failure_with_its_pause_clipped(tmp_path, monkeypatch):
    """The chunk before an agent pause cannot be sealed (ENOSPC at fsync, injected: the real
    full disk is in tests/integration/test_disk_full.py). That chunk is not listed, so the
    call ends where the chunk before it ends and the pause (which began after) is not in it;
    a pause beginning where durable audio ends is kept and closed at the failure."""
    import errno

    from callrec_desktop.archive import coverage_gaps, load_manifest, verify_call
    from callrec_desktop.audio import chunk_writer

    p = pipeline(tmp_path, two_tones(6.0), settings("flac", chunk_seconds=1.0))
    real_seal = chunk_writer.ChunkWriter.seal

    def seal(self):
        c = self._open
        if c is not None and c.first_frame >= 2 * RATE:
            self.abort()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_seal(self)

    monkeypatch.setattr(chunk_writer.ChunkWriter, "seal", seal)
    call_id = p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    p.recorder.pause(at_frame=round(2.5 * RATE))  # the 2-2.5 s chunk fails to seal here
    results = p.recorder.run()
    assert any("disk is full" in e for e in results.errors)
    assert p.uploader.drain(10)
    m = load_manifest(p.store, call_id)
    assert (m.end.reason, m.frames, [c.seq for c in m.chunks]) == ("disk_full", 2 * RATE, [1, 2])
    assert m.pauses == ()  # it began at 2.5 s, after the end
    assert coverage_gaps(m) == [] and verify_call(p.store, m) == []

    # paused exactly where the durable audio ends: the pause is kept, clipped at the failure
    p2 = pipeline(tmp_path / "b", two_tones(6.0), settings("flac", chunk_seconds=1.0))
    real_start = chunk_writer.ChunkWriter._start
    monkeypatch.setattr(chunk_writer.ChunkWriter, "seal", real_seal)

    def start(self, first_frame):
        if first_frame >= 3 * RATE:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_start(self, first_frame)

    monkeypatch.setattr(chunk_writer.ChunkWriter, "_start", start)
    call_id = p2.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    p2.recorder.pause(at_frame=2 * RATE)
    p2.recorder.resume(at_frame=3 * RATE)  # the chunk starting here cannot be created
    p2.recorder.run()
    assert p2.uploader.drain(10)
    m = load_manifest(p2.store, call_id)
    assert (m.end.reason, m.frames, [c.seq for c in m.chunks]) == ("disk_full", 3 * RATE, [1, 2])
    [pause] = m.pauses
    assert (pause.offset_frames, pause.duration_frames, pause.end_source) == (2 * RATE, RATE, "agent")
    assert coverage_gaps(m) == [] and verify_call(p2.store, m) == []


def test_a_final_manifest_the_full_disk_refuses_is_kept_and_written_once_there_is_room(tmp_path, monkeypatch):
    """Writing the final manifest fails with ENOSPC (injected into the spool's atomic write)
    until the test frees the 'disk': the call is not provisional meanwhile on the recorder's
    side (its folder stays locked, so no recovery takes it), and the manifest is written on
    the recorder's next chance, before the run ends. Then it fails for good: the run ends
    saying so, and the spool's recovery finishes the call with only its chunks."""
    import errno

    from callrec_desktop import spool as spool_mod

    for attempt in ("later", "never"):
        p = pipeline(tmp_path / attempt, two_tones(4.0), settings("flac", chunk_seconds=1.0))
        real_write = spool_mod.write_atomic
        full = {"on": False, "refused": 0}

        def write_atomic(path, data, real_write=real_write, full=full):
            if full["on"] and path.name == "manifest.json" and b'"status": "complete"' in data:
                full["refused"] += 1
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_write(path, data)

        monkeypatch.setattr(spool_mod, "write_atomic", write_atomic)
        events = []
        p.recorder.add_listener(events.append)

        def on_event(e, p=p, full=full, attempt=attempt):
            if e.kind == "chunk_sealed" and e.detail.seq == 2:
                full["on"] = True
                p.recorder.end_call(at_frame=round(2.5 * RATE), source=EventSource.SCRIPT)
            if e.kind == "error" and attempt == "later":
                full["on"] = False  # space freed (e.g. the uploader moved chunks away)

        p.recorder.add_listener(on_event)
        call_id = p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
        results = p.recorder.run()
        path = p.spool.call_path(call_id)
        assert full["refused"] >= 1
        kinds = [e.kind for e in events]
        assert "error" in kinds and "disk is full" in str(events[kinds.index("error")].detail)
        if attempt == "later":
            [m] = results.manifests
            # every chunk was sealed: nothing was lost, so it keeps its own end (a hangup at 2.5 s)
            assert (m.status, m.end.reason) == ("complete", "hangup")
            assert m.frames == round(2.5 * RATE) and [c.seq for c in m.chunks] == [1, 2, 3]
            assert kinds.index("error") < kinds.index("call_finished")
            assert Manifest.from_json((path / "manifest.json").read_bytes()) == m
        else:
            assert results.manifests == []
            assert any("recovery finishes it" in e for e in results.errors)
            assert not p.spool.is_locked(call_id)
            monkeypatch.setattr(spool_mod, "write_atomic", real_write)
            assert p.spool.recover().interrupted_calls == (call_id,)
            m = Manifest.from_json((path / "manifest.json").read_bytes())
            assert (m.end.reason, m.recovered) == ("interrupted", True)
            assert m.frames == round(2.5 * RATE) and [c.seq for c in m.chunks] == [1, 2, 3]
        from callrec_desktop.archive import coverage_gaps
        assert coverage_gaps(m) == []


def vanishing_source(audio, after_seconds: float):
    """A synthetic source that raises the device source's own DeviceLostError once capture
    reaches ``after_seconds`` (the real loss is tested against the virtual audio server)."""
    from callrec_desktop.audio.sources import DeviceLostError, SyntheticSource

    inner = SyntheticSource(audio, sample_rate=RATE, block_frames=800)

    class VanishingSource:
        def __getattr__(self, name):
            return getattr(inner, name)

        def read(self, timeout=None):
            block = inner.read(timeout)
            if block is not None and block.start_frame >= after_seconds * RATE:
                raise DeviceLostError("input device 'pulse' vanished")
            return block

    return VanishingSource()


def test_a_vanished_device_ends_the_call_as_interrupted_and_keeps_what_was_captured(tmp_path):
    """The device source is replaced by a synthetic one that raises the device source's own
    DeviceLostError after 3 s (the real loss is tested against the virtual audio server)."""
    audio = two_tones(6.0)

    p = pipeline(tmp_path, audio, settings("flac", lookbehind_seconds=0.5),
                 source=vanishing_source(audio, after_seconds=3))
    events = []
    p.recorder.add_listener(events.append)
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    [m] = finish(p)
    assert m.end.reason == "interrupted" and m.frames == 3 * RATE
    assert np.count_nonzero(decoded(p, m).any(axis=1)) > 0.99 * 3 * RATE
    failed = [e for e in events if e.kind == "source_failed"]
    assert failed and "vanished" in str(failed[0].detail)
    assert any("audio capture stopped" in e for e in p.recorder.results.errors)


def test_a_pause_stamped_ahead_of_the_gate_is_left_out_of_provisional_manifests(tmp_path):
    """Regression: a payment signalled while its first frame still sits in the look-behind
    made the provisional manifest written at the next chunk seal carry a negative duration,
    which killed the recorder thread."""
    audio = two_tones(5.0)
    p = pipeline(tmp_path, audio, settings("flac", chunk_seconds=1.0, lookbehind_seconds=0.0))
    written = []
    p.recorder.add_listener(lambda e: e.kind == "manifest_written" and written.append(e.detail))
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    p.recorder.start_payment(at_frame=3 * RATE)  # no end: the call ends paused at the source's end
    [m] = finish(p)
    assert p.recorder.results.errors == []
    provisional = [w for w in written if w.status == "recording"]
    assert provisional and all(not w.pauses for w in provisional if w.frames < 3 * RATE)
    assert all(pz.duration_frames >= 0 for w in written for pz in w.pauses)
    [pause] = m.pauses
    assert (pause.offset_frames, pause.duration_frames) == (3 * RATE, 2 * RATE)
    assert not decoded(p, m)[3 * RATE :].any()


# ---- the recorder's status: one snapshot that whoever shows the call state derives from ----------

def test_status_is_one_snapshot_with_a_revision_that_counts_every_change_and_only_changes(tmp_path):
    from callrec_desktop.core.timeline import CallState, IllegalTransitionError

    p = pipeline(tmp_path, two_tones(2.0), settings())
    r = p.recorder
    s0 = r.status()
    assert (s0.state, s0.call, s0.revision) == (CallState.IDLE, None, 0)
    call_id = r.start_call("01443 425002", "Council Tax", caller="07700900123", at_frame=0)
    s1 = r.status()
    assert (s1.state, s1.call_id, s1.call.caller, s1.revision) == (CallState.RECORDING, call_id, "07700900123", 1)
    r.start_payment(source=EventSource.CONTROL_API, at_frame=100)
    s2 = r.status()
    assert (s2.state, s2.payment_in_progress, s2.payment_source, s2.pause_started_frame, s2.revision) == (
        CallState.PAUSED, True, "control_api", 100, 2)
    with pytest.raises(PaymentInProgressError):
        r.resume(at_frame=150)
    with pytest.raises(IllegalTransitionError):
        r.start_payment(at_frame=150)
    assert r.status().revision == 2  # refused events change nothing, not even the revision
    r.transfer("Planning", at_frame=200)
    s3 = r.status()
    assert (s3.state, s3.end_reason, s3.end_source, s3.transferred_to, s3.line_number, s3.call.line_number) == (
        CallState.ENDED, "transferred", "agent", "Planning", None, "01443 425002")
    assert s3.revision == 3 and not s3.payment_in_progress and s3.payment_source is None
    finish(p)


def test_a_late_event_is_told_after_the_lock_is_released(tmp_path):
    """A listener may ask for ``status()`` (the desk does, on every notice): no event may be
    delivered while the recorder's lock is held, or that listener deadlocks the recorder."""
    p = pipeline(tmp_path, two_tones(1.0), settings(lookbehind_seconds=0.0))
    seen = []

    def listener(event):
        seen.append((event.kind, p.recorder._lock.locked()))

    p.recorder.add_listener(listener)
    p.recorder.run()  # the gate has passed every frame: an event stamped at 0 is late
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    assert ("late_event", False) in seen and ("state_changed", False) in seen
    assert all(not locked for _, locked in seen)


def test_a_vanished_device_shows_the_call_ended_before_anyone_is_told(tmp_path):
    """When ``source_failed`` is delivered the recorder's own state already says the call
    ended as interrupted, so a window reading it can never show "Recording" with no capture."""
    from callrec_desktop.core.timeline import CallState

    audio = two_tones(3.0)

    p = pipeline(tmp_path, audio, settings("flac", lookbehind_seconds=0.5),
                 source=vanishing_source(audio, after_seconds=2))
    at_notice = []
    p.recorder.add_listener(lambda e: at_notice.append(p.recorder.status()) if e.kind == "source_failed" else None)
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    [m] = finish(p)
    [st] = at_notice
    assert (st.state, st.end_reason, st.end_source) == (CallState.ENDED, "interrupted", "system")
    assert m.end.reason == "interrupted" and m.frames == 2 * RATE  # the look-behind's frames were kept


@pytest.mark.parametrize("paused", [False, True])
def test_stop_with_shutdown_seals_everything_and_finishes_the_call_as_shutdown(tmp_path, paused):
    """What SIGTERM / logoff does through the desk: the recorder thread is asked to stop with
    reason ``shutdown``; the look-behind is drained into the last chunk, the manifest is final."""
    import threading

    from callrec_desktop.archive import verify_call
    from callrec_desktop.audio.sources import SyntheticSource
    from callrec_desktop.core.timeline import EndReason

    def endless():
        n = 0
        while True:
            t = (np.arange(320) + n) / RATE
            n += 320
            yield np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)

    source = SyntheticSource(endless(), sample_rate=RATE, block_frames=320, realtime=True, channels=2)
    p = pipeline(tmp_path, None, settings("flac", chunk_seconds=0.5, lookbehind_seconds=0.5), source=source)
    sealed = threading.Event()
    p.recorder.add_listener(lambda e: sealed.set() if e.kind == "chunk_sealed" else None)
    p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    if paused:  # the pause seals the chunk before it, once the gate reaches it
        p.recorder.start_payment(at_frame=RATE // 4)
    p.recorder.start()
    assert sealed.wait(10), "no chunk was sealed"
    p.recorder.stop(end_open_call_as=EndReason.SHUTDOWN)
    p.recorder.join(10)
    assert not p.recorder.is_alive()
    [m] = p.recorder.results.manifests
    assert (m.status, m.end.reason, m.end.source) == ("complete", "shutdown", "system")
    assert p.uploader.drain(10)
    from callrec_desktop.archive import load_manifest

    stored = load_manifest(p.store, m.call_id)
    assert verify_call(p.store, stored) == []
    if paused:
        assert stored.chunks[-1].first_frame + stored.chunks[-1].frames == RATE // 4
        assert stored.pauses[0].offset_frames + stored.pauses[0].duration_frames == stored.frames
    else:  # every frame up to the end is in a chunk
        assert sum(c.frames for c in stored.chunks) == stored.frames > RATE // 2


def test_a_call_whose_folder_cannot_be_made_still_gets_a_final_manifest_once_there_is_room(tmp_path, monkeypatch):
    """The disk is full before the call's first frame (ENOSPC injected into the spool's
    folder creation, the real tmpfs is in tests/integration/test_disk_full.py): the call ends
    at once as disk_full with nothing recorded; its final manifest (no chunk, 0 frames) is
    kept, and written with its folder as soon as the folder can be made. No half-made folder
    or leaked lock is left by the failed attempts."""
    import errno

    from callrec_desktop import spool as spool_mod

    p = pipeline(tmp_path, two_tones(3.0), settings("flac", chunk_seconds=1.0))
    real_write = spool_mod.write_atomic
    refused = []

    def write_atomic(path, data):
        if path.name == "manifest.json" and len(refused) < 2:  # the folder, then its first retry
            refused.append(path)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(spool_mod, "write_atomic", write_atomic)
    events = []
    p.recorder.add_listener(events.append)
    call_id = p.recorder.start_call("01443 425002", "Council Tax", at_frame=0)
    results = p.recorder.run()
    assert len(refused) == 2
    [error] = [e for e in events if e.kind == "error"]
    assert error.call_id == call_id and "disk is full" in str(error.detail)
    [m] = results.manifests
    assert (m.call_id, m.status, m.end.reason, m.frames, m.chunks) == (call_id, "complete", "disk_full", 0, ())
    assert [p_.name for p_ in p.spool.calls_dir.iterdir()] == [call_id]  # no .new-* left behind
    assert not p.spool.is_locked(call_id)
    assert Manifest.from_json(p.spool.manifest_bytes(call_id)) == m
    assert p.uploader.drain(10)
    from callrec_desktop.archive import load_manifest, verify_call

    assert verify_call(p.store, load_manifest(p.store, call_id)) == []
