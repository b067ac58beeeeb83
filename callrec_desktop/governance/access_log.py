"""An append-only, hash-chained access log: one new object per play, export or note.

Each event is a JSON object at ``layout.access_key(call_id, event_id)``::

    {"schema_version": 2, "event_id": ..., "call_id": ..., "action": "play"|"export"|"note",
     "purpose": "complaint"|..., "reason": str|null, "user": "<OS login>", "label": str|null,
     "workstation": ..., "at": "2026-11-29T10:15:00.123Z", "detail": {...}|null,
     "seq": 3, "prev": [{"event_id": "...", "sha256": "<hex>"}, ...]}

Who: ``user`` is the OS login of the process that wrote it (``governance.os_user``: on Windows
the domain account ``DOMAIN\\user``, elsewhere the real uid's login name), read by the program;
``label`` is the typed id (``[identity] agent_id``, ``--label``) shown beside it, never the author.

The chain (docs/access-log.md): every event names, in ``prev``, the SHA-256 of the stored bytes
of the call's current *head*: the events no other event names yet (normally one; two after two
team leaders wrote at the same moment: a fork, which the next event merges by naming both). The
first event of a call names a genesis value derived from the call id (``genesis(call_id)``) and
every unchained (schema_version 1) event already there. ``seq`` is one more than the highest
``seq`` it names. ``at`` is never before the events it names (a PC whose clock is behind stamps
the time of the event it follows). So removing, changing, moving or back-dating an event that
has a successor breaks a link that ``verify_chain`` reports; forks from concurrent writers are
reported as "concurrent", not as tampering. The chain cannot show the removal of the newest
event(s) of a call (nothing names them yet): that needs the store's own protection (team leaders
put without delete; S3 Object Lock).

Write-once: every event gets a fresh id (UTC millisecond + 48 random bits); ``record`` refuses to
write if an object already exists at that key, and on a store with conditional writes puts with
``write_once`` (``If-None-Match: *``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from callrec_desktop.core.ids import validate_call_id
from callrec_desktop.core.manifest import (
    MAX_JSON_BYTES, check_time_bounds, iso_utc, load_json_object, object_problem, parse_iso_utc,
)
from callrec_desktop.governance.purposes import Purpose
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import (
    ObjectNotFoundError,
    ObjectRefusedError,
    Store,
    TransientStoreError,
    get_capped,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: hash-chained (seq, prev) with the OS login as user; 1: unchained
UNCHAINED = "unchained (before version 2 of the access log)"
ACTIONS = ("play", "export", "note")
MAX_PREV = 64  # links one event may name (a merge of that many concurrent writers)
MAX_SEQ = 10**9
_HEX64 = frozenset("0123456789abcdef")


class AccessLogError(Exception):
    """An access event could not be recorded."""


def genesis(call_id: str) -> str:
    """The fixed value the first chained event of ``call_id`` names (hex SHA-256): a chain
    cannot be moved to another call."""
    return hashlib.sha256(b"callrec access log genesis\0" + validate_call_id(call_id).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class AccessEvent:
    event_id: str
    call_id: str
    action: str
    purpose: str
    reason: str | None
    user: str  # the author: the OS login of the writer (schema_version 1: the typed agent id)
    workstation: str
    at: datetime
    detail: dict[str, Any] | None = None
    label: str | None = None  # the typed id shown beside the author, never the author
    seq: int | None = None  # None: an unchained (schema_version 1) event
    prev: tuple[tuple[str | None, str], ...] | None = None  # (event_id or None for genesis, sha256)

    @property
    def chained(self) -> bool:
        return self.seq is not None

    def to_json(self) -> bytes:
        doc = {"schema_version": SCHEMA_VERSION if self.chained else 1, "event_id": self.event_id,
               "call_id": self.call_id, "action": self.action, "purpose": self.purpose, "reason": self.reason,
               "user": self.user, "workstation": self.workstation, "at": iso_utc(self.at), "detail": self.detail}
        if self.chained:
            doc.update(label=self.label, seq=self.seq,
                       prev=[{"event_id": e, "sha256": h} for e, h in (self.prev or ())])
        return (json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "AccessEvent":
        try:
            doc = load_json_object(data, where)
        except ValueError as exc:
            raise ValueError(f"{where}: unreadable access event ({str(exc).removeprefix(where + ': ')})") from None
        try:
            version = doc.get("schema_version")
            if version not in (1, 2) or isinstance(version, bool):
                raise ValueError("not an access event of schema_version 1 or 2")
            label = seq = prev = None
            if version == 2:
                label, seq, prev = doc.get("label"), doc["seq"], _parse_prev(doc["prev"])
                if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
                    raise ValueError(f"seq must be a whole number 1..{MAX_SEQ}")
                if label is not None and (not isinstance(label, str) or len(label) > 256):
                    raise ValueError("label must be text of at most 256 characters")
            event = cls(layout.validate_event_id(doc["event_id"]), validate_call_id(doc["call_id"]),
                        doc["action"], doc["purpose"], doc.get("reason"), doc["user"], doc["workstation"],
                        parse_iso_utc(doc["at"]), doc.get("detail"), label, seq, prev)
            if event.action not in ACTIONS:
                raise ValueError(f"action {event.action!r} unknown")
            Purpose(event.purpose, event.reason)
            if not isinstance(event.user, str) or not isinstance(event.workstation, str):
                raise ValueError("user and workstation must be text")
            if len(event.user) > 256 or len(event.workstation) > 256:
                raise ValueError("user or workstation longer than 256 characters")
            check_time_bounds(event.at, "at")
            if event.detail is not None and not isinstance(event.detail, dict):
                raise ValueError("detail must be an object")
            return event
        except (KeyError, TypeError, ValueError, UnicodeDecodeError, OverflowError) as exc:
            raise ValueError(f"{where}: unreadable access event ({type(exc).__name__}: {exc})") from None


def _parse_prev(value: object) -> tuple[tuple[str | None, str], ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_PREV:
        raise ValueError(f"prev must be a list of 1..{MAX_PREV} links")
    out = []
    for link in value:
        if not isinstance(link, dict) or set(link) != {"event_id", "sha256"}:
            raise ValueError("each prev link is {event_id, sha256}")
        event_id, digest = link["event_id"], link["sha256"]
        if event_id is not None:
            event_id = layout.validate_event_id(event_id)
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX64:
            raise ValueError("a prev link's sha256 must be 64 lowercase hex digits")
        out.append((event_id, digest))
    return tuple(out)


@dataclass(frozen=True)
class StoredEvent:
    """An access event with the key it was read from and the SHA-256 of its stored bytes."""

    key: str
    sha256: str
    event: AccessEvent


class AccessHistory(list):
    """A call's access events, oldest first; ``problems`` lists (key, why) for unreadable ones;
    ``stored``: the same events with their keys and digests (what the chain is checked on)."""

    problems: tuple[tuple[str, str], ...] = ()
    stored: tuple[StoredEvent, ...] = ()


@dataclass
class ChainReport:
    """What ``verify_chain`` found for one call. ``faults`` (in chain order) make it fail;
    ``notes`` (unchained events, concurrent writers) do not."""

    call_id: str
    events: int = 0
    unchained: int = 0
    concurrent: int = 0  # events written beside another one (same seq): forks, merged or not
    faults: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.faults

    def summary(self) -> str:
        """One line: ``ok`` with the counts, or the first fault (and how many more)."""
        if self.faults:
            more = f" (and {len(self.faults) - 1} more)" if len(self.faults) > 1 else ""
            return f"FAULT: {self.faults[0]}{more}"
        if self.events == 0:
            return "no access events"
        if self.unchained == self.events:
            return f"{self.events} event(s), all {UNCHAINED}: nothing to verify"
        parts = [f"{self.events - self.unchained} chained event(s)"]
        if self.unchained:
            parts.append(f"{self.unchained} {UNCHAINED}, sealed by the first chained event")
        if self.concurrent:
            parts.append(f"{self.concurrent} concurrent (written at the same moment as another; not tampering)")
        return "ok: " + "; ".join(parts)


class AccessLog:
    """Records who played, exported or annotated which call, when, and why.

    ``user``: the author, the OS login of this process unless given (tests, and nothing else,
    pass another); ``label``: the typed team leader's id (``[identity] agent_id``) recorded beside
    it; ``workstation``: the PC's name. Safe to use from several threads (no state besides the
    store); two writers at once (threads, PCs) make a fork that the next event merges.
    """

    def __init__(self, store: Store, *, workstation: str, user: str | None = None, label: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        if user is None:
            from callrec_desktop.governance.os_user import os_login

            user = os_login()
        if not user or not user.strip():
            raise ValueError("an access log needs the user's OS login")
        label = label.strip() if isinstance(label, str) and label.strip() else None
        self.store, self.user, self.label, self.workstation, self._clock = store, user, label, workstation, clock

    def record(self, action: str, call_id: str, purpose: str, reason: str | None = None,
               detail: dict[str, Any] | None = None) -> AccessEvent:
        """Read the call's head, then write one new event object naming it; raises
        ``PurposeError``/``ValueError`` on bad input and ``StoreError``/``AccessLogError`` if it
        could not be stored. Runs on the caller's thread (a worker or the CLI, never the GUI
        thread): it lists and reads the call's events first."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        call_id = validate_call_id(call_id)
        p = Purpose(purpose, reason)
        if detail is not None:
            if not isinstance(detail, dict):
                raise ValueError("detail must be a dict")
            json.dumps(detail)  # must be JSON (raises TypeError otherwise)
        seq, prev, not_before = self._head(call_id)
        at = max(self._clock().astimezone(timezone.utc), not_before)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # as stored
        event = AccessEvent(layout.new_event_id(at), call_id, action, p.code, p.reason, self.user,
                            self.workstation, at, detail, self.label, seq, prev)
        key = layout.access_key(call_id, event.event_id)
        try:
            get_capped(self.store, key, MAX_JSON_BYTES)  # something there, of whatever size
        except ObjectNotFoundError:
            pass
        except ObjectRefusedError:  # a huge object, a link or a FIFO: something is there
            raise AccessLogError(f"{self.store.description} {key}: already exists; access events are never "
                                 f"overwritten") from None
        else:  # 48 random bits in the same millisecond: only a bug or tampering gets here
            raise AccessLogError(f"{self.store.description} {key}: already exists; access events are never overwritten")
        body = event.to_json()
        extra = {"write_once": True} if getattr(self.store, "conditional_writes", False) else {}
        self.store.put(key, body, sha256=hashlib.sha256(body).hexdigest(),
                       metadata={"kind": "access-event", "call_id": call_id, "action": action},
                       content_type="application/json", **extra)
        return event

    def _head(self, call_id: str) -> tuple[int, tuple[tuple[str | None, str], ...], datetime]:
        """(seq, prev, earliest allowed time) for the next event of ``call_id``: the chained
        events nobody names yet, except dangling ones more than one step behind the newest
        (``verify_chain`` reports those as inserted; merging them would hide that)."""
        stored = self.history(call_id).stored
        chained = [s for s in stored if s.event.chained]
        if not chained:  # the first chained event: the genesis and every unchained event there
            links = [(None, genesis(call_id))] + sorted((s.event.event_id, s.sha256) for s in stored)
            return 1, tuple(links), max((s.event.at for s in stored), default=_EPOCH)
        named = {e for s in chained for e, _ in s.event.prev or ()}
        top = max(s.event.seq for s in chained)  # type: ignore[type-var]
        tips = [s for s in chained if s.event.event_id not in named and s.event.seq >= top - 1]  # type: ignore[operator]
        if not tips:  # only a forged event naming a later one gets here: follow the newest
            tips = [s for s in chained if s.event.seq == top]
        links = sorted((s.event.event_id, s.sha256) for s in tips)
        return top + 1, tuple(links), max(s.event.at for s in tips)

    def history(self, call_id: str) -> AccessHistory:
        """Every event of the call, sorted by time; unreadable ones (whatever the reason: too
        big, too deep, not an event, a link or FIFO in a folder store) are in ``.problems`` with
        their key (and logged as warnings), never raised. Each event is read at most
        ``MAX_JSON_BYTES``. Runs on the caller's thread (a worker, never the GUI thread)."""
        stored, problems = [], []
        for key in self.store.list(layout.access_prefix(call_id)):
            if not key.endswith(".json"):
                continue
            try:
                data = get_capped(self.store, key, MAX_JSON_BYTES)
                stored.append(StoredEvent(key, hashlib.sha256(data).hexdigest(), AccessEvent.from_json(data, key)))
            except TransientStoreError:
                raise
            except Exception as exc:  # one hostile event must not hide the others
                why = object_problem(key, exc)
                log.warning("skipped %s", why)
                problems.append((key, why))
        stored.sort(key=lambda s: (s.event.at, s.event.event_id))
        out = AccessHistory(s.event for s in stored)
        out.problems = tuple(problems)
        out.stored = tuple(stored)
        return out

    def verify(self, call_id: str) -> ChainReport:
        """``verify_chain`` on this call's stored events. Runs on the caller's thread."""
        return verify_chain(call_id, self.history(call_id))

    def calls(self) -> list[str]:
        """Every call id with an ``access/`` prefix in the store, sorted (for ``verify --all``).
        Keys that are not ``access/YYYY/MM/DD/<call_id>/...`` are skipped."""
        found = set()
        for key in self.store.list(layout.ACCESS_ROOT):
            parts = key.split("/")
            if len(parts) == 6:
                try:
                    if layout.access_prefix(parts[4]) == "/".join(parts[:5]) + "/":
                        found.add(parts[4])
                except ValueError:
                    continue
        return sorted(found)


_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def verify_chain(call_id: str, history: AccessHistory) -> ChainReport:
    """Check the hash chain of one call's events (``history`` from ``AccessLog.history``).

    Faults, each naming the event: an object that is not a readable event, or whose key is not
    its own id (a changed or moved event); a named event that is missing (removed) or whose
    stored bytes have another SHA-256 (changed); an event dated before one it names, or whose
    ``seq`` does not follow the ones it names (reordered); an event nobody names that is more
    than one step behind the newest, or an unchained event the first chained events do not name
    (inserted). Not faults: a call with only unchained events, and events written at the same
    moment by two writers (a fork: same ``seq``), merged or still the newest. Pure; any thread.
    """
    call_id = validate_call_id(call_id)
    report = ChainReport(call_id, events=len(history.stored))
    faults = report.faults
    stored = list(history.stored)
    by_id: dict[str, StoredEvent] = {}
    for s in sorted(stored, key=lambda s: s.key):  # key order: what a listing shows
        e = s.event
        if e.call_id != call_id or s.key != layout.access_key(call_id, e.event_id):
            other = next((t for t in stored if t.key == layout.access_key(call_id, e.event_id)), None)
            how = "reordered" if other is not None or e.call_id == call_id else "changed"
            faults.append(f"{how}: {s.key} holds event {e.event_id} of call {e.call_id}, not the event its key "
                          f"names")
            continue
        by_id[e.event_id] = s
    unchained = [s for s in by_id.values() if not s.event.chained]
    chained = sorted((s for s in by_id.values() if s.event.chained),
                     key=lambda s: (s.event.seq, s.event.at, s.event.event_id))
    report.unchained = len(unchained)
    gen = genesis(call_id)
    named: set[str] = set()
    gaps: list[int] = []  # seq of events naming a removed one
    for s in chained:
        e = s.event
        parents, broken = [], False
        for event_id, digest in e.prev or ():
            if event_id is None:
                if digest != gen:
                    faults.append(f"changed: {e.event_id} names a genesis that is not this call's")
                parents.append(None)
                continue
            named.add(event_id)
            target = by_id.get(event_id)
            if target is None:
                faults.append(f"removed: event {event_id}, named by {e.event_id}, is not in the store")
                gaps.append(e.seq)  # type: ignore[arg-type]
                broken = True
            elif target.sha256 != digest:
                faults.append(f"changed: event {event_id} is not what {e.event_id} names (SHA-256 "
                              f"{target.sha256[:12]}…, named {digest[:12]}…)")
                broken = True
            else:
                parents.append(target.event)
        if broken:  # the link is the fault; seq and time cannot be checked against what is missing
            continue
        chained_parents = [p for p in parents if p is not None and p.chained]
        roots = None in parents
        expected = 1 if roots or not chained_parents else max(p.seq for p in chained_parents) + 1  # type: ignore[type-var]
        low = [p for p in chained_parents if p.seq < e.seq - 2]  # type: ignore[operator]
        if e.seq != expected or low or (roots and chained_parents):
            faults.append(f"reordered: event {e.event_id} has seq {e.seq} but follows events of seq "
                          f"{sorted(p.seq for p in chained_parents) or [0]}")  # type: ignore[type-var]
        late = [p for p in parents if p is not None and p.at > e.at]
        if late:
            faults.append(f"reordered: event {e.event_id} ({iso_utc(e.at)}) is dated before {late[0].event_id} "
                          f"({iso_utc(late[0].at)}), which it follows")
    if chained:
        top = max(s.event.seq for s in chained)  # type: ignore[type-var]
        for s in chained:
            hidden = any(n - 3 <= s.event.seq < n for n in gaps)  # type: ignore[operator]  # the removed one's parent
            if s.event.event_id not in named and s.event.seq < top - 1 and not hidden:  # type: ignore[operator]
                faults.append(f"inserted: event {s.event.event_id} (seq {s.event.seq}) is named by no later event, "
                              f"though the chain has gone on to seq {top}")
        for s in sorted(unchained, key=lambda s: (s.event.at, s.event.event_id)):
            if s.event.event_id not in named:
                faults.append(f"inserted: unchained event {s.event.event_id} is not sealed by the chain (added "
                              f"after it began, or written by a version before 2 of the access log since)")
        seqs: dict[int, int] = {}
        for s in chained:
            seqs[s.event.seq] = seqs.get(s.event.seq, 0) + 1  # type: ignore[index]
        report.concurrent = sum(n for n in seqs.values() if n > 1)
    for key, why in history.problems:
        faults.append(f"changed: {key} is not a readable access event ({why})")
    return report
