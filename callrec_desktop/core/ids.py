"""Call identifiers: the only strings that ever become part of a file name or an object key.

A call id looks like ``20261129T092233Z-3f9a1c0b7d2e``: the UTC start (which gives the date
partition) and 48 random bits. Anything else is refused, so no metadata field can steer a
path or a key anywhere (no ``..``, no slashes, no unicode look-alikes).
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, timezone

# ASCII digits only: ``\d`` would also accept other scripts' digits (e.g. fullwidth "２"),
# which int() happily reads, so a look-alike id could pass. ``\Z``, not ``$``, so that a
# trailing newline is never accepted even by ``match``.
CALL_ID_RE = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z-([0-9a-f]{12})\Z")


class InvalidIdError(ValueError):
    """A string that should be a call id is not one."""


def new_call_id(start: datetime) -> str:
    """A fresh call id for a call that started at ``start`` (an aware datetime)."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("new_call_id needs an aware datetime")
    utc = start.astimezone(timezone.utc)
    # Explicit zero padding: strftime's %Y does not pad years below 1000 on every platform.
    stamp = f"{utc.year:04d}{utc.month:02d}{utc.day:02d}T{utc.hour:02d}{utc.minute:02d}{utc.second:02d}Z"
    return f"{stamp}-{secrets.token_hex(6)}"


def _parse(value: object) -> tuple[int, ...]:
    """The six date/time fields of a well-formed call id, else InvalidIdError."""
    m = CALL_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise InvalidIdError(f"not a call id: {value!r} (expected like 20261129T092233Z-3f9a1c0b7d2e)")
    fields = tuple(int(g) for g in m.groups()[:6])
    try:
        # The start must be a real UTC instant: no 30 February, no 25:61:61.
        datetime(*fields, tzinfo=timezone.utc)
    except ValueError as exc:
        raise InvalidIdError(f"not a call id: {value!r} ({exc})") from None
    return fields


def validate_call_id(value: object) -> str:
    """Return ``value`` if it is a well-formed call id, else raise InvalidIdError."""
    _parse(value)
    assert isinstance(value, str)
    return value


def call_date(call_id: str) -> date:
    """The UTC date on which the call started, read from its id (InvalidIdError if it is not one)."""
    year, month, day = _parse(call_id)[:3]
    return date(year, month, day)
