"""S3Store against a real S3 server (SeaweedFS on 127.0.0.1), plus error classification."""

from __future__ import annotations

import base64
import hashlib
import traceback
import urllib.parse

import botocore.exceptions as bce
import pytest
import tenacity

from callrec_desktop.core.manifest import chunk_file_name
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    PermanentStoreError,
    StoreError,
    TransientStoreError,
)
from callrec_desktop.storage.s3 import S3Store, sanitise_metadata
from tests.support.faultproxy import FaultProxy

CALL = "20261129T092233Z-3f9a1c0b7d2e"
CHUNK = layout.chunk_key(CALL, "000001.opus")
MANIFEST = layout.manifest_key(CALL)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_store(server, bucket, prefix="site1", **kw):
    kw.setdefault("credentials", (server.access_key, server.secret_key))
    return S3Store(bucket, prefix, endpoint_url=kw.pop("endpoint_url", server.endpoint_url),
                   region="us-east-1", addressing_style="path", **kw)


def put(store, key, data, **kw):
    return store.put(key, data, sha256=kw.pop("sha256", sha(data)), metadata=kw.pop("metadata", {}),
                     content_type=kw.pop("content_type", "audio/ogg"), **kw)


def record_operations(store) -> list[str]:
    ops: list[str] = []
    store._client.meta.events.register("before-call.s3", lambda model, **_: ops.append(model.name))
    return ops


# ---- against the server --------------------------------------------------------------------
@pytest.mark.s3
def test_put_is_confirmed_by_checksum_and_carries_metadata(s3_server, tmp_path):
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket)
    ops = record_operations(store)
    src = tmp_path / "000001.opus"
    data = b"OggS" + bytes(range(256)) * 50
    src.write_bytes(data)
    meta = {"call_id": CALL, "seq": "1", "line": "01443 425002", "department": "Café & Housing"}
    receipt = store.put(CHUNK, src, sha256=sha(data), metadata=meta, content_type="audio/ogg")
    assert (receipt.key, receipt.size, receipt.sha256) == (CHUNK, len(data), sha(data))
    assert ops == ["PutObject"]  # write-only credentials suffice: no HEAD, GET or LIST

    client = s3_server.client()
    head = client.head_object(Bucket=bucket, Key="site1/" + CHUNK, ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "audio/ogg"
    assert head["ChecksumSHA256"] == b64sha(data)
    assert head["Metadata"]["call-id"] == CALL
    assert head["Metadata"]["seq"] == "1"
    assert head["Metadata"]["line"] == "01443 425002"
    assert urllib.parse.unquote(head["Metadata"]["department"]) == "Café & Housing"


@pytest.mark.s3
def test_get_and_list_strip_the_prefix(s3_server):
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket, prefix="/calls/site1/")
    assert store.description == f"s3://{bucket}/calls/site1/ at {s3_server.endpoint_url}"
    put(store, CHUNK, b"audio")
    put(store, MANIFEST, b"{}", content_type=layout.MANIFEST_CONTENT_TYPE)
    assert store.get(CHUNK) == b"audio"
    assert list(store.list("")) == sorted([CHUNK, MANIFEST])
    assert list(store.list(layout.manifests_prefix())) == [MANIFEST]
    with pytest.raises(ObjectNotFoundError):
        store.get(layout.chunk_key(CALL, "000002.opus"))


@pytest.mark.s3
def test_wrong_checksum_is_refused_by_the_server(s3_server):
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket)
    # The store reads the source before sending: bytes that are not what the manifest says
    # never leave the PC.
    with pytest.raises(PermanentStoreError, match="checksum mismatch: source has SHA-256") as info:
        put(store, CHUNK, b"the real bytes", sha256=sha(b"what the manifest says"))
    assert str(info.value).startswith(f"s3://{bucket}/site1/ {CHUNK}: ")
    with pytest.raises(ObjectNotFoundError):
        store.get(CHUNK)
    # A body changed on the way (the header says one SHA-256, the body has another): the
    # server itself refuses it before storing it.
    with pytest.raises(bce.ClientError, match="BadDigest"):
        store._client.put_object(Bucket=bucket, Key="site1/" + CHUNK, Body=b"the real bytes",
                                 ChecksumSHA256=b64sha(b"what the manifest says"))
    with pytest.raises(ObjectNotFoundError):
        store.get(CHUNK)


@pytest.mark.s3
@pytest.mark.parametrize("which", ["secret", "access_key"])
def test_wrong_credentials_are_permanent_and_never_shown(s3_server, which):
    bucket = s3_server.make_bucket()
    if which == "secret":
        creds = (s3_server.access_key, "wrong-secret-Zq81xPlM3")
        code = "SignatureDoesNotMatch"
    else:
        creds = ("AKIAWRONGKEYID12345", "another-secret-Zq81xPlM3")
        code = "InvalidAccessKeyId"
    store = make_store(s3_server, bucket, credentials=creds)
    with pytest.raises(PermanentStoreError, match=code) as info:
        put(store, CHUNK, b"x")
    text = "".join(traceback.format_exception(info.value)) + repr(store) + store.description + repr(store.__dict__)
    for secret in (*creds, s3_server.secret_key):
        assert secret not in text


@pytest.mark.s3
def test_missing_bucket_is_permanent(s3_server):
    store = make_store(s3_server, "no-such-bucket-callrec")
    with pytest.raises(PermanentStoreError, match="NoSuchBucket"):
        put(store, CHUNK, b"x")


@pytest.mark.s3
def test_server_down_is_transient_then_recovers(s3_server):
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket, connect_timeout=1, read_timeout=2)
    put(store, CHUNK, b"before")
    with s3_server.outage():
        with pytest.raises(TransientStoreError, match="Could not connect") as info:
            put(store, MANIFEST, b"{}")
        assert s3_server.secret_key not in str(info.value)
        with pytest.raises(TransientStoreError):
            store.get(CHUNK)
        with pytest.raises(TransientStoreError):
            list(store.list(""))
    # same server, same data, same port
    assert store.get(CHUNK) == b"before"
    put(store, MANIFEST, b"{}")
    assert list(store.list("")) == sorted([CHUNK, MANIFEST])


@pytest.mark.s3
def test_fallback_to_etag_when_the_server_does_not_echo_the_checksum(s3_server):
    """Some S3-compatibles reply without x-amz-checksum-sha256: then the ETag (MD5 of a
    single-part put) must match ours, and our own SHA-256 must match the expected one."""
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket)
    tamper_etag = []

    def strip(parsed, **_):
        parsed.pop("ChecksumSHA256", None)
        if tamper_etag:
            parsed["ETag"] = '"00000000000000000000000000000000"'

    store._client.meta.events.register("after-call.s3.PutObject", strip)
    assert put(store, CHUNK, b"fallback").sha256 == sha(b"fallback")
    tamper_etag.append(True)
    with pytest.raises(PermanentStoreError, match="did not confirm"):
        put(store, CHUNK, b"fallback")


@pytest.mark.s3
def test_puts_through_a_faulty_network_succeed_with_retries(s3_server, tmp_path):
    """p=0.2 of requests get a 500/503, a reset before the server sees them, or a reset
    after the server stored the object; a simple retry makes every put land exactly once."""
    bucket = s3_server.make_bucket()
    with FaultProxy("127.0.0.1", s3_server.port, p=0.2, seed=20261129) as proxy:
        store = make_store(s3_server, bucket, endpoint_url=proxy.endpoint_url, connect_timeout=2, read_timeout=5)
        retry = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientStoreError),
            stop=tenacity.stop_after_attempt(12), wait=tenacity.wait_none(), reraise=True)
        expected = {}
        for i in range(1, 31):
            name = chunk_file_name(i, "opus")
            key = layout.chunk_key(CALL, name)
            data = hashlib.sha512(str(i).encode()).digest() * (40 + i)
            if i % 2:
                src = tmp_path / name
                src.write_bytes(data)
            else:
                src = data
            receipt = retry(store.put, key, src, sha256=sha(data), metadata={"seq": str(i)}, content_type="audio/ogg")
            assert receipt.sha256 == sha(data)
            expected[key] = data
        store.close()
    print("faultproxy:", dict(proxy.counts))
    assert proxy.injected > 0, proxy.counts
    assert proxy.counts["relayed"] > 0
    client = s3_server.client()
    listed = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
              for o in page.get("Contents", [])]
    assert listed == sorted("site1/" + k for k in expected)  # each exactly once
    for key, data in expected.items():
        head = client.head_object(Bucket=bucket, Key="site1/" + key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == b64sha(data)
        assert head["ContentLength"] == len(data)


# ---- classification without a server ---------------------------------------------------------
def _store():
    return S3Store("bucket-x", "pre", endpoint_url="http://127.0.0.1:9", credentials=("AKIAEXAMPLE", "s3cr3t-value"))


def _client_error(code: str, status: int) -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": f"{code} happened (AKIAEXAMPLE s3cr3t-value)"},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize("code, status, kind", [
    ("AccessDenied", 403, PermanentStoreError),
    ("InvalidAccessKeyId", 403, PermanentStoreError),
    ("SignatureDoesNotMatch", 403, PermanentStoreError),
    ("BadDigest", 400, TransientStoreError),  # the source was checked first: changed on the way
    ("InvalidDigest", 400, PermanentStoreError),
    ("InvalidArgument", 400, PermanentStoreError),
    ("NoSuchBucket", 404, PermanentStoreError),
    ("InternalError", 500, TransientStoreError),
    ("ServiceUnavailable", 503, TransientStoreError),
    ("SlowDown", 503, TransientStoreError),
    ("RequestTimeout", 400, TransientStoreError),
    ("TooManyRequests", 429, TransientStoreError),
    ("", 502, TransientStoreError),
])
def test_client_errors_are_classified(code, status, kind):
    err = _store()._classify(_client_error(code, status), "k", "put")
    assert type(err) is kind
    assert str(err).startswith("s3://bucket-x/pre/ k: put failed")
    assert "AKIAEXAMPLE" not in str(err) and "s3cr3t-value" not in str(err)


def test_not_found_on_get():
    err = _store()._classify(_client_error("NoSuchKey", 404), "k", "get")
    assert isinstance(err, ObjectNotFoundError)


@pytest.mark.parametrize("exc, kind", [
    (bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:9/x"), TransientStoreError),
    (bce.ConnectionClosedError(endpoint_url="http://127.0.0.1:9/x"), TransientStoreError),
    (bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:9/x"), TransientStoreError),
    (bce.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9/x"), TransientStoreError),
    (ConnectionResetError(104, "Connection reset by peer"), TransientStoreError),
    (__import__("urllib3").exceptions.ProtocolError("Connection aborted."), TransientStoreError),
    (bce.NoCredentialsError(), PermanentStoreError),
    (bce.ParamValidationError(report="bad"), PermanentStoreError),
])
def test_transport_errors_are_classified(exc, kind):
    err = _store()._classify(exc, "k", "put")
    assert type(err) is kind and isinstance(err, StoreError)


def test_repr_and_description_hide_credentials():
    store = _store()
    for text in (repr(store), store.description, repr(vars(store)), str(vars(store))):
        assert "AKIAEXAMPLE" not in text and "s3cr3t-value" not in text


def test_endpoint_with_userinfo_refused():
    with pytest.raises(ValueError, match="user name or password"):
        S3Store("bucket-x", endpoint_url="http://AKIA:secret@127.0.0.1:9")


def test_client_config_does_not_retry():
    cfg = _store()._client.meta.config
    assert cfg.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert cfg.request_checksum_calculation == "when_required"
    assert cfg.signature_version == "s3v4"


def test_sanitise_metadata():
    assert sanitise_metadata({"Call_ID": "x", "seq": "1"}) == {"call-id": "x", "seq": "1"}
    out = sanitise_metadata({"dept": " Café 100% "})
    assert out["dept"].isascii() and urllib.parse.unquote(out["dept"]) == " Café 100% "
    with pytest.raises(ValueError, match="collide"):
        sanitise_metadata({"a_b": "1", "a-b": "2"})
    with pytest.raises(ValueError, match="2048"):
        sanitise_metadata({"big": "x" * 3000})


def test_one_request_per_put_even_on_a_retryable_error():
    """botocore must not retry behind the uploader's back: a 503 is one request, then ours."""
    store = _store()
    attempts = []
    store._client.meta.events.register("before-send.s3.PutObject", lambda request, **_: attempts.append(1))

    def reply_503(request, **_):
        from botocore.awsrequest import AWSResponse

        class Raw:
            def stream(self, *a, **k):
                yield b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>"

        return AWSResponse(request.url, 503, {}, Raw())

    store._client.meta.events.register_last("before-send.s3.PutObject", reply_503)
    with pytest.raises(TransientStoreError, match="SlowDown"):
        put(store, "k", b"x")
    assert len(attempts) == 1


def test_put_refuses_unsafe_keys_before_any_request():
    store = _store()
    ops = record_operations(store)
    for key in ("../x", "/abs", "a/../b", "a\\b"):
        with pytest.raises(PermanentStoreError, match="refused"):
            put(store, key, b"x")
    assert ops == []


# ---- write-once puts and what the server verifies (SeaweedFS) -----------------------------------
@pytest.mark.s3
def test_seaweedfs_checks_probe_finds_both_checksums_and_conditional_writes(s3_server):
    store = make_store(s3_server, s3_server.make_bucket())
    checks = store.checks()
    assert (checks.sha256, checks.content_md5, checks.if_none_match) == (True, True, True)
    assert not checks.weak
    assert checks.summary() == ("verifies x-amz-checksum-sha256 before storing; honours If-None-Match "
                                "(chunks and final manifests are write-once)")
    assert store.get("health/checksum-probe").startswith(b"callrec checksum probe")  # put back intact
    ops = record_operations(store)
    assert store.checks() is checks and ops == []  # asked once per store


@pytest.mark.s3
def test_write_once_put_refuses_other_bytes_and_accepts_the_same_again(s3_server):
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket)
    put(store, CHUNK, b"sealed audio", write_once=True)
    # the same bytes again (a retry after a lost reply, a re-upload): a success
    assert put(store, CHUNK, b"sealed audio", write_once=True).sha256 == sha(b"sealed audio")
    with pytest.raises(PermanentStoreError, match="a different object is already stored at this key; not replaced"):
        put(store, CHUNK, b"other audio", write_once=True)
    assert store.get(CHUNK) == b"sealed audio"


@pytest.mark.s3
def test_manifest_replaces_only_the_one_named(s3_server):
    bucket = s3_server.make_bucket()
    store = make_store(s3_server, bucket)
    md5 = lambda b: hashlib.md5(b).hexdigest()  # noqa: E731
    p1, p2, final = b'{"v": 1}', b'{"v": 2}', b'{"v": "final"}'
    put(store, MANIFEST, p1, write_once=True)
    put(store, MANIFEST, p2, replaces=(md5(p1),))
    with pytest.raises(PermanentStoreError, match="not replaced"):  # p1 is no longer there
        put(store, MANIFEST, final, replaces=(md5(p1),))
    put(store, MANIFEST, final, replaces=(md5(p1), md5(p2)))
    assert store.get(MANIFEST) == final
    with pytest.raises(PermanentStoreError, match="not replaced"):
        put(store, MANIFEST, p2, replaces=(md5(p2),))
    assert store.get(MANIFEST) == final


def _corrupt_first_send(store, monkeypatch) -> list[bytes]:
    """The first body sent has one byte changed, as a bad NIC or proxy would (every header, the
    checksums included, still describes the true bytes); later sends are intact."""
    sent: list[bytes] = []
    real = store._open_source

    def open_source(key, source):
        body, size = real(key, source)
        data = body if isinstance(body, bytes) else body.read()
        if not isinstance(body, bytes):
            body.close()
        if not sent:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        sent.append(data)
        return data, size

    monkeypatch.setattr(store, "_open_source", open_source)
    return sent


@pytest.mark.s3
def test_body_changed_on_the_way_is_refused_before_storing_and_sent_again(s3_server, monkeypatch):
    """SeaweedFS verifies the checksums: the changed body is refused (transient), nothing is
    stored, and the next put stores the true bytes (write-once all the same)."""
    store = make_store(s3_server, s3_server.make_bucket())
    sent = _corrupt_first_send(store, monkeypatch)
    with pytest.raises(TransientStoreError, match="BadDigest.*changed on the way; not stored"):
        put(store, CHUNK, b"sealed audio", write_once=True)
    with pytest.raises(ObjectNotFoundError):
        store.get(CHUNK)
    put(store, CHUNK, b"sealed audio", write_once=True)
    assert store.get(CHUNK) == b"sealed audio" and len(sent) == 2
