"""The catalogue's sync against the real S3 server (SeaweedFS on 127.0.0.1), filled by the
real pipeline (recorder → spool → uploader → S3Store)."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date

import pytest

from callrec_desktop.catalog import Catalog, CatalogFilter
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage import layout
from callrec_desktop.storage.s3 import S3Store
from tests.unit.test_catalog import CT, DAY1, DAY2, DAY3, HOUSING, CountingStore, record

pytestmark = pytest.mark.s3


def _put(store, key, data: bytes) -> None:
    store.put(key, data, sha256=hashlib.sha256(data).hexdigest(), metadata={}, content_type="application/json")


def test_sync_against_s3(s3_server, tmp_path):
    bucket = s3_server.make_bucket()
    store = S3Store(bucket, "site1", endpoint_url=s3_server.endpoint_url, region=s3_server.region,
                    credentials=(s3_server.access_key, s3_server.secret_key))
    [pay, transfer] = record(tmp_path / "s1", store, DAY1, [
        {"line": CT, "caller": "07700 900123", "seconds": 2.0, "payment": (0.5, 1.0)},
        {"line": HOUSING, "caller": "+44 7700 900456", "seconds": 1.0, "transfer": "Planning"}])
    bad = layout.manifest_key("20260302T100000Z-0123456789ab")
    _put(store, bad, b"garbage")
    # a provisional manifest for a call on DAY2
    [final] = record(tmp_path / "s2", store, DAY2, [{"line": CT, "caller": "07700900123", "seconds": 1.0}])
    provisional = dataclasses.replace(final, status="recording", end=None, ended_at=None)
    _put(store, layout.manifest_key(final.call_id), provisional.to_json())

    counting = CountingStore(store)
    cat = Catalog(tmp_path / "c.sqlite")
    first = cat.sync(counting, today=date(2026, 3, 4))
    assert (first.added, first.updated) == (3, 0) and [p.key for p in first.problems] == [bad]
    assert counting.lists[0] == "manifests/"
    assert [r.call_id for r in cat.query(CatalogFilter(caller="+44 (0) 7700 900123"), descending=False)] == \
        [pay.call_id, final.call_id]
    assert [r.call_id for r in cat.query(CatalogFilter(end_reason="transferred"))] == [transfer.call_id]
    assert cat.get(final.call_id).status == "recording"

    # final manifest, a new day's call, and a note by another team leader
    _put(store, layout.manifest_key(final.call_id), final.to_json())
    [new] = record(tmp_path / "s3", store, DAY3, [{"line": HOUSING, "seconds": 1.0}], agent="agent042")
    NoteStore(store).add(pay.call_id, "tl-bob", 1.0, "Payment pause used correctly", tags=["payment"])
    counting.lists.clear()
    counting.gets.clear()
    report = cat.sync(counting, today=DAY3.date())
    assert (report.added, report.updated, report.problems, report.notes_indexed) == (1, 1, (), 1)
    assert [p for p in counting.lists if p.startswith("manifests/")] == \
        [layout.manifests_prefix(date(2026, 3, d)) for d in (3, 4, 5)]  # DAY1's partition not listed again
    assert sorted(k for k in counting.gets if k.startswith("manifests/")) == \
        sorted([layout.manifest_key(final.call_id), layout.manifest_key(new.call_id)])
    assert cat.get(final.call_id).status == "complete"
    assert [r.call_id for r in cat.query(CatalogFilter(tag="payment"))] == [pay.call_id]

    full = cat.sync(store, full=True, today=DAY3.date())
    assert (full.added, full.updated, full.unchanged, [p.key for p in full.problems]) == (4, 0, 0, [bad])
    assert cat.count(CatalogFilter(store=store.description)) == 4
