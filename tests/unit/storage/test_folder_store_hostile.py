"""FolderStore against a hostile folder: links, FIFOs, devices and oversized files are refused
with a message naming the key, never followed, never read without bound, never waited on."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest

from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    ObjectRefusedError,
    PermanentStoreError,
    get_capped,
)
from callrec_desktop.storage.folder import FolderStore

KEY = "manifests/2026/11/29/20261129T092233Z-3f9a1c0b7d2e.json"


def put(store, key, data):
    return store.put(key, data, sha256=hashlib.sha256(data).hexdigest(), metadata={}, content_type="x")


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "store"
    r.mkdir()
    (r / "manifests/2026/11/29").mkdir(parents=True)
    return r


def test_symlink_to_dev_zero_is_refused_not_read(root):
    os.symlink("/dev/zero", root / KEY)
    with pytest.raises(ObjectRefusedError, match=rf"{KEY}: is a symbolic link|{KEY}: {KEY} is a symbolic link"):
        FolderStore(root).get(KEY)


def test_symlink_to_a_file_outside_is_refused(root, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": 1}')
    os.symlink(secret, root / KEY)
    with pytest.raises(ObjectRefusedError, match="symbolic link"):
        FolderStore(root).get(KEY)


def test_symlinked_folder_on_the_way_is_refused_for_reads_and_writes(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "20261129T092233Z-3f9a1c0b7d2e.json").write_text("{}")
    os.rmdir(root / "manifests/2026/11/29")
    os.symlink(outside, root / "manifests/2026/11/29")
    store = FolderStore(root)
    with pytest.raises(ObjectRefusedError, match="manifests/2026/11/29 is a symbolic link"):
        store.get(KEY)
    with pytest.raises(PermanentStoreError, match="manifests/2026/11/29 is a symbolic link"):
        put(store, KEY, b"{}")
    assert [p.name for p in outside.iterdir()] == ["20261129T092233Z-3f9a1c0b7d2e.json"]  # nothing written there


def test_fifo_is_refused_at_once(root):
    os.mkfifo(root / KEY)  # no writer: a blocking open would hang forever
    with pytest.raises(ObjectRefusedError, match=rf"{KEY}: not a regular file \(a FIFO\)"):
        FolderStore(root).get(KEY)
    with pytest.raises(PermanentStoreError, match="a FIFO.*not replaced"):
        put(FolderStore(root), KEY, b"{}")


def test_socket_is_refused(root):
    path = root / "manifests/2026/11/29/s.json"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(ObjectRefusedError, match="not a regular file"):
            FolderStore(root).get("manifests/2026/11/29/s.json")


def test_oversized_object_is_refused_without_reading_it(root):
    with open(root / KEY, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB claimed
    store = FolderStore(root)
    with pytest.raises(ObjectRefusedError, match=rf"{KEY}: object is 52428800 bytes, more than the 1048576"):
        store.get(KEY, max_bytes=1024 * 1024)
    with pytest.raises(ObjectRefusedError, match="more than the 1048576"):
        get_capped(store, KEY, 1024 * 1024)
    (root / KEY).write_bytes(b"x" * 10)
    assert store.get(KEY, max_bytes=10) == b"x" * 10


@pytest.mark.parametrize("key", ["../outside.json", "/etc/passwd", "manifests/../../x"])
def test_escaping_keys_are_refused(root, key):
    with pytest.raises(PermanentStoreError, match="refused"):
        FolderStore(root).get(key)


def test_a_folder_is_not_an_object(root):
    with pytest.raises(ObjectNotFoundError, match="a folder"):
        FolderStore(root).get("manifests/2026")


def test_listing_names_hostile_entries_so_readers_can_report_them(root):
    os.symlink("/dev/zero", root / KEY)
    os.mkfifo(root / "manifests/2026/11/29/fifo.json")
    assert list(FolderStore(root).list("manifests/")) == [
        KEY, "manifests/2026/11/29/fifo.json"]


def test_a_thousand_nested_folders_do_not_exhaust_the_listing(root):
    levels = [root / "manifests"]
    for _ in range(1200):  # made (and removed) one at a time: os.makedirs itself recurses
        levels.append(levels[-1] / "d")
        os.mkdir(levels[-1])
    (levels[-1] / "x.json").write_text("{}")
    (root / KEY).write_text("{}")
    try:
        assert list(FolderStore(root).list("manifests/")) == [KEY]
    finally:
        (levels[-1] / "x.json").unlink()
        for level in reversed(levels[1:]):
            os.rmdir(level)
