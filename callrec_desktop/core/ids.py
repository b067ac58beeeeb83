"""Call identifiers: the only strings that ever become part of a file name or an object key.

A call id looks like ``20261129T092233Z-3f9a1c0b7d2e``: the UTC start (which gives the date
partition) and 48 random bits. Anything else is refused, so no metadata field can steer a
path or a key anywhere (no ``..``, no slashes, no unicode look-alikes).
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, timezone

CALL_ID_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([0-9a-f]{12})$")


class InvalidIdError(ValueError):
    """A string that should be a call id is not one."""


def new_call_id(start: datetime) -> str:
    """A fresh call id for a call that started at ``start`` (an aware datetime)."""
    if start.tzinfo is None:
        raise ValueError("new_call_id needs an aware datetime")
    utc = start.astimezone(timezone.utc)
    return f"{utc:%Y%m%dT%H%M%SZ}-{secrets.token_hex(6)}"


def validate_call_id(value: object) -> str:
    """Return ``value`` if it is a well-formed call id, else raise InvalidIdError."""
    if not isinstance(value, str) or not CALL_ID_RE.fullmatch(value):
        raise InvalidIdError(f"not a call id: {value!r} (expected like 20261129T092233Z-3f9a1c0b7d2e)")
    try:
        call_date(value)
    except ValueError as exc:
        raise InvalidIdError(f"not a call id: {value!r} ({exc})") from None
    return value


def call_date(call_id: str) -> date:
    """The UTC date on which the call started, read from its id."""
    m = CALL_ID_RE.fullmatch(call_id)
    if not m:
        raise InvalidIdError(f"not a call id: {call_id!r}")
    return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
