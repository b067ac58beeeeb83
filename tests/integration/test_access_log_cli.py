"""``callrec access-log verify CALL_ID|--all`` as a real subprocess: each kind of tampering on a
real folder store exits 1 naming the first fault; concurrent writers and old unchained events
do not. Once against the real S3 server (SeaweedFS on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import threading
from datetime import datetime, timedelta, timezone

import pytest

from callrec_desktop.governance.access_log import AccessEvent, AccessLog
from callrec_desktop.storage import layout
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.storage.s3 import S3Store
from tests.integration.test_catalog_cli import _record
from tests.integration.test_cli import env, run  # noqa: F401 (fixture)
from tests.unit.governance.test_access_log import RacingStore

OTHER = "20261129T092233Z-3f9a1c0b7d2e"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 10, 15, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=2)
        return self.now


def _events(store, call_id: str, n: int, clock=None) -> list[AccessEvent]:
    clock = clock or Clock()
    logs = [AccessLog(store, user=u, workstation=f"pc-{u}", clock=clock) for u in ("tl-anne", "tl-bob")]
    return [logs[i % 2].record("play", call_id, "complaint", detail={"i": i}) for i in range(n)]


def _verify(store_args, env, rc, *target):
    proc = run(["access-log", "verify", *target, *store_args], env, rc)
    return proc.stdout


def test_cli_written_events_carry_the_os_login_and_verify(tmp_path, env):
    call_id = _record(tmp_path, env, "07700 900123")
    store = tmp_path / "store"
    why = ["--purpose", "complaint"]
    run(["export", call_id, "--store", store, "--out", tmp_path / "out.wav", *why], env, 0)
    run(["notes", "add", call_id, "--at", "1", "--text", "Check", "--store", store, "--label", "head-of-service",
         *why], env, 0)
    log = [json.loads(x) for x in run(["access-log", call_id, "--store", store, "--json"], env, 0).stdout.splitlines()]
    login = pwd.getpwuid(os.getuid()).pw_name
    assert [(e["action"], e["user"], e["seq"]) for e in log] == [("export", login, 1), ("note", login, 2)]
    assert log[1]["label"] == "head-of-service" and log[0]["label"] == "agent001" or log[0]["label"]
    out = _verify(["--store", store], env, 0, call_id)
    assert out == f"{call_id}: ok: 2 chained event(s)\n"
    shown = run(["access-log", call_id, "--store", store], env, 0).stdout
    assert f"{login} (head-of-service) on" in shown


@pytest.fixture
def chain(tmp_path, env):
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    store = FolderStore(root)
    return root, store, _events(store, OTHER, 4)


def _path(root, event) -> os.PathLike:
    return root / layout.access_key(OTHER, event.event_id)


def test_verify_reports_a_removed_event(chain, env):
    root, store, (a, b, c, d) = chain
    assert _verify(["--store", root], env, 0, OTHER) == f"{OTHER}: ok: 4 chained event(s)\n"
    _path(root, c).unlink()
    assert _verify(["--store", root], env, 1, OTHER).startswith(
        f"{OTHER}: FAULT: removed: event {c.event_id}, named by {d.event_id}, is not in the store")


def test_verify_reports_a_changed_event(chain, env):
    root, store, (a, b, c, d) = chain
    p = _path(root, a)
    p.write_bytes(p.read_bytes().replace(b"tl-anne", b"tl-carl"))
    out = _verify(["--store", root], env, 1, OTHER)
    assert out.startswith(f"{OTHER}: FAULT: changed: event {a.event_id} is not what {b.event_id} names")


def test_verify_reports_an_inserted_event(chain, env):
    root, store, (a, b, c, d) = chain
    doc = json.loads(_path(root, a).read_bytes())
    x = "20261129T101502500Z-0123456789ab"
    doc.update(event_id=x, at="2026-11-29T10:15:02.500Z", seq=2, user="head-of-service",
               prev=[{"event_id": a.event_id, "sha256": hashlib.sha256(_path(root, a).read_bytes()).hexdigest()}])
    body = (json.dumps(doc) + "\n").encode()
    store.put(layout.access_key(OTHER, x), body, sha256=hashlib.sha256(body).hexdigest(), metadata={},
              content_type="application/json")
    assert _verify(["--store", root], env, 1, OTHER) == (
        f"{OTHER}: FAULT: inserted: event {x} (seq 2) is named by no later event, though the chain has gone on "
        f"to seq 4\n")


def test_verify_reports_reordered_events(chain, env):
    root, store, (a, b, c, d) = chain
    pb, pc = _path(root, b), _path(root, c)
    bb, bc = pb.read_bytes(), pc.read_bytes()
    pb.write_bytes(bc)
    pc.write_bytes(bb)
    out = _verify(["--store", root], env, 1, OTHER)
    assert out.startswith(f"{OTHER}: FAULT: reordered: {layout.access_key(OTHER, b.event_id)} holds event "
                          f"{c.event_id}")
    assert "(and " in out  # the broken links after it are counted too


def test_verify_reports_two_writers_at_once_as_concurrent_not_tampering(tmp_path, env):
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    store = FolderStore(root)
    _events(store, OTHER, 1)
    racing = RacingStore(store, threading.Barrier(2))
    threads = [threading.Thread(target=lambda u=u: AccessLog(racing, user=u, workstation=u).record(
        "play", OTHER, "complaint")) for u in ("tl-anne", "tl-bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    out = _verify(["--store", root], env, 0, OTHER)
    assert out == (f"{OTHER}: ok: 3 chained event(s); 2 concurrent (written at the same moment as another; "
                   f"not tampering)\n")


def test_verify_all_reports_old_unchained_calls_and_names_each_faulty_call(chain, env):
    root, store, (a, b, c, d) = chain
    old_call = "20250601T080000Z-00000000abcd"
    old = AccessEvent("20250601T081000000Z-0123456789ab", old_call, "play", "complaint", None, "tl001", "pc",
                      datetime(2025, 6, 1, 8, 10, tzinfo=timezone.utc))
    body = old.to_json()
    store.put(layout.access_key(old_call, old.event_id), body, sha256=hashlib.sha256(body).hexdigest(),
              metadata={}, content_type="application/json")
    assert _verify(["--store", root], env, 0, "--all") == (
        f"{old_call}: 1 event(s), all unchained (before version 2 of the access log): nothing to verify\n"
        f"{OTHER}: ok: 4 chained event(s)\n2 call(s) checked, 0 with a fault\n")
    _path(root, b).unlink()
    out = _verify(["--store", root], env, 1, "--all").splitlines()
    assert out[1].startswith(f"{OTHER}: FAULT: removed: event {b.event_id}, named by {c.event_id}, is not in the store")
    assert out[2] == "2 call(s) checked, 1 with a fault"
    assert "needs a CALL_ID or --all" in run(["access-log", "verify", "--store", root], env, 2).stderr


@pytest.mark.s3
def test_verify_against_s3(s3_server, env):
    bucket = s3_server.make_bucket()
    store = S3Store(bucket, "site1", endpoint_url=s3_server.endpoint_url, region=s3_server.region,
                    credentials=(s3_server.access_key, s3_server.secret_key))
    a, b, c = _events(store, OTHER, 3)
    s3env = dict(env, AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=s3_server.secret_key)
    args = ["--store", f"s3://{bucket}/site1", "--endpoint-url", s3_server.endpoint_url]
    assert _verify(args, s3env, 0, "--all") == f"{OTHER}: ok: 3 chained event(s)\n1 call(s) checked, 0 with a fault\n"
    client = s3_server.client()
    client.delete_object(Bucket=bucket, Key="site1/" + layout.access_key(OTHER, b.event_id))
    assert _verify(args, s3env, 1, OTHER).startswith(
        f"{OTHER}: FAULT: removed: event {b.event_id}, named by {c.event_id}, is not in the store")


def test_verify_all_on_a_hostile_store_names_each_bad_access_object_and_goes_on(tmp_path, env):
    from tests.support import hostile_store

    h = hostile_store.build(tmp_path / "store", tmp_path / "work")
    proc = run(["access-log", "verify", "--all", "--store", tmp_path / "store", "--json"], env, 1)
    assert "Traceback" not in proc.stderr
    reports = {r["call_id"]: r for r in map(json.loads, proc.stdout.splitlines())}
    first = h.good[0].call_id
    assert not reports[first]["ok"]
    faults = "\n".join(reports[first]["faults"])
    cases = [c for c in h.cases if c.kind == "access"]
    assert len(cases) >= 3  # huge integer, timezone overflow, symlink to /dev/zero
    for case in cases:
        assert case.key in faults, case.name
    assert all(r["ok"] for cid, r in reports.items() if cid != first)


@pytest.mark.s3
def test_two_writers_at_once_and_a_changed_event_on_s3(s3_server, env):
    bucket = s3_server.make_bucket()
    store = S3Store(bucket, "site1", endpoint_url=s3_server.endpoint_url, region=s3_server.region,
                    credentials=(s3_server.access_key, s3_server.secret_key))
    [a] = _events(store, OTHER, 1)
    racing = RacingStore(store, threading.Barrier(2))
    threads = [threading.Thread(target=lambda u=u: AccessLog(racing, user=u, workstation=u).record(
        "play", OTHER, "complaint")) for u in ("tl-anne", "tl-bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    s3env = dict(env, AWS_ACCESS_KEY_ID=s3_server.access_key, AWS_SECRET_ACCESS_KEY=s3_server.secret_key)
    args = ["--store", f"s3://{bucket}/site1", "--endpoint-url", s3_server.endpoint_url]
    assert _verify(args, s3env, 0, OTHER) == (f"{OTHER}: ok: 3 chained event(s); 2 concurrent (written at the same "
                                              f"moment as another; not tampering)\n")
    merge = AccessLog(store, user="tl-carol", workstation="pc-3").record("play", OTHER, "complaint")
    assert merge.seq == 3 and len(merge.prev) == 2
    # an administrator (who can overwrite) edits the first event: the next one no longer matches it
    key = "site1/" + layout.access_key(OTHER, a.event_id)
    client = s3_server.client()
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read().replace(b"tl-anne", b"tl-mallory")
    client.put_object(Bucket=bucket, Key=key, Body=body)
    out = _verify(args, s3env, 1, OTHER)
    assert out.startswith(f"{OTHER}: FAULT: changed: event {a.event_id} is not what ")
