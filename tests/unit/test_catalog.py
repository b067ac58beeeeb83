"""The catalogue, against a folder store filled by the real pipeline (recorder → spool →
uploader → FolderStore). Calls on different days are recorded by recorders whose clock says
so; the interrupted call is a real spool recovery (as in test_spool.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from callrec_desktop.catalog import Catalog, CatalogFilter
from callrec_desktop.core.manifest import Manifest
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage import layout
from callrec_desktop.storage.folder import FolderStore
from tests.support.recording import record_calls as record
from tests.support.recording import record_interrupted

DAY1 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
DAY2 = datetime(2026, 3, 3, 14, 30, 0, tzinfo=timezone.utc)
DAY3 = datetime(2026, 3, 5, 11, 0, 0, tzinfo=timezone.utc)
CT, HOUSING = ("01443 425002", "Council Tax"), ("01443 425003", "Housing")


class CountingStore:
    """Wraps a store and records every ``list`` prefix and ``get`` key (to prove what a sync touches)."""

    def __init__(self, inner) -> None:
        self.inner, self.description = inner, inner.description
        self.lists: list[str] = []
        self.gets: list[str] = []

    def put(self, *a, **kw):
        return self.inner.put(*a, **kw)

    def get(self, key):
        self.gets.append(key)
        return self.inner.get(key)

    def list(self, prefix):
        self.lists.append(prefix)
        return self.inner.list(prefix)


@dataclasses.dataclass
class Library:
    root: Path
    store: FolderStore
    calls: dict[str, Manifest]


def build_library(root: Path) -> Library:
    (root / "store").mkdir(parents=True)
    store = FolderStore(root / "store")
    day1 = record(root / "spool1", store, DAY1, [
        {"line": CT, "caller": "07700 900123", "seconds": 3.0, "payment": (1.0, 2.0)},    # payment
        {"line": HOUSING, "caller": "+44 7700 900456", "seconds": 2.0, "transfer": "Planning"},  # transferred
    ])
    day2 = record(root / "spool2", store, DAY2, [
        {"line": CT, "caller": "07700900123", "seconds": 5.0},                             # same caller, long
        {"line": HOUSING, "seconds": 1.5},                                                 # withheld number
    ], agent="agent042")
    interrupted = record_interrupted(root / "spool3", store, DAY2 + timedelta(hours=1), HOUSING)
    calls = {"pay": day1[0], "transfer": day1[1], "long": day2[0], "withheld": day2[1], "interrupted": interrupted}
    return Library(root, store, calls)


@pytest.fixture(scope="module")
def library_template(tmp_path_factory) -> Library:
    return build_library(tmp_path_factory.mktemp("library"))


@pytest.fixture
def library(library_template, tmp_path) -> Library:
    """A private copy (tests may change the store)."""
    shutil.copytree(library_template.store.root, tmp_path / "store")
    return Library(tmp_path, FolderStore(tmp_path / "store"), library_template.calls)


@pytest.fixture(scope="module")
def synced(library_template, tmp_path_factory) -> tuple[Catalog, Library]:
    cat = Catalog(tmp_path_factory.mktemp("cat") / "catalog.sqlite")
    report = cat.sync(library_template.store, today=DAY3.date())
    assert (report.added, report.updated, report.unchanged, report.problems) == (5, 0, 0, ())
    return cat, library_template


def ids(rows) -> set[str]:
    return {r.call_id for r in rows}


# ---- filters -------------------------------------------------------------------------------


def test_a_row_carries_what_the_manifest_says(synced):
    cat, lib = synced
    m = lib.calls["pay"]
    row = cat.get(m.call_id)
    assert (row.line_number, row.department, row.agent, row.workstation) == (CT[0], CT[1], "agent007", "ws-agent007")
    assert (row.caller, row.caller_digits, row.status, row.end_reason) == ("07700 900123", "07700900123", "complete", "hangup")
    assert (row.pause_count, row.payment_pause_count, row.chunk_count) == (1, 1, len(m.chunks))
    assert row.duration_seconds == pytest.approx(3.0) and row.started_at == m.started_at
    assert row.retention_until == m.retention_until and row.legal_hold is False
    assert cat.manifest(m.call_id) == m  # the detail pane needs no refetch
    t = cat.get(lib.calls["transfer"].call_id)
    assert (t.end_reason, t.transferred_to) == ("transferred", "Planning")
    assert cat.get("20260101T000000Z-000000000000") is None


@pytest.mark.parametrize("flt, expected", [
    (CatalogFilter(), {"pay", "transfer", "long", "withheld", "interrupted"}),
    (CatalogFilter(started_from=DAY2 - timedelta(hours=1)), {"long", "withheld", "interrupted"}),
    (CatalogFilter(started_to=DAY1 + timedelta(seconds=3)), {"pay"}),
    (CatalogFilter(started_from=DAY1, started_to=DAY1 + timedelta(days=1)), {"pay", "transfer"}),
    (CatalogFilter(line=CT[0]), {"pay", "long"}),
    (CatalogFilter(department="Housing"), {"transfer", "withheld", "interrupted"}),
    (CatalogFilter(agent="agent042"), {"long", "withheld", "interrupted"}),
    (CatalogFilter(workstation="ws-agent007"), {"pay", "transfer"}),
    (CatalogFilter(caller="+44 (0)7700 900123"), {"pay", "long"}),
    (CatalogFilter(caller="0044 7700 900 456"), {"transfer"}),
    (CatalogFilter(caller="07700-900-123", started_from=DAY2 - timedelta(hours=1)), {"long"}),
    (CatalogFilter(caller="07700 900", caller_prefix=True), {"pay", "transfer", "long", "interrupted"}),
    (CatalogFilter(caller="07700 900"), set()),
    (CatalogFilter(min_seconds=2.5), {"pay", "long", "interrupted"}),
    (CatalogFilter(min_seconds=2.5, max_seconds=4.0), {"pay", "interrupted"}),
    (CatalogFilter(max_seconds=1.6), {"withheld"}),
    (CatalogFilter(end_reason="transferred"), {"transfer"}),
    (CatalogFilter(end_reason="interrupted"), {"interrupted"}),
    (CatalogFilter(end_reason="hangup"), {"pay", "long", "withheld"}),
    (CatalogFilter(had_payment_pause=True), {"pay"}),
    (CatalogFilter(had_payment_pause=False, department="Council Tax"), {"long"}),
])
def test_filters(synced, flt, expected):
    cat, lib = synced
    want = {lib.calls[k].call_id for k in expected}
    assert ids(cat.query(flt)) == want
    assert cat.count(flt) == len(want)


def test_bad_filters_are_refused(synced):
    cat, _ = synced
    with pytest.raises(ValueError, match="not a phone number"):
        cat.query(CatalogFilter(caller="Mrs Jones"))
    with pytest.raises(ValueError, match="end reason"):
        cat.query(CatalogFilter(end_reason="hangup'; DROP TABLE calls; --"))
    with pytest.raises(ValueError, match="aware"):
        cat.query(CatalogFilter(started_from=datetime(2026, 3, 2)))


def test_sorting_is_whitelisted_and_stable(synced):
    cat, lib = synced
    rows = cat.query(order_by="duration_seconds", descending=False)
    assert [r.duration_seconds for r in rows] == sorted(r.duration_seconds for r in rows)
    assert cat.query(order_by="started_at")[0].call_id == lib.calls["interrupted"].call_id
    assert [r.call_id for r in cat.query(order_by="started_at", descending=False, limit=2, offset=1)] == \
        [lib.calls["transfer"].call_id, lib.calls["long"].call_id]
    for name in ("line_number", "department", "agent", "caller", "end_reason"):
        assert len(cat.query(order_by=name)) == 5
    with pytest.raises(ValueError, match="order_by"):
        cat.query(order_by="started_at; DROP TABLE calls")
    assert cat.count() == 5


@pytest.mark.parametrize("order_by", ["started_at", "duration_seconds", "line_number", "department", "agent",
                                      "caller", "end_reason"])
@pytest.mark.parametrize("descending", [True, False])
def test_keyset_pages_walk_every_row_once_in_the_same_order_as_one_query(synced, order_by, descending):
    """Pages of 2 chained with ``after`` give exactly the rows of one big query, in its order,
    for every sort column, including those with missing values (a withheld caller number, the
    end reason of an interrupted call) and ties (two calls of the same department)."""
    cat, _ = synced
    whole = [r.call_id for r in cat.query(order_by=order_by, descending=descending, limit=100)]
    walked: list[str] = []
    after = None
    while True:
        page = cat.query(order_by=order_by, descending=descending, limit=2, after=after)
        walked += [r.call_id for r in page]
        if len(page) < 2:
            break
        after = page[-1].call_id
    assert walked == whole and len(whole) == 5


def test_keyset_pages_keep_the_filter(synced):
    cat, lib = synced
    flt = CatalogFilter(department="Housing")
    first = cat.query(flt, limit=1)
    rest = cat.query(flt, limit=10, after=first[0].call_id)
    assert [r.call_id for r in first + rest] == [r.call_id for r in cat.query(flt, limit=10)]
    assert all(r.department == "Housing" for r in rest) and len(first + rest) == 3


def test_filter_value_lists_come_from_the_catalogue(library, tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=DAY3.date())
    assert cat.values("department") == ["Council Tax", "Housing"]
    assert cat.values("line") == ["01443 425002", "01443 425003"]
    assert cat.values("agent") == ["agent007", "agent042"]
    assert cat.values("workstation") == ["ws-agent007", "ws-agent042"]
    assert cat.all_tags() == []
    NoteStore(library.store, cat).add(library.calls["pay"].call_id, "tl", 1.0, "x", tags=["complaint", "follow-up"])
    assert cat.all_tags() == ["complaint", "follow-up"]
    with pytest.raises(ValueError, match="column must be one of"):
        cat.values("caller; DROP TABLE calls")


def test_notes_and_tags_filters(library, tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=DAY3.date())
    notes = NoteStore(library.store, cat)
    pay, long = library.calls["pay"].call_id, library.calls["long"].call_id
    notes.add(pay, "tl-anne", 1.5, "Good handling of the card payment", tags=["good-practice"])
    notes.add(long, "tl-anne", 0.5, "Caller raised a complaint", tags=["complaint", "follow-up"])
    assert ids(cat.query(CatalogFilter(has_notes=True))) == {pay, long}
    assert len(cat.query(CatalogFilter(has_notes=False))) == 3
    assert ids(cat.query(CatalogFilter(tag="complaint"))) == {long}
    assert ids(cat.query(CatalogFilter(tag="follow-up", caller="07700900123"))) == {long}
    assert ids(cat.query(CatalogFilter(tag="follow"))) == set()  # whole tags only
    assert cat.tags(long) == ["complaint", "follow-up"]


# ---- sync ---------------------------------------------------------------------------------


def test_incremental_sync_lists_only_recent_partitions_and_picks_up_a_new_day(library, tmp_path):
    counting = CountingStore(library.store)
    cat = Catalog(tmp_path / "c.sqlite")
    first = cat.sync(counting, today=date(2026, 3, 4))
    assert first.added == 5 and counting.lists[0] == "manifests/"  # first sync: one full listing
    counting.lists.clear()
    counting.gets.clear()
    # a new day's calls arrive
    [new] = record(tmp_path / "spool-new", library.store, DAY3, [{"line": CT, "caller": "07700900777", "seconds": 1.0}])
    report = cat.sync(counting, today=DAY3.date())
    assert (report.added, report.updated, report.problems) == (1, 0, ())
    # listed: the day before the last synced day, through today; never DAY1's partition again
    manifest_lists = [p for p in counting.lists if p.startswith("manifests/")]
    assert manifest_lists == [layout.manifests_prefix(date(2026, 3, d)) for d in (3, 4, 5)]
    assert report.partitions == 3
    # only the new manifest was fetched; the complete ones already catalogued were not
    assert [k for k in counting.gets if k.startswith("manifests/")] == [layout.manifest_key(new.call_id)]
    assert report.unchanged == 3  # the three DAY2 calls listed again, not fetched
    assert cat.get(new.call_id).caller_digits == "07700900777"
    # next sync the same day: DAY1..DAY3 window shrinks to (DAY3 - 1) .. DAY3
    counting.lists.clear()
    again = cat.sync(counting, today=DAY3.date())
    assert (again.added, again.updated) == (0, 0)
    assert [p for p in counting.lists if p.startswith("manifests/")] == \
        [layout.manifests_prefix(date(2026, 3, 4)), layout.manifests_prefix(date(2026, 3, 5))]


def test_a_call_uploaded_days_late_into_an_old_partition_is_found_by_an_incremental_sync(library, tmp_path):
    """A PC that was off from DAY1 to DAY3 uploads DAY1's call on DAY3: the manifest lands in
    DAY1's partition, which an incremental sync on DAY3 no longer lists; the arrival marker
    the uploader left in DAY3's ``arrivals/`` is how the sync finds it (one get, no listing of
    DAY1)."""
    cat = Catalog(tmp_path / "c.sqlite")
    assert cat.sync(library.store, today=date(2026, 3, 4)).added == 5
    [late] = record(tmp_path / "spool-late", library.store, DAY1 + timedelta(hours=8),
                    [{"line": CT, "caller": "07700900888", "seconds": 1.0}], uploaded_at=DAY3)
    assert layout.manifest_key(late.call_id).startswith(layout.manifests_prefix(DAY1.date()))
    counting = CountingStore(library.store)
    report = cat.sync(counting, today=DAY3.date())
    assert (report.added, report.updated, report.problems) == (1, 0, ())
    assert not any(p.startswith(layout.manifests_prefix(DAY1.date())) for p in counting.lists)
    assert layout.arrivals_prefix(DAY3.date()) in counting.lists
    assert cat.get(late.call_id).caller_digits == "07700900888"
    assert cat.manifest(late.call_id) == late
    # while the marker's day is in the window, each sync re-reads that one manifest (a get)
    counting.gets.clear()
    again = cat.sync(counting, today=DAY3.date())
    assert (again.added, again.updated) == (0, 0) and again.unchanged >= 1
    assert layout.manifest_key(late.call_id) in counting.gets
    assert cat.count(CatalogFilter(caller="07700900888")) == 1


def test_a_bad_arrival_marker_is_named_and_skipped(library, tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=date(2026, 3, 4))
    bad = "arrivals/2026/03/05/not-a-call-id.json"
    _put(library.store, bad, b"{}")
    gone = layout.arrival_key("20260302T101010Z-0123456789ab", date(2026, 3, 5))  # names no manifest
    _put(library.store, gone, b"{}")
    report = cat.sync(library.store, today=DAY3.date())
    assert [p.key for p in report.problems] == [bad] and report.added == 0
    assert cat.get("20260302T101010Z-0123456789ab") is None


def _put(store, key: str, data: bytes) -> None:
    store.put(key, data, sha256=hashlib.sha256(data).hexdigest(), metadata={}, content_type="application/json")


def test_a_provisional_manifest_is_replaced_by_the_final_one(library, tmp_path):
    final = library.calls["pay"]
    provisional = dataclasses.replace(final, status="recording", end=None, ended_at=None,
                                      chunks=final.chunks[:1], frames=final.chunks[0].frames, pauses=())
    key = layout.manifest_key(final.call_id)
    _put(library.store, key, provisional.to_json())
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=date(2026, 3, 10))
    row = cat.get(final.call_id)
    assert (row.status, row.end_reason, row.payment_pause_count) == ("recording", None, 0)
    _put(library.store, key, final.to_json())
    # incremental: lists 9 and 10 March only; provisional rows are re-read by key wherever they are
    counting = CountingStore(library.store)
    report = cat.sync(counting, today=date(2026, 3, 10))
    assert [p for p in counting.lists if p.startswith("manifests/")] == \
        [layout.manifests_prefix(date(2026, 3, 9)), layout.manifests_prefix(date(2026, 3, 10))]
    assert report.updated == 1 and report.added == 0
    assert not any(p.startswith(layout.manifests_prefix(DAY1.date())) for p in counting.lists)
    row = cat.get(final.call_id)
    assert (row.status, row.end_reason, row.payment_pause_count) == ("complete", "hangup", 1)
    assert cat.manifest(final.call_id) == final


def test_a_corrupt_manifest_is_skipped_and_named_never_a_crash(library, tmp_path):
    bad = layout.manifest_key("20260303T150000Z-0123456789ab")
    _put(library.store, bad, b'{"schema_version": 1, "call_id": "20260303T150000Z-0123456789ab"')
    wrong_place = "manifests/2026/03/03/20260302T090000Z-0123456789ab.json"
    _put(library.store, wrong_place, library.calls["pay"].to_json())
    unreadable = Path(library.store.root, *layout.manifest_key(library.calls["long"].call_id).split("/"))
    unreadable.write_bytes(b"\xff\xfe not json")
    cat = Catalog(tmp_path / "c.sqlite")
    report = cat.sync(library.store, today=DAY3.date())
    assert report.added == 4  # pay, transfer, withheld, interrupted
    assert {p.key for p in report.problems} == {bad, wrong_place, layout.manifest_key(library.calls["long"].call_id)}
    assert all(p.key in p.problem or "manifest key" in p.problem for p in report.problems)


def test_full_rebuild_drops_the_stores_rows_and_rereads_everything(library, tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    cat.sync(library.store, today=DAY3.date())
    # a call deleted from the store (purged) stays until a full rebuild
    victim = library.calls["withheld"]
    Path(library.store.root, *layout.manifest_key(victim.call_id).split("/")).unlink()
    assert cat.sync(library.store, today=DAY3.date()).added == 0 and cat.get(victim.call_id) is not None
    counting = CountingStore(library.store)
    report = cat.sync(counting, full=True, today=DAY3.date())
    assert (report.added, report.updated, report.unchanged) == (4, 0, 0)
    assert counting.lists[0] == "manifests/" and cat.get(victim.call_id) is None and cat.count() == 4


def test_progress_is_reported(library, tmp_path):
    seen = []
    Catalog(tmp_path / "c.sqlite").sync(library.store, today=DAY3.date(), progress=lambda d, n: seen.append((d, n)))
    assert seen and seen[-1] == (5, 5)


def test_a_store_that_fails_leaves_the_sync_state_alone(tmp_path):
    from callrec_desktop.storage.base import StoreError

    cat = Catalog(tmp_path / "c.sqlite")
    with pytest.raises(StoreError):
        cat.sync(FolderStore(tmp_path / "missing"), today=DAY3.date())
    assert cat._db().execute("SELECT count(*) FROM sync_state").fetchone()[0] == 0


def test_one_connection_per_thread(synced):
    cat, _ = synced
    out = []

    def worker():
        out.append((cat.count(), id(cat._db())))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert out[0][0] == 5 and out[0][1] != id(cat._db())
    assert cat._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_catalogue_made_before_note_revisions_gets_the_new_columns_and_keeps_its_notes(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE notes_index (call_id TEXT NOT NULL, note_id TEXT NOT NULL, tags TEXT NOT NULL, "
                     "PRIMARY KEY (call_id, note_id));"
                     "INSERT INTO notes_index VALUES ('20260302T090000Z-0123456789ab', "
                     "'20260306T100000000Z-0123456789ab', ',complaint,');")
    db.close()
    cat = Catalog(path)
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(notes_index)")}
    assert {"replaces", "withdrawn", "current"} <= columns
    assert cat.tags("20260302T090000Z-0123456789ab") == ["complaint"] and cat.all_tags() == ["complaint"]
    Catalog(path)  # opening it again changes nothing


# ---- hostile objects: one bad manifest never stops a sync ---------------------------------------

class HostileGets(CountingStore):
    """Raises ``errors[key]`` from ``get`` of that key (what a broken object did to a reader
    before the bounds: RecursionError, OverflowError, MemoryError), else delegates."""

    def __init__(self, inner, errors) -> None:
        super().__init__(inner)
        self.errors = errors

    def get(self, key, **kw):
        if key in self.errors:
            raise self.errors[key]
        return self.inner.get(key, **kw)


def test_any_exception_from_one_manifest_is_a_named_problem_and_the_sync_goes_on(library, tmp_path):
    from callrec_desktop.storage.base import TransientStoreError

    keys = [layout.manifest_key(library.calls[n].call_id) for n in ("pay", "long", "withheld")]
    store = HostileGets(library.store, dict(zip(keys, (RecursionError("deep"), OverflowError("big"),
                                                        MemoryError()))))
    catalog = Catalog(tmp_path / "c.sqlite")
    report = catalog.sync(store)
    assert report.added == 2
    why = {p.key: p.problem for p in report.problems}
    assert set(why) == set(keys)
    assert why[keys[0]] == f"{keys[0]}: RecursionError: deep" and why[keys[2]] == f"{keys[2]}: MemoryError"
    # An unreachable store is not one bad object: the sync stops and is redone next time.
    down = HostileGets(library.store, {keys[1]: TransientStoreError("store unreachable")})
    with pytest.raises(TransientStoreError):
        Catalog(tmp_path / "d.sqlite").sync(down)


def test_bounds_refuse_a_year_long_manifest_from_the_store(library, tmp_path):
    import json

    key = layout.manifest_key(library.calls["long"].call_id)
    doc = json.loads((library.root / "store" / key).read_text())
    doc["frames"] = 365 * 86400 * doc["audio"]["sample_rate"]
    doc["duration_seconds"] = 365 * 86400.0
    (library.root / "store" / key).write_text(json.dumps(doc))
    report = Catalog(tmp_path / "c.sqlite").sync(library.store)
    assert report.added == 4 and [p.key for p in report.problems] == [key]
    assert "frames: must be at most" in report.problems[0].problem
