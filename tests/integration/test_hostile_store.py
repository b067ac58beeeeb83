"""Hostile or broken store objects are contained by every reading command (issue 10, part 3).

A real folder store holds good calls recorded through the real pipeline and, beside them, every
case of ``tests.support.hostile_store``. Each ``callrec`` command runs once as a real subprocess
(a FIFO that hung a reader would hit the subprocess timeout; a traceback would show in stderr);
each case is then checked against what each command printed: the bad object is named in a
warning or a FAULT line, the good calls still list, verify, export, and their notes and access
events still show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from tests.support import hostile_store
from tests.support.hostile_store import HostileStore


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "callrec_desktop", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> tuple[HostileStore, dict]:
    """The store, and every command's output, run once for the module."""
    base = tmp_path_factory.mktemp("hostile")
    (base / "store").mkdir()
    h = hostile_store.build(base / "store", base / "work")
    cfg = base / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{base / "spool"}"\nlog_dir = "{base / "log"}"\n')
    env = dict(os.environ, CALLREC_CONFIG=str(cfg), XDG_CONFIG_HOME=str(base / "xdg-config"),
               XDG_DATA_HOME=str(base / "xdg-data"), XDG_CACHE_HOME=str(base / "xdg-cache"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    store, db = base / "store", base / "catalog.sqlite"
    good = h.good[0].call_id
    out = {
        "ls": _run(["ls", "--store", store, "--json"], env),
        "ls text": _run(["ls", "--store", store], env),
        "verify": _run(["verify", "--store", store], env),
        "sync": _run(["catalog", "sync", "--store", store, "--db", db], env),
        "find": _run(["find", "--store", store, "--db", db, "--json"], env),  # syncs again (incremental)
        "notes": _run(["notes", "list", good, "--store", store, "--json"], env),
        "access": _run(["access-log", good, "--store", store, "--json"], env),
        "export": _run(["export", good, "--store", store, "--out", base / "good.wav",
                        "--purpose", "staff_training"], env),
    }
    for name in ("chunk_symlinks", "year_long", "fifo", "symlink_dev_zero"):
        case = h.case(name)
        out[f"export {name}"] = _run(["export", case.call_id, "--store", store, "--out", base / f"{name}.wav",
                                      "--purpose", "staff_training"], env)
    out["base"] = base
    return h, out


def _cases(kind: str) -> list[str]:
    return [c.name for c in _CASES if c.kind == kind]


# The case list without building a store: names and kinds are fixed by the generator.
class _Case:
    def __init__(self, name: str, kind: str) -> None:
        self.name, self.kind = name, kind


_CASES = [_Case(n, k) for n, k in (
    ("deep_nesting", "manifest"), ("huge_integer", "manifest"), ("timezone_overflow", "manifest"),
    ("object_50mb", "manifest"), ("invalid_utf8", "manifest"), ("dotdot_chunk_key", "manifest"),
    ("absolute_chunk_key", "manifest"), ("dotdot_call_id", "manifest"), ("symlink_dev_zero", "manifest"),
    ("symlink_outside", "manifest"), ("fifo", "manifest"), ("year_long", "manifest"),
    ("overlapping_pauses", "manifest"), ("chunk_symlinks", "chunk"), ("html_ansi", "valid"),
    ("note_deep_nesting", "note"), ("note_timezone_overflow", "note"), ("note_fifo", "note"),
    ("note_50mb", "note"), ("access_huge_integer", "access"), ("access_timezone_overflow", "access"),
    ("access_symlink_dev_zero", "access"),
)]


def test_the_generator_covers_every_case_the_issue_names(hostile):
    h, _ = hostile
    assert [(c.name, c.kind) for c in h.cases] == [(c.name, c.kind) for c in _CASES]


def test_no_command_prints_a_traceback(hostile):
    _, out = hostile
    for name, proc in out.items():
        if name != "base":
            assert "Traceback" not in proc.stderr + proc.stdout, (name, proc.stderr[-3000:])


def _listed(out) -> list[str]:
    return [json.loads(line)["call_id"] for line in out["ls"].stdout.splitlines()]


def test_good_calls_still_list_verify_sync_find_and_export(hostile):
    h, out = hostile
    good = [m.call_id for m in h.good]
    legal = [h.case("chunk_symlinks").call_id, h.case("html_ansi").call_id]
    assert _listed(out) == good + legal  # in key order: the good calls' partition sorts first
    assert out["ls"].returncode == 1  # something was skipped
    assert out["verify"].returncode == 1
    assert "4 recording(s)" in out["verify"].stdout.splitlines()[-1]
    for m in h.good:
        assert m.call_id not in "".join(line for line in out["verify"].stdout.splitlines() if line.startswith("FAULT"))
    assert out["sync"].returncode == 0 and "4 added" in out["sync"].stderr
    n_skipped = sum(1 for c in h.cases if c.kind in ("manifest", "note"))
    assert f"{n_skipped} skipped" in out["sync"].stderr
    assert out["find"].returncode == 0
    assert {json.loads(line)["call_id"] for line in out["find"].stdout.splitlines()} == set(good + legal)
    assert out["export"].returncode == 0, out["export"].stderr
    info = sf.info(out["base"] / "good.wav")
    assert info.frames == h.good[0].frames and info.samplerate == h.good[0].audio.sample_rate


@pytest.mark.parametrize("name", _cases("manifest"))
def test_a_bad_manifest_is_named_by_every_reader_and_skipped(hostile, name):
    h, out = hostile
    case = h.case(name)
    assert case.call_id not in _listed(out)
    assert f"callrec: warning: skipped {case.key}: " in out["ls"].stderr
    assert f"FAULT {case.key}: " in out["verify"].stdout
    assert f"callrec: warning: skipped {case.key}: " in out["sync"].stderr
    assert case.call_id not in out["find"].stdout


def test_what_each_bad_manifest_is_refused_for(hostile):
    """The reason given is the right one (not some later error the object happened to cause)."""
    h, out = hostile
    why = {line.split(": ", 1)[0][len("FAULT "):]: line for line in out["verify"].stdout.splitlines()
           if line.startswith("FAULT manifests/")}
    expect = {
        "deep_nesting": "nested more than 32 deep", "huge_integer": "integer of 401 digits",
        "timezone_overflow": "out of range once converted to UTC", "object_50mb": "52428800 bytes, more than the",
        "invalid_utf8": "not UTF-8", "dotdot_chunk_key": "'../../../../../../etc/passwd' does not match",
        "absolute_chunk_key": "'/etc/passwd' does not match", "dotdot_call_id": "not a call id: '../../../etc/passwd'",
        "symlink_dev_zero": "is a symbolic link", "symlink_outside": "is a symbolic link",
        "fifo": "not a regular file (a FIFO)", "year_long": "frames: must be at most 1382400000",
        "overlapping_pauses": "pauses[1]: offset_frames: pause at frame",
    }
    for name, words in expect.items():
        assert words in why[h.case(name).key], (name, why[h.case(name).key])


def test_export_of_a_year_long_or_unreadable_manifest_writes_nothing(hostile):
    h, out = hostile
    for name in ("year_long", "fifo", "symlink_dev_zero"):
        proc = out[f"export {name}"]
        assert proc.returncode == 1, (name, proc.stderr)
        assert h.case(name).key in proc.stderr
        assert not (out["base"] / f"{name}.wav").exists() and not (out["base"] / f"{name}.wav.part").exists()


def test_chunks_that_are_symlinks_to_dev_zero_are_faults_and_export_refuses_them(hostile):
    h, out = hostile
    case = h.case("chunk_symlinks")
    faults = [line for line in out["verify"].stdout.splitlines() if line.startswith(f"FAULT {case.call_id}: chunk")]
    assert len(faults) == len(h.good[0].chunks) and all("is a symbolic link" in f for f in faults), faults
    proc = out["export chunk_symlinks"]
    assert proc.returncode == 1 and f"{case.call_id}: chunk 1 cannot be read" in proc.stderr
    assert not (out["base"] / "chunk_symlinks.wav").exists()


def test_html_and_terminal_escapes_are_data_listed_as_such(hostile):
    h, out = hostile
    case = h.case("html_ansi")
    [row] = [json.loads(line) for line in out["ls"].stdout.splitlines() if case.call_id in line]
    assert row["caller"] == hostile_store.HTML and row["department"] == hostile_store.HTML
    assert row["line"] == "01443" + hostile_store.ANSI  # JSON keeps the raw value (escaped by JSON)
    text = out["ls text"].stdout
    assert case.call_id in text and "<h1>Big</h1>" in text  # the department, as text
    assert "\x1b" not in text + out["ls text"].stderr + out["verify"].stdout  # no terminal escape printed
    assert f"FAULT {case.key}" not in out["verify"].stdout


@pytest.mark.parametrize("name", _cases("note"))
def test_a_bad_note_is_skipped_with_a_warning_and_the_good_note_shows(hostile, name):
    h, out = hostile
    case = h.case(name)
    proc = out["notes"]
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["note_id"] for line in proc.stdout.splitlines()] == [h.good_note_id]
    assert f"callrec: warning: skipped {case.key}: " in proc.stderr
    assert f"callrec: warning: skipped {case.key}: " in out["sync"].stderr  # the catalogue's note index too


@pytest.mark.parametrize("name", _cases("access"))
def test_a_bad_access_event_is_skipped_with_a_warning_and_the_rest_show(hostile, name):
    h, out = hostile
    case = h.case(name)
    proc = out["access"]
    assert proc.returncode == 1  # the log has a damaged entry: a fault, said
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(e["action"], e["user"]) for e in events] == [("play", "tl001")]
    assert f"callrec: warning: skipped {case.key}: " in proc.stderr


def test_export_checks_free_space_first_and_writes_nothing_when_short(hostile, tmp_path, monkeypatch, capfd):
    """Through ``cli.main`` into a real 64 KiB tmpfs when this process may mount one (root in
    CI); otherwise the free space is reported as 64 KiB by ``shutil.disk_usage`` (said in the
    output)."""
    from callrec_desktop import archive, cli

    h, out = hostile
    target = tmp_path / "tiny"
    target.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)],
                             capture_output=True).returncode == 0
    try:
        if not mounted:
            print("tmpfs mount not permitted: reporting 64 KiB free")
            real = archive.shutil.disk_usage
            monkeypatch.setattr(archive.shutil, "disk_usage",
                                lambda p: real(p)._replace(free=64 * 1024))
        monkeypatch.setenv("CALLREC_CONFIG", str(out["base"] / "settings.toml"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(out["base"] / "xdg-config"))
        rc = cli.main(["export", h.good[0].call_id, "--store", str(h.root), "--out", str(target / "call.wav"),
                       "--purpose", "staff_training"])
        assert rc == 1
        assert "call.wav: not enough free space in " in capfd.readouterr().err
        assert sorted(os.listdir(target)) == []
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(target)], check=False)


def test_the_error_for_too_little_space_says_what_is_needed_and_free(hostile, tmp_path, monkeypatch):
    from callrec_desktop import archive
    from callrec_desktop.storage.folder import FolderStore

    h, _ = hostile
    real = archive.shutil.disk_usage
    monkeypatch.setattr(archive.shutil, "disk_usage", lambda p: real(p)._replace(free=1024 * 1024))
    with pytest.raises(archive.ArchiveError, match=r"call\.wav: not enough free space in .* it may need up to "
                                                   r"0\.\d MB .* 1\.0 MB free; nothing written"):
        archive.export_call(FolderStore(h.root), h.good[0].call_id, tmp_path / "call.wav")
    assert not (tmp_path / "call.wav").exists() and not (tmp_path / "call.wav.part").exists()
