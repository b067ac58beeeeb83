"""Notes: one central object each, visible to every team leader after a sync."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from callrec_desktop.catalog import Catalog, CatalogFilter
from callrec_desktop.notes import MAX_TEXT, NoteError, NoteStore
from callrec_desktop.storage import layout
from tests.unit.test_catalog import DAY3, library, library_template  # noqa: F401 (fixtures)


def test_a_note_is_one_object_and_lists_in_call_order(library):
    m = library.calls["long"]
    clock_at = [datetime(2026, 3, 6, 10, 0, tzinfo=timezone.utc)]

    def clock():
        clock_at[0] += timedelta(seconds=1)
        return clock_at[0]

    notes = NoteStore(library.store, clock=clock)
    late = notes.add(m.call_id, "tl-anne", 4.0, "Offered a call back", tags=["good-practice"], end_seconds=5.0,
                     manifest=m)
    early = notes.add(m.call_id, "tl-anne", 0.5, "Greeting missing the department name", manifest=m)
    keys = list(library.store.list(layout.notes_prefix(m.call_id)))
    assert keys == sorted([layout.note_key(m.call_id, late.note_id), layout.note_key(m.call_id, early.note_id)])
    assert notes.list(m.call_id) == [early, late]
    assert late.tags == ("good-practice",) and late.end_seconds == 5.0 and late.author == "tl-anne"
    assert notes.list(library.calls["pay"].call_id) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "needs some text"),
    ({"text": "   "}, "needs some text"),
    ({"text": "x" * (MAX_TEXT + 1)}, "at most 4000"),
    ({"at_seconds": -1}, ">= 0"),
    ({"at_seconds": float("nan")}, ">= 0"),
    ({"at_seconds": 9.0}, "after the end of the call"),
    ({"at_seconds": 1.0, "end_seconds": 0.5}, "before its start"),
    ({"at_seconds": 1.0, "end_seconds": 60.0}, "after the end of the call"),
    ({"tags": ["Good Practice"]}, "short slugs"),
    ({"tags": ["a" * 33]}, "short slugs"),
    ({"tags": ["a,b"]}, "short slugs"),
    ({"author": ""}, "author"),
])
def test_bad_notes_are_refused_and_nothing_is_stored(library, kwargs, message):
    m = library.calls["long"]  # 5 s
    args = {"author": "tl-anne", "at_seconds": 1.0, "text": "ok", **kwargs}
    with pytest.raises(NoteError, match=message):
        NoteStore(library.store).add(m.call_id, manifest=m, **args)
    assert list(library.store.list("notes/")) == []


def test_the_duration_check_uses_the_catalog_when_no_manifest_is_given(library, tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=DAY3.date())
    with pytest.raises(NoteError, match="after the end"):
        NoteStore(library.store, cat).add(library.calls["withheld"].call_id, "tl", 2.0, "too late")  # 1.5 s call


def test_notes_are_visible_to_another_team_leader_after_a_sync(library, tmp_path):
    anne_cat = Catalog(tmp_path / "anne.sqlite")
    anne_cat.sync(library.store, today=DAY3.date())
    bob_cat = Catalog(tmp_path / "bob.sqlite")
    bob_cat.sync(library.store, today=DAY3.date())
    call = library.calls["transfer"].call_id
    note = NoteStore(library.store, anne_cat).add(call, "tl-anne", 0.5, "Transfer explained well", tags=["transfer-ok"])
    assert [r.call_id for r in anne_cat.query(CatalogFilter(tag="transfer-ok"))] == [call]
    assert bob_cat.query(CatalogFilter(has_notes=True)) == []  # Bob has not synced yet
    report = bob_cat.sync(library.store, today=DAY3.date())
    assert report.notes_indexed == 1 and report.added == 0
    assert [r.call_id for r in bob_cat.query(CatalogFilter(tag="transfer-ok"))] == [call]
    assert NoteStore(library.store, bob_cat).list(call) == [note]
    assert bob_cat.sync(library.store, today=DAY3.date()).notes_indexed == 0  # already indexed: not re-read
    # sync_notes: the explicit refresh for some calls
    assert bob_cat.sync_notes(library.store, [call, library.calls["pay"].call_id]) == 1


def test_an_unreadable_note_is_reported_not_raised(library):
    call = library.calls["pay"].call_id
    key = layout.note_key(call, "20260306T100000000Z-0123456789ab")
    body = b'{"schema_version": 1}'
    library.store.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={}, content_type="application/json")
    notes = NoteStore(library.store).list(call)
    assert notes == [] and [k for k, _ in notes.problems] == [key]


# ---- revising and withdrawing ---------------------------------------------------------------


def _ticking(start=datetime(2026, 3, 6, 10, 0, tzinfo=timezone.utc)):
    at = [start]

    def clock():
        at[0] += timedelta(seconds=1)
        return at[0]

    return clock


def test_a_revision_replaces_the_note_for_everyone_and_keeps_every_version_in_the_store(library, tmp_path):
    m = library.calls["long"]
    anne = NoteStore(library.store, clock=_ticking())
    first = anne.add(m.call_id, "tl-anne", 1.0, "Greeting was rushed", tags=["greeting"], end_seconds=2.0, manifest=m)
    second = anne.revise(m.call_id, "tl-anne", first.note_id, "Greeting was rushed but complete", tags=["good-practice"])
    assert (second.replaces, second.at_seconds, second.end_seconds) == (first.note_id, 1.0, 2.0)
    listed = anne.list(m.call_id)
    assert listed == [second] and listed[0].replaces == first.note_id
    assert listed.versions == (first, second)
    assert len(list(library.store.list(layout.notes_prefix(m.call_id)))) == 2  # write-once: both stay

    # another team leader's catalogue, synced from scratch: only the current version counts
    cat = Catalog(tmp_path / "other.sqlite")
    cat.sync(library.store, today=DAY3.date())
    assert cat.count(CatalogFilter(tag="good-practice")) == 1
    assert cat.count(CatalogFilter(tag="greeting")) == 0
    assert cat.tags(m.call_id) == ["good-practice"] and cat.all_tags() == ["good-practice"]
    # and a sync that met the first version before the revision ends up the same
    cat2 = Catalog(tmp_path / "early.sqlite")
    NoteStore(library.store, cat2).list(m.call_id)
    cat2.index_notes(m.call_id, [first], replace=True)  # as if only the first had been seen
    assert cat2.tags(m.call_id) == ["greeting"]
    cat2.sync(library.store, today=DAY3.date())
    assert cat2.tags(m.call_id) == ["good-practice"]


def test_a_withdrawn_note_no_longer_counts_but_its_record_stays(library, tmp_path):
    m = library.calls["pay"]
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=DAY3.date())
    notes = NoteStore(library.store, cat, clock=_ticking())
    note = notes.add(m.call_id, "tl-anne", 0.5, "Wrong call, sorry", tags=["complaint"], manifest=m)
    assert cat.count(CatalogFilter(has_notes=True)) == 1
    gone = notes.withdraw(m.call_id, "tl-anne", note.note_id)
    assert (gone.withdrawn, gone.replaces, gone.text) == (True, note.note_id, "")
    listed = notes.list(m.call_id)
    assert listed == [] and listed.versions == (note, gone)
    assert cat.count(CatalogFilter(has_notes=True)) == 0 and cat.count(CatalogFilter(tag="complaint")) == 0


@pytest.mark.parametrize("who, target, message", [
    ("tl-bob", "first", "only its author"),
    ("tl-anne", "revised", "not a current note"),
    ("tl-anne", "20260306T100000000Z-000000000000", "not a current note"),
    ("tl-anne", "../../x", "not a note/event id"),
])
def test_only_the_author_changes_a_current_note_and_nothing_is_stored_otherwise(library, who, target, message):
    m = library.calls["long"]
    notes = NoteStore(library.store, clock=_ticking())
    first = notes.add(m.call_id, "tl-anne", 1.0, "First", manifest=m)
    revised = notes.revise(m.call_id, "tl-anne", first.note_id, "Second")
    ids = {"first": revised.note_id, "revised": first.note_id}
    before = list(library.store.list(layout.notes_prefix(m.call_id)))
    for change in (lambda: notes.revise(m.call_id, who, ids.get(target, target), "Third"),
                   lambda: notes.withdraw(m.call_id, who, ids.get(target, target))):
        with pytest.raises(NoteError, match=message):
            change()
    assert list(library.store.list(layout.notes_prefix(m.call_id))) == before


def test_a_malformed_revision_record_is_reported_not_raised(library):
    m = library.calls["long"]
    notes = NoteStore(library.store, clock=_ticking())
    first = notes.add(m.call_id, "tl-anne", 1.0, "First", manifest=m)
    bad = first.to_json().replace(b'"text"', b'"withdrawn": "yes", "replaces": "' + first.note_id.encode() + b'", "text"')
    bad_id = layout.new_event_id(datetime(2026, 3, 6, 11, tzinfo=timezone.utc))
    bad = bad.replace(first.note_id.encode(), bad_id.encode(), 1)
    key = layout.note_key(m.call_id, bad_id)
    library.store.put(key, bad, sha256=hashlib.sha256(bad).hexdigest(), metadata={}, content_type="application/json")
    listed = notes.list(m.call_id)
    assert listed == [first] and [k for k, _ in listed.problems] == [key]


# ---- hostile note objects in the store: skipped, named, the rest listed ----------------------------

@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(at_seconds=86400.5), "at_seconds 86400.5 is not a time in a call"),
    (lambda d: d.update(text="x" * (MAX_TEXT + 1)), f"text longer than {MAX_TEXT} characters"),
    (lambda d: d.update(tags=[f"t{i}" for i in range(11)]), "tags must be a list of at most 10"),
    (lambda d: d.update(created_at="1999-12-31T23:59:59.000Z"), "created_at 1999-12-31T23:59:59+00:00 is outside"),
    (lambda d: d.update(created_at="0001-01-01T00:00:00+14:00"), "out of range once converted to UTC"),
])
def test_a_note_out_of_bounds_is_skipped_with_its_key_and_the_good_one_listed(library, change, words):
    import json

    call = library.calls["pay"]
    notes = NoteStore(library.store)
    good = notes.add(call.call_id, "tl001", 1.0, "Good", manifest=call)
    bad_id = good.note_id[:-1] + ("0" if good.note_id[-1] != "0" else "1")
    doc = json.loads(good.to_json())
    doc["note_id"] = bad_id
    change(doc)
    key = layout.note_key(call.call_id, bad_id)
    body = json.dumps(doc).encode()
    library.store.put(key, body, sha256=hashlib.sha256(body).hexdigest(), metadata={}, content_type="application/json")
    listed = notes.list(call.call_id)
    assert [n.note_id for n in listed] == [good.note_id]
    [(problem_key, why)] = listed.problems
    assert problem_key == key and words in why, why
