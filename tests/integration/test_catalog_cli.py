"""``callrec catalog sync``, ``find``, ``notes`` and ``access-log`` as a real subprocess."""

from __future__ import annotations

import json

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


def test_notes_add_and_list(tmp_path, env):
    call_id = _record(tmp_path, env, "07700 900123")
    store = tmp_path / "store"
    added = run(["notes", "add", call_id, "--at", "1.5", "--text", "Good greeting", "--tag", "good-practice",
                 "--tag", "greeting", "--store", store, "--author", "tl-anne"], env, 0)
    assert json.loads(added.stdout)["tags"] == ["good-practice", "greeting"]
    run(["notes", "add", call_id, "--at", "0.5", "--text", "Started well", "--store", store, "--author", "tl-bob"], env, 0)
    listed = run(["notes", "list", call_id, "--store", store, "--json"], env, 0)
    assert [json.loads(x)["text"] for x in listed.stdout.splitlines()] == ["Started well", "Good greeting"]
    assert "after the end" in run(["notes", "add", call_id, "--at", "99", "--text", "x", "--store", store,
                                   "--author", "tl"], env, 2).stderr
    assert "short slugs" in run(["notes", "add", call_id, "--at", "1", "--text", "x", "--tag", "Bad Tag",
                                 "--store", store, "--author", "tl"], env, 2).stderr
    found = run(["find", "--store", store, "--db", tmp_path / "c.sqlite", "--tag", "greeting", "--json"], env, 0)
    assert [json.loads(x)["call_id"] for x in found.stdout.splitlines()] == [call_id]
