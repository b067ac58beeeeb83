"""Team leaders' notes on calls (training, complaints), stored centrally beside the recordings.

One JSON object per note at ``layout.note_key(call_id, note_id)``, write-once, so every team
leader sees every note (``NoteStore.list``, or ``Catalog.sync`` which indexes new notes).

The catalogue's ``notes_index`` (which calls have notes, with which tags: the ``has_notes``
and ``tag`` filters) is kept up to date by ``NoteStore.add`` and ``NoteStore.list`` when given a
catalog, by ``Catalog.sync_notes(store, call_ids)``, and by every ``Catalog.sync`` (which lists
``notes/`` and reads the notes it has not indexed yet).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from callrec_desktop.core.ids import validate_call_id
from callrec_desktop.core.manifest import Manifest, iso_utc, parse_iso_utc
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import PermanentStoreError, Store

if TYPE_CHECKING:
    from callrec_desktop.catalog import Catalog

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_TEXT = 4000
MAX_TAGS = 10
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}\Z")  # short slugs: "good-practice", "complaint"
_NOTE_KEY_RE = re.compile(r"^notes/[0-9]{4}/[0-9]{2}/[0-9]{2}/([^/]+)/([^/]+)\.json\Z")


class NoteError(ValueError):
    """A note that cannot be added (bad text, time or tag); the message says what."""


def validate_tag(tag: object) -> str:
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        raise NoteError(f"tag {tag!r}: tags are short slugs of a-z, 0-9 and '-' (at most 32), like 'good-practice'")
    return tag


@dataclass(frozen=True)
class Note:
    note_id: str
    call_id: str
    author: str
    created_at: datetime
    at_seconds: float
    end_seconds: float | None
    text: str
    tags: tuple[str, ...] = ()

    def to_json(self) -> bytes:
        doc = {"schema_version": SCHEMA_VERSION, "note_id": self.note_id, "call_id": self.call_id,
               "author": self.author, "created_at": iso_utc(self.created_at), "at_seconds": self.at_seconds,
               "end_seconds": self.end_seconds, "text": self.text, "tags": list(self.tags)}
        return (json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "Note":
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
                raise ValueError("not a note of schema_version 1")
            tags = doc.get("tags") or []
            if not isinstance(tags, list):
                raise ValueError("tags must be a list")
            note = cls(layout.validate_event_id(doc["note_id"]), validate_call_id(doc["call_id"]), doc["author"],
                       parse_iso_utc(doc["created_at"]), float(doc["at_seconds"]),
                       None if doc.get("end_seconds") is None else float(doc["end_seconds"]), doc["text"],
                       tuple(validate_tag(t) for t in tags))
            if not isinstance(note.text, str) or not isinstance(note.author, str):
                raise ValueError("text and author must be text")
            return note
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: unreadable note ({type(exc).__name__}: {exc})") from None


class NoteList(list):
    """Notes of a call sorted by position in the call; ``problems``: (key, why) for unreadable ones."""

    problems: tuple[tuple[str, str], ...] = ()


class NoteStore:
    """Adds and lists notes in a central store. With ``catalog``, keeps its notes_index current."""

    def __init__(self, store: Store, catalog: "Catalog | None" = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store, self.catalog, self._clock = store, catalog, clock

    def add(self, call_id: str, author: str, at_seconds: float, text: str, tags: Iterable[str] = (),
            end_seconds: float | None = None, *, manifest: Manifest | None = None) -> Note:
        """Validate and store a new note. The call's duration (for the time check) comes from
        ``manifest``, else from the catalog if it knows the call."""
        call_id = validate_call_id(call_id)
        if not isinstance(author, str) or not author.strip():
            raise NoteError("a note needs its author")
        if not isinstance(text, str) or not text.strip():
            raise NoteError("a note needs some text")
        if len(text) > MAX_TEXT:
            raise NoteError(f"note text is {len(text)} characters; at most {MAX_TEXT}")
        tags = tuple(dict.fromkeys(validate_tag(t) for t in tags))
        if len(tags) > MAX_TAGS:
            raise NoteError(f"at most {MAX_TAGS} tags")
        at_seconds = _seconds("at", at_seconds)
        if end_seconds is not None:
            end_seconds = _seconds("end", end_seconds)
            if end_seconds < at_seconds:
                raise NoteError(f"note end {end_seconds} s is before its start {at_seconds} s")
        if manifest is None and self.catalog is not None:
            row = self.catalog.get(call_id)
            duration = row.duration_seconds if row is not None else None
        else:
            duration = manifest.duration_seconds if manifest is not None else None
        if duration is not None:
            for name, value in (("at", at_seconds), ("end", end_seconds)):
                if value is not None and value > duration + 0.001:
                    raise NoteError(f"note {name} {value} s is after the end of the call ({duration:.3f} s)")
        created = self._clock().astimezone(timezone.utc)
        created = created.replace(microsecond=created.microsecond // 1000 * 1000)  # as stored
        note = Note(layout.new_event_id(created), call_id, author.strip(), created, at_seconds, end_seconds,
                    text, tags)
        body = note.to_json()
        self.store.put(layout.note_key(call_id, note.note_id), body, sha256=hashlib.sha256(body).hexdigest(),
                       metadata={"kind": "note", "call_id": call_id}, content_type="application/json")
        if self.catalog is not None:
            self.catalog.index_notes(call_id, [note], replace=False)
        return note

    def list(self, call_id: str) -> NoteList:
        """Every note on the call, by position in the call then creation time."""
        notes, problems = [], []
        for key in self.store.list(layout.notes_prefix(call_id)):
            if not key.endswith(".json"):
                continue
            try:
                notes.append(self.read(key))
            except (ValueError, PermanentStoreError) as exc:
                log.warning("skipped %s", exc)
                problems.append((key, str(exc)))
        out = NoteList(sorted(notes, key=lambda n: (n.at_seconds, n.created_at, n.note_id)))
        out.problems = tuple(problems)
        if self.catalog is not None:
            self.catalog.index_notes(call_id, out, replace=True)
        return out

    def read(self, key: str) -> Note:
        note = Note.from_json(self.store.get(key), key)
        m = _NOTE_KEY_RE.fullmatch(key)
        if not m or (m.group(1), m.group(2)) != (note.call_id, note.note_id):
            raise ValueError(f"{key}: note does not match its key")
        return note


def note_ids_from_key(key: str) -> tuple[str, str] | None:
    """(call_id, note_id) of a note key, or None for anything else."""
    m = _NOTE_KEY_RE.fullmatch(key)
    return (m.group(1), m.group(2)) if m else None


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise NoteError(f"note {name}: must be a number of seconds >= 0, got {value!r}")
    return float(value)
