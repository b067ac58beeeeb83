"""Object keys: which key holds what. Pure functions, no I/O.

Every key is built from a validated call id (``core.ids``) and, for audio, a chunk file name
of the exact form ``core.manifest.chunk_file_name`` makes. Nothing else (no line number, no
caller, no department) ever becomes part of a key, so no metadata can steer a write anywhere.

    manifests/YYYY/MM/DD/<call_id>.json        one per call, rewritten as the call goes on; each
                                               put may replace only this PC's own previous one
                                               (If-Match its MD5), so the final one is never
                                               replaced by the program (see uploader, README)
    audio/YYYY/MM/DD/<call_id>/<NNNNNN>.<ext>  sealed chunks, write-once (If-None-Match: *)
    arrivals/YYYY/MM/DD/<call_id>.json         a manifest uploaded on a later UTC day than the
                                               call started (YYYY/MM/DD is the upload day)

Manifests live under their own prefix so that listing a day's calls never lists audio.
The date partition is the call's UTC start date, read from the call id; an incremental
catalogue sync lists only recent partitions, so a manifest that arrives days late (a PC that
was off or offline) also leaves an arrival marker in the partition of the day it arrived.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from callrec_desktop.core.ids import InvalidIdError, call_date, validate_call_id

MANIFESTS_ROOT = "manifests/"
AUDIO_ROOT = "audio/"
ARRIVALS_ROOT = "arrivals/"
MANIFEST_CONTENT_TYPE = "application/json"
CHUNK_NAME_RE = re.compile(r"^\d{6}\.(opus|flac)$")
_CHUNK_CONTENT_TYPES = {"opus": "audio/ogg", "flac": "audio/flac"}
_MANIFEST_KEY_RE = re.compile(r"^manifests/(\d{4})/(\d{2})/(\d{2})/([^/]+)\.json$")
_ARRIVAL_KEY_RE = re.compile(r"^arrivals/(\d{4})/(\d{2})/(\d{2})/([^/]+)\.json$")


class InvalidKeyError(ValueError):
    """A string that should be (part of) an object key is not acceptable."""


def _day_path(day: date) -> str:
    return f"{day.year:04d}/{day.month:02d}/{day.day:02d}"


def validate_chunk_name(name: object) -> str:
    """Return ``name`` if it is a chunk file name like ``000001.opus``, else raise."""
    # isascii: \d matches other scripts' digits too; "000001.opus" must be plain ASCII.
    if not isinstance(name, str) or not name.isascii() or not CHUNK_NAME_RE.fullmatch(name):
        raise InvalidKeyError(f"not a chunk file name: {name!r} (expected like 000001.opus)")
    if name[:6] == "000000":
        raise InvalidKeyError(f"not a chunk file name: {name!r} (sequence numbers start at 1)")
    return name


def manifest_key(call_id: str) -> str:
    """``manifests/YYYY/MM/DD/<call_id>.json``."""
    call_id = validate_call_id(call_id)
    return f"{MANIFESTS_ROOT}{_day_path(call_date(call_id))}/{call_id}.json"


def audio_prefix(call_id: str) -> str:
    """``audio/YYYY/MM/DD/<call_id>/``: every chunk of one call."""
    call_id = validate_call_id(call_id)
    return f"{AUDIO_ROOT}{_day_path(call_date(call_id))}/{call_id}/"


def chunk_key(call_id: str, name: str) -> str:
    """``audio/YYYY/MM/DD/<call_id>/<name>`` with ``name`` like ``000001.opus``."""
    return audio_prefix(call_id) + validate_chunk_name(name)


def manifests_prefix(day: date | None = None) -> str:
    """``manifests/YYYY/MM/DD/`` for one UTC day, or ``manifests/`` for all."""
    if day is None:
        return MANIFESTS_ROOT
    if not isinstance(day, date):
        raise TypeError(f"manifests_prefix needs a date, got {type(day).__name__}")
    return f"{MANIFESTS_ROOT}{_day_path(day)}/"


def call_id_from_manifest_key(key: str) -> str:
    """The call id of a manifest key; raises ``InvalidKeyError`` for anything else.

    Checks that the date partition agrees with the id, so a key placed by hand in the wrong
    folder is noticed rather than silently accepted.
    """
    m = _MANIFEST_KEY_RE.fullmatch(key) if isinstance(key, str) else None
    if not m:
        raise InvalidKeyError(f"not a manifest key: {key!r}")
    try:
        call_id = validate_call_id(m.group(4))
    except InvalidIdError as exc:
        raise InvalidKeyError(f"not a manifest key: {key!r} ({exc})") from None
    if key != manifest_key(call_id):
        raise InvalidKeyError(f"manifest key {key!r}: date folder does not match the call id")
    return call_id


def arrival_key(call_id: str, day: date) -> str:
    """``arrivals/YYYY/MM/DD/<call_id>.json``: ``call_id``'s manifest was uploaded on ``day``."""
    return f"{arrivals_prefix(day)}{validate_call_id(call_id)}.json"


def arrivals_prefix(day: date) -> str:
    """``arrivals/YYYY/MM/DD/`` for one UTC upload day."""
    if not isinstance(day, date):
        raise TypeError(f"arrivals_prefix needs a date, got {type(day).__name__}")
    return f"{ARRIVALS_ROOT}{_day_path(day)}/"


def call_id_from_arrival_key(key: str) -> str:
    """The call id an arrival marker names; raises ``InvalidKeyError`` for anything else."""
    m = _ARRIVAL_KEY_RE.fullmatch(key) if isinstance(key, str) else None
    if not m:
        raise InvalidKeyError(f"not an arrival key: {key!r}")
    try:
        datetime(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return validate_call_id(m.group(4))
    except (InvalidIdError, ValueError) as exc:
        raise InvalidKeyError(f"not an arrival key: {key!r} ({exc})") from None


def chunk_content_type(name: str) -> str:
    """``audio/ogg`` for Opus chunks (Ogg container), ``audio/flac`` for FLAC chunks."""
    return _CHUNK_CONTENT_TYPES[validate_chunk_name(name).rsplit(".", 1)[1]]


def check_relative_key(key: object) -> str:
    """Defence in depth for stores: refuse keys that could escape the store's root.

    Layout only makes safe keys, but a store must not trust its caller: refuse empty,
    absolute, ``.``/``..`` or empty components, backslashes, drive letters, control
    characters and non-ASCII (look-alikes). Listing prefixes go through ``check_prefix``.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"refused key {key!r}: empty or not a string")
    _check_chars(key)
    if key.startswith("/") or key.endswith("/"):
        raise InvalidKeyError(f"refused key {key!r}: absolute or ends with '/'")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKeyError(f"refused key {key!r}: empty, '.' or '..' component")
        if part.startswith("."):
            # Hidden names are reserved for a store's own temporary files.
            raise InvalidKeyError(f"refused key {key!r}: component starts with '.'")
    return key


def check_prefix(prefix: object) -> str:
    """Like ``check_relative_key`` for a listing prefix: may be empty or end with '/'."""
    if not isinstance(prefix, str):
        raise InvalidKeyError(f"refused prefix {prefix!r}: not a string")
    if prefix == "":
        return prefix
    _check_chars(prefix)
    if prefix.startswith("/"):
        raise InvalidKeyError(f"refused prefix {prefix!r}: absolute")
    parts = prefix.split("/")
    if parts[-1] == "":
        parts = parts[:-1]
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidKeyError(f"refused prefix {prefix!r}: empty, '.' or '..' component")
    return prefix


def _check_chars(text: str) -> None:
    if not text.isascii() or any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise InvalidKeyError(f"refused key {text!r}: non-ASCII or control character")
    if "\\" in text or ":" in text:
        raise InvalidKeyError(f"refused key {text!r}: backslash or ':' (drive letter)")


# ---- team leaders' objects: notes and the access log ------------------------------------------
#
#     notes/YYYY/MM/DD/<call_id>/<note_id>.json     one per note, write-once
#     access/YYYY/MM/DD/<call_id>/<event_id>.json   one per access event, write-once (append-only)
#
# The partition is the call's date (from its id), so a call's notes and access history are one
# prefix each. Note and event ids look like ``20261129T101500123Z-3f9a1c0b7d2e``: the UTC
# instant to the millisecond (so keys list in time order) and 48 random bits.

NOTES_ROOT = "notes/"
ACCESS_ROOT = "access/"
EVENT_ID_RE = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})([0-9]{3})Z-([0-9a-f]{12})\Z")


def new_event_id(at: datetime) -> str:
    """A fresh note/event id for the aware datetime ``at``."""
    import secrets
    from datetime import timezone

    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("new_event_id needs an aware datetime")
    u = at.astimezone(timezone.utc)
    return (f"{u.year:04d}{u.month:02d}{u.day:02d}T{u.hour:02d}{u.minute:02d}{u.second:02d}"
            f"{u.microsecond // 1000:03d}Z-{secrets.token_hex(6)}")


def validate_event_id(value: object) -> str:
    """Return ``value`` if it is a note/event id, else raise ``InvalidKeyError``."""
    m = EVENT_ID_RE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise InvalidKeyError(f"not a note/event id: {value!r} (expected like 20261129T101500123Z-3f9a1c0b7d2e)")
    try:
        datetime(*(int(g) for g in m.groups()[:6]))
    except ValueError as exc:
        raise InvalidKeyError(f"not a note/event id: {value!r} ({exc})") from None
    return value  # type: ignore[return-value]


def notes_prefix(call_id: str) -> str:
    """``notes/YYYY/MM/DD/<call_id>/``: every note on one call."""
    call_id = validate_call_id(call_id)
    return f"{NOTES_ROOT}{_day_path(call_date(call_id))}/{call_id}/"


def note_key(call_id: str, note_id: str) -> str:
    """``notes/YYYY/MM/DD/<call_id>/<note_id>.json``."""
    return f"{notes_prefix(call_id)}{validate_event_id(note_id)}.json"


def access_prefix(call_id: str) -> str:
    """``access/YYYY/MM/DD/<call_id>/``: the access history of one call."""
    call_id = validate_call_id(call_id)
    return f"{ACCESS_ROOT}{_day_path(call_date(call_id))}/{call_id}/"


def access_key(call_id: str, event_id: str) -> str:
    """``access/YYYY/MM/DD/<call_id>/<event_id>.json``."""
    return f"{access_prefix(call_id)}{validate_event_id(event_id)}.json"
