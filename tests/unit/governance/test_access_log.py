"""The access log: one new object per event, never overwritten; purposes from the notice."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest

from callrec_desktop.governance.access_log import AccessLog, AccessLogError
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
    assert doc == {"schema_version": 1, "event_id": first.event_id, "call_id": CALL, "action": "play",
                   "purpose": "complaint", "reason": None, "user": "tl-anne", "workstation": "tl-pc-1",
                   "at": "2026-11-29T10:15:01.500Z", "detail": {"from_seconds": 0}}
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
