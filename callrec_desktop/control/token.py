"""The control API's token, kept in the OS keyring: the key of its HMACs (``protocol.py``), never sent.

One entry: service ``callrec-desktop``, user name ``control-api-token``. The app creates it on
first start (``load_or_create_token``); Settings can rotate it (``reset_token``); clients such
as ``callrec signal`` only read it (``read_token``) and never create one.

If the keyring cannot be used, the app still runs its control API with an ephemeral token
(valid until it exits) and says so in Settings (``NOT_STORED_MESSAGE``): a missing keyring must
never stop calls being recorded. Nothing here logs, formats or repr()s a token.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, NamedTuple

from callrec_desktop.credentials import SERVICE, keyring_module

if TYPE_CHECKING:
    import keyring.backend

ENTRY = "control-api-token"
NOT_STORED_MESSAGE = "token not stored: the OS keyring is unavailable"

log = logging.getLogger(__name__)


class ControlTokenError(Exception):
    """The keyring could not be read; the message says why (never holds a token)."""


class ControlToken(NamedTuple):
    """A token and whether it is kept in the OS keyring; unpacks like ``(value, stored)``.

    ``stored`` False: an ephemeral token, valid until the app exits (show
    ``NOT_STORED_MESSAGE`` in Settings).
    """

    value: str
    stored: bool

    def __repr__(self) -> str:
        return f"ControlToken(value=<hidden>, stored={self.stored})"

    __str__ = __repr__


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def _kr(backend: keyring.backend.KeyringBackend | None) -> keyring.backend.KeyringBackend:
    return backend if backend is not None else keyring_module().get_keyring()


def _why(exc: BaseException) -> str:
    """A short reason for a keyring failure. Never the exception text: a backend might put
    what it was asked to store into it."""
    errors = keyring_module().errors
    if isinstance(exc, errors.NoKeyringError):
        return "no keyring backend is installed or running"
    if isinstance(exc, errors.KeyringLocked):
        return "the keyring is locked"
    return f"the keyring refused the request ({type(exc).__name__})"


def read_token(keyring_backend: keyring.backend.KeyringBackend | None = None) -> str | None:
    """The stored token, or None if there is none. Read-only: never creates one.

    Raises ``ControlTokenError`` if the keyring cannot be read.
    """
    try:
        value = _kr(keyring_backend).get_password(SERVICE, ENTRY)
    except Exception as exc:  # any backend failure means "cannot read"; see _why
        raise ControlTokenError(f"cannot read the control API token {SERVICE}/{ENTRY} from the OS keyring: "
                                f"{_why(exc)}") from None
    return value or None


def load_or_create_token(keyring_backend: keyring.backend.KeyringBackend | None = None) -> ControlToken:
    """The stored token; if there is none, a new one, stored. For the app at start-up.

    If the keyring cannot be used: an ephemeral token and ``stored=False``.
    """
    try:
        value = read_token(keyring_backend)
    except ControlTokenError as exc:
        log.warning("control API: %s; using a token valid until callrec-desktop exits", exc)
        return ControlToken(new_token(), False)
    if value is not None:
        return ControlToken(value, True)
    return _store(new_token(), keyring_backend, "created")


def reset_token(keyring_backend: keyring.backend.KeyringBackend | None = None) -> ControlToken:
    """Replace the token with a new one (Settings → "new token"). Clients must be given the
    new one; the running server takes it with ``ControlServer.set_token``."""
    return _store(new_token(), keyring_backend, "replaced")


def _store(value: str, backend: keyring.backend.KeyringBackend | None, done: str) -> ControlToken:
    try:
        _kr(backend).set_password(SERVICE, ENTRY, value)
    except Exception as exc:  # any backend failure: fall back to an ephemeral token
        log.warning("control API: cannot store the token %s/%s in the OS keyring: %s; using a token valid "
                    "until callrec-desktop exits", SERVICE, ENTRY, _why(exc))
        return ControlToken(value, False)
    log.info("control API: %s the token %s/%s in the OS keyring", done, SERVICE, ENTRY)
    return ControlToken(value, True)
