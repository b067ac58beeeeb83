"""Files private to the user whatever the umask: the helper itself, and every writer that goes
through it (durable writes, the spool, the lock files, the log handler, the catalogue, the
folder store, exports, the uploader's status file), each created under umask 022 (and some
under stranger ones) and checked by mode."""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from callrec_desktop import private_files
from callrec_desktop.private_files import (
    make_private,
    open_private,
    private_dir,
    private_fd,
    shared_modes,
    tighten,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes; Windows relies on the profile's ACL")


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def walk_modes(root: Path) -> dict[str, int]:
    """Every entry below ``root`` (root included) with its mode, symlinks not followed."""
    out = {".": mode(root)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[p.relative_to(root).as_posix()] = mode(p)
    return out


def assert_all_private(root: Path) -> None:
    modes = walk_modes(root)
    wrong = {k: oct(m) for k, m in modes.items()
             if m != (0o700 if os.path.isdir(root / k) and not os.path.islink(root / k) else 0o600)}
    assert not wrong, f"not private under {root}: {wrong}"


# ---- the helper ------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o000, 0o277], indirect=True)
def test_open_private_and_private_dir_ignore_the_umask(tmp_path, umask):
    d = private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    for m in ("xb", "w", "a", "wb+"):
        p = d / f"f-{m}"
        with open_private(p, m) as f:
            f.write(b"x" if "b" in m else "x")
        assert mode(p) == 0o600, (m, oct(umask))
        assert p.read_bytes() == b"x"


def test_private_dir_leaves_existing_folders_alone(tmp_path, umask022):
    (tmp_path / "shared").mkdir(mode=0o755)
    private_dir(tmp_path / "shared" / "mine")
    assert mode(tmp_path / "shared") == 0o755  # not ours to change (it may be a home or /tmp)
    assert mode(tmp_path / "shared" / "mine") == 0o700


def test_open_private_tightens_a_file_it_truncates(tmp_path, umask022):
    p = tmp_path / "old.txt"
    p.write_text("old")
    os.chmod(p, 0o644)
    with open_private(p, "w", encoding="utf-8") as f:
        f.write("new")
    assert mode(p) == 0o600 and p.read_text() == "new"


def test_open_private_refuses_a_mode_that_creates_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"mode 'rb' does not create a file"):
        open_private(tmp_path / "x", "rb")


def test_open_private_x_refuses_an_existing_file(tmp_path, umask022):
    (tmp_path / "x").write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        open_private(tmp_path / "x", "xb")
    assert (tmp_path / "x").read_bytes() == b"keep"


def test_private_fd_with_a_shared_mode(tmp_path, umask022):
    fd = private_fd(tmp_path / "g", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.close(fd)
    assert mode(tmp_path / "g") == 0o640


def test_shared_modes_take_only_the_roots_group_access_never_others():
    assert shared_modes(0o700) == (0o600, 0o700)
    assert shared_modes(0o755) == (0o640, 0o750)
    assert shared_modes(0o777) == (0o640, 0o770)
    assert shared_modes(0o2770 | stat.S_IFDIR) == (0o640, 0o2770)


def test_tighten_takes_group_and_other_bits_away_and_logs_once(tmp_path, umask022, caplog):
    root = tmp_path / "spool"
    (root / "calls" / "c1").mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)
    os.chmod(root / "calls", 0o775)
    (root / "calls" / "c1" / "manifest.json").write_text("{}")
    os.chmod(root / "calls" / "c1" / "manifest.json", 0o664)
    (root / "calls" / "c1" / "tool").write_text("#!")
    os.chmod(root / "calls" / "c1" / "tool", 0o755)
    (root / "ok").write_text("")
    os.chmod(root / "ok", 0o600)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    os.chmod(outside, 0o644)
    os.symlink(outside, root / "link")
    os.mkfifo(root / "fifo", 0o644)
    with caplog.at_level(logging.WARNING, logger="callrec_desktop.private_files"):
        changed = tighten(root, what="the spool")
    assert changed == 5
    assert walk_modes(root) == {".": 0o700, "calls": 0o700, "calls/c1": 0o700, "calls/c1/manifest.json": 0o600,
                                "calls/c1/tool": 0o700, "ok": 0o600, "link": 0o777, "fifo": 0o644}
    assert mode(outside) == 0o644  # the link was not followed
    assert [r.getMessage() for r in caplog.records] == [
        f"made 5 existing file(s) and folder(s) in the spool ({root}) private to this user (0600/0700)"]
    caplog.clear()
    assert tighten(root, what="the spool") == 0
    assert caplog.records == []  # nothing to do: nothing logged


def test_tighten_a_missing_folder_is_not_an_error(tmp_path):
    assert tighten(tmp_path / "nothing") == 0


def test_make_private_does_not_follow_links(tmp_path, umask022):
    target = tmp_path / "t"
    target.write_text("")
    os.chmod(target, 0o644)
    os.symlink(target, tmp_path / "l")
    make_private(tmp_path / "l")
    assert mode(target) == 0o644


def test_tighten_at_start_covers_settings_cache_data_and_logs(tmp_path, umask022, monkeypatch):
    """The app's start-up pass over the platform folders (platformdirs reads XDG_* here)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    app = "callrec-desktop"
    files = [tmp_path / "config" / app / "config.toml", tmp_path / "config" / app / "callrec-desktop.conf",
             tmp_path / "cache" / app / "catalog.sqlite", tmp_path / "cache" / app / "waveforms" / "x.npz"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("")
        os.chmod(f, 0o644)
    os.chmod(tmp_path / "cache" / app / "waveforms", 0o755)
    (tmp_path / "data" / app / "store").mkdir(parents=True)
    os.chmod(tmp_path / "data" / app, 0o755)
    custom_logs = tmp_path / "custom-logs"
    custom_logs.mkdir()
    for name in ("callrec-desktop.log", "callrec-desktop.log.1", "someone-else.log"):
        (custom_logs / name).write_text("")
        os.chmod(custom_logs / name, 0o644)
    import platformdirs

    assert Path(platformdirs.user_cache_dir(app, appauthor=False)) == tmp_path / "cache" / app
    private_files.tighten_at_start(log_dir=custom_logs)
    assert [mode(f) for f in files] == [0o600, 0o600, 0o600, 0o644]  # a cached waveform: not walked, but
    assert mode(tmp_path / "cache" / app / "waveforms") == 0o700  # its folder is closed
    assert mode(tmp_path / "data" / app) == 0o700
    assert mode(custom_logs / "callrec-desktop.log") == mode(custom_logs / "callrec-desktop.log.1") == 0o600
    assert mode(custom_logs / "someone-else.log") == 0o644  # a folder the user named: only our files
    assert mode(custom_logs) == 0o755


# ---- every writer goes through it --------------------------------------------------------------

def test_durable_writes_and_lock_files_are_private(tmp_path, umask022):
    from callrec_desktop.durable import DirLock, write_atomic

    write_atomic(tmp_path / "m.json", b"{}")
    lock = DirLock(tmp_path / ".lock")
    assert lock.acquire()
    lock.release()
    assert mode(tmp_path / "m.json") == mode(tmp_path / ".lock") == 0o600


def test_rotating_log_files_are_private_rotated_ones_too(tmp_path, umask022):
    from callrec_desktop.logs import PrivateRotatingFileHandler

    handler = PrivateRotatingFileHandler(tmp_path / "logs" / "callrec-desktop.log", maxBytes=200, backupCount=3,
                                         encoding="utf-8")
    logger = logging.getLogger("test_private_files.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(40):
            logger.warning("caller 07700900%03d rang line 01443 425002", i)
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["callrec-desktop.log", "callrec-desktop.log.1", "callrec-desktop.log.2", "callrec-desktop.log.3"]
    assert_all_private(tmp_path / "logs")


def test_log_lines_never_carry_a_terminal_escape(tmp_path):
    from callrec_desktop.logs import PrivateRotatingFileHandler

    handler = PrivateRotatingFileHandler(tmp_path / "callrec-desktop.log", encoding="utf-8")
    logger = logging.getLogger("test_private_files.escape")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("sync: skipped %s: department %s", "manifests/x.json", "\x1b[2JTax")
        try:
            raise ValueError("bad\x9b31m")
        except ValueError:
            logger.exception("with a traceback")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = (tmp_path / "callrec-desktop.log").read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x9b" not in text
    assert "department \\x1b[2JTax" in text and "bad\\x9b31m" in text
    assert "Traceback (most recent call last):\n" in text  # line breaks kept


def test_catalogue_and_its_journals_are_private(tmp_path, umask022):
    from callrec_desktop.catalog import Catalog

    catalog = Catalog(tmp_path / "cache" / "catalog.sqlite")
    try:
        catalog.count()
        names = {p.name for p in (tmp_path / "cache").iterdir()}
        assert {"catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"} <= names  # WAL mode, open
        assert_all_private(tmp_path / "cache")
    finally:
        catalog.close()


def test_an_existing_catalogue_is_tightened_when_opened(tmp_path, umask022):
    from callrec_desktop.catalog import Catalog

    Catalog(tmp_path / "catalog.sqlite").close()
    for p in tmp_path.iterdir():
        os.chmod(p, 0o644)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        assert {p.name: mode(p) for p in tmp_path.iterdir() if p.name.startswith("catalog.sqlite")} == {
            p.name: 0o600 for p in tmp_path.iterdir() if p.name.startswith("catalog.sqlite")}
    finally:
        catalog.close()


def test_folder_store_objects_are_private_in_a_private_root(tmp_path, umask022):
    from callrec_desktop.storage.folder import FolderStore

    root = private_dir(tmp_path / "store")
    store = FolderStore(root)
    import hashlib

    data = b"audio"
    store.put("audio/2026/12/04/c1/000001.opus", data, sha256=hashlib.sha256(data).hexdigest(), metadata={},
              content_type="audio/ogg")
    assert_all_private(root)


def test_folder_store_in_a_group_share_gives_the_group_read_and_others_nothing(tmp_path, umask022):
    import hashlib

    from callrec_desktop.storage.folder import FolderStore

    root = tmp_path / "share"
    root.mkdir()
    os.chmod(root, 0o2775)
    data = b"audio"
    FolderStore(root).put("audio/2026/c1/000001.opus", data, sha256=hashlib.sha256(data).hexdigest(), metadata={},
                          content_type="audio/ogg")
    modes = walk_modes(root)
    assert modes["audio"] == modes["audio/2026"] == modes["audio/2026/c1"] == 0o2770
    assert modes["audio/2026/c1/000001.opus"] == 0o640


def test_spool_folders_chunks_quarantine_and_repairs_are_private(tmp_path, umask022):
    """A call recorded into a new spool, then one that died with a torn ``.part`` and one whose
    manifest is unreadable, recovered: every folder 0700 and every file 0600, including the
    repaired chunk, the quarantine and its reason notes, and what an older version left 0644."""
    from callrec_desktop.audio.chunk_writer import ChunkWriter
    from callrec_desktop.audio.encoders import CodecSettings
    from callrec_desktop.spool import MANIFEST, Spool, spool_chunk_name
    from tests.unit.test_spool import RATE, make_manifest, tones

    settings = CodecSettings("flac")
    spool = Spool(tmp_path / "spool")
    call = spool.create_call(make_manifest(settings=settings))
    writer = ChunkWriter(call, settings, chunk_frames=RATE)
    sealed = writer.write(0, tones(RATE + RATE // 2))
    assert len(sealed) == 1 and writer.has_open_chunk
    writer.abort()  # the process "dies": the second chunk stays a .part
    assert_all_private(spool.root)  # as written, before any recovery tightens anything
    whole = (call.path / spool_chunk_name(1, 0, "flac")).read_bytes()
    # what an older version left: a torn part and a manifest readable by everyone
    torn = call.path / (spool_chunk_name(3, 3 * RATE, "flac") + ".part")
    torn.write_bytes(whole[: len(whole) - 10])
    os.chmod(call.path / MANIFEST, 0o644)
    assert mode(torn) == 0o644
    call.release()
    broken = spool.calls_dir / "20260302T091600Z-0123456789ac"
    broken.mkdir(mode=0o755)
    (broken / MANIFEST).write_bytes(b"not json")
    (broken / spool_chunk_name(1, 0, "flac")).write_bytes(whole)
    report = spool.recover()
    assert len(report.repaired_chunks) == 2 and len(report.quarantined) == 2
    names = set(walk_modes(spool.root))
    assert "calls/20260302T091500Z-0123456789ab/000003@48000.flac" in names  # repaired from the torn part
    assert "quarantine/20260302T091600Z-0123456789ac/manifest.json.reason.txt" in names
    assert_all_private(spool.root)


def test_waveform_cache_and_exports_are_private(tmp_path, umask022):
    from callrec_desktop.archive import export_call
    from callrec_desktop.playback.call_audio import CallAudio
    from callrec_desktop.playback.waveform import load_or_compute
    from tests.unit.playback.test_call_audio import record

    store, m = record(tmp_path, seconds=2.0, chunk_seconds=1.0, pause=(0.5, 1.0), transfer_at=1.9)
    load_or_compute(CallAudio(store, m), tmp_path / "cache" / "waveforms")
    assert_all_private(tmp_path / "cache")
    (tmp_path / "exports").mkdir()
    os.chmod(tmp_path / "exports", 0o700)
    for suffix in (".wav", ".flac", ".opus"):
        export_call(store, m.call_id, tmp_path / "exports" / f"call{suffix}")
    assert_all_private(tmp_path / "exports")


def test_tighten_to_a_depth_changes_only_the_entries_that_deep(tmp_path, umask022):
    (tmp_path / "cache" / "waveforms" / "deeper").mkdir(parents=True)
    (tmp_path / "cache" / "catalog.sqlite").write_text("")
    (tmp_path / "cache" / "waveforms" / "x.npz").write_text("")
    for p in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    assert tighten(tmp_path / "cache", depth=1) == 3
    assert walk_modes(tmp_path / "cache") == {".": 0o700, "catalog.sqlite": 0o600, "waveforms": 0o700,
                                              "waveforms/x.npz": 0o644, "waveforms/deeper": 0o755}
    assert tighten(tmp_path / "cache", depth=2) == 2
    assert tighten(tmp_path / "cache") == 0
