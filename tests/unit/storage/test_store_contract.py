"""The same behaviour from every store: folder and S3 (the S3 cases run against the real
SeaweedFS server on 127.0.0.1). Stores are opened through ``open_store`` as the app does."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

from callrec_desktop.storage import layout
from callrec_desktop.storage.base import ObjectNotFoundError, PermanentStoreError, PutReceipt
from callrec_desktop.storage.factory import StoreUrlError, open_store, parse_store_url
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.s3 import S3Store

DAY1 = "20261129T092233Z-3f9a1c0b7d2e"
DAY1_B = "20261129T235959Z-000000000001"
DAY2 = "20261130T000001Z-aaaaaaaaaaaa"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(store, key, data, content_type="audio/ogg"):
    raw = data.read_bytes() if isinstance(data, Path) else data
    return store.put(key, data, sha256=sha(raw), metadata={"call-id": DAY1}, content_type=content_type)


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def store(request, tmp_path):
    if request.param == "folder":
        root = tmp_path / "store"
        root.mkdir()
        yield open_store(str(root))
        return
    server = request.getfixturevalue("s3_server")
    bucket = server.make_bucket()
    s = open_store(f"s3://{bucket}/contact-centre", endpoint_url=server.endpoint_url, region="us-east-1",
                   addressing_style="path",
                   credentials_provider=lambda endpoint, b: (server.access_key, server.secret_key))
    assert isinstance(s, S3Store) and s.prefix == "contact-centre/"
    yield s
    s.close()


def test_put_get_list_roundtrip(store, tmp_path):
    chunk = layout.chunk_key(DAY1, "000001.opus")
    src = tmp_path / "000001.opus"
    src.write_bytes(b"OggS" * 1000)
    receipt = put(store, chunk, src)
    assert receipt == PutReceipt(chunk, 4000, sha(b"OggS" * 1000))
    manifest = layout.manifest_key(DAY1)
    put(store, manifest, b'{"call_id": "x"}\n', content_type=layout.MANIFEST_CONTENT_TYPE)
    assert store.get(chunk) == b"OggS" * 1000
    assert store.get(manifest) == b'{"call_id": "x"}\n'
    assert list(store.list("")) == [chunk, manifest]


def test_reput_is_harmless(store):
    key = layout.chunk_key(DAY1, "000002.flac")
    first = put(store, key, b"fLaC data")
    assert put(store, key, b"fLaC data") == first
    assert list(store.list("audio/")) == [key]
    assert store.get(key) == b"fLaC data"


def test_listing_a_days_manifests_never_lists_audio(store):
    for call in (DAY1, DAY1_B, DAY2):
        put(store, layout.manifest_key(call), b"{}", content_type=layout.MANIFEST_CONTENT_TYPE)
        for seq in (1, 2):
            put(store, layout.chunk_key(call, f"{seq:06d}.opus"), f"{call}{seq}".encode())
    day1 = list(store.list(layout.manifests_prefix(date(2026, 11, 29))))
    assert day1 == [layout.manifest_key(DAY1), layout.manifest_key(DAY1_B)]
    assert [layout.call_id_from_manifest_key(k) for k in day1] == [DAY1, DAY1_B]
    everything = list(store.list(layout.manifests_prefix()))
    assert everything == sorted(layout.manifest_key(c) for c in (DAY1, DAY1_B, DAY2))
    assert list(store.list(layout.audio_prefix(DAY2))) == [layout.chunk_key(DAY2, "000001.opus"),
                                                          layout.chunk_key(DAY2, "000002.opus")]


def test_get_missing(store):
    with pytest.raises(ObjectNotFoundError):
        store.get(layout.manifest_key(DAY1))


def test_wrong_checksum_stores_nothing(store):
    key = layout.chunk_key(DAY1, "000003.opus")
    with pytest.raises(PermanentStoreError):
        store.put(key, b"bytes", sha256=sha(b"other"), metadata={}, content_type="audio/ogg")
    with pytest.raises(ObjectNotFoundError):
        store.get(key)
    assert list(store.list("")) == []


@pytest.mark.parametrize("key", ["../outside", "/abs/key", "a/../../b", "a\\b"])
def test_unsafe_keys_refused(store, key):
    with pytest.raises(PermanentStoreError):
        put(store, key, b"x")


def test_description_names_the_store_without_credentials(store):
    assert store.description.startswith(("folder ", "s3://"))
    assert "secret" not in store.description.lower()


# ---- parsing STORE strings (the factory) -----------------------------------------------------
@pytest.mark.parametrize("url, expected", [
    ("/srv/calls", ("folder", Path("/srv/calls"))),
    ("relative/calls", ("folder", Path("relative/calls"))),
    ("file:///srv/calls", ("folder", Path("/srv/calls"))),
    ("s3://recordings", ("s3", "recordings", "")),
    ("s3://recordings/", ("s3", "recordings", "")),
    ("s3://recordings/site1/calls/", ("s3", "recordings", "site1/calls")),
    ("S3://recordings/x", ("s3", "recordings", "x")),
])
def test_parse_store_url(url, expected):
    assert parse_store_url(url) == expected


@pytest.mark.parametrize("url, words", [
    ("s3://", "no bucket"),
    ("s3:///prefix", "no bucket"),
    ("http://127.0.0.1:8333/bucket", "unsupported scheme 'http'"),
    ("https://s3.amazonaws.com/bucket", "unsupported scheme 'https'"),
    ("ftp://host/x", "unsupported scheme"),
    ("s3://key:secret@bucket/x", "keyring"),
    ("s3://bucket/a/../b", "'..'"),
    ("s3://b/x", "not a valid bucket"),
    ("", "empty"),
    ("file://otherhost/x", "local path"),
])
def test_parse_store_url_errors_name_the_url(url, words):
    with pytest.raises(StoreUrlError, match=words) as info:
        parse_store_url(url)
    assert repr(url) in str(info.value) or url == ""


def test_open_store_folder(tmp_path):
    s = open_store(tmp_path)
    assert isinstance(s, FolderStore) and s.root == tmp_path


def test_open_store_s3_without_provider_credentials_uses_boto3_chain():
    calls = []
    s = open_store("s3://recordings/site1", endpoint_url="http://127.0.0.1:9", region="eu-west-2",
                   credentials_provider=lambda e, b: calls.append((e, b)))
    assert calls == [("http://127.0.0.1:9", "recordings")]
    assert isinstance(s, S3Store) and s.description == "s3://recordings/site1/ at http://127.0.0.1:9"
    s.close()


def test_capped_get_refuses_a_large_object_and_reads_small_and_empty_ones(store):
    """Every store honours ``max_bytes``: an object over the cap is refused, naming its key; one
    at the cap, and an empty one (S3 answers a range on it with 416), read whole."""
    from callrec_desktop.storage.base import ObjectRefusedError

    big = "manifests/2026/11/29/big.json"
    put(store, big, b"x" * 5000, content_type="application/json")
    with pytest.raises(ObjectRefusedError, match=f"{big}: object is 5000 bytes, more than the 4096 allowed"):
        store.get(big, max_bytes=4096)
    assert store.get(big, max_bytes=5000) == b"x" * 5000
    empty = "manifests/2026/11/29/empty.json"
    put(store, empty, b"", content_type="application/json")
    assert store.get(empty, max_bytes=10) == b""
