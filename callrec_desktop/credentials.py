"""S3 credentials in the OS keyring (Windows Credential Manager, macOS Keychain, Secret Service).

One keyring entry per store, under service ``callrec-desktop``, user name
``s3:<endpoint or 'aws'>:<bucket>`` (see ``profile_for``), holding a small JSON document
``{"access_key_id": ..., "secret_access_key": ...}``. Nothing here logs, formats or repr()s a
secret; ``S3Credentials`` hides both halves in its repr.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from types import ModuleType
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import keyring.backend

SERVICE = "callrec-desktop"
log = logging.getLogger(__name__)

_FIX = (
    "Recordings cannot be uploaded to S3 without it. On Windows the Credential Manager and on "
    "macOS the Keychain are always present; on Linux start and unlock a Secret Service (GNOME "
    "Keyring or KWallet) in the desktop session. Alternatively, IT can give credentials through "
    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or an AWS profile."
)


def keyring_module() -> ModuleType:
    """The keyring package, imported on first use: finding the OS backend takes tens of
    milliseconds the window's start-up should not pay."""
    import keyring
    import keyring.errors

    return keyring


class CredentialsError(Exception):
    """The OS keyring could not be used, or an entry in it is unreadable. Never holds a secret.

    ``no_keyring`` is true when there is no keyring at all (as opposed to a locked one).
    """

    def __init__(self, message: str, *, no_keyring: bool = False) -> None:
        super().__init__(message)
        self.no_keyring = no_keyring


class S3Credentials(NamedTuple):
    """An access key pair; unpacks like a tuple, never shows itself."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return "S3Credentials(access_key_id=<hidden>, secret_access_key=<hidden>)"

    __str__ = __repr__


def profile_for(endpoint_url: str | None, bucket: str) -> str:
    """The keyring user name for a store: ``s3:<endpoint or 'aws'>:<bucket>``.

    The endpoint is normalised (scheme and host lower-cased, no trailing slash) so the same
    store typed two ways finds the same entry.
    """
    if not bucket:
        raise ValueError("a credentials profile needs a bucket")
    if endpoint_url:
        parts = urllib.parse.urlsplit(endpoint_url.strip())
        host = (parts.hostname or "").lower()
        netloc = f"{host}:{parts.port}" if parts.port else host
        endpoint = urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))
    else:
        endpoint = "aws"
    return f"s3:{endpoint}:{bucket}"


class CredentialStore:
    """Reads and writes S3 credentials in a keyring backend (the OS keyring by default).

    ``keyring_backend`` lets tests pass an in-memory backend without touching the global one.
    """

    def __init__(self, keyring_backend: keyring.backend.KeyringBackend | None = None) -> None:
        self._backend = keyring_backend

    def __repr__(self) -> str:
        return f"CredentialStore(service={SERVICE!r}, backend={type(self._kr()).__name__})"

    def _kr(self) -> keyring.backend.KeyringBackend:
        return self._backend if self._backend is not None else keyring_module().get_keyring()

    def set(self, profile: str, access_key: str, secret: str) -> None:
        """Store (or replace) the key pair for ``profile``."""
        if not access_key or not secret:
            raise ValueError("both the access key id and the secret are needed")
        doc = json.dumps({"access_key_id": access_key, "secret_access_key": secret})
        try:
            self._kr().set_password(SERVICE, profile, doc)
        except keyring_module().errors.KeyringError as exc:
            raise self._error("store", profile, exc, (access_key, secret)) from None
        log.info("stored S3 credentials for %s in the OS keyring", profile)

    def get(self, profile: str) -> S3Credentials | None:
        """The key pair for ``profile``, or None if there is no entry."""
        try:
            doc = self._kr().get_password(SERVICE, profile)
        except keyring_module().errors.KeyringError as exc:
            raise self._error("read", profile, exc, ()) from None
        if doc is None:
            return None
        try:
            data = json.loads(doc)
            creds = S3Credentials(str(data["access_key_id"]), str(data["secret_access_key"]))
        except (ValueError, TypeError, KeyError):
            # Do not echo the entry: it may hold a secret in some other shape.
            raise CredentialsError(
                f"the OS keyring entry {SERVICE}/{profile} is not in the expected form; "
                f"set the S3 credentials again in the settings") from None
        if not creds.access_key_id or not creds.secret_access_key:
            raise CredentialsError(f"the OS keyring entry {SERVICE}/{profile} is incomplete; set it again")
        return creds

    def clear(self, profile: str) -> None:
        """Remove the entry for ``profile``; no error if there is none."""
        try:
            if self._kr().get_password(SERVICE, profile) is None:
                return
            self._kr().delete_password(SERVICE, profile)
        except keyring_module().errors.PasswordDeleteError:
            return  # gone in between
        except keyring_module().errors.KeyringError as exc:
            raise self._error("remove", profile, exc, ()) from None
        log.info("removed S3 credentials for %s from the OS keyring", profile)

    def lookup(self, endpoint_url: str | None, bucket: str) -> S3Credentials | None:
        """A ``CredentialsProvider`` for ``storage.factory.open_store``.

        With no keyring at all (a headless Linux box), returns None so boto3's usual chain is
        used, and logs a warning; a keyring that exists but fails (locked) raises.
        """
        profile = profile_for(endpoint_url, bucket)
        try:
            return self.get(profile)
        except CredentialsError as exc:
            if exc.no_keyring:
                log.warning("no OS keyring available; using boto3's credential chain for %s", profile)
                return None
            raise

    def _error(self, doing: str, profile: str, exc: Exception, secrets_: tuple[str, ...]) -> CredentialsError:
        errors = keyring_module().errors
        detail = str(exc)
        for s in secrets_:
            if s:
                detail = detail.replace(s, "<hidden>")
        if isinstance(exc, errors.NoKeyringError):
            what = "the OS keyring is unavailable (no keyring backend is installed or running)"
        elif isinstance(exc, errors.KeyringLocked):
            what = "the OS keyring is unavailable: it is locked (unlock it and try again)"
        else:
            what = "the OS keyring is unavailable or refused the request"
        return CredentialsError(
            f"could not {doing} S3 credentials {SERVICE}/{profile}: {what} "
            f"[{type(exc).__name__}: {detail}]. {_FIX}",
            no_keyring=isinstance(exc, errors.NoKeyringError))
