"""The access log: one new object per event, never overwritten; purposes from the notice."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from callrec_desktop.governance.access_log import AccessEvent, AccessLog, AccessLogError, genesis
from callrec_desktop.governance.purposes import PURPOSES, Purpose, PurposeError, label
from callrec_desktop.storage import layout
from callrec_desktop.storage.folder import FolderStore

CALL = "20261129T092233Z-3f9a1c0b7d2e"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1500)
        return self.now


@pytest.fixture
def store(tmp_path) -> FolderStore:
    (tmp_path / "store").mkdir()
    return FolderStore(tmp_path / "store")


def objects(store: FolderStore) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list(layout.access_prefix(CALL))}


def test_two_plays_are_two_objects_and_nothing_is_overwritten(store):
    log = AccessLog(store, user="tl-anne", workstation="tl-pc-1",
                    clock=Clock(datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc)))
    first = log.record("play", CALL, "complaint", detail={"from_seconds": 0})
    before = objects(store)
    second = log.record("play", CALL, "complaint")
    after = objects(store)
    assert len(before) == 1 and len(after) == 2 and first.event_id != second.event_id
    assert all(after[k] == v for k, v in before.items())  # the first object is untouched
    key = layout.access_key(CALL, first.event_id)
    doc = json.loads(after[key])
    assert doc == {"schema_version": 2, "event_id": first.event_id, "call_id": CALL, "action": "play",
                   "purpose": "complaint", "reason": None, "user": "tl-anne", "workstation": "tl-pc-1",
                   "at": "2026-11-29T10:15:01.500Z", "detail": {"from_seconds": 0}, "label": None,
                   "seq": 1, "prev": [{"event_id": None, "sha256": genesis(CALL)}]}
    second_doc = json.loads(after[layout.access_key(CALL, second.event_id)])
    assert second_doc["seq"] == 2 and second_doc["prev"] == [
        {"event_id": first.event_id, "sha256": hashlib.sha256(after[key]).hexdigest()}]
    assert key == f"access/2026/11/29/{CALL}/20261129T101501500Z-{first.event_id[-12:]}.json"


def test_history_is_sorted_by_time_and_reports_unreadable_events(store):
    clock = Clock(datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc))
    log = AccessLog(store, user="tl-anne", workstation="tl-pc-1", clock=clock)
    other = AccessLog(store, user="tl-bob", workstation="tl-pc-2", clock=clock)
    a = log.record("export", CALL, "fraud_investigation", detail={"out_format": "wav"})
    b = other.record("play", CALL, "other", reason="Subject access request SAR-2026-114")
    c = log.record("note", CALL, "staff_training")
    bad = layout.access_key(CALL, "20261129T090000000Z-0123456789ab")
    body = b"{not json"
    store.put(bad, body, sha256=hashlib.sha256(body).hexdigest(), metadata={}, content_type="application/json")
    history = AccessLog(store, user="dpo", workstation="x").history(CALL)
    assert [e.event_id for e in history] == [a.event_id, b.event_id, c.event_id]
    assert [(e.user, e.action, e.purpose) for e in history] == [
        ("tl-anne", "export", "fraud_investigation"), ("tl-bob", "play", "other"), ("tl-anne", "note", "staff_training")]
    assert history[1].reason == "Subject access request SAR-2026-114"
    assert [k for k, _ in history.problems] == [bad]
    assert AccessLog(store, user="dpo", workstation="x").history("20261130T000000Z-3f9a1c0b7d2e") == []


def test_an_existing_key_is_never_overwritten(store, monkeypatch):
    log = AccessLog(store, user="tl-anne", workstation="pc")
    event = log.record("play", CALL, "complaint")
    monkeypatch.setattr(layout, "new_event_id", lambda at: event.event_id)  # a collision (or a bug)
    original = store.get(layout.access_key(CALL, event.event_id))
    with pytest.raises(AccessLogError, match="never overwritten"):
        log.record("play", CALL, "staff_safety")
    assert store.get(layout.access_key(CALL, event.event_id)) == original


@pytest.mark.parametrize("purpose, reason, message", [
    ("curiosity", None, "not one of the privacy notice's purposes"),
    ("", None, "not one of"),
    ("other", None, "needs a reason"),
    ("other", "   ", "needs a reason"),
    ("complaint", "x" * 501, "at most 500"),
])
def test_purpose_validation(store, purpose, reason, message):
    with pytest.raises(PurposeError, match=message):
        Purpose(purpose, reason)
    with pytest.raises(PurposeError, match=message):
        AccessLog(store, user="u", workstation="w").record("play", CALL, purpose, reason)
    assert list(store.list("access/")) == []


def test_purposes_are_the_notices_with_labels():
    assert set(PURPOSES) == {"complaint", "fraud_investigation", "staff_training", "staff_safety", "other"}
    assert "complaint" in label("complaint").lower() and "training" in label("staff_training")
    assert Purpose("other", "  SAR  ").reason == "SAR" and Purpose("complaint", "").reason is None


def test_bad_actions_and_ids_are_refused(store):
    log = AccessLog(store, user="u", workstation="w")
    with pytest.raises(ValueError, match="action"):
        log.record("delete", CALL, "complaint")
    with pytest.raises(ValueError, match="not a call id"):
        log.record("play", "../../etc", "complaint")
    with pytest.raises(ValueError):
        AccessLog(store, user=" ", workstation="w")
    for bad in ("20261129T101500Z-0123456789ab", "20261129T101500123Z-0123456789AB", "../x", "20261331T101500123Z-0123456789ab"):
        with pytest.raises(layout.InvalidKeyError):
            layout.access_key(CALL, bad)
        with pytest.raises(layout.InvalidKeyError):
            layout.note_key(CALL, bad)
    assert layout.notes_prefix(CALL) == f"notes/2026/11/29/{CALL}/"


# ---- who wrote it, and the hash chain ------------------------------------------------------------

def _login() -> str:
    import os
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def test_the_author_is_the_os_login_and_a_typed_id_only_a_label(store, monkeypatch):
    monkeypatch.setenv("USER", "head-of-service")  # anyone can set these; they are not read
    monkeypatch.setenv("LOGNAME", "head-of-service")
    monkeypatch.setenv("USERNAME", "head-of-service")
    event = AccessLog(store, workstation="tl-pc-1", label="head-of-service").record("play", CALL, "complaint")
    doc = json.loads(store.get(layout.access_key(CALL, event.event_id)))
    assert (doc["user"], doc["label"]) == (_login(), "head-of-service") != ("head-of-service", "head-of-service")
    assert [e.user for e in AccessLog(store, workstation="x").history(CALL)] == [_login()]


def _put_raw(store, key: str, body: bytes) -> None:
    store.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={}, content_type="application/json")


def _path(store: FolderStore, key: str):
    return store.root / key


def _chain(store, n: int = 4) -> list:
    clock = Clock(datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc))
    anne = AccessLog(store, user="tl-anne", workstation="pc-1", clock=clock)
    bob = AccessLog(store, user="tl-bob", workstation="pc-2", clock=clock)
    return [(anne if i % 2 == 0 else bob).record("play", CALL, "complaint", detail={"i": i}) for i in range(n)]


def verify(store):
    return AccessLog(store, user="dpo", workstation="x").verify(CALL)


def test_a_clean_chain_verifies(store):
    events = _chain(store)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    report = verify(store)
    assert report.ok and report.faults == [] and report.events == 4
    assert report.summary() == "ok: 4 chained event(s)"


def test_a_removed_event_is_reported(store):
    a, b, c, d = _chain(store)
    _path(store, layout.access_key(CALL, b.event_id)).unlink()
    report = verify(store)
    assert not report.ok
    assert report.faults == [f"removed: event {b.event_id}, named by {c.event_id}, is not in the store"]


def test_a_changed_event_is_reported(store):
    a, b, c, d = _chain(store)
    path = _path(store, layout.access_key(CALL, b.event_id))
    path.write_bytes(path.read_bytes().replace(b'"complaint"', b'"staff_training"'))
    assert AccessLog(store, user="dpo", workstation="x").history(CALL)[1].purpose == "staff_training"  # readable
    report = verify(store)
    assert report.faults[0].startswith(f"changed: event {b.event_id} is not what {c.event_id} names")
    assert len(report.faults) == 1


def test_an_unreadable_object_in_the_log_is_a_fault(store):
    _chain(store, 2)
    _put_raw(store, layout.access_key(CALL, "20261129T101502000Z-0123456789ab"), b"{not json")
    report = verify(store)
    assert len(report.faults) == 1 and report.faults[0].startswith("changed: access/2026/11/29/")
    assert "not a readable access event" in report.faults[0]


def _forged(store, like, *, event_id: str, at: str, seq: int, prev: list) -> str:
    doc = json.loads(store.get(layout.access_key(CALL, like.event_id)))
    doc.update(event_id=event_id, at=at, seq=seq, prev=prev, user="head-of-service", detail={"forged": True})
    key = layout.access_key(CALL, event_id)
    _put_raw(store, key, (json.dumps(doc, sort_keys=True) + "\n").encode())
    return key


def _digest(store, event) -> str:
    return hashlib.sha256(store.get(layout.access_key(CALL, event.event_id))).hexdigest()


def test_an_inserted_event_is_reported_and_not_merged_by_later_writers(store):
    a, b, c, d = _chain(store)
    # a well-formed event "between" a and b, naming a as b does: nothing later names it
    x = "20261129T101502000Z-0123456789ab"
    _forged(store, a, event_id=x, at="2026-11-29T10:15:02.000Z", seq=2,
            prev=[{"event_id": a.event_id, "sha256": _digest(store, a)}])
    report = verify(store)
    assert report.faults == [f"inserted: event {x} (seq 2) is named by no later event, though the chain has gone "
                             f"on to seq 4"]
    # the next honest event names d only, so the insertion stays visible
    e = AccessLog(store, user="tl-anne", workstation="pc-1").record("play", CALL, "complaint")
    assert e.prev == ((d.event_id, _digest(store, d)),)
    assert verify(store).faults[0].startswith(f"inserted: event {x}")


def test_an_unchained_event_added_after_the_chain_began_is_inserted(store):
    a, b = _chain(store, 2)
    old = AccessEvent("20261129T101502000Z-0123456789ab", CALL, "play", "complaint", None, "head-of-service", "pc",
                      datetime(2026, 11, 29, 10, 15, 2, tzinfo=timezone.utc))
    _put_raw(store, layout.access_key(CALL, old.event_id), old.to_json())
    assert json.loads(old.to_json())["schema_version"] == 1
    report = verify(store)
    assert report.faults[0].startswith(f"inserted: unchained event {old.event_id} is not sealed by the chain")


def test_reordered_events_are_reported(store):
    a, b, c, d = _chain(store)
    kb, kc = (_path(store, layout.access_key(CALL, e.event_id)) for e in (b, c))
    bb, bc = kb.read_bytes(), kc.read_bytes()
    kb.write_bytes(bc)
    kc.write_bytes(bb)  # the listing (and the history sorted by key) now shows c before b
    report = verify(store)
    assert report.faults[0] == (f"reordered: {layout.access_key(CALL, b.event_id)} holds event {c.event_id} of call "
                                f"{CALL}, not the event its key names")


def test_an_event_dated_before_the_one_it_follows_is_reordered(store):
    a, b, c, d = _chain(store)
    # a forged event that names the head properly but claims a time before it
    x = "20261129T101501000Z-0123456789ab"
    _forged(store, a, event_id=x, at="2026-11-29T10:15:01.000Z", seq=5,
            prev=[{"event_id": d.event_id, "sha256": _digest(store, d)}])
    report = verify(store)
    assert report.faults[0].startswith(f"reordered: event {x} (2026-11-29T10:15:01.000Z) is dated before {d.event_id}")
    # and one whose seq does not follow what it names
    y = "20261129T101600000Z-0123456789ab"
    _forged(store, a, event_id=y, at="2026-11-29T10:16:00.000Z", seq=9,
            prev=[{"event_id": x, "sha256": hashlib.sha256(store.get(layout.access_key(CALL, x))).hexdigest()}])
    assert any(f.startswith(f"reordered: event {y} has seq 9 but follows events of seq [5]") for f in verify(store).faults)


class RacingStore:
    """Two writers list the call's events, and only then either of them writes: what two team
    leaders pressing Play on the same call at the same moment can do."""

    def __init__(self, inner: FolderStore, barrier) -> None:
        self.inner, self.barrier, self.description = inner, barrier, inner.description

    def list(self, prefix: str):
        keys = list(self.inner.list(prefix))
        self.barrier.wait(timeout=30)
        return iter(keys)

    def get(self, key, **kw):
        return self.inner.get(key, **kw)

    def put(self, *a, **kw):
        return self.inner.put(*a, **kw)


def test_two_writers_at_once_make_a_fork_reported_as_concurrent_and_merged_by_the_next(store):
    import threading

    [a] = _chain(store, 1)
    barrier = threading.Barrier(2)
    racing = RacingStore(store, barrier)
    results: dict[str, object] = {}

    def play(user: str) -> None:
        results[user] = AccessLog(racing, user=user, workstation=user).record("play", CALL, "complaint")

    threads = [threading.Thread(target=play, args=(u,)) for u in ("tl-anne", "tl-bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    b1, b2 = results["tl-anne"], results["tl-bob"]
    assert b1.seq == b2.seq == 2 and b1.prev == b2.prev == ((a.event_id, _digest(store, a)),)  # a fork
    report = verify(store)
    assert report.ok and report.concurrent == 2
    assert "2 concurrent (written at the same moment as another; not tampering)" in report.summary()
    c = AccessLog(store, user="tl-carol", workstation="pc-3").record("export", CALL, "complaint")
    assert c.seq == 3 and sorted(c.prev) == sorted([(b1.event_id, _digest(store, b1)), (b2.event_id, _digest(store, b2))])
    assert verify(store).ok
    _path(store, layout.access_key(CALL, b2.event_id)).unlink()  # either branch is covered by the merge
    assert verify(store).faults == [f"removed: event {b2.event_id}, named by {c.event_id}, is not in the store"]


def test_old_unchained_events_are_reported_as_such_then_sealed_by_the_first_chained_one(store):
    olds = [AccessEvent(f"20261129T10150{i}000Z-0123456789a{i}", CALL, "play", "complaint", None, "tl-anne", "pc",
                        datetime(2026, 11, 29, 10, 15, i, tzinfo=timezone.utc)) for i in (1, 2)]
    for old in olds:
        _put_raw(store, layout.access_key(CALL, old.event_id), old.to_json())
    report = verify(store)
    assert report.ok and report.unchained == 2
    assert report.summary() == "2 event(s), all unchained (before version 2 of the access log): nothing to verify"
    first = AccessLog(store, user="tl-anne", workstation="pc").record("play", CALL, "complaint")
    assert first.seq == 1 and first.prev == ((None, genesis(CALL)),) + tuple(
        (o.event_id, hashlib.sha256(o.to_json()).hexdigest()) for o in olds)
    report = verify(store)
    assert report.ok and report.summary() == ("ok: 1 chained event(s); 2 unchained (before version 2 of the access "
                                              "log), sealed by the first chained event")
    path = _path(store, layout.access_key(CALL, olds[0].event_id))
    path.write_bytes(path.read_bytes().replace(b"tl-anne", b"tl-bob"))
    assert verify(store).faults[0].startswith(f"changed: event {olds[0].event_id} is not what {first.event_id} names")


def test_a_chain_cannot_be_moved_to_another_call(store):
    [a] = _chain(store, 1)
    other = "20261129T092233Z-000000000000"
    doc = json.loads(store.get(layout.access_key(CALL, a.event_id)))
    doc["call_id"] = other
    _put_raw(store, layout.access_key(other, a.event_id), (json.dumps(doc, sort_keys=True) + "\n").encode())
    faults = AccessLog(store, user="dpo", workstation="x").verify(other).faults
    assert faults == [f"changed: {a.event_id} names a genesis that is not this call's"]
    assert AccessLog(store, user="dpo", workstation="x").calls() == sorted([CALL, other])


def test_calls_lists_only_well_formed_call_prefixes(store):
    _chain(store, 1)
    for key in ("access/x.json", "access/2026/11/29/not-a-call/20261129T101500123Z-0123456789ab.json",
                f"access/2026/11/30/{CALL}/20261129T101500123Z-0123456789ab.json"):  # the wrong day for the call
        _put_raw(store, key, b"{}")
    assert AccessLog(store, user="dpo", workstation="x").calls() == [CALL]
