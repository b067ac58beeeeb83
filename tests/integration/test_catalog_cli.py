"""``callrec catalog sync``, ``find``, ``notes`` and ``access-log`` as a real subprocess."""

from __future__ import annotations

import json
import os
import pwd

from tests.integration.test_cli import CALL, env, run, tone_file, write_script  # noqa: F401 (fixture)


def _record(tmp_path, env, caller: str, seconds: float = 3.0) -> str:
    tone_file(tmp_path / "call.wav", seconds + 0.5)
    script = write_script(tmp_path / "call.json", [{**CALL[0], "caller": caller}, {"at": seconds, "event": "call_ended"}])
    return json.loads(run(["record", "--source", tmp_path / "call.wav", "--script", script, "--store",
                           tmp_path / "store", "--codec", "flac"], env, 0).stdout)["call_id"]


def test_catalog_sync_find_by_caller_in_another_spelling(tmp_path, env):
    env = dict(env, XDG_CACHE_HOME=str(tmp_path / "cache"))
    store = tmp_path / "store"
    a = _record(tmp_path, env, "07700 900123")
    b = _record(tmp_path, env, "01632 960001")
    bad = store / "manifests" / a[0:4] / a[4:6] / a[6:8] / "20200101T000000Z-0123456789ab.json"
    bad.write_text("{broken")
    proc = run(["catalog", "sync", "--store", store], env, 0)
    assert "2 added" in proc.stderr and "1 skipped" in proc.stderr
    assert "warning: skipped manifests/" in proc.stderr and "20200101T000000Z-0123456789ab.json" in proc.stderr
    assert (tmp_path / "cache" / "callrec-desktop" / "catalog.sqlite").exists()  # the default catalogue
    found = run(["find", "--store", store, "--caller", "+44 (0)7700 900 123", "--json"], env, 0)
    assert [json.loads(x)["call_id"] for x in found.stdout.splitlines()] == [a]
    found = run(["find", "--store", store, "--no-sync", "--reason", "hangup", "--no-payment", "--min-seconds", "2"], env, 0)
    assert {x.split()[0] for x in found.stdout.splitlines()} == {a, b}
    assert run(["find", "--store", store, "--caller", "Mrs Jones"], env, 2).stderr
    full = run(["catalog", "sync", "--full", "--store", store, "--db", tmp_path / "other.sqlite"], env, 0)
    assert "2 added" in full.stderr
    assert run(["catalog", "sync", "--store", tmp_path / "no-such-store"], env).returncode != 0


def test_notes_add_change_withdraw_and_list_each_logged_with_its_purpose(tmp_path, env):
    call_id = _record(tmp_path, env, "07700 900123")
    store = tmp_path / "store"
    why = ["--purpose", "staff_training"]
    added = run(["notes", "add", call_id, "--at", "1.5", "--text", "Good greeting", "--tag", "good-practice",
                 "--tag", "greeting", "--store", store, "--author", "tl-anne", *why], env, 0)
    first = json.loads(added.stdout)
    assert first["tags"] == ["good-practice", "greeting"] and first["replaces"] is None
    run(["notes", "add", call_id, "--at", "0.5", "--text", "Started well", "--store", store, "--author", "tl-bob",
         *why], env, 0)
    listed = run(["notes", "list", call_id, "--store", store, "--json"], env, 0)
    assert [json.loads(x)["text"] for x in listed.stdout.splitlines()] == ["Started well", "Good greeting"]
    assert "after the end" in run(["notes", "add", call_id, "--at", "99", "--text", "x", "--store", store,
                                   "--author", "tl", *why], env, 2).stderr
    assert "short slugs" in run(["notes", "add", call_id, "--at", "1", "--text", "x", "--tag", "Bad Tag",
                                 "--store", store, "--author", "tl", *why], env, 2).stderr
    assert "--purpose" in run(["notes", "add", call_id, "--at", "1", "--text", "x", "--store", store,
                               "--author", "tl"], env, 2).stderr
    found = run(["find", "--store", store, "--db", tmp_path / "c.sqlite", "--tag", "greeting", "--json"], env, 0)
    assert [json.loads(x)["call_id"] for x in found.stdout.splitlines()] == [call_id]

    # the author is the OS login, whatever --author/--label says (only a label beside it); "only its
    # author can change it" compares logins (tests/unit/governance/test_note_author.py)
    login = pwd.getpwuid(os.getuid()).pw_name
    listed = [json.loads(x) for x in run(["notes", "list", call_id, "--store", store, "--json"], env, 0).stdout.splitlines()]
    assert [(n["author"], n["label"]) for n in listed] == [(login, "tl-bob"), (login, "tl-anne")]
    # the change replaces it for the catalogue's tag filter too
    changed = json.loads(run(["notes", "change", call_id, first["note_id"], "--text", "Good greeting, named the "
                              "department", "--tag", "good-practice", "--store", store, "--author", "tl-anne", *why],
                             env, 0).stdout)
    assert changed["replaces"] == first["note_id"] and changed["at_seconds"] == 1.5
    found = run(["find", "--store", store, "--db", tmp_path / "c.sqlite", "--tag", "greeting", "--json"], env, 0)
    assert found.stdout == ""
    withdrawn = json.loads(run(["notes", "withdraw", call_id, changed["note_id"], "--store", store,
                                "--author", "tl-anne", *why], env, 0).stdout)
    assert withdrawn["withdrawn"] is True
    listed = run(["notes", "list", call_id, "--store", store, "--json"], env, 0)
    assert [json.loads(x)["text"] for x in listed.stdout.splitlines()] == ["Started well"]
    versions = run(["notes", "list", call_id, "--store", store, "--versions"], env, 0).stdout
    assert f"(replaces {first['note_id']})" in versions and f"(withdraws {changed['note_id']})" in versions
    log = run(["access-log", call_id, "--store", store, "--json"], env, 0)
    details = [json.loads(x)["detail"] for x in log.stdout.splitlines()]
    assert [sorted(d) for d in details] == [["note_id"], ["note_id"], ["note_id", "replaces"],
                                            ["note_id", "withdraws"]]
