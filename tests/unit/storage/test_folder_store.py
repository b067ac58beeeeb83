"""FolderStore: atomic, verified, idempotent puts; errors classified; keys cannot escape."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from callrec_desktop.storage import folder as folder_mod
from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    PermanentStoreError,
    TransientStoreError,
)
from callrec_desktop.storage.folder import FolderStore

KEY = "audio/2026/11/29/20261129T092233Z-3f9a1c0b7d2e/000001.opus"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(store, key, data, **kw):
    return store.put(key, data, sha256=kw.pop("sha256", sha(data)), metadata={}, content_type="audio/ogg", **kw)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_put_bytes_and_get(tmp_path):
    store = FolderStore(tmp_path)
    receipt = put(store, KEY, b"hello")
    assert (receipt.key, receipt.size, receipt.sha256) == (KEY, 5, sha(b"hello"))
    assert (tmp_path / KEY).read_bytes() == b"hello"
    assert store.get(KEY) == b"hello"
    assert store.description == f"folder {tmp_path}"
    assert leftovers(tmp_path) == []


def test_put_streams_a_file_larger_than_one_block(tmp_path):
    src = tmp_path / "src.bin"
    data = os.urandom(folder_mod.BLOCK_SIZE * 2 + 123)
    src.write_bytes(data)
    store = FolderStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    receipt = store.put(KEY, src, sha256=sha(data), metadata={"call-id": "x"}, content_type="audio/ogg")
    assert receipt.size == len(data)
    assert store.get(KEY) == data


def test_put_writes_via_a_temp_file_opened_exclusively_then_renames(tmp_path, monkeypatch):
    """The target never exists half-written: the data goes to a hidden temp file opened
    with mode "xb", is fsynced, and only then renamed into place."""
    store = FolderStore(tmp_path)
    seen = []
    real_open, real_replace, real_fsync = open, os.replace, os.fsync

    def spy_open(path, mode="r", *a, **kw):
        if str(path).endswith(".tmp"):
            seen.append(("open", Path(path).name, mode))
        return real_open(path, mode, *a, **kw)

    def spy_replace(src, dst):
        seen.append(("replace", Path(src).name, Path(dst).name, (tmp_path / KEY).exists()))
        return real_replace(src, dst)

    def spy_fsync(fd):
        seen.append(("fsync",))
        return real_fsync(fd)

    monkeypatch.setattr(folder_mod, "open", spy_open, raising=False)
    monkeypatch.setattr(folder_mod.os, "replace", spy_replace)
    monkeypatch.setattr(folder_mod.os, "fsync", spy_fsync)
    put(store, KEY, b"data")
    seen = seen[[e[0] for e in seen].index("open"):]  # (creating the folders fsyncs their parents)
    assert seen[0][0] == "open" and seen[0][2] == "xb" and seen[0][1].startswith(".000001.opus.")
    assert seen[1] == ("fsync",)  # the file, before the rename
    assert seen[2][0] == "replace" and seen[2][2] == "000001.opus" and seen[2][3] is False
    assert seen[3] == ("fsync",)  # the folder, after the rename


def test_reput_same_bytes_is_idempotent_and_does_not_rewrite(tmp_path, monkeypatch):
    store = FolderStore(tmp_path)
    first = put(store, KEY, b"same")
    mtime = (tmp_path / KEY).stat().st_mtime_ns

    def no_replace(*a):
        raise AssertionError("must not rewrite an identical object")

    monkeypatch.setattr(folder_mod.os, "replace", no_replace)
    assert put(store, KEY, b"same") == first
    assert (tmp_path / KEY).stat().st_mtime_ns == mtime


def test_put_different_bytes_replaces(tmp_path):
    """A manifest is re-put as the call goes on: the newer content replaces the older."""
    store = FolderStore(tmp_path)
    put(store, "manifests/a.json", b"v1")
    put(store, "manifests/a.json", b"v2")
    assert store.get("manifests/a.json") == b"v2"


def test_checksum_mismatch_refused_and_nothing_left(tmp_path):
    store = FolderStore(tmp_path)
    with pytest.raises(PermanentStoreError, match="checksum mismatch"):
        put(store, KEY, b"actual bytes", sha256=sha(b"other bytes"))
    assert not (tmp_path / KEY).exists()
    assert leftovers(tmp_path) == []


def test_checksum_mismatch_does_not_clobber_a_good_object(tmp_path):
    store = FolderStore(tmp_path)
    put(store, KEY, b"good")
    with pytest.raises(PermanentStoreError):
        put(store, KEY, b"corrupt", sha256=sha(b"something else"))
    assert store.get(KEY) == b"good"


def test_bad_sha256_argument_refused(tmp_path):
    with pytest.raises(PermanentStoreError, match="SHA-256"):
        put(FolderStore(tmp_path), KEY, b"x", sha256="ABC")


def test_get_missing_is_object_not_found(tmp_path):
    with pytest.raises(ObjectNotFoundError):
        FolderStore(tmp_path).get(KEY)


def test_missing_root_is_transient_and_never_created(tmp_path):
    """An unmounted network share: retry later; never write into the bare mount point."""
    root = tmp_path / "share"
    store = FolderStore(root)
    with pytest.raises(TransientStoreError, match="not found"):
        put(store, KEY, b"x")
    assert not root.exists()


def test_missing_source_file_is_permanent(tmp_path):
    store = FolderStore(tmp_path)
    with pytest.raises(PermanentStoreError, match="cannot read source"):
        store.put(KEY, tmp_path / "gone.opus", sha256=sha(b""), metadata={}, content_type="audio/ogg")


@pytest.mark.parametrize("key", [
    "../escape", "/etc/passwd", "a/../../b", "a\\b", "C:/x", "", "a//b", "audio/.hidden", "a/",
    "caf\u00e9",
])
def test_unsafe_keys_refused(tmp_path, key):
    store = FolderStore(tmp_path / "root")
    (tmp_path / "root").mkdir()
    with pytest.raises(PermanentStoreError, match="refused"):
        put(store, key, b"x")
    with pytest.raises(PermanentStoreError, match="refused"):
        store.get(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_list_is_lexical_and_skips_temp_files(tmp_path):
    store = FolderStore(tmp_path)
    for key in ["a/b", "a-c", "b", "a/a/z", "ab"]:
        put(store, key, key.encode())
    (tmp_path / "a" / ".b.123abc.tmp").write_bytes(b"half")
    assert list(store.list("")) == sorted(["a/b", "a-c", "b", "a/a/z", "ab"]) == ["a-c", "a/a/z", "a/b", "ab", "b"]
    assert list(store.list("a/")) == ["a/a/z", "a/b"]
    assert list(store.list("a")) == ["a-c", "a/a/z", "a/b", "ab"]
    assert list(store.list("nothing/")) == []


# ---- errors while writing ------------------------------------------------------------------
@contextlib.contextmanager
def tiny_tmpfs(where: Path):
    """A real 64 KiB tmpfs, if this process may mount one (root in the sandbox/CI)."""
    where.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                       check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=10)


def test_disk_full_is_permanent_and_leaves_nothing(tmp_path, monkeypatch):
    """Disk full on a real, tiny tmpfs when mounting is permitted (root); otherwise ENOSPC is
    simulated by making fsync fail with ENOSPC (as NFS/SMB report it), and the test says so
    in its output."""
    data = os.urandom(256 * 1024)
    with tiny_tmpfs(tmp_path / "tiny") as root:
        if root is None:
            print("tmpfs mount not permitted: simulating ENOSPC at fsync")

            def full(fd):
                raise OSError(errno.ENOSPC, "No space left on device")

            root = tmp_path / "tiny"
            monkeypatch.setattr(folder_mod.os, "fsync", full)
        store = FolderStore(root)
        with pytest.raises(PermanentStoreError, match="disk full"):
            put(store, KEY, data)
        assert leftovers(root) == []
        assert not (root / KEY).exists()


@pytest.mark.parametrize("err, kind, words", [
    (errno.ENOSPC, PermanentStoreError, "disk full"),
    (getattr(errno, "EDQUOT", errno.ENOSPC), PermanentStoreError, "disk full"),
    (errno.EACCES, PermanentStoreError, "not allowed"),
    (errno.EROFS, PermanentStoreError, "not allowed"),
    (errno.EIO, TransientStoreError, "I/O error"),
    (getattr(errno, "ESTALE", errno.EIO), TransientStoreError, "I/O error"),
])
def test_os_errors_are_classified(tmp_path, monkeypatch, err, kind, words):
    """Simulated (monkeypatched fsync): these errnos cannot all be produced for real without
    privileges; the classification is what is under test."""
    def failing(fd):
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(folder_mod.os, "fsync", failing)
    store = FolderStore(tmp_path)
    with pytest.raises(kind, match=words) as info:
        put(store, KEY, b"x" * 100)
    assert type(info.value) is kind
    assert leftovers(tmp_path) == []


def test_temp_files_left_by_a_killed_put_of_the_same_key_are_swept(tmp_path):
    """A put killed mid-write leaves `.NAME.<random>.tmp`; the next put of that key removes it
    once it is old enough that no live put can own it. Fresh ones are left alone."""
    import hashlib
    import os
    import time as _time

    from callrec_desktop.storage import folder as folder_mod
    from callrec_desktop.storage.folder import FolderStore

    root = tmp_path / "store"
    root.mkdir()
    store = FolderStore(root)
    body = b"chunk bytes"
    sha = hashlib.sha256(body).hexdigest()
    key = "audio/2026/11/29/20261129T092233Z-3f9a1c0b7d2e/000001.opus"
    target = root.joinpath(*key.split("/"))
    target.parent.mkdir(parents=True)
    stale = target.parent / ".000001.opus.deadbeef0000.tmp"
    fresh = target.parent / ".000001.opus.cafebabe0000.tmp"
    other = target.parent / ".000002.opus.deadbeef0000.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"half")
    old = _time.time() - folder_mod.STALE_TEMP_SECONDS - 5
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    store.put(key, body, sha256=sha, metadata={}, content_type="audio/ogg")
    assert target.read_bytes() == body
    assert not stale.exists() and fresh.exists() and other.exists()
