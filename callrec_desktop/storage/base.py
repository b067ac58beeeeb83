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
        same bytes at the same key twice is harmless. Needs write permission only.
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
