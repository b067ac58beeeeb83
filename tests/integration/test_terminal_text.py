"""CLI output escapes control characters: a manifest whose department clears the screen
(``ESC [ 2 J``), a caller that sets the terminal title, an agent with a carriage return and
a note whose text is a bidi override reach ``callrec ls``, ``find``, ``notes list``,
``access-log`` and ``verify`` (a real subprocess, a real folder store filled by the real
pipeline) as visible escapes: no ESC, BEL, CR, C1 or bidi control byte is ever printed, and
``--json`` lines stay valid JSON that round-trips the raw values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.terminal_text import EscapingWriter, shown
from tests.support.recording import record_calls

WHEN = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)
DEPARTMENT = "\x1b[2JCouncil Tax"
CALLER = "\x1b]0;pwned\x07077009"
AGENT = "agent\r007"
NOTE = "rude \u202eesrever\u202c \x9b31m"
FORBIDDEN = ["\x1b", "\x07", "\r", "\x9b", "\u202e", "\u202c"]


def run(args, env, rc=0):
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == rc, (proc.returncode, proc.stdout, proc.stderr)
    for ch in FORBIDDEN:
        assert ch not in proc.stdout and ch not in proc.stderr, (ch, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def hostile(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    store = FolderStore(root)
    [call] = record_calls(tmp_path / "spool", store, WHEN, [
        {"line": ("01443 425002", DEPARTMENT), "caller": CALLER, "seconds": 1.5}], agent=AGENT)
    NoteStore(store).add(call.call_id, "tl\x1b[31m001", 0.5, NOTE, manifest=call)
    AccessLog(store, user="tl\x1b[8m001", workstation="pc\x9b1").record("play", call.call_id, "other", "why\x1b[2K")
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "cli-spool"}"\nlog_dir = "{tmp_path / "log"}"\n')
    env = dict(os.environ, CALLREC_CONFIG=str(cfg), XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
               XDG_DATA_HOME=str(tmp_path / "xdg-data"), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return root, call, env


def test_ls_and_find_show_a_screen_clearing_department_as_a_visible_escape(hostile):
    root, call, env = hostile
    ls = run(["ls", "--store", root], env)
    [line] = ls.stdout.splitlines()
    assert call.call_id in line and "\\x1b[2JCouncil Tax" in line
    found = run(["find", "--store", root], env)
    [line] = found.stdout.splitlines()
    assert "\\x1b[2JCouncil T" in line and "\\x1b]0;pwned\\x07" in line
    # --json: valid JSON, the raw values round-trip
    [doc] = [json.loads(x) for x in run(["ls", "--store", root, "--json"], env).stdout.splitlines()]
    assert (doc["department"], doc["caller"], doc["agent"]) == (DEPARTMENT, CALLER, AGENT)
    [doc] = [json.loads(x) for x in run(["find", "--store", root, "--json"], env).stdout.splitlines()]
    assert (doc["department"], doc["caller"]) == (DEPARTMENT, CALLER)


def test_notes_and_access_log_escape_authors_texts_and_reasons(hostile):
    root, call, env = hostile
    notes = run(["notes", "list", call.call_id, "--store", root], env).stdout
    assert "tl\\x1b[31m001" in notes and "\\u202eesrever\\u202c" in notes and "\\x9b31m" in notes
    [doc] = [json.loads(x) for x in run(["notes", "list", call.call_id, "--store", root, "--json"],
                                        env).stdout.splitlines()]
    assert doc["text"] == NOTE  # (its C1 and bidi characters escaped as \u009b, \u202e on the wire)
    log = run(["access-log", call.call_id, "--store", root], env).stdout
    assert "tl\\x1b[8m001 on pc\\x9b1" in log and "why\\x1b[2K" in log


def test_verify_and_skipped_objects_name_hostile_keys_visibly(hostile):
    root, call, env = hostile
    bad = root / "manifests" / "2026" / "03" / "02" / "20260302T090000Z-aaaaaaaaaaaa.json"
    bad.write_text("\x1b[2J not a manifest")
    out = run(["verify", "--store", root], env, rc=1)
    assert "FAULT manifests/2026/03/02/20260302T090000Z-aaaaaaaaaaaa.json" in out.stdout
    run(["ls", "--store", root], env, rc=1)


def test_shown_and_the_writer_escape_every_control_character():
    assert shown("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert shown("one\ntwo\tthree\r") == "one\\x0atwo\\x09three\\x0d"  # one field stays on one line
    assert shown("\x9b\x7f\u202e\u2066ok") == "\\x9b\\x7f\\u202e\\u2066ok"
    assert shown("Council Tax, Business Rates — Benefits £ é") == "Council Tax, Business Rates — Benefits £ é"

    import io

    buf = io.StringIO()
    writer = EscapingWriter(buf)
    print("line\x1b[2J\tx", file=writer)
    print(json.dumps({"d": "\x9b\u202e"}, ensure_ascii=False), file=writer)
    first, second = buf.getvalue().splitlines()
    assert first == "line\\u001b[2J\tx"
    assert json.loads(second) == {"d": "\x9b\u202e"}
