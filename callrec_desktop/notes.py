"""Team leaders' notes on calls (training, complaints), stored centrally beside the recordings.

One JSON object per note at ``layout.note_key(call_id, note_id)``, write-once, so every team
leader sees every note (``NoteStore.list``, or ``Catalog.sync`` which indexes new notes).

The catalogue's ``notes_index`` (which calls have notes, with which tags: the ``has_notes``
and ``tag`` filters) is kept up to date by ``NoteStore.add`` and ``NoteStore.list`` when given a
catalog, by ``Catalog.sync_notes(store, call_ids)``, and by every ``Catalog.sync`` (which lists
``notes/`` and reads the notes it has not indexed yet).

A note's ``author`` is the OS login of the PC session that wrote it (``governance.os_user``:
the CLI and the Library pass it; a typed id is stored as ``label`` beside it, for display), so
"only its author can change it" compares logins. See docs/access-log.md.

Notes in the store are untrusted: a note object is read only up to ``MAX_JSON_BYTES`` and
parsed with the bounds of ``core.manifest.load_json_object``; its times must lie in the call
(at most ``MAX_CALL_SECONDS``) and its creation time in 2000..2100, its text and tags within the
limits ``add`` enforces. A note that fails any of that is skipped with a warning naming its key.
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
from callrec_desktop.core.manifest import (
    MAX_CALL_SECONDS,
    MAX_JSON_BYTES,
    Manifest,
    check_time_bounds,
    iso_utc,
    load_json_object,
    object_problem,
    parse_iso_utc,
)
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import Store, TransientStoreError, get_capped

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
    replaces: str | None = None  # the note this one revises or withdraws (its author's own)
    withdrawn: bool = False  # True: ``replaces`` is withdrawn; this object only records that
    label: str | None = None  # the typed id (``--label``, agent_id) shown beside the author, never the author

    def to_json(self) -> bytes:
        doc = {"schema_version": SCHEMA_VERSION, "note_id": self.note_id, "call_id": self.call_id,
               "author": self.author, "created_at": iso_utc(self.created_at), "at_seconds": self.at_seconds,
               "end_seconds": self.end_seconds, "text": self.text, "tags": list(self.tags)}
        if self.replaces is not None:  # optional keys: a note that revises nothing is as before
            doc["replaces"] = self.replaces
        if self.withdrawn:
            doc["withdrawn"] = True
        if self.label is not None:
            doc["label"] = self.label
        return (json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    def access_detail(self) -> dict[str, str]:
        """What the access log records about this note: its id, and the note it replaces or
        withdraws."""
        detail = {"note_id": self.note_id}
        if self.replaces is not None:
            detail["withdraws" if self.withdrawn else "replaces"] = self.replaces
        return detail

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "Note":
        try:
            doc = load_json_object(data, where)
        except ValueError as exc:
            raise ValueError(f"{where}: unreadable note ({str(exc).removeprefix(where + ': ')})") from None
        try:
            if doc.get("schema_version") != SCHEMA_VERSION:
                raise ValueError("not a note of schema_version 1")
            tags = doc.get("tags") or []
            if not isinstance(tags, list) or len(tags) > MAX_TAGS:
                raise ValueError(f"tags must be a list of at most {MAX_TAGS}")
            replaces = doc.get("replaces")
            withdrawn = doc.get("withdrawn", False)
            if not isinstance(withdrawn, bool) or (withdrawn and replaces is None):
                raise ValueError("withdrawn must be true or false, and a withdrawal must name the note")
            label = doc.get("label")
            if label is not None and (not isinstance(label, str) or len(label) > 256):
                raise ValueError("label must be text of at most 256 characters")
            note = cls(layout.validate_event_id(doc["note_id"]), validate_call_id(doc["call_id"]), doc["author"],
                       parse_iso_utc(doc["created_at"]), float(doc["at_seconds"]),
                       None if doc.get("end_seconds") is None else float(doc["end_seconds"]), doc["text"],
                       tuple(validate_tag(t) for t in tags),
                       None if replaces is None else layout.validate_event_id(replaces), withdrawn, label)
            if not isinstance(note.text, str) or not isinstance(note.author, str):
                raise ValueError("text and author must be text")
            if len(note.text) > MAX_TEXT or len(note.author) > 256:
                raise ValueError(f"text longer than {MAX_TEXT} characters, or author longer than 256")
            check_time_bounds(note.created_at, "created_at")
            for name, value in (("at_seconds", note.at_seconds), ("end_seconds", note.end_seconds)):
                if value is not None and not 0 <= value <= MAX_CALL_SECONDS:  # also refuses NaN
                    raise ValueError(f"{name} {value!r} is not a time in a call (0..{MAX_CALL_SECONDS} s)")
            return note
        except (KeyError, TypeError, ValueError, UnicodeDecodeError, OverflowError) as exc:
            raise ValueError(f"{where}: unreadable note ({type(exc).__name__}: {exc})") from None


class NoteList(list):
    """The current notes of a call, sorted by position in the call; ``problems``: (key, why) for
    unreadable ones; ``versions``: every note object of the call (revisions and withdrawals too),
    oldest first. A current note that revises an earlier one has ``replaces`` set."""

    problems: tuple[tuple[str, str], ...] = ()
    versions: tuple[Note, ...] = ()


def current_notes(versions: Iterable[Note]) -> list[Note]:
    """The notes still standing among ``versions``: not revised by a later version, not
    withdrawn, and not withdrawal records themselves."""
    versions = list(versions)
    gone = {n.replaces for n in versions if n.replaces is not None}
    return [n for n in versions if n.note_id not in gone and not n.withdrawn]


class NoteStore:
    """Adds and lists notes in a central store. With ``catalog``, keeps its notes_index current.

    ``author`` (of ``add``, ``revise``, ``withdraw``) is the OS login of the writer
    (``governance.os_user.os_login()``: the CLI and the Library pass it, never a typed id), so
    "only its author can change it" means the same login; ``label``: a typed id stored beside it
    (``[identity] agent_id``, ``--label``), for display only."""

    def __init__(self, store: Store, catalog: "Catalog | None" = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc), *,
                 label: str | None = None) -> None:
        self.store, self.catalog, self._clock = store, catalog, clock
        self.label = label.strip()[:256] if isinstance(label, str) and label.strip() else None

    def add(self, call_id: str, author: str, at_seconds: float, text: str, tags: Iterable[str] = (),
            end_seconds: float | None = None, *, manifest: Manifest | None = None) -> Note:
        """Validate and store a new note. The call's duration (for the time check) comes from
        ``manifest``, else from the catalog if it knows the call."""
        call_id = validate_call_id(call_id)
        return self._store(self._new(call_id, author, at_seconds, end_seconds, text, tags, manifest))

    def revise(self, call_id: str, author: str, note_id: str, text: str, tags: Iterable[str] = (),
               at_seconds: float | None = None, end_seconds: float | None = None, *,
               manifest: Manifest | None = None) -> Note:
        """Store a new version of ``author``'s own current note ``note_id`` (same place in the
        call unless given). The old version stays in the store: notes are write-once, and the
        call's history shows every version."""
        call_id = validate_call_id(call_id)
        old = self._own_current(call_id, author, note_id)
        at = old.at_seconds if at_seconds is None else at_seconds
        end = old.end_seconds if at_seconds is None and end_seconds is None else end_seconds
        return self._store(self._new(call_id, author, at, end, text, tags, manifest, replaces=old.note_id))

    def withdraw(self, call_id: str, author: str, note_id: str) -> Note:
        """Withdraw ``author``'s own current note ``note_id``: a record that it no longer stands
        (the note itself stays in the store, and in the call's history)."""
        call_id = validate_call_id(call_id)
        old = self._own_current(call_id, author, note_id)
        created = self._now()
        return self._store(Note(layout.new_event_id(created), call_id, author.strip(), created, old.at_seconds,
                                old.end_seconds, "", (), old.note_id, True, self.label))

    def _own_current(self, call_id: str, author: str, note_id: str) -> Note:
        if not isinstance(author, str) or not author.strip():
            raise NoteError("a note needs its author")
        try:
            note_id = layout.validate_event_id(note_id)
        except layout.InvalidKeyError as exc:
            raise NoteError(str(exc)) from None
        current = {n.note_id: n for n in self.list(call_id)}
        old = current.get(note_id)
        if old is None:
            raise NoteError(f"note {note_id} is not a current note of call {call_id} "
                            "(revised or withdrawn since, or never there)")
        if old.author != author.strip():
            raise NoteError(f"note {note_id} is {old.author}'s: only its author can change or withdraw it")
        return old

    def _now(self) -> datetime:
        created = self._clock().astimezone(timezone.utc)
        return created.replace(microsecond=created.microsecond // 1000 * 1000)  # as stored

    def _new(self, call_id: str, author: str, at_seconds: float, end_seconds: float | None, text: str,
             tags: Iterable[str], manifest: Manifest | None, replaces: str | None = None) -> Note:
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
        created = self._now()
        return Note(layout.new_event_id(created), call_id, author.strip(), created, at_seconds, end_seconds,
                    text, tags, replaces, label=self.label)

    def _store(self, note: Note) -> Note:
        body = note.to_json()
        self.store.put(layout.note_key(note.call_id, note.note_id), body, sha256=hashlib.sha256(body).hexdigest(),
                       metadata={"kind": "note", "call_id": note.call_id}, content_type="application/json")
        if self.catalog is not None:
            self.catalog.index_notes(note.call_id, [note], replace=False)
        return note

    def list(self, call_id: str) -> NoteList:
        """The call's current notes (latest versions, none withdrawn), by position in the
        call then creation time; every version in ``.versions``."""
        notes, problems = [], []
        for key in self.store.list(layout.notes_prefix(call_id)):
            if not key.endswith(".json"):
                continue
            try:
                notes.append(self.read(key))
            except TransientStoreError:
                raise
            except Exception as exc:  # one hostile note must not hide the others
                why = object_problem(key, exc)
                log.warning("skipped %s", why)
                problems.append((key, why))
        versions = sorted(notes, key=lambda n: (n.created_at, n.note_id))
        out = NoteList(sorted(current_notes(versions), key=lambda n: (n.at_seconds, n.created_at, n.note_id)))
        out.problems = tuple(problems)
        out.versions = tuple(versions)
        if self.catalog is not None:
            self.catalog.index_notes(call_id, versions, replace=True)
        return out

    def read(self, key: str) -> Note:
        """The note at ``key``, read at most ``MAX_JSON_BYTES`` and checked against its key.
        Runs on the caller's thread (a worker, never the GUI thread)."""
        note = Note.from_json(get_capped(self.store, key, MAX_JSON_BYTES), key)
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
