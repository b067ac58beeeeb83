"""Turn a STORE string (a folder path or ``s3://bucket/prefix``) into a ``Store``."""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from callrec_desktop.storage.base import Store
from callrec_desktop.storage.folder import FolderStore

# (endpoint_url or None for AWS, bucket) -> (access key id, secret) or None for boto3's chain.
# ``credentials.CredentialStore.lookup`` has this shape.
CredentialsProvider = Callable[[str | None, str], "tuple[str, str] | None"]

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


class StoreUrlError(ValueError):
    """A STORE string that is neither a folder path nor ``s3://bucket[/prefix]``."""


def parse_store_url(url: str | os.PathLike[str]) -> tuple[str, Path] | tuple[str, str, str]:
    """``("folder", Path)`` or ``("s3", bucket, prefix)``; ``StoreUrlError`` names the URL.

    ``file:///path`` is accepted as a folder. A Windows path such as ``C:\\calls`` or a UNC
    path ``\\\\server\\share`` is a folder (no ``://``).
    """
    if isinstance(url, os.PathLike):
        return ("folder", Path(url))
    if not isinstance(url, str) or not url.strip():
        raise StoreUrlError(f"store {url!r}: empty; give a folder path or s3://bucket/prefix")
    m = _SCHEME_RE.match(url)
    if not m:
        return ("folder", Path(url))
    scheme = m.group(1).lower()
    if scheme == "file":
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise StoreUrlError(f"store {url!r}: file:// URLs must name a local path (file:///path)")
        return ("folder", Path(urllib.parse.unquote(parts.path)))
    if scheme != "s3":
        raise StoreUrlError(
            f"store {url!r}: unsupported scheme {scheme!r}; give a folder path or s3://bucket/prefix "
            f"(an S3 endpoint such as http://host:port goes in the endpoint URL setting)")
    rest = url[m.end():]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreUrlError(f"store {url!r}: no bucket; expected s3://bucket or s3://bucket/prefix")
    if "@" in bucket or ":" in bucket:
        raise StoreUrlError(f"store {url!r}: put credentials in the keyring and the endpoint in the "
                            f"endpoint URL setting, not in the store URL")
    if not _BUCKET_RE.fullmatch(bucket):
        raise StoreUrlError(f"store {url!r}: {bucket!r} is not a valid bucket name")
    if "?" in prefix or "#" in prefix:
        raise StoreUrlError(f"store {url!r}: query strings and fragments are not supported")
    prefix = prefix.strip("/")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise StoreUrlError(f"store {url!r}: prefix has an empty, '.' or '..' component")
    return ("s3", bucket, prefix)


def open_store(
    url: str | os.PathLike[str],
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    addressing_style: str = "auto",
    ca_bundle: str | os.PathLike[str] | None = None,
    credentials_provider: CredentialsProvider | None = None,
) -> Store:
    """Open the store named by ``url``. For S3, credentials come from ``credentials_provider``
    (the OS keyring) when it has some, else from boto3's usual chain (environment, config
    files, instance roles). Errors from the provider (keyring locked) propagate."""
    parsed = parse_store_url(url)
    if parsed[0] == "folder":
        return FolderStore(parsed[1])
    _, bucket, prefix = parsed
    # boto3 costs ~130 ms to import: only S3 users pay for it (app start-up, folder stores).
    from callrec_desktop.storage.s3 import ADDRESSING_STYLES, S3Store

    if addressing_style not in ADDRESSING_STYLES:
        raise StoreUrlError(f"addressing style must be one of {', '.join(ADDRESSING_STYLES)}, got {addressing_style!r}")
    credentials = credentials_provider(endpoint_url, bucket) if credentials_provider else None
    try:
        return S3Store(bucket, prefix, endpoint_url=endpoint_url, region=region,
                       addressing_style=addressing_style, ca_bundle=ca_bundle,
                       credentials=tuple(credentials) if credentials else None)
    except ValueError as exc:
        raise StoreUrlError(f"store {url!r}: {exc}") from None
