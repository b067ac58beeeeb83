"""The uploader against the real FolderStore on tmp_path, fed by the real recorder.

Faults are injected by small wrappers around the real store (each says so); nothing here
mocks the store's own behaviour.
"""

from __future__ import annotations

from dataclasses import replace

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from callrec_desktop.archive import decode_call, load_manifest, verify_call
from callrec_desktop.audio.encoders import CodecSettings
from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.core.timeline import EventSource
from callrec_desktop.recorder import Identity, Recorder, RecordingSettings
from callrec_desktop.spool import Spool, spool_chunk_name
from callrec_desktop.storage.base import PermanentStoreError, PutReceipt, TransientStoreError
from callrec_desktop.storage import layout
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.layout import chunk_key, manifest_key
from callrec_desktop.uploader import UploadSettings, Uploader, read_status_file, spool_backlog

RATE = 16000
IDENTITY = Identity(agent="agent007", workstation="ws-test", app_version="test")
FAST = UploadSettings(initial_backoff_seconds=0.001, max_backoff_seconds=0.01, max_attempts_per_pass=3,
                      idle_poll_seconds=0.01)
ROOT = Path(__file__).resolve().parents[2]


class LoggingStore:
    """The real FolderStore, logging each put the store confirmed: (key, sha256, bytes)."""

    def __init__(self, inner: FolderStore) -> None:
        self.inner = inner
        self.description = inner.description
        self.calls = 0
        self.log: list[tuple[str, str, bytes]] = []

    def put(self, key, source, *, sha256, metadata, content_type) -> PutReceipt:
        self.calls += 1
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
        receipt = self.inner.put(key, source, sha256=sha256, metadata=metadata, content_type=content_type)
        self.log.append((key, sha256, data))
        return receipt

    def get(self, key):
        return self.inner.get(key)

    def list(self, prefix):
        return self.inner.list(prefix)


class FlakyStore(LoggingStore):
    """A fault-injecting wrapper around the real FolderStore: the first ``fail_first`` puts
    raise TransientStoreError (a store that is down for a while), then it behaves."""

    def __init__(self, inner: FolderStore, fail_first: int) -> None:
        super().__init__(inner)
        self.fail_first = fail_first

    def put(self, key, source, **kw) -> PutReceipt:
        if self.fail_first > 0:
            self.fail_first -= 1
            self.calls += 1
            raise TransientStoreError(f"{self.description} {key}: connection refused (injected)")
        return super().put(key, source, **kw)


class DeniedStore(LoggingStore):
    """A fault-injecting wrapper around the real FolderStore: every put is refused for good
    (what S3 says to a 403)."""

    def put(self, key, source, **kw) -> PutReceipt:
        self.calls += 1
        raise PermanentStoreError(f"{self.description} {key}: access denied (403, injected)")


class Crash(BaseException):
    """Stands for the process dying: nothing in the uploader may catch it."""


class CrashAfterPutStore(LoggingStore):
    """A fault-injecting wrapper around the real FolderStore: the put of ``crash_key`` really
    happens, then the process "dies" before the uploader hears back (so before its delete)."""

    def __init__(self, inner: FolderStore, crash_key: str) -> None:
        super().__init__(inner)
        self.crash_key = crash_key

    def put(self, key, source, **kw) -> PutReceipt:
        receipt = super().put(key, source, **kw)
        if key == self.crash_key:
            raise Crash(key)
        return receipt


def tones(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 1250 * t)], axis=1).astype(np.float32)


def record(spool: Spool, seconds: float = 3.5, chunk_seconds: float = 1.0, codec: str = "flac",
           payment: tuple[float, float] | None = None, listeners=()) -> Manifest:
    """One call through the real recorder into ``spool``; returns its final manifest."""
    settings = RecordingSettings(CodecSettings(codec), round(chunk_seconds * RATE), round(0.2 * RATE))
    rec = Recorder(SyntheticSource(tones(seconds), sample_rate=RATE, block_frames=800), spool, settings, IDENTITY,
                   listeners=listeners)
    rec.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    if payment:
        rec.start_payment(source=EventSource.SCRIPT, at_frame=round(payment[0] * RATE))
        rec.end_payment(source=EventSource.SCRIPT, at_frame=round(payment[1] * RATE))
    results = rec.run()
    assert not results.errors
    [m] = results.manifests
    return m


def store_for(tmp_path: Path) -> FolderStore:
    (tmp_path / "store").mkdir(exist_ok=True)
    return FolderStore(tmp_path / "store")


def store_objects(store: FolderStore) -> dict[str, bytes]:
    return {str(p.relative_to(store.root)): p.read_bytes() for p in store.root.rglob("*") if p.is_file()}


def spool_files(spool: Spool) -> dict[str, bytes]:
    return {str(p.relative_to(spool.root)): p.read_bytes() for p in spool.calls_dir.rglob("*") if p.is_file()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- order ---------------------------------------------------------------------------------


def test_provisional_manifest_first_then_each_chunk_before_any_manifest_that_lists_it(tmp_path):
    spool = Spool(tmp_path / "spool")
    store = LoggingStore(store_for(tmp_path))
    uploader = Uploader(spool, store, replace(FAST, provisional_manifest_seconds=0))  # every update goes
    deleted_after_put = []

    def pass_now(event):
        # Upload passes interleaved with recording, on the recorder thread: deterministic.
        if event.kind in ("call_opened", "manifest_written"):
            assert uploader.run_pass(), uploader.status()
            for key, _, _ in store.log:  # every chunk the store confirmed is gone from the spool ...
                if key.startswith("audio/"):
                    seq = int(key.rsplit("/", 1)[1][:6])
                    deleted_after_put.append(not any(c.seq == seq for c in spool.chunks(event.call_id) if c.sealed))

    m = record(spool, seconds=3.5, chunk_seconds=1.0, payment=(1.5, 2.2), listeners=[pass_now])
    assert uploader.drain(5)
    assert all(deleted_after_put) and deleted_after_put
    keys = [k for k, _, _ in store.log]
    mkey = manifest_key(m.call_id)
    # first the provisional manifest, naming no chunk
    first = Manifest.from_json(store.log[0][2])
    assert keys[0] == mkey and first.status == "recording" and first.chunks == ()
    # each chunk exactly once, in order, and before every manifest that lists it
    chunk_puts = [k for k in keys if k.startswith("audio/")]
    assert chunk_puts == [chunk_key(m.call_id, c.name) for c in m.chunks]
    for i, (key, digest, data) in enumerate(store.log):
        if key != mkey:
            continue
        listed = Manifest.from_json(data)
        for c in listed.chunks:
            j = keys.index(chunk_key(m.call_id, c.name))
            assert j < i, f"manifest put #{i} lists chunk {c.seq}, which was put at #{j}"
            assert store.log[j][1] == c.sha256
    # the final manifest goes last, and is the one the recorder wrote
    assert keys[-1] == mkey and Manifest.from_json(store.log[-1][2]) == m
    assert sum(1 for k in keys if k == mkey) >= 3  # provisional, updates, final
    assert load_manifest(store.inner, m.call_id) == m and verify_call(store.inner, m) == []
    assert spool.call_ids() == []


# ---- transient and permanent errors ---------------------------------------------------------


def test_a_store_down_for_a_while_gets_everything_exactly_once_with_matching_checksums(tmp_path):
    spool = Spool(tmp_path / "spool")
    m1 = record(spool, seconds=2.5)
    m2 = record(spool, seconds=1.5, codec="opus")
    spooled = spool_files(spool)
    store = FlakyStore(store_for(tmp_path), fail_first=7)  # more than one pass's attempts (3)
    uploader = Uploader(spool, store, FAST)
    assert uploader.drain(20), uploader.status()
    assert store.fail_first == 0
    confirmed = Counter(k for k, _, _ in store.log)
    for m in (m1, m2):
        for c in m.chunks:
            key = chunk_key(m.call_id, c.name)
            assert confirmed[key] == 1
            data = store.inner.get(key)
            assert (len(data), sha(data)) == (c.bytes, c.sha256)
            assert data == spooled[f"calls/{m.call_id}/{spool_chunk_name(c.seq, c.first_frame, m.audio.codec)}"]
        assert confirmed[manifest_key(m.call_id)] == 1
        assert load_manifest(store.inner, m.call_id) == m
        assert verify_call(store.inner, m) == []
    assert len(store_objects(store.inner)) == len(m1.chunks) + len(m2.chunks) + 2
    status = uploader.status()
    assert status.healthy and status.backlog_chunks == 0 and status.objects_uploaded == len(store.log)
    assert spool.call_ids() == []


def test_a_brief_outage_is_ridden_out_within_one_pass_with_backoff(tmp_path):
    spool = Spool(tmp_path / "spool")
    m = record(spool, seconds=1.5)
    store = FlakyStore(store_for(tmp_path), fail_first=2)  # fewer than the attempts per pass (3)
    waits = []

    class RecordingWaits(Uploader):
        """Records the backoff waits tenacity asks for instead of sleeping (no timing asserts)."""

        def _interruptible_sleep(self, seconds):
            waits.append(seconds)

    uploader = RecordingWaits(spool, store, UploadSettings(initial_backoff_seconds=0.02, max_backoff_seconds=0.1,
                                                           max_attempts_per_pass=3))
    assert uploader.run_pass() is True
    assert len(waits) == 2, waits  # backed off twice, as configured
    assert all(0 <= w <= 0.1 for w in waits), waits  # full jitter, capped at max_backoff_seconds
    assert store.calls == len(m.chunks) + 1 + 2
    assert uploader.status().healthy and spool.call_ids() == []


def test_a_permanent_error_is_reported_and_not_retried_in_a_tight_loop(tmp_path):
    spool = Spool(tmp_path / "spool")
    m = record(spool, seconds=2.0)
    before = spool_files(spool)
    store = DeniedStore(store_for(tmp_path))
    statuses = []
    settings = UploadSettings(initial_backoff_seconds=0.01, max_backoff_seconds=0.5, max_attempts_per_pass=8,
                              idle_poll_seconds=0.01)
    uploader = Uploader(spool, store, settings, on_status=statuses.append)
    uploader.start()
    try:
        seen = threading.Event()
        for _ in range(200):  # bounded wait for the first failed pass
            if uploader.status().last_error:
                break
            seen.wait(0.01)
        seen.wait(1.2)  # an observation window: a tight loop would put hundreds of times
    finally:
        uploader.stop(timeout=5)
    status = uploader.status()
    assert status.last_error is not None and "access denied" in status.last_error
    assert status.last_error_permanent is True
    assert not status.healthy
    assert 1 <= store.calls <= 4, store.calls  # one put per pass, passes max_backoff (0.5 s) apart
    assert spool_files(spool) == before  # nothing deleted: nothing was confirmed
    assert status.backlog_chunks == len(m.chunks)


def test_a_store_that_confirms_other_bytes_never_gets_the_spool_file_deleted(tmp_path):
    class WrongReceiptStore(LoggingStore):
        """A fault-injecting wrapper around the real FolderStore: it stores the object but
        confirms a different checksum (a store or proxy that mangled it)."""

        def put(self, key, source, **kw):
            r = super().put(key, source, **kw)
            return PutReceipt(r.key, r.size, "0" * 64)

    spool = Spool(tmp_path / "spool")
    record(spool, seconds=1.5)
    before = spool_files(spool)
    uploader = Uploader(spool, WrongReceiptStore(store_for(tmp_path)), FAST)
    assert uploader.run_pass() is False
    assert spool_files(spool) == before
    assert uploader.status().last_error_permanent and "expected" in uploader.status().last_error


# ---- what the spool holds ---------------------------------------------------------------------


def test_a_chunk_changed_in_the_spool_is_quarantined_reported_and_never_uploaded(tmp_path):
    spool = Spool(tmp_path / "spool")
    m = record(spool, seconds=3.0)
    c2 = m.chunks[1]
    path = spool.call_path(m.call_id) / spool_chunk_name(c2.seq, c2.first_frame, "flac")
    rotten = bytearray(path.read_bytes())
    rotten[len(rotten) // 2] ^= 0x01
    path.write_bytes(bytes(rotten))
    store = LoggingStore(store_for(tmp_path))
    uploader = Uploader(spool, store, FAST)
    assert uploader.run_pass() is False
    status = uploader.status()
    assert status.last_error_permanent and "corrupt" in status.last_error and m.call_id in status.last_error
    q = spool.quarantine_dir / m.call_id / path.name
    assert q.read_bytes() == bytes(rotten)
    assert "differs from its manifest entry" in (q.parent / (q.name + ".reason.txt")).read_text()
    uploader.drain(5)
    assert chunk_key(m.call_id, c2.name) not in [k for k, _, _ in store.log]
    with pytest.raises(Exception):
        store.inner.get(chunk_key(m.call_id, c2.name))
    # the call is still findable, and the loss is visible to anyone who verifies it
    stored = load_manifest(store.inner, m.call_id)
    assert [f for f in verify_call(store.inner, stored) if "missing" in f] == [
        f"{m.call_id}: chunk 2 is missing ({chunk_key(m.call_id, c2.name)})"]
    assert q.exists()


def test_backlog_numbers_match_the_spool(tmp_path):
    spool = Spool(tmp_path / "spool")
    record(spool, seconds=2.5)
    record(spool, seconds=1.2, codec="opus")
    uploader = Uploader(spool, DeniedStore(store_for(tmp_path)), FAST)
    uploader.run_pass()
    chunks = [p for p in spool.calls_dir.rglob("*") if p.suffix in (".flac", ".opus")]
    status = uploader.status()
    assert (status.backlog_chunks, status.backlog_bytes, status.backlog_calls) == (
        len(chunks), sum(p.stat().st_size for p in chunks), 2)
    assert len(chunks) == 3 + 2
    assert status.oldest_age_seconds is not None and 0 <= status.oldest_age_seconds < 60
    assert spool_backlog(spool)["backlog_chunks"] == len(chunks)
    ok = Uploader(spool, store_for(tmp_path), FAST)
    assert ok.drain(5)
    status = ok.status()
    assert (status.backlog_chunks, status.backlog_bytes, status.backlog_calls, status.oldest_age_seconds) == (0, 0, 0, None)


def test_a_crash_between_put_and_delete_costs_only_a_harmless_re_put(tmp_path):
    spool = Spool(tmp_path / "spool")
    m = record(spool, seconds=3.0)
    key2 = chunk_key(m.call_id, m.chunks[1].name)
    inner = store_for(tmp_path)
    with pytest.raises(Crash):
        Uploader(spool, CrashAfterPutStore(inner, key2), FAST).run_pass()
    # the put happened, the spool file is still there
    spooled2 = spool.call_path(m.call_id) / spool_chunk_name(2, m.chunks[1].first_frame, "flac")
    assert spooled2.exists() and inner.get(key2) == spooled2.read_bytes()
    obj = inner.root / key2
    st = obj.stat()
    before = store_objects(inner)
    store = LoggingStore(inner)
    assert Uploader(spool, store, FAST).drain(5)
    after = store_objects(inner)
    assert after[key2] == before[key2]  # same content ...
    assert (obj.stat().st_ino, obj.stat().st_mtime_ns) == (st.st_ino, st.st_mtime_ns)  # ... not even rewritten
    assert sorted(after) == sorted([chunk_key(m.call_id, c.name) for c in m.chunks] + [manifest_key(m.call_id)])
    assert not [p for p in inner.root.rglob("*") if p.name.startswith(".")]  # no temp leftovers
    assert verify_call(inner, load_manifest(inner, m.call_id)) == []
    audio = decode_call(inner, m)
    assert len(audio) == m.frames and audio[:, 0].std() > 0.1


def test_a_part_left_beside_a_complete_manifest_is_quarantined_not_deleted(tmp_path):
    """A recording that failed mid-chunk leaves a .part and a complete manifest (end: error).
    Removing the uploaded call folder must not take the .part with it."""
    spool = Spool(tmp_path / "spool")
    m = record(spool, seconds=1.5)
    part = spool.call_path(m.call_id) / (spool_chunk_name(3, 2 * RATE, "flac") + ".part")
    part.write_bytes(b"fLaC torn tail")
    assert Uploader(spool, store_for(tmp_path), FAST).drain(5)
    assert spool.call_ids() == []
    q = spool.quarantine_dir / m.call_id / part.name
    assert q.read_bytes() == b"fLaC torn tail"
    assert (q.parent / (q.name + ".reason.txt")).exists()


def test_a_call_still_being_recorded_is_not_removed_from_the_spool(tmp_path):
    spool = Spool(tmp_path / "spool")
    from tests.unit.test_spool import make_manifest

    call = spool.create_call(make_manifest())
    uploader = Uploader(spool, store_for(tmp_path), FAST)
    assert uploader.run_pass()
    assert spool.call_ids() == [call.path.name]
    call.release()


# ---- callrec status --------------------------------------------------------------------------


def test_callrec_status_shows_the_backlog_and_the_last_error(tmp_path):
    spool = Spool(tmp_path / "spool")
    record(spool, seconds=2.5)
    uploader = Uploader(spool, DeniedStore(store_for(tmp_path)), FAST, status_file=spool.root / "upload-status.json")
    uploader.run_pass()
    doc = read_status_file(spool.root / "upload-status.json")
    assert "access denied" in doc["last_error"] and doc["last_error_permanent"] is True
    chunks = [p for p in spool.calls_dir.rglob("*") if p.suffix == ".flac"]
    size = sum(p.stat().st_size for p in chunks)
    env = dict(os.environ, HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    env.pop("CALLREC_CONFIG", None)
    script = Path(sys.executable).parent / "callrec"  # the installed console script
    callrec = [str(script)] if script.exists() else [sys.executable, "-m", "callrec_desktop.cli"]
    out = subprocess.run(callrec + ["status", "--spool", str(spool.root)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert f"backlog:      {len(chunks)} chunk(s), {size} bytes in 1 call(s)" in out.stdout
    assert f"last error:   {doc['last_error']}" in out.stdout
    assert "last success: never" in out.stdout
    js = subprocess.run(callrec + ["status", "--spool", str(spool.root), "--json"], capture_output=True, text=True,
                        timeout=60, cwd=ROOT, env=env)
    assert js.returncode == 0, js.stderr
    got = json.loads(js.stdout)
    assert (got["backlog_chunks"], got["backlog_bytes"], got["backlog_calls"]) == (len(chunks), size, 1)
    assert got["last_error"] == doc["last_error"] and got["last_error_permanent"] is True


def test_a_call_stuck_on_a_permanent_error_stays_reported_while_others_upload(tmp_path):
    """One call's chunk is refused for good (a fault-injecting wrapper around the real folder
    store denies that call's keys); another call uploads fine. The status must keep naming the
    stuck call instead of being cleared by the other call's successes."""
    spool = Spool(tmp_path / "spool")
    bad = record(spool, seconds=1.0)
    good = record(spool, seconds=1.0)
    real = store_for(tmp_path)

    class DenyOneCall:
        description = real.description

        def put(self, key, source, **kw):
            if bad.call_id in key and "/audio/" in f"/{key}":
                raise PermanentStoreError(f"{real.description} {key}: access denied (403)")
            return real.put(key, source, **kw)

        def get(self, key):
            return real.get(key)

        def list(self, prefix):
            return real.list(prefix)

    uploader = Uploader(spool, DenyOneCall())
    assert uploader.run_pass() is False
    status = uploader.status()
    assert spool.call_ids() == [bad.call_id]  # the good call went, the bad one stays spooled
    assert status.last_error_permanent and bad.call_id in status.last_error and "403" in status.last_error
    assert status.objects_uploaded >= len(good.chunks) + 1



def test_provisional_manifest_updates_are_throttled_but_the_final_one_is_not(tmp_path):
    """Re-sending the growing provisional manifest at every chunk would grow the bytes sent with
    the square of the call's length: the store gets the first at once, then at most one per
    ``provisional_manifest_seconds``, and the final one immediately."""
    spool = Spool(tmp_path / "spool")
    store = LoggingStore(store_for(tmp_path))
    uploader = Uploader(spool, store, replace(FAST, provisional_manifest_seconds=3600))

    def pass_now(event):
        if event.kind in ("call_opened", "manifest_written"):
            assert uploader.run_pass(), uploader.status()

    m = record(spool, seconds=3.5, chunk_seconds=0.5, listeners=[pass_now])
    assert uploader.drain(5)
    mkey = manifest_key(m.call_id)
    sent = [Manifest.from_json(data) for key, _, data in store.log if key == mkey]
    assert [x.status for x in sent] == ["recording", "complete"]
    assert sent[0].chunks == () and sent[-1] == m
    assert len([k for k, _, _ in store.log if k.startswith("audio/")]) == len(m.chunks) == 7


# ---- closing -------------------------------------------------------------------------------


def test_closing_makes_a_last_pass_so_a_call_ended_just_before_reaches_the_store(tmp_path):
    """The call ends, the app closes at once: the worker is asleep (a long poll, nobody woke it),
    so without a last pass the store would keep only what it had. ``finish`` stops the worker
    and uploads the rest, final manifest included."""
    spool = Spool(tmp_path / "spool")
    store = store_for(tmp_path)
    uploader = Uploader(spool, store, replace(FAST, idle_poll_seconds=3600))
    uploader.start()
    m = record(spool)  # nobody calls wake(): the worker sleeps through it
    assert uploader.finish(stop_timeout=5, upload_timeout=5)
    assert spool.call_ids() == []
    assert load_manifest(store, m.call_id) == m and m.status == "complete"
    assert verify_call(store, m) == []


def test_closing_with_the_store_down_gives_up_in_time_and_keeps_everything(tmp_path):
    spool = Spool(tmp_path / "spool")
    store = FlakyStore(store_for(tmp_path), fail_first=10**6)
    uploader = Uploader(spool, store, replace(FAST, idle_poll_seconds=3600))
    uploader.start()
    m = record(spool)
    before = spool_files(spool)
    assert uploader.finish(stop_timeout=5, upload_timeout=0.5) is False
    assert store.calls > 0 and store_objects(store.inner) == {}
    assert spool_files(spool) == before and spool.call_ids() == [m.call_id]


# ---- late arrivals -------------------------------------------------------------------------


def test_a_manifest_uploaded_on_a_later_day_leaves_an_arrival_marker_for_that_day(tmp_path):
    """A PC off over a weekend uploads Friday's call on Monday: its manifest goes into Friday's
    partition, and Monday's ``arrivals/`` names it (after the manifest itself), so an
    incremental catalogue sync that lists only recent days still finds it."""
    spool = Spool(tmp_path / "spool")
    store = LoggingStore(store_for(tmp_path))
    m = record(spool)
    started = m.started_at.date()
    monday = datetime.combine(started + timedelta(days=3), datetime.min.time(), timezone.utc) + timedelta(hours=9)
    assert Uploader(spool, store, FAST, utc_now=lambda: monday).drain(5)
    marker = layout.arrival_key(m.call_id, monday.date())
    keys = [k for k, _, _ in store.log]
    assert keys.index(marker) == keys.index(manifest_key(m.call_id)) + 1
    doc = json.loads(store.inner.get(marker))
    assert doc == {"call_id": m.call_id, "manifest": manifest_key(m.call_id), "status": "complete",
                   "uploaded_on": monday.date().isoformat()}
    assert [k for k in keys if k.startswith("arrivals/")] == [marker]


def test_a_manifest_uploaded_the_day_its_call_started_leaves_no_arrival_marker(tmp_path):
    spool = Spool(tmp_path / "spool")
    store = LoggingStore(store_for(tmp_path))
    m = record(spool)
    assert Uploader(spool, store, FAST, utc_now=lambda: m.started_at).drain(5)
    assert not [k for k, _, _ in store.log if k.startswith("arrivals/")]
    assert load_manifest(store.inner, m.call_id) == m


def test_each_store_request_is_in_the_status_while_it_is_in_flight(tmp_path):
    """The window's "slow to answer" banner reads ``request_started``: set, from the clock,
    when a put begins, and cleared once it returns, whether it succeeded or failed."""
    import time

    class WatchedStore(FlakyStore):
        """The real FolderStore (failing its first put), noting what the status said during each put."""

        def put(self, key, source, **kw) -> PutReceipt:
            seen.append(uploader.status().request_started)
            return super().put(key, source, **kw)

    spool = Spool(tmp_path / "spool")
    m = record(spool, seconds=2.0)
    seen: list = []
    statuses = []
    before = time.monotonic()
    uploader = Uploader(spool, WatchedStore(store_for(tmp_path), fail_first=1), FAST, on_status=statuses.append)
    assert uploader.run_pass() is True
    after = time.monotonic()
    assert len(seen) == len(m.chunks) + 1 + 1  # every chunk, the manifest, and the retried first put
    assert all(s is not None and before <= s <= after for s in seen), seen
    assert len(set(seen)) == len(seen)  # each request its own start
    assert uploader.status().request_started is None
    started = [s.request_started for s in statuses]
    assert [v for v in started if v is not None] == seen
    # each request cleared as soon as it returned, the failed one too
    assert all(started[i + 1] is None for i, v in enumerate(started) if v is not None)
