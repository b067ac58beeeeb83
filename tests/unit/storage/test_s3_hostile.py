"""Hostile objects in a real S3 store (SeaweedFS on 127.0.0.1): what an agent's write key can
put under the prefix. Reads are capped (a Range of the cap + 1, refused from Content-Range
before the body is read); keys the listing returns that could escape (``..``, empty
components) are refused; the catalogue sync, ``iter_manifests``, notes and verify go on with
the good calls and name every bad key."""

from __future__ import annotations

import json

import pytest

from callrec_desktop.archive import ManifestProblem, iter_manifests, verify_call
from callrec_desktop.catalog import Catalog
from callrec_desktop.core.manifest import MAX_MANIFEST_BYTES
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import ObjectRefusedError
from callrec_desktop.storage.factory import open_store
from tests.support.hostile_store import WHEN
from tests.support.recording import record_calls

pytestmark = pytest.mark.s3
PREFIX = "contact-centre/"


@pytest.fixture
def seeded(s3_server, tmp_path):
    bucket = s3_server.make_bucket()
    store = open_store(f"s3://{bucket}/contact-centre", endpoint_url=s3_server.endpoint_url, region="us-east-1",
                       addressing_style="path",
                       credentials_provider=lambda endpoint, b: (s3_server.access_key, s3_server.secret_key))
    good = record_calls(tmp_path / "spool", store, WHEN, [
        {"line": ("01443 425002", "Council Tax"), "caller": "07700 900123", "seconds": 2.0, "payment": (0.5, 1.0)},
        {"line": ("01443 425003", "Housing"), "seconds": 1.5},
    ])
    NoteStore(store).add(good[0].call_id, "tl001", 0.2, "Fine", manifest=good[0])
    template = good[0].to_dict()
    raw = s3_server.client()
    day = f"{WHEN:%Y/%m/%d}"
    bad: dict[str, bytes] = {}

    def doc(n: int, **changes) -> bytes:
        cid = f"{WHEN:%Y%m%d}T2300{n:02d}Z-{0xbad000000000 + n:012x}"
        return json.dumps(dict(template, call_id=cid, **changes), indent=2).encode()

    def cid(n: int) -> str:
        return f"{WHEN:%Y%m%d}T2300{n:02d}Z-{0xbad000000000 + n:012x}"

    bad[f"manifests/{day}/{cid(1)}.json"] = b"[" * 200_000
    bad[f"manifests/{day}/{cid(2)}.json"] = doc(2).replace(f'"frames": {good[0].frames}'.encode(),
                                                           b'"frames": 1' + b"0" * 400)
    bad[f"manifests/{day}/{cid(3)}.json"] = doc(3, started_at="0001-01-01T00:00:00+14:00")
    bad[f"manifests/{day}/{cid(4)}.json"] = b" " * (50 * 1024 * 1024)
    bad[f"manifests/{day}/{cid(5)}.json"] = doc(5).replace(b'"agent": "', b'"agent": "\xff')
    year = 365 * 86400 * good[0].audio.sample_rate
    bad[f"manifests/{day}/{cid(6)}.json"] = doc(6, frames=year, duration_seconds=year / good[0].audio.sample_rate,
                                                chunks=[], pauses=[])
    # AWS keeps '..' in a key as it is (SeaweedFS refuses such a put: then the case is dropped,
    # and the store's own refusal of such keys is in test_store_contract).
    bad[f"manifests/{day}/../../../../{cid(7)}.json"] = doc(7)
    bad[f"{layout.notes_prefix(good[0].call_id)}{WHEN:%Y%m%d}T235959000Z-bad000000009.json"] = b"[" * 200_000
    refused = []
    for key, body in bad.items():
        try:
            raw.put_object(Bucket=bucket, Key=PREFIX + key, Body=body)
        except raw.exceptions.ClientError as exc:  # SeaweedFS refuses some keys itself
            refused.append((key, exc.response["Error"]["Code"]))
    print("refused by the server:", refused)
    for key, _ in refused:
        del bad[key]
    yield store, good, bad
    store.close()


def test_a_50_mb_object_is_refused_from_its_size_alone(seeded):
    store, _, bad = seeded
    key = next(k for k, v in bad.items() if len(v) == 50 * 1024 * 1024)
    with pytest.raises(ObjectRefusedError, match=rf"{key}: object is 52428800 bytes, more than the {MAX_MANIFEST_BYTES}"):
        store.get(key, max_bytes=MAX_MANIFEST_BYTES)


def test_catalogue_sync_keeps_the_good_calls_and_names_every_bad_key(seeded, tmp_path):
    store, good, bad = seeded
    catalog = Catalog(tmp_path / "catalog.sqlite")
    report = catalog.sync(store)
    assert report.added == 2
    assert sorted(p.key for p in report.problems) == sorted(bad)
    assert {r.call_id for r in catalog.query()} == {m.call_id for m in good}


def test_ls_and_verify_go_on_past_every_bad_manifest(seeded):
    store, good, bad = seeded
    items = list(iter_manifests(store))
    assert sorted(m.call_id for m in items if not isinstance(m, ManifestProblem)) == sorted(m.call_id for m in good)
    assert sorted(p.key for p in items if isinstance(p, ManifestProblem)) == sorted(k for k in bad if k.startswith("manifests/"))
    for m in good:
        assert verify_call(store, m) == []


def test_notes_list_skips_the_bad_note_and_shows_the_good_one(seeded):
    store, good, bad = seeded
    notes = NoteStore(store).list(good[0].call_id)
    assert [n.text for n in notes] == ["Fine"]
    assert [k for k, _ in notes.problems] == [k for k in bad if k.startswith("notes/")]
