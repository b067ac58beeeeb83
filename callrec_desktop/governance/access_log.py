"""An append-only access log: one new object per play, export or note.

Each event is a JSON object at ``layout.access_key(call_id, event_id)``::

    {"schema_version": 1, "event_id": ..., "call_id": ..., "action": "play"|"export"|"note",
     "purpose": "complaint"|..., "reason": str|null, "user": ..., "workstation": ...,
     "at": "2026-11-29T10:15:00.123Z", "detail": {...}|null}

Append-only: every event gets a fresh id (UTC millisecond + 48 random bits), and ``record``
refuses to write if an object already exists at that key (it reads first: team leaders have
read permission), so nothing is ever overwritten through this class.

Not yet: hash-chaining (each event carrying the SHA-256 of the previous one, and a periodic
anchor) so that deleting or editing an event is detectable. Until then the guarantee rests on
the store's permissions (team leaders' credentials: put without delete; S3 object lock).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from callrec_desktop.core.ids import validate_call_id
from callrec_desktop.core.manifest import MAX_JSON_BYTES, check_time_bounds, iso_utc, load_json_object, parse_iso_utc
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

SCHEMA_VERSION = 1
ACTIONS = ("play", "export", "note")


class AccessLogError(Exception):
    """An access event could not be recorded."""


@dataclass(frozen=True)
class AccessEvent:
    event_id: str
    call_id: str
    action: str
    purpose: str
    reason: str | None
    user: str
    workstation: str
    at: datetime
    detail: dict[str, Any] | None = None

    def to_json(self) -> bytes:
        doc = {"schema_version": SCHEMA_VERSION, "event_id": self.event_id, "call_id": self.call_id,
               "action": self.action, "purpose": self.purpose, "reason": self.reason, "user": self.user,
               "workstation": self.workstation, "at": iso_utc(self.at), "detail": self.detail}
        return (json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "AccessEvent":
        try:
            doc = load_json_object(data, where)
        except ValueError as exc:
            raise ValueError(f"{where}: unreadable access event ({str(exc).removeprefix(where + ': ')})") from None
        try:
            if doc.get("schema_version") != SCHEMA_VERSION:
                raise ValueError("not an access event of schema_version 1")
            event = cls(layout.validate_event_id(doc["event_id"]), validate_call_id(doc["call_id"]),
                        doc["action"], doc["purpose"], doc.get("reason"), doc["user"], doc["workstation"],
                        parse_iso_utc(doc["at"]), doc.get("detail"))
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


class AccessHistory(list):
    """A call's access events, oldest first; ``problems`` lists (key, why) for unreadable ones."""

    problems: tuple[tuple[str, str], ...] = ()


class AccessLog:
    """Records who played, exported or annotated which call, when, and why.

    ``user`` is the team leader's id (``config.identity.agent_id`` on their PC), ``workstation``
    the PC's name. Safe to use from several threads (no state besides the store).
    """

    def __init__(self, store: Store, *, user: str, workstation: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        if not user or not user.strip():
            raise ValueError("an access log needs the user's id")
        self.store, self.user, self.workstation, self._clock = store, user, workstation, clock

    def record(self, action: str, call_id: str, purpose: str, reason: str | None = None,
               detail: dict[str, Any] | None = None) -> AccessEvent:
        """Write one new event object; raises ``PurposeError``/``ValueError`` on bad input and
        ``StoreError``/``AccessLogError`` if it could not be stored."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
        call_id = validate_call_id(call_id)
        p = Purpose(purpose, reason)
        if detail is not None:
            if not isinstance(detail, dict):
                raise ValueError("detail must be a dict")
            json.dumps(detail)  # must be JSON (raises TypeError otherwise)
        at = self._clock().astimezone(timezone.utc)
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # as stored
        event = AccessEvent(layout.new_event_id(at), call_id, action, p.code, p.reason, self.user,
                            self.workstation, at, detail)
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
        self.store.put(key, body, sha256=hashlib.sha256(body).hexdigest(),
                       metadata={"kind": "access-event", "call_id": call_id, "action": action},
                       content_type="application/json")
        return event

    def history(self, call_id: str) -> AccessHistory:
        """Every event of the call, sorted by time; unreadable ones (whatever the reason: too
        big, too deep, not an event, a link or FIFO in a folder store) are in ``.problems`` with
        their key (and logged as warnings), never raised. Each event is read at most
        ``MAX_JSON_BYTES``. Runs on the caller's thread (a worker, never the GUI thread)."""
        events, problems = [], []
        for key in self.store.list(layout.access_prefix(call_id)):
            if not key.endswith(".json"):
                continue
            try:
                events.append(AccessEvent.from_json(get_capped(self.store, key, MAX_JSON_BYTES), key))
            except TransientStoreError:
                raise
            except Exception as exc:  # one hostile event must not hide the others
                why = str(exc)
                if not isinstance(exc, ValueError) and key not in why:
                    why = f"{key}: {type(exc).__name__}: {why}"
                log.warning("skipped %s", why)
                problems.append((key, why))
        out = AccessHistory(sorted(events, key=lambda e: (e.at, e.event_id)))
        out.problems = tuple(problems)
        return out
