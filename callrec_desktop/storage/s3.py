"""The S3 store: any S3-compatible service (AWS S3, MinIO, Ceph RGW, SeaweedFS).

A put first checks that the source has the SHA-256 the caller expects, then sends both
``x-amz-checksum-sha256`` and ``Content-MD5``: a service that verifies either refuses a body
changed on the way (``BadDigest``) before storing it. Which one it verifies differs by service
(SeaweedFS both, moto neither): ``checks()`` probes it once and the uploader says so. The
reply's checksum, or else its ETag (the MD5 of what was stored), is compared too.

Write-once: ``put(write_once=True)`` sends ``If-None-Match: *`` (sealed chunks);
``put(replaces=(md5, ...))`` sends ``If-Match`` with each MD5 in turn (a call's manifests: only
this PC's own earlier one may be replaced). After a 412 the last try is ``If-Match`` with our
own MD5, so a put whose bytes are already there (its reply was lost) is a success. The agent's
credentials may be write-only, so ``put`` never reads (no HEAD, GET or LIST). The botocore
client does not retry (``max_attempts=1``): the uploader retries with its own backoff, and two
retry layers would multiply each other.

Errors are classified into ``TransientStoreError`` (retry) and ``PermanentStoreError``; their
messages name ``s3://bucket/prefix`` and the key, and never a credential.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions as bce
import urllib3.exceptions
from botocore.config import Config

from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    ObjectRefusedError,
    PermanentStoreError,
    PutReceipt,
    ServerChecks,
    StoreError,
    TransientStoreError,
)
from callrec_desktop.storage.layout import InvalidKeyError, check_prefix, check_relative_key

log = logging.getLogger(__name__)
ADDRESSING_STYLES = ("auto", "path", "virtual")
PROBE_KEY = "health/checksum-probe"  # what checks() writes; agents may write health/
MAX_METADATA_BYTES = 2048  # AWS's limit for all user metadata keys and values together
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_META_KEY_BAD = re.compile(r"[^a-z0-9-]+")
# Printable ASCII other than '%' passes; anything else is percent-encoded UTF-8, so a value is
# recovered exactly with urllib.parse.unquote.
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")

_TRANSIENT_CODES = {
    "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "RequestThrottled",
    "RequestLimitExceeded", "TooManyRequests", "TooManyRequestsException", "InternalError",
    "ServiceUnavailable", "OperationAborted",
}
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}
_BODY_CHANGED_CODES = {"BadDigest", "XAmzContentSHA256Mismatch"}  # the server verified a checksum
_TRANSIENT_BOTO = (
    bce.EndpointConnectionError, bce.ConnectionClosedError, bce.ReadTimeoutError,
    bce.ConnectTimeoutError, bce.ProxyConnectionError, bce.ResponseStreamingError,
    bce.HTTPClientError,
)


class _Redactor:
    """Holds the strings that must never appear in a message; shows nothing of them."""

    def __init__(self, secrets_: tuple[str, ...]) -> None:
        self._secrets = tuple(s for s in secrets_ if s)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "<redacted>")
        return text

    def __repr__(self) -> str:
        return "<redacted>"


def sanitise_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """S3 user metadata travels in HTTP headers: ASCII keys ``[a-z0-9-]``, ASCII values.

    Keys are lower-cased with other characters turned into '-' (``call_id`` → ``call-id``);
    values keep printable ASCII and percent-encode the rest (and '%') as UTF-8.
    Raises ``ValueError`` on key collisions, empty keys, or more than 2 KB in total.
    """
    out: dict[str, str] = {}
    total = 0
    for raw_key, raw_value in metadata.items():
        key = _META_KEY_BAD.sub("-", str(raw_key).lower()).strip("-")
        if not key:
            raise ValueError(f"metadata key {raw_key!r} has no usable characters")
        if key in out:
            raise ValueError(f"metadata keys collide after sanitising: {key!r}")
        value = urllib.parse.quote(str(raw_value), safe=_META_SAFE)
        # HTTP trims surrounding blanks from header values: keep them by encoding.
        stripped = value.strip(" ")
        if stripped != value:
            lead = len(value) - len(value.lstrip(" "))
            trail = len(value) - len(value.rstrip(" "))
            value = "%20" * lead + stripped + "%20" * trail
        out[key] = value
        total += len(key) + len(value)
    if total > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {total} bytes, more than S3 allows ({MAX_METADATA_BYTES})")
    return out


class S3Store:
    """A store in ``s3://bucket/prefix``. Credentials: the pair given, else boto3's chain."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        ca_bundle: str | os.PathLike[str] | None = None,
        credentials: tuple[str, str] | None = None,
        connect_timeout: float = 5,
        read_timeout: float = 30,
    ) -> None:
        if not isinstance(bucket, str) or not _BUCKET_RE.fullmatch(bucket):
            raise ValueError(f"not an S3 bucket name: {bucket!r}")
        if addressing_style not in ADDRESSING_STYLES:
            raise ValueError(f"addressing_style must be one of {', '.join(ADDRESSING_STYLES)}, got {addressing_style!r}")
        prefix = (prefix or "").strip("/")
        if prefix:
            try:
                check_prefix(prefix + "/")
            except InvalidKeyError as exc:
                raise ValueError(f"bad S3 prefix: {exc}") from None
            prefix += "/"
        if endpoint_url is not None:
            parts = urllib.parse.urlsplit(endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"endpoint URL must be http(s)://host[:port], got {endpoint_url!r}")
            if parts.username or parts.password:
                # Never accept credentials in a URL: URLs end up in logs and messages.
                raise ValueError("endpoint URL must not contain a user name or password; use the keyring")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.url = f"s3://{bucket}/{prefix}"
        self.description = f"{self.url} at {endpoint_url or 'AWS' + (f' {region}' if region else '')}"
        self._checks: ServerChecks | None = None
        self._redact = _Redactor(tuple(credentials) if credentials else ())
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            # No retry here. Note: in a Config, "max_attempts" counts *retries* (botocore
            # turns max_attempts=1 into total_max_attempts=2); "total_max_attempts" counts the
            # first try too, so 1 means exactly one request per put.
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Only send checksums we ask for (ours), and no CRC trailers some
            # S3-compatible services reject.
            request_checksum_calculation="when_required",
        )
        kwargs: dict[str, Any] = {"endpoint_url": endpoint_url, "region_name": region, "config": config}
        if ca_bundle is not None:
            kwargs["verify"] = os.fspath(ca_bundle)
        if credentials is not None:
            access_key, secret_key = credentials
            kwargs["aws_access_key_id"] = access_key
            kwargs["aws_secret_access_key"] = secret_key
        # A session of our own: boto3's default session is a module-level singleton.
        self._client = boto3.session.Session().client("s3", **kwargs)

    def __repr__(self) -> str:
        return f"S3Store({self.description!r})"

    def close(self) -> None:
        self._client.close()

    # ---- put -------------------------------------------------------------------------
    conditional_writes = True  # put() takes write_once= and replaces= (see Store.put)

    def put(
        self,
        key: str,
        source: Path | bytes,
        *,
        sha256: str,
        metadata: Mapping[str, str],
        content_type: str,
        write_once: bool = False,
        replaces: tuple[str, ...] = (),
    ) -> PutReceipt:
        """Store ``source`` at ``key``; raises unless the store confirmed it. Runs on the caller's
        thread (the uploader's worker).

        Every put carries ``x-amz-checksum-sha256`` and ``Content-MD5``: a server that verifies
        either refuses a corrupted body before storing it (``checks()`` says which one this
        server verifies); the reply's checksum, or else its ETag, is compared as well.

        ``write_once``: never replace an object, whatever it holds (``If-None-Match: *``).
        ``replaces``: the MD5 hex digests (single-part ETags) of the objects this put may
        replace, e.g. this PC's last provisional manifest of the call (``If-Match`` each in
        turn, then ``If-None-Match: *`` if there is none). Either way, if the key already holds
        exactly these bytes (our earlier put landed but its reply was lost), the put is a
        success: the last condition tried is ``If-Match`` with our own MD5, which rewrites
        identical bytes. Anything else at the key is a ``PermanentStoreError`` saying a
        different object is there and was not replaced.
        """
        self._check_key(key)
        if not isinstance(sha256, str) or not _SHA256_RE.fullmatch(sha256):
            raise PermanentStoreError(f"{self.url} {key}: expected SHA-256 is not lowercase hex: {sha256!r}")
        try:
            meta = sanitise_metadata(metadata)
        except ValueError as exc:
            raise PermanentStoreError(f"{self.url} {key}: {exc}") from None
        # Read the source once before sending: its SHA-256 must be what the caller expects,
        # and Content-MD5 needs the MD5 up front.
        local_sha, local_md5 = self._local_digests(key, source)
        if local_sha != sha256:
            raise PermanentStoreError(
                f"{self.url} {key}: checksum mismatch: source has SHA-256 {local_sha}, expected {sha256}")
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        content_md5 = base64.b64encode(bytes.fromhex(local_md5)).decode("ascii")
        conditions: list[dict[str, str]] = [{}]
        if write_once or replaces:
            conditions = [{"IfMatch": f'"{etag}"'} for etag in dict.fromkeys(replaces) if etag != local_md5]
            conditions += [{"IfNoneMatch": "*"}, {"IfMatch": f'"{local_md5}"'}]
        for attempt in ("put", "repair"):
            response, size = self._put_first(key, source, conditions, checksum=checksum, content_md5=content_md5,
                                             content_type=content_type, meta=meta, sha256=sha256)
            echoed = response.get("ChecksumSHA256")
            if echoed is not None:
                if echoed != checksum:
                    raise PermanentStoreError(
                        f"{self.url} {key}: store confirmed SHA-256 {_b64_to_hex(echoed)}, we sent {sha256}")
                return PutReceipt(key, size, sha256)
            # A service that does not echo x-amz-checksum-sha256 (moto, some older S3-compatibles):
            # for a single-part put without SSE-KMS the ETag is the MD5 of the bytes stored.
            etag = str(response.get("ETag", "")).strip('"').lower()
            if etag == local_md5:
                return PutReceipt(key, size, sha256)
            if attempt == "repair" or not _MD5_RE.fullmatch(etag):
                raise PermanentStoreError(
                    f"{self.url} {key}: store did not confirm the checksum (no x-amz-checksum-sha256 "
                    f"in the reply and ETag {etag!r} is not the MD5 of what we sent)")
            # The server stored a corrupted body (it verifies neither checksum): replace exactly
            # that object, and nothing else, once.
            log.warning("%s %s: the server stored a body whose MD5 %s is not what we sent; putting it again",
                        self.url, key, etag)
            conditions = [{"IfMatch": f'"{etag}"'}] if (write_once or replaces) else [{}]
        raise AssertionError("unreachable")

    def _put_first(self, key: str, source: Path | bytes, conditions: list[dict[str, str]], *, checksum: str,
                   content_md5: str, content_type: str, meta: dict[str, str], sha256: str) -> tuple[dict, int]:
        """The first of ``conditions`` the server accepts; 412 on the last is a permanent error."""
        for i, condition in enumerate(conditions):
            body, size = self._open_source(key, source)  # reopened for each attempt
            try:
                response = self._client.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=body, ContentLength=size,
                    ContentType=content_type, ChecksumSHA256=checksum, ContentMD5=content_md5,
                    Metadata=meta, **condition)
                return response, size
            except bce.ClientError as exc:
                if not _precondition_failed(exc, condition):
                    raise self._classify(exc, key, "put") from exc
                if i == len(conditions) - 1:
                    raise PermanentStoreError(
                        f"{self.url} {key}: a different object is already stored at this key; not replaced "
                        f"(write-once: sealed chunks and final manifests are never overwritten; "
                        f"ours has SHA-256 {sha256})") from None
            except Exception as exc:
                raise self._classify(exc, key, "put") from exc
            finally:
                if not isinstance(body, bytes):
                    body.close()
        raise AssertionError("no conditions")

    # ---- what this server verifies --------------------------------------------------------
    def checks(self) -> ServerChecks:
        """What this server verifies, probed once per store object and cached: four small PUTs
        to ``health/checksum-probe`` (agents may write ``health/``): a plain one, one with
        ``If-None-Match: *`` (must be refused: the key exists now), one whose
        ``x-amz-checksum-sha256`` is wrong and one whose ``Content-MD5`` is wrong (each must be
        refused). A probe that cannot be made (access denied, store unreachable) leaves that
        answer unknown (``None``) and is not cached if the store was unreachable. Runs on the
        caller's thread; a few milliseconds on a LAN."""
        if self._checks is not None:
            return self._checks
        key = self.prefix + PROBE_KEY
        body = b"callrec checksum probe: what does this server verify?\n"
        wrong = hashlib.sha256(b"not the body").digest()
        sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
        bad_md5 = base64.b64encode(hashlib.md5(b"not the body", usedforsecurity=False).digest()).decode()

        def refused(**extra) -> bool | None:
            try:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="text/plain", **extra)
                return False
            except bce.ClientError as exc:
                err = self._classify(exc, PROBE_KEY, "probe")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if err.transient:
                    raise err from exc
                # 401/403: not allowed to probe; 501: the server does not know the header at
                # all (not a refusal of this body): unknown either way.
                return None if status in (401, 403, 501) else True
            except Exception as exc:
                raise self._classify(exc, PROBE_KEY, "probe") from exc

        try:
            plain = refused(ChecksumSHA256=sha, ContentMD5=md5)
            if plain is not False:  # cannot even write the probe (no permission on health/)
                self._checks = ServerChecks(None, None, None, f"{self.url}{PROBE_KEY}: probe not allowed")
                return self._checks
            inm = refused(IfNoneMatch="*")
            bad_sha = refused(ChecksumSHA256=base64.b64encode(wrong).decode(), ContentMD5=md5)
            bad_md5 = refused(ChecksumSHA256=sha, ContentMD5=bad_md5)
            # Put the probe back intact (a wrong-checksum put may have replaced it).
            refused(ChecksumSHA256=sha, ContentMD5=md5)
        except StoreError as exc:
            return ServerChecks(None, None, None, str(exc))  # not cached: try again next time
        self._checks = ServerChecks(bad_sha, bad_md5, inm)
        return self._checks

    def _open_source(self, key: str, source: Path | bytes):
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            return data, len(data)
        try:
            f = open(source, "rb")
            return f, os.fstat(f.fileno()).st_size
        except OSError as exc:
            raise PermanentStoreError(f"{self.url} {key}: cannot read source {source}: {exc.strerror or exc}") from exc

    def _local_digests(self, key: str, source: Path | bytes) -> tuple[str, str]:
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        if isinstance(source, (bytes, bytearray, memoryview)):
            sha.update(source)
            md5.update(source)
        else:
            try:
                with open(source, "rb") as f:
                    while block := f.read(1024 * 1024):
                        sha.update(block)
                        md5.update(block)
            except OSError as exc:
                raise PermanentStoreError(f"{self.url} {key}: cannot read source {source}: {exc.strerror or exc}") from exc
        return sha.hexdigest(), md5.hexdigest()

    # ---- get / list --------------------------------------------------------------------
    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes. With ``max_bytes``, asks only for the first ``max_bytes + 1``
        bytes (``Range``), refuses the object if the store says it is larger (``Content-Range``
        total or ``Content-Length``), and never reads more than that from the body, whatever
        the server sends. Runs on the caller's thread."""
        self._check_key(key)
        try:
            if max_bytes is None:
                response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
                with response["Body"] as body:
                    return body.read()
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key,
                                                   Range=f"bytes=0-{max_bytes}")
            except bce.ClientError as exc:
                # An empty object has no byte 0: S3 answers 416 InvalidRange. Ask again without
                # a range; the body is still read only up to the cap.
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 416:
                    raise
                response = self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            total = _range_total(response.get("ContentRange"))
            if total is None:
                total = response.get("ContentLength")
            with response["Body"] as body:
                if isinstance(total, int) and total > max_bytes:
                    raise ObjectRefusedError(f"{self.url} {key}: object is {total} bytes, more than the "
                                             f"{max_bytes} allowed for it; not read")
                data = body.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise ObjectRefusedError(f"{self.url} {key}: object is more than the {max_bytes} bytes "
                                         f"allowed for it; not read")
            return data
        except Exception as exc:
            raise self._classify(exc, key, "get") from exc

    def list(self, prefix: str) -> Iterator[str]:
        try:
            check_prefix(prefix)
        except InvalidKeyError as exc:
            raise PermanentStoreError(f"{self.url}: {exc}") from None
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[str]:
        cut = len(self.prefix)
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix)
            for page in pages:
                for obj in page.get("Contents", ()):
                    yield obj["Key"][cut:]
        except Exception as exc:
            raise self._classify(exc, prefix or "(all)", "list") from exc

    # ---- helpers -----------------------------------------------------------------------
    def _check_key(self, key: str) -> None:
        try:
            check_relative_key(key)
        except InvalidKeyError as exc:
            raise PermanentStoreError(f"{self.url}: {exc}") from None

    def _classify(self, exc: Exception, key: str, op: str) -> StoreError:
        """Map a botocore/urllib3 failure onto transient or permanent, with a clean message."""
        where = f"{self.url} {key}"
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, bce.ClientError):
            err = exc.response.get("Error", {}) or {}
            code = str(err.get("Code", "") or "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            text = self._redact(f"{op} failed: {code or 'error'} (HTTP {status}): {err.get('Message', '')}".rstrip(": "))
            if op == "get" and (code in _NOT_FOUND_CODES or status == 404):
                return ObjectNotFoundError(f"{where}: no such object")
            if op == "put" and code in _BODY_CHANGED_CODES:
                # put() checked the source's SHA-256 before sending: the server received other
                # bytes, so they changed on the way. It stored nothing; sending again may succeed.
                return TransientStoreError(f"{where}: {text} (the body changed on the way; not stored)")
            if code == "NotImplemented" or status == 501:
                return PermanentStoreError(f"{where}: {text} (the server does not support this request, "
                                           f"e.g. conditional writes)")
            if code in _TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status in (408, 429))):
                return TransientStoreError(f"{where}: {text}")
            # AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch, BadDigest, InvalidDigest,
            # NoSuchBucket, other 4xx: the same request will fail the same way.
            return PermanentStoreError(f"{where}: {text}")
        if isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            return PermanentStoreError(
                f"{where}: {op} failed: no S3 credentials found (store them in the OS keyring "
                f"with the settings dialog, or use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
        if isinstance(exc, bce.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return PermanentStoreError(
                f"{where}: {op} failed: TLS certificate not trusted (set the CA bundle): {self._redact(str(exc))}")
        if isinstance(exc, _TRANSIENT_BOTO):
            return TransientStoreError(f"{where}: {op} failed: {type(exc).__name__}: {self._redact(str(exc))}")
        if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
            return TransientStoreError(f"{where}: {op} failed: connection problem: {type(exc).__name__}: {self._redact(str(exc))}")
        if isinstance(exc, bce.BotoCoreError):
            # Parameter validation, unseekable body, bad region or endpoint: configuration
            # problems that retrying cannot fix.
            return PermanentStoreError(f"{where}: {op} failed: {type(exc).__name__}: {self._redact(str(exc))}")
        if isinstance(exc, OSError):
            return TransientStoreError(f"{where}: {op} failed: {type(exc).__name__}: {self._redact(str(exc))}")
        raise exc


def _precondition_failed(exc: bce.ClientError, condition: Mapping[str, str]) -> bool:
    """A conditional put was refused because of its condition: 412, or (moto) 404 for
    ``If-Match`` on a key that does not exist."""
    if not condition:
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str((exc.response.get("Error", {}) or {}).get("Code", ""))
    if status == 412 or code == "PreconditionFailed":
        return True
    return "IfMatch" in condition and (status == 404 or code in _NOT_FOUND_CODES)


def _range_total(content_range: object) -> int | None:
    """The object's full size from ``Content-Range: bytes 0-N/TOTAL``, if given."""
    if isinstance(content_range, str) and "/" in content_range:
        total = content_range.rsplit("/", 1)[1].strip()
        if total.isdigit() and len(total) < 20:
            return int(total)
    return None


def _b64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value).hex()
    except ValueError:
        return repr(value)
