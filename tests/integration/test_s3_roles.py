"""Roles and write-once objects against an S3 server that enforces IAM policies (moto's server,
tests/support/moto_iam.py), with exactly the README's policy per role.

Shown here: an agent's key cannot write an access event or a note (whatever name it signs),
cannot read anything, and cannot replace another call's final manifest through the program
or with ``If-None-Match``; a team leader's key cannot write audio or manifests; normal
recording, lost replies, crash recovery and re-upload all still succeed with agent keys.
And the gap, stated as a test: moto cannot evaluate the AWS condition keys the README adds,
so a thief's plain PUT without headers does replace the current version; with versioning
on, the original stays readable by the team leader.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timezone

import pytest

from callrec_desktop.audio.chunk_writer import ChunkWriter
from callrec_desktop.audio.encoders import CodecSettings
from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.core.ids import new_call_id
from callrec_desktop.core.manifest import AudioFormat, Manifest
from callrec_desktop.recorder import Recorder
from callrec_desktop.spool import Spool
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import PermanentStoreError
from callrec_desktop.storage.s3 import S3Store
from callrec_desktop.uploader import Uploader
from tests.support.faultproxy import FaultProxy
from tests.support.moto_iam import RoleStore, moto_iam  # noqa: F401  (the session fixture)
from tests.support.recording import IDENTITY, RATE, settings, two_tones

from tests.integration.test_upload_s3 import FAST, check_stored_call, expected_keys, wait_until

pytestmark = pytest.mark.s3
COUNCIL_TAX = "Council Tax, Business Rate and Benefits"


def s3_keys(client, bucket: str, prefix: str) -> list[str]:
    """Keys under ``prefix``, listed with an empty Prefix and filtered here: moto 5.2's server
    miscomputes the signature of a ListObjectsV2 whose Prefix holds '/' (SignatureDoesNotMatch)."""
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", ()) if o["Key"].startswith(prefix)]
    return keys


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def store_for(rs: RoleStore, role: str, endpoint_url: str | None = None) -> S3Store:
    return S3Store(rs.bucket, rs.prefix, endpoint_url=endpoint_url or rs.endpoint_url, region="us-east-1",
                   addressing_style="path", credentials=rs.keys[role], connect_timeout=2, read_timeout=10)


def put(store: S3Store, key: str, data: bytes, **kw):
    return store.put(key, data, sha256=sha(data), metadata={}, content_type="application/json", **kw)


def leader_get(rs: RoleStore):
    client = rs.client("team-leader")
    return lambda key: client.get_object(Bucket=rs.bucket, Key=f"{rs.prefix}/{key}")["Body"].read()


def record_call(spool: Spool, uploader: Uploader, seconds: int = 6) -> Manifest:
    """One call with a payment pause through the real recorder, uploaded as it goes."""
    rec = Recorder(SyntheticSource(two_tones(seconds + 0.5), sample_rate=RATE, block_frames=RATE // 10), spool,
                   settings("opus", chunk_seconds=1.0, lookbehind_seconds=0.2), IDENTITY,
                   listeners=[lambda e: uploader.wake()])
    rec.start_call("01443 425002", COUNCIL_TAX, caller="07700 900123", at_frame=0)
    rec.start_payment(at_frame=2 * RATE)
    rec.end_payment(at_frame=3 * RATE)
    rec.end_call(at_frame=seconds * RATE)
    results = rec.run()
    assert results.errors == []
    [final] = results.manifests
    return final


@pytest.fixture
def roles(moto_iam):  # noqa: F811
    return moto_iam.make_store()


@pytest.fixture
def recorded(roles, tmp_path):
    """A call recorded and uploaded with the agent's key: (RoleStore, final manifest)."""
    spool = Spool(tmp_path / "spool")
    uploader = Uploader(spool, store_for(roles, "agent"), FAST)
    final = record_call(spool, uploader)
    assert uploader.drain(60), uploader.status()
    check_stored_call(leader_get(roles), final)
    return roles, final


# ---- the forgeries -------------------------------------------------------------------------------
def test_agent_key_cannot_write_an_access_event_or_a_note(recorded):
    roles, final = recorded
    agent = store_for(roles, "agent")
    at = datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc)
    event = json.dumps({"call_id": final.call_id, "action": "played", "who": "head-of-service"}).encode()
    note = json.dumps({"call_id": final.call_id, "author": "someone-else",
                       "text": "Agent was rude: disciplinary"}).encode()
    for key, body in ((layout.access_key(final.call_id, layout.new_event_id(at)), event),
                      (layout.note_key(final.call_id, layout.new_event_id(at)), note)):
        with pytest.raises(PermanentStoreError, match="AccessDenied") as info:
            put(agent, key, body)
        assert key in str(info.value)
        # and not with a raw client either, whatever headers it sends
        with pytest.raises(Exception, match="AccessDenied"):
            roles.client("agent").put_object(Bucket=roles.bucket, Key=f"{roles.prefix}/{key}", Body=body)
    leader = roles.client("team-leader")
    assert s3_keys(leader, roles.bucket, f"{roles.prefix}/access/") == []
    assert s3_keys(leader, roles.bucket, f"{roles.prefix}/notes/") == []
    # the team leader's own key may write both (the control: the keys are right)
    leader_store = store_for(roles, "team-leader")
    put(leader_store, layout.note_key(final.call_id, layout.new_event_id(at)), note)
    put(leader_store, layout.access_key(final.call_id, layout.new_event_id(at)), event)
    assert len(s3_keys(leader, roles.bucket, f"{roles.prefix}/notes/")) == 1


def test_agent_key_cannot_replace_another_calls_final_manifest(recorded):
    roles, final = recorded
    key = layout.manifest_key(final.call_id)
    original = leader_get(roles)(key)
    assert Manifest.from_json(original).pauses  # the real one has its payment pause
    forged = dataclasses.replace(Manifest.from_json(original), agent="agent999", pauses=())
    forged_bytes = forged.to_json() if isinstance(forged.to_json(), bytes) else forged.to_json().encode()
    assert forged_bytes != original
    # through the program (another PC's uploader, a colliding or guessed call id)
    with pytest.raises(PermanentStoreError, match="a different object is already stored at this key; not replaced"):
        put(store_for(roles, "agent"), key, forged_bytes, write_once=True)
    # and with a raw client asking for a write-once put
    with pytest.raises(Exception, match="PreconditionFailed"):
        roles.client("agent").put_object(Bucket=roles.bucket, Key=f"{roles.prefix}/{key}", Body=forged_bytes,
                                         IfNoneMatch="*")
    # a sealed chunk is write-once too
    chunk = layout.chunk_key(final.call_id, final.chunks[0].name)
    with pytest.raises(PermanentStoreError, match="not replaced"):
        put(store_for(roles, "agent"), chunk, b"not the audio", write_once=True)
    assert leader_get(roles)(key) == original
    check_stored_call(leader_get(roles), final)


def test_without_headers_moto_lets_a_thief_replace_but_versioning_keeps_the_original(moto_iam, tmp_path):  # noqa: F811
    """The gap the README states: moto (like SeaweedFS) cannot evaluate AWS's s3:if-none-match
    condition key, so a plain PUT replaces the current version. With versioning (and Object
    Lock in production) the original version stays, readable with the team leader's key."""
    roles = moto_iam.make_store(versioning=True)
    spool = Spool(tmp_path / "spool")
    uploader = Uploader(spool, store_for(roles, "agent"), FAST)
    final = record_call(spool, uploader, seconds=3)
    assert uploader.drain(60), uploader.status()
    key = f"{roles.prefix}/{layout.manifest_key(final.call_id)}"
    leader = roles.client("team-leader")
    original = leader.get_object(Bucket=roles.bucket, Key=key)["Body"].read()
    roles.client("agent").put_object(Bucket=roles.bucket, Key=key, Body=b'{"forged": true}')
    assert leader.get_object(Bucket=roles.bucket, Key=key)["Body"].read() == b'{"forged": true}'
    versions = [v for v in leader.list_object_versions(Bucket=roles.bucket)["Versions"] if v["Key"] == key]
    bodies = [leader.get_object(Bucket=roles.bucket, Key=key, VersionId=v["VersionId"])["Body"].read()
              for v in versions]
    assert original in bodies and len(bodies) >= 2


# ---- what each role may do ---------------------------------------------------------------------
def test_team_leader_cannot_write_audio_or_manifests_and_agent_cannot_read(recorded):
    roles, final = recorded
    leader = store_for(roles, "team-leader")
    new_call = new_call_id(datetime(2026, 12, 4, 9, 0, tzinfo=timezone.utc))
    for key in (layout.chunk_key(new_call, "000001.opus"), layout.manifest_key(new_call),
                layout.chunk_key(final.call_id, "000099.opus")):
        with pytest.raises(PermanentStoreError, match="AccessDenied"):
            put(leader, key, b"{}")
    with pytest.raises(Exception, match="AccessDenied"):  # nor delete anything
        roles.client("team-leader").delete_object(Bucket=roles.bucket,
                                                  Key=f"{roles.prefix}/{layout.manifest_key(final.call_id)}")
    # the team leader reads and lists everything
    assert leader.get(layout.manifest_key(final.call_id))
    assert sorted(s3_keys(roles.client("team-leader"), roles.bucket, f"{roles.prefix}/audio/")) == sorted(
        f"{roles.prefix}/{k}" for k in expected_keys(final) if k.startswith("audio/"))
    # the agent reads and lists nothing
    agent = store_for(roles, "agent")
    with pytest.raises(PermanentStoreError, match="AccessDenied"):
        agent.get(layout.manifest_key(final.call_id))
    with pytest.raises(Exception, match="AccessDenied"):
        roles.client("agent").list_objects_v2(Bucket=roles.bucket)


# ---- normal work with agent keys ---------------------------------------------------------------
def test_recording_through_lost_replies_with_agent_keys(roles, tmp_path):
    """Every reply may be lost after the put landed: the retry finds our bytes there (412 on
    If-None-Match, then If-Match our MD5 succeeds) and nothing is refused or doubled."""
    spool = Spool(tmp_path / "spool")
    with FaultProxy("127.0.0.1", int(roles.endpoint_url.rsplit(":", 1)[1]), p=0.3, seed=104,
                    faults=("reset_after",)) as proxy:
        confirmed: list[str] = []
        uploader = Uploader(spool, store_for(roles, "agent", proxy.endpoint_url),
                            dataclasses.replace(FAST, provisional_manifest_seconds=0, max_attempts_per_pass=6),
                            on_uploaded=lambda call_id, key: confirmed.append(key))
        uploader.start()
        try:
            final = record_call(spool, uploader, seconds=8)
            wait_until(lambda: not spool.call_ids(), 60, "the spool to drain through lost replies")
        finally:
            uploader.stop(timeout=15)
        counts = dict(proxy.counts)
    assert counts.get("reset_after", 0) >= 3, counts  # replies really were lost
    check_stored_call(leader_get(roles), final)
    listed = {k[len(roles.prefix) + 1:] for k in s3_keys(roles.client("team-leader"), roles.bucket, roles.prefix + "/")}
    assert listed - {"health/checksum-probe"} == expected_keys(final)
    assert set(confirmed) == expected_keys(final)
    assert uploader.status().last_error is None


def test_crash_after_a_lost_reply_then_recovery_and_reupload_with_agent_keys(roles, tmp_path):
    """Provisional manifest P1 stored; P2's put lands but its reply is lost and the process
    dies; recovery ends the call; the next start's final manifest replaces P2 (If-Match the MD5
    kept in .manifest-put before the put). A second upload of the same final is a success."""
    when = datetime(2026, 12, 4, 9, 30, tzinfo=timezone.utc)
    spool = Spool(tmp_path / "spool")
    m = Manifest(call_id=new_call_id(when), status="recording", line_number="01443 425002",
                 department=COUNCIL_TAX, direction="inbound", caller="07700 900999", external_id=None,
                 agent="agent042", workstation="ws-agent042", started_at=when, ended_at=None, frames=0,
                 audio=AudioFormat("flac", RATE, 2, ("agent", "caller"), None), app_version="test")
    call = spool.create_call(m)
    writer = ChunkWriter(call, CodecSettings("flac", sample_rate=RATE, channels=2), RATE)
    writer.write(0, two_tones(2))
    call.write_manifest(dataclasses.replace(m, chunks=tuple(writer.sealed), frames=2 * RATE))
    agent = store_for(roles, "agent")
    slow = Uploader(spool, agent, dataclasses.replace(FAST, provisional_manifest_seconds=3600))
    assert slow.run_pass()  # chunks and P1
    get = leader_get(roles)
    p1 = get(layout.manifest_key(m.call_id))
    writer.write(2 * RATE, two_tones(2))
    call.write_manifest(dataclasses.replace(m, chunks=tuple(writer.sealed), frames=4 * RATE))
    assert slow.run_pass()  # the new chunks; P2 waits (sent at most once a minute)
    assert get(layout.manifest_key(m.call_id)) == p1
    with FaultProxy("127.0.0.1", int(roles.endpoint_url.rsplit(":", 1)[1]), p=1.0,
                    faults=("reset_after",)) as proxy:
        lossy = Uploader(spool, store_for(roles, "agent", proxy.endpoint_url),
                         dataclasses.replace(FAST, provisional_manifest_seconds=0))
        assert not lossy.run_pass()
    p2 = spool.manifest_bytes(m.call_id)
    assert get(layout.manifest_key(m.call_id)) == p2  # it landed; we never heard
    del lossy  # the process dies here
    call.release()
    assert spool.recover().interrupted_calls == (m.call_id,)
    fresh = Uploader(spool, agent, FAST)
    assert fresh.drain(30), fresh.status()
    stored = Manifest.from_json(get(layout.manifest_key(m.call_id)))
    assert stored.status == "complete" and len(stored.chunks) == 4
    check_stored_call(get, stored)
    assert spool.call_ids() == []
    # re-upload (a restored spool, a second uploader): the same bytes again are a success
    final_bytes = get(layout.manifest_key(m.call_id))
    assert put(agent, layout.manifest_key(m.call_id), final_bytes, write_once=True).sha256 == sha(final_bytes)
    chunk = layout.chunk_key(m.call_id, stored.chunks[0].name)
    chunk_bytes = get(chunk)
    receipt = agent.put(chunk, chunk_bytes, sha256=sha(chunk_bytes), metadata={}, content_type="audio/flac",
                        write_once=True)
    assert receipt.size == len(chunk_bytes)
    # while the provisional P1 can no longer replace it
    with pytest.raises(PermanentStoreError, match="not replaced"):
        put(agent, layout.manifest_key(m.call_id), p1, replaces=(hashlib.md5(p1).hexdigest(),))


# ---- what the server verifies ---------------------------------------------------------------------
def test_checks_probe_says_moto_verifies_neither_checksum(roles):
    checks = store_for(roles, "agent").checks()
    assert (checks.sha256, checks.content_md5, checks.if_none_match) == (False, False, True)
    assert "verifies NEITHER x-amz-checksum-sha256 NOR Content-MD5" in checks.summary()
    assert checks.weak
    # a team leader's key may not write health/: the probe says so instead of guessing
    leader_checks = store_for(roles, "team-leader").checks()
    assert leader_checks.sha256 is None and "not allowed" in leader_checks.summary()


def test_uploader_says_once_that_moto_verifies_neither_checksum(roles, tmp_path, caplog):
    spool = Spool(tmp_path / "spool")
    status_file = tmp_path / "upload-status.json"
    uploader = Uploader(spool, store_for(roles, "agent"), FAST, status_file=status_file)
    with caplog.at_level("INFO", logger="callrec_desktop.uploader"):
        final = record_call(spool, uploader, seconds=3)
        assert uploader.drain(60), uploader.status()
        assert uploader.run_pass()
    said = [r for r in caplog.records if "store checks" in r.getMessage()]
    assert [r.levelname for r in said] == ["WARNING"], [r.getMessage() for r in said]
    warnings = [r.getMessage() for r in said]
    assert "verifies NEITHER x-amz-checksum-sha256 NOR Content-MD5" in warnings[0]
    doc = json.loads(status_file.read_text())
    assert doc["store_checks"] == warnings[0].removeprefix("store checks: ")
    check_stored_call(leader_get(roles), final)  # and the call is stored all the same


def test_body_changed_on_the_way_is_stored_by_moto_then_replaced_from_its_etag(roles, monkeypatch):
    """moto verifies neither checksum: the changed body is stored; its ETag (the MD5 of what
    was stored) differs from ours, so the store puts the true bytes once more with If-Match
    that ETag (replacing exactly the corrupted object, with the agent's key), and confirms."""
    from tests.integration.test_s3_store import _corrupt_first_send

    agent = store_for(roles, "agent")
    sent = _corrupt_first_send(agent, monkeypatch)
    call = new_call_id(datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc))
    key = layout.chunk_key(call, "000001.opus")
    receipt = agent.put(key, b"sealed audio", sha256=sha(b"sealed audio"), metadata={}, content_type="audio/ogg",
                        write_once=True)
    assert receipt.sha256 == sha(b"sealed audio") and len(sent) == 2 and sent[0] != sent[1]
    assert leader_get(roles)(key) == b"sealed audio"


def test_only_the_retention_role_deletes(recorded):
    roles, final = recorded
    key = f"{roles.prefix}/{layout.chunk_key(final.call_id, final.chunks[-1].name)}"
    for role in ("agent", "team-leader"):
        with pytest.raises(Exception, match="AccessDenied"):
            roles.client(role).delete_object(Bucket=roles.bucket, Key=key)
    assert leader_get(roles)(key[len(roles.prefix) + 1:])  # still there
    roles.client("retention").delete_object(Bucket=roles.bucket, Key=key)
    assert key not in s3_keys(roles.client("team-leader"), roles.bucket, roles.prefix + "/")
    with pytest.raises(Exception, match="AccessDenied"):  # and it writes nothing
        roles.client("retention").put_object(Bucket=roles.bucket, Key=key, Body=b"x")


def test_a_spool_from_before_conditional_writes_still_uploads(roles, tmp_path):
    """A call spooled by an older version mid-call: its upload marker holds only the SHA-256
    (no MD5 of what it put), so the next manifest is put as before (unconditionally)."""
    from callrec_desktop.spool import UPLOADED
    from callrec_desktop.uploader import MANIFEST_ATTEMPT

    when = datetime(2026, 12, 4, 11, 0, tzinfo=timezone.utc)
    spool = Spool(tmp_path / "spool")
    m = Manifest(call_id=new_call_id(when), status="recording", line_number="01443 425002",
                 department=COUNCIL_TAX, direction="inbound", caller=None, external_id=None,
                 agent="agent042", workstation="ws-agent042", started_at=when, ended_at=None, frames=0,
                 audio=AudioFormat("flac", RATE, 2, ("agent", "caller"), None), app_version="test")
    call = spool.create_call(m)
    writer = ChunkWriter(call, CodecSettings("flac", sample_rate=RATE, channels=2), RATE)
    writer.write(0, two_tones(2))
    call.write_manifest(dataclasses.replace(m, chunks=tuple(writer.sealed), frames=2 * RATE))
    agent = store_for(roles, "agent")
    assert Uploader(spool, agent, FAST).run_pass()
    marker = spool.call_path(m.call_id) / UPLOADED
    marker.write_text(marker.read_text().split()[0])  # as an older version wrote it
    (spool.call_path(m.call_id) / MANIFEST_ATTEMPT).unlink()
    call.release()
    assert spool.recover().interrupted_calls == (m.call_id,)
    assert Uploader(spool, agent, FAST).drain(30)
    stored = Manifest.from_json(leader_get(roles)(layout.manifest_key(m.call_id)))
    assert stored.status == "complete"
    check_stored_call(leader_get(roles), stored)
