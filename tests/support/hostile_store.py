"""A folder store seeded with good calls and hostile or broken objects beside them.

``build(root, work)`` records good calls through the real pipeline into ``FolderStore(root)``
(with a note and an access event on the first), then adds one object per ``HostileCase``: what
a broken PC, a half-copied backup or an agent with a write key could leave in a store. Every
reader (``ls``, ``verify``, ``export``, ``catalog sync``, ``find``, ``notes list``,
``access-log``, the Library) must skip each bad object with a warning naming its ``key`` and
go on with the good calls; none may hang, run out of memory or print a traceback.

``work`` is a folder outside the store (symlink targets live there). Manifest cases sit in the
good calls' own date partition, so an incremental sync lists them too.

Cases (``HostileCase.kind``): ``manifest`` (a bad manifest: skipped; verify counts it a fault),
``chunk`` (a valid manifest whose audio is hostile: listed; verify and export report it),
``valid`` (odd but legal text: listed, shown literally), ``note`` and ``access`` (a bad
note / access event on the first good call: skipped by ``notes list`` / ``access-log``).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from callrec_desktop.core.manifest import Manifest
from callrec_desktop.governance.access_log import AccessLog
from callrec_desktop.notes import NoteStore
from callrec_desktop.storage import layout
from callrec_desktop.storage.folder import FolderStore
from tests.support.recording import RATE, record_calls

WHEN = datetime(2026, 11, 29, 9, 0, 0, tzinfo=timezone.utc)
HTML = "<h1>Big</h1><img src='file:///etc/passwd'>"
ANSI = "\x1b[2J\x1b[31mred\x1b]0;owned\x07"


@dataclass(frozen=True)
class HostileCase:
    name: str
    kind: str  # manifest | chunk | valid | note | access
    key: str  # the object a warning must name
    call_id: str  # the call the object claims (manifest/chunk/valid) or is attached to (note/access)
    what: str  # what the case is, for test ids and messages


@dataclass(frozen=True)
class HostileStore:
    root: Path
    good: tuple[Manifest, ...]
    good_note_id: str
    cases: tuple[HostileCase, ...]

    def case(self, name: str) -> HostileCase:
        return next(c for c in self.cases if c.name == name)


def _call_id(n: int) -> str:
    return f"{WHEN:%Y%m%d}T23{n // 60:02d}{n % 60:02d}Z-{0xbad000000000 + n:012x}"


def _event_id(n: int) -> str:
    return f"{WHEN:%Y%m%d}T2359{n:02d}000Z-{0xbad000000000 + n:012x}"


def build(root: Path, work: Path) -> HostileStore:
    """Seed ``root`` (an existing empty folder) and return what was put where."""
    store = FolderStore(root)
    work.mkdir(parents=True, exist_ok=True)
    good = tuple(record_calls(work / "spool", store, WHEN, [
        {"line": ("01443 425002", "Council Tax"), "caller": "07700 900123", "seconds": 3.0, "payment": (1.0, 2.0)},
        {"line": ("01443 425003", "Housing"), "caller": "07700 900456", "seconds": 2.0},
    ]))
    first = good[0]
    note = NoteStore(store).add(first.call_id, "tl001", 0.5, "Good opening", ["good-practice"], manifest=first)
    AccessLog(store, user="tl001", workstation="pc-tl001").record("play", first.call_id, "staff_training")
    template = first.to_dict()
    cases: list[HostileCase] = []
    n = 0

    def manifest_case(name: str, kind: str, what: str, body: bytes | None = None, doc=None, call_id=None,
                      make=None) -> tuple[str, Path]:
        nonlocal n
        n += 1
        cid = call_id or _call_id(n)
        key = layout.manifest_key(cid)
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if make is not None:
            make(path)
        else:
            if body is None:
                body = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
            path.write_bytes(body)
        cases.append(HostileCase(name, kind, key, cid, what))
        return cid, path

    def doc_for(cid: str, **changes) -> dict:
        d = copy.deepcopy(template)
        d["call_id"] = cid
        d.update(changes)
        return d

    # ---- bad manifests -------------------------------------------------------------------------
    manifest_case("deep_nesting", "manifest", "'[' x 200000", body=b"[" * 200_000)
    cid = _call_id(n + 1)
    manifest_case("huge_integer", "manifest", "frames: 10**400",
                  body=json.dumps(doc_for(cid), indent=2).replace(f'"frames": {first.frames}',
                                                                  '"frames": 1' + "0" * 400).encode())
    cid = _call_id(n + 1)
    manifest_case("timezone_overflow", "manifest", "started_at 0001-01-01T00:00:00+14:00",
                  doc=doc_for(cid, started_at="0001-01-01T00:00:00+14:00"))
    manifest_case("object_50mb", "manifest", "a 50 MB object",
                  make=lambda p: _sparse(p, 50 * 1024 * 1024))
    cid = _call_id(n + 1)
    manifest_case("invalid_utf8", "manifest", "invalid UTF-8 in the agent",
                  body=json.dumps(doc_for(cid), indent=2).encode().replace(b'"agent": "', b'"agent": "\xff\xfe'))
    cid = _call_id(n + 1)
    d = doc_for(cid)
    d["chunks"][0]["name"] = "../../../../../../etc/passwd"
    manifest_case("dotdot_chunk_key", "manifest", "a chunk named ../../../../../../etc/passwd", doc=d)
    cid = _call_id(n + 1)
    d = doc_for(cid)
    d["chunks"][0]["name"] = "/etc/passwd"
    manifest_case("absolute_chunk_key", "manifest", "a chunk named /etc/passwd", doc=d)
    cid = _call_id(n + 1)
    manifest_case("dotdot_call_id", "manifest", "call_id ../../../etc/passwd",
                  doc=doc_for(cid, call_id="../../../etc/passwd"))
    manifest_case("symlink_dev_zero", "manifest", "a symlink to /dev/zero", make=lambda p: os.symlink("/dev/zero", p))
    cid = _call_id(n + 1)
    outside = work / "outside.json"  # a manifest that would be accepted if the link were followed
    outside.write_text(json.dumps(doc_for(cid), indent=2))
    manifest_case("symlink_outside", "manifest", "a symlink to a valid manifest outside the store",
                  make=lambda p: os.symlink(outside, p))
    manifest_case("fifo", "manifest", "a FIFO (no writer)", make=lambda p: os.mkfifo(p))
    cid = _call_id(n + 1)
    year = 365 * 86400 * RATE
    manifest_case("year_long", "manifest", "a year of audio",
                  doc=doc_for(cid, frames=year, duration_seconds=year / RATE, chunks=[], pauses=[]))
    cid = _call_id(n + 1)
    d = doc_for(cid)
    pause = dict(d["pauses"][0])
    d["pauses"] = [pause, dict(pause, offset_frames=pause["offset_frames"] + 1)]
    manifest_case("overlapping_pauses", "manifest", "two overlapping pauses", doc=d)

    # ---- a valid manifest with hostile audio ------------------------------------------------------
    cid = _call_id(n + 1)
    manifest_case("chunk_symlinks", "chunk", "chunks that are symlinks to /dev/zero", doc=doc_for(cid))
    for c in first.chunks:
        chunk = root / layout.chunk_key(cid, c.name)
        chunk.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/dev/zero", chunk)

    # ---- odd but legal text: listed, and shown as text ---------------------------------------------
    cid = _call_id(n + 1)
    d = doc_for(cid, agent=ANSI, caller=HTML, chunks=[], pauses=[])
    d["line"] = {"number": "01443" + ANSI, "department": HTML}
    manifest_case("html_ansi", "valid", "HTML and terminal escapes in the caller, department and agent", doc=d)

    # ---- bad notes and access events on the first good call ----------------------------------------
    def side_case(name: str, kind: str, what: str, body: bytes | None = None, make=None) -> None:
        nonlocal n
        n += 1
        key = (layout.note_key if kind == "note" else layout.access_key)(first.call_id, _event_id(n))
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if make is not None:
            make(path)
        else:
            path.write_bytes(body or b"")
        cases.append(HostileCase(name, kind, key, first.call_id, what))

    note_doc = json.loads(note.to_json())
    side_case("note_deep_nesting", "note", "'[' x 200000", body=b"[" * 200_000)
    side_case("note_timezone_overflow", "note", "created_at 0001-01-01T00:00:00+14:00",
              body=json.dumps(dict(note_doc, note_id=_event_id(n + 1),
                                   created_at="0001-01-01T00:00:00+14:00")).encode())
    side_case("note_fifo", "note", "a FIFO", make=lambda p: os.mkfifo(p))
    side_case("note_50mb", "note", "a 50 MB object", make=lambda p: _sparse(p, 50 * 1024 * 1024))
    event_doc = {"schema_version": 1, "event_id": "", "call_id": first.call_id, "action": "play",
                 "purpose": "staff_training", "reason": None, "user": "tl001", "workstation": "pc", "at": "", "detail": None}
    side_case("access_huge_integer", "access", "a huge integer in the detail",
              body=json.dumps(dict(event_doc, event_id=_event_id(n + 1), at="2026-11-29T23:59:00.000Z"))
              .replace('"detail": null', '"detail": {"n": 1' + "0" * 5000 + "}").encode())
    side_case("access_timezone_overflow", "access", "at 0001-01-01T00:00:00+14:00",
              body=json.dumps(dict(event_doc, event_id=_event_id(n + 1), at="0001-01-01T00:00:00+14:00")).encode())
    side_case("access_symlink_dev_zero", "access", "a symlink to /dev/zero", make=lambda p: os.symlink("/dev/zero", p))
    return HostileStore(root, good, note.note_id, tuple(cases))


def _sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space (NUL bytes: not JSON either)."""
    with open(path, "wb") as f:
        f.truncate(size)
