"""What every central store offers: put a blob with a verified checksum, get it, list keys.

Stores are deliberately dumb: they know keys and bytes. Which key holds what is decided in
``storage.layout``; what the bytes mean is decided by the manifest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StoreError(Exception):
    """A store operation failed. ``transient`` says whether retrying may help.

    Messages name the store and the key, never a credential.
    """

    transient = False


class TransientStoreError(StoreError):
    """Worth retrying with backoff: connection refused or reset, timeouts, 5xx, throttling."""

    transient = True


class PermanentStoreError(StoreError):
    """Not worth retrying blindly: access denied (403), bad request (400), disk full, bad checksum."""


class ObjectNotFoundError(PermanentStoreError):
    """No object at that key."""


class ObjectRefusedError(PermanentStoreError):
    """The object at that key is not read: larger than the reader allows, or (folder store) a
    symlink, a device, a FIFO or anything else that is not a regular file inside the root."""


@dataclass(frozen=True)
class PutReceipt:
    """What the store confirmed after a put: the size and SHA-256 it holds."""

    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ServerChecks:
    """What an S3 server verifies, as probed (``S3Store.checks``); ``None`` = not known.

    ``sha256``: refuses a body whose ``x-amz-checksum-sha256`` is wrong, before storing it.
    ``content_md5``: the same for ``Content-MD5``. ``if_none_match``: refuses a put with
    ``If-None-Match: *`` on an existing key (the write-once chunks and final manifests rely on it).
    """

    sha256: bool | None
    content_md5: bool | None
    if_none_match: bool | None
    problem: str | None = None  # why the probe could not answer

    def summary(self) -> str:
        """One line for `callrec credentials test`, `callrec status` and the log."""
        if self.problem is not None:
            return f"not probed ({self.problem})"
        if self.sha256:
            verified = "verifies x-amz-checksum-sha256 before storing"
        elif self.content_md5:
            verified = ("does NOT verify x-amz-checksum-sha256; verifies Content-MD5 (sent with every put) "
                        "before storing")
        else:
            verified = ("verifies NEITHER x-amz-checksum-sha256 NOR Content-MD5: a body corrupted on the way "
                        "is stored, and found only afterwards from the ETag (the put fails and is retried)")
        if self.if_none_match:
            writes = "honours If-None-Match (chunks and final manifests are write-once)"
        elif self.if_none_match is None:
            writes = ("does not know If-None-Match (answered 501): conditional puts of chunks and manifests "
                      "will fail on this server")
        else:
            writes = ("does NOT honour If-None-Match: the uploader cannot keep chunks and final manifests "
                      "write-once on this server")
        return f"{verified}; {writes}"

    @property
    def weak(self) -> bool:
        """True if something the uploader relies on is missing or unknown (worth a warning)."""
        return self.problem is not None or not self.sha256 or not self.if_none_match


class Store(Protocol):
    """A central store. Implementations: ``FolderStore``, ``S3Store``."""

    description: str  # for messages and logs; never contains a credential

    def put(
        self,
        key: str,
        source: Path | bytes,
        *,
        sha256: str,
        metadata: Mapping[str, str],
        content_type: str,
    ) -> PutReceipt:
        """Store ``source`` at ``key`` atomically (a reader never sees half an object).

        Raises unless the store confirmed the size and the SHA-256 (hex) given. Putting the
        same bytes at the same key twice is harmless. Needs write permission only. A store
        with ``conditional_writes = True`` (``S3Store``) also takes ``write_once=`` and
        ``replaces=`` (see ``S3Store.put``); the uploader passes them only to such a store.
        """
        ...

    def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes; ``ObjectNotFoundError`` if absent. With ``max_bytes``, an object
        larger than that is refused (``ObjectRefusedError``) without reading more than
        ``max_bytes + 1`` bytes of it: every reader of store data passes a cap."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under ``prefix`` (relative to the store's own prefix), in lexical order."""
        ...


def get_capped(store: Store, key: str, max_bytes: int) -> bytes:
    """``store.get(key, max_bytes=max_bytes)``; for a store without ``max_bytes`` (a test
    double wrapping a store), the length is checked after the read. Runs on the caller's thread."""
    try:
        data = store.get(key, max_bytes=max_bytes)  # type: ignore[call-arg]
    except TypeError as exc:
        if "max_bytes" not in str(exc):
            raise
        data = store.get(key)
    if len(data) > max_bytes:
        raise ObjectRefusedError(f"{store.description} {key}: object is larger than the {max_bytes} bytes "
                                 f"allowed for it; not read")
    return data
