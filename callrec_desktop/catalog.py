"""The team leaders' catalogue: a local SQLite index of the recordings in a central store.

Built from the manifests (and notes) in a store, so the library can filter and sort a year of
calls in milliseconds without touching the store. The store stays the truth: the catalogue
can be deleted and rebuilt (``sync(store, full=True)``) at any time.

Sync
    The state remembered per store (keyed by ``store.description``) is the newest UTC date
    partition synced through. An incremental sync lists only ``manifests/YYYY/MM/DD/`` from
    (that day - 1) to ``today``, and fetches a manifest only when it is new to the catalogue
    or its catalogued status is still ``recording`` (a provisional manifest being replaced
    by the final one). Calls still ``recording`` in older partitions are re-read by key
    (a get, no listing). Manifests uploaded days late into an older partition (a
    workstation off or offline for days) are found through the arrival markers the uploader
    leaves in ``arrivals/YYYY/MM/DD/`` of the upload day, listed for the same days. The first
    sync of a store, and ``full=True``, list ``manifests/`` entirely (``full`` first drops
    that store's rows). Not seen by an incremental sync, until the next full one: changes to
    already complete manifests (legal hold), and late manifests uploaded by a version
    without arrival markers.
    A corrupt, unreadable or hostile manifest (or note) is skipped and reported in
    ``SyncReport.problems`` with its key, whatever went wrong with it (bounds: see
    ``core.manifest``; the read is capped at ``MAX_MANIFEST_BYTES``); only a store that cannot
    be reached (``TransientStoreError``) or listed stops a sync.
    Every sync also lists ``notes/`` (notes are few) and indexes notes not yet indexed.

Threads
    One SQLite connection per thread (``threading.local``), WAL journal, so the GUI's library
    can query on one thread while a sync runs on another. A ``Catalog`` may be shared between
    threads; connections are never shared. Two syncs at once are serialised by SQLite's write
    lock (busy timeout 30 s).

SQL
    Parameterised only. ``order_by`` is looked up in a whitelist, never interpolated.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callrec_desktop.archive import ManifestProblem
from callrec_desktop.config import normalise_number
from callrec_desktop.core.ids import InvalidIdError
from callrec_desktop.core.manifest import (
    END_REASONS,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    iso_utc,
    load_json_object,
    parse_iso_utc,
)
from callrec_desktop.private_files import make_private, open_private, private_dir
from callrec_desktop.storage import layout
from callrec_desktop.storage.base import ObjectNotFoundError, Store, TransientStoreError, get_capped

if TYPE_CHECKING:
    from callrec_desktop.notes import Note

SCHEMA_VERSION = 1
BATCH = 256
FETCH_THREADS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sync_state (store TEXT PRIMARY KEY, last_day TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    call_id TEXT PRIMARY KEY,
    store TEXT NOT NULL,
    started_at TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_at TEXT,
    line_number TEXT NOT NULL,
    department TEXT NOT NULL,
    agent TEXT NOT NULL,
    workstation TEXT NOT NULL,
    caller TEXT,
    caller_digits TEXT,
    duration_seconds REAL NOT NULL,
    end_reason TEXT,
    transferred_to TEXT,
    pause_count INTEGER NOT NULL,
    payment_pause_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    retention_until TEXT NOT NULL,
    legal_hold INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    manifest_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_ms);
CREATE INDEX IF NOT EXISTS calls_caller ON calls (caller_digits, started_ms);
CREATE INDEX IF NOT EXISTS calls_line ON calls (line_number, started_ms);
CREATE INDEX IF NOT EXISTS calls_department ON calls (department, started_ms);
CREATE INDEX IF NOT EXISTS calls_agent ON calls (agent, started_ms);
CREATE INDEX IF NOT EXISTS calls_workstation ON calls (workstation, started_ms);
CREATE INDEX IF NOT EXISTS calls_end_reason ON calls (end_reason, started_ms);
CREATE INDEX IF NOT EXISTS calls_store_status ON calls (store, status);
CREATE TABLE IF NOT EXISTS notes_index (
    call_id TEXT NOT NULL,
    note_id TEXT NOT NULL,
    tags TEXT NOT NULL,            -- ",tag1,tag2," (tags are slugs: no commas)
    PRIMARY KEY (call_id, note_id)
);
"""

_COLUMNS = ("call_id", "store", "started_at", "started_ms", "ended_at", "line_number", "department", "agent",
            "workstation", "caller", "caller_digits", "duration_seconds", "end_reason", "transferred_to",
            "pause_count", "payment_pause_count", "status", "retention_until", "legal_hold", "chunk_count",
            "manifest_json")
_INSERT = (f"INSERT OR REPLACE INTO calls ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")
_ROW_COLUMNS = tuple(c for c in _COLUMNS if c not in ("manifest_json", "started_ms"))
ORDER_COLUMNS = {
    "started_at": "started_ms", "duration_seconds": "duration_seconds", "line_number": "line_number",
    "department": "department", "agent": "agent", "caller": "caller_digits", "end_reason": "end_reason",
}


_NULLABLE_ORDER = {"caller_digits", "end_reason"}


# Columns whose distinct values fill the library's filter lists (a whitelist, never interpolated).
VALUE_COLUMNS = {"line": "line_number", "department": "department", "agent": "agent", "workstation": "workstation"}


class CatalogError(Exception):
    """The catalogue cannot answer (unknown call, damaged database)."""


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    unchanged: int
    problems: tuple[ManifestProblem, ...]
    partitions: int  # date partitions listed (incremental) or found (full listing)
    notes_indexed: int = 0


@dataclass(frozen=True)
class CatalogFilter:
    """All given criteria must hold. Times are aware datetimes: ``started_from`` inclusive,
    ``started_to`` exclusive. ``caller`` in any spelling ("+44 7700 900123", "07700900123"),
    matched on normalised digits, exactly (or as a prefix with ``caller_prefix``)."""

    started_from: datetime | None = None
    started_to: datetime | None = None
    line: str | None = None
    department: str | None = None
    agent: str | None = None
    workstation: str | None = None
    caller: str | None = None
    caller_prefix: bool = False
    min_seconds: float | None = None
    max_seconds: float | None = None
    end_reason: str | None = None
    had_payment_pause: bool | None = None
    has_notes: bool | None = None
    tag: str | None = None
    store: str | None = None  # a store's description: only that store's calls


@dataclass(frozen=True)
class CallRow:
    call_id: str
    store: str
    started_at: datetime
    ended_at: datetime | None
    line_number: str
    department: str
    agent: str
    workstation: str
    caller: str | None
    caller_digits: str | None
    duration_seconds: float
    end_reason: str | None
    transferred_to: str | None
    pause_count: int
    payment_pause_count: int
    status: str
    retention_until: datetime
    legal_hold: bool
    chunk_count: int


def _row(r: sqlite3.Row) -> CallRow:
    d = {k: r[k] for k in _ROW_COLUMNS}
    d["started_at"] = parse_iso_utc(d["started_at"])
    d["ended_at"] = parse_iso_utc(d["ended_at"]) if d["ended_at"] else None
    d["retention_until"] = parse_iso_utc(d["retention_until"])
    d["legal_hold"] = bool(d["legal_hold"])
    return CallRow(**d)


def _ms(when: datetime) -> int:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"catalog filter times must be aware datetimes, got {when!r}")
    return int(when.timestamp() * 1000)


def manifest_values(m: Manifest, store: str, raw: str | None = None) -> tuple:
    """The ``calls`` row of a manifest, in ``_COLUMNS`` order."""
    return (
        m.call_id, store, iso_utc(m.started_at), _ms(m.started_at),
        iso_utc(m.ended_at) if m.ended_at else None, m.line_number, m.department, m.agent, m.workstation,
        m.caller, normalise_number(m.caller) or None if m.caller else None, round(m.duration_seconds, 3),
        m.end.reason if m.end else None, m.end.department if m.end and m.end.reason == "transferred" else None,
        len(m.pauses), sum(1 for p in m.pauses if p.reason == "payment"), m.status, iso_utc(m.retention_until),
        int(m.legal_hold), len(m.chunks), raw if raw is not None else m.to_json().decode("utf-8"),
    )


class Catalog:
    """A catalogue in the SQLite file ``db_path`` (created with its folder if missing).

    Private to the user (it holds callers' numbers): the folder is created 0700 and the file
    0600 before SQLite opens it, so its ``-wal``/``-shm``/``-journal`` (which SQLite creates
    with the database's own mode) are 0600 too; existing ones are tightened here."""

    def __init__(self, db_path: Path | str) -> None:
        self.db_path = Path(db_path)
        private_dir(self.db_path.parent)
        with open_private(self.db_path, "ab"):  # an empty file is a new database to SQLite
            pass
        for suffix in ("-wal", "-shm", "-journal"):
            try:
                make_private(f"{self.db_path}{suffix}")
            except FileNotFoundError:
                pass
        self._local = threading.local()
        db = self._db()
        db.executescript(_SCHEMA)  # idempotent; executescript commits by itself
        # Added with note revisions: every version stays indexed (so a sync never re-reads it),
        # and ``current`` says which still stand. Older catalogues get the columns here.
        have = {r["name"] for r in db.execute("PRAGMA table_info(notes_index)")}
        for column, decl in (("replaces", "TEXT"), ("withdrawn", "INTEGER NOT NULL DEFAULT 0"),
                             ("current", "INTEGER NOT NULL DEFAULT 1")):
            if column not in have:
                db.execute(f"ALTER TABLE notes_index ADD COLUMN {column} {decl}")
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ---- connections -----------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    def close(self) -> None:
        """Close this thread's connection (others close when their thread's Catalog use ends)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def _tx(self):
        catalog = self

        class _Tx:
            def __enter__(self) -> sqlite3.Connection:
                self.db = catalog._db()
                self.db.execute("BEGIN IMMEDIATE")
                return self.db

            def __exit__(self, exc_type, *_: Any) -> None:
                self.db.execute("ROLLBACK" if exc_type else "COMMIT")

        return _Tx()

    # ---- sync --------------------------------------------------------------------------
    def sync(self, store: Store, *, full: bool = False, progress: Callable[[int, int], None] | None = None,
             today: date | None = None) -> SyncReport:
        """Bring the catalogue up to date with ``store``. ``progress(done, listed)`` is called
        after each batch (``listed`` grows while the listing goes on). Store errors other than
        an unreadable single manifest (``StoreError``: unreachable, access denied to the
        listing) propagate, and leave the sync state as it was, so the next sync redoes it."""
        desc = store.description
        today = today or datetime.now(timezone.utc).date()
        db = self._db()
        state = db.execute("SELECT last_day FROM sync_state WHERE store = ?", (desc,)).fetchone()
        if full:
            with self._tx() as tx:
                tx.execute("DELETE FROM calls WHERE store = ?", (desc,))
                tx.execute("DELETE FROM sync_state WHERE store = ?", (desc,))
            state = None
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        problems: list[ManifestProblem] = []
        seen: set[str] = set()
        if state is None:
            prefixes = [layout.manifests_prefix()]
        else:
            first = min(date.fromisoformat(state["last_day"]), today) - timedelta(days=1)
            prefixes = [layout.manifests_prefix(first + timedelta(days=i)) for i in range((today - first).days + 1)]
        partitions: set[str] = set()
        listed = done = 0

        def keys() -> Iterator[str]:
            nonlocal listed
            for prefix in prefixes:
                if state is not None:
                    partitions.add(prefix)
                for key in store.list(prefix):
                    if key.endswith(".json"):
                        listed += 1
                        partitions.add(key.rsplit("/", 1)[0] + "/")
                        yield key

        with ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="catalog-sync") as pool:
            for batch in _batches(keys(), BATCH):
                wanted = self._wanted(db, batch, desc, problems, counts, seen, skip_lookup=state is None and full)
                self._store_fetched(pool, store, wanted, desc, problems, counts)
                done += len(batch)
                if progress:
                    progress(done, listed)
            # Provisional calls outside the listed days: re-read by key.
            if state is not None:
                pending = [r["call_id"] for r in db.execute(
                    "SELECT call_id FROM calls WHERE store = ? AND status = 'recording'", (desc,))
                    if r["call_id"] not in seen]
                for batch in _batches(iter(pending), BATCH):
                    self._store_fetched(pool, store, [(layout.manifest_key(c), c, True) for c in batch],
                                        desc, problems, counts, missing_ok=True)
                seen.update(pending)
                late = self._late_arrivals(db, store, first, today, seen, problems)
                for batch in _batches(iter(late), BATCH):
                    self._store_fetched(pool, store, batch, desc, problems, counts, missing_ok=True)
        notes = self._sync_all_notes(store, problems)
        with self._tx() as tx:
            tx.execute("INSERT OR REPLACE INTO sync_state (store, last_day) VALUES (?, ?)", (desc, today.isoformat()))
        return SyncReport(counts["added"], counts["updated"], counts["unchanged"], tuple(problems),
                          len(partitions), notes)

    def _late_arrivals(self, db: sqlite3.Connection, store: Store, first: date, today: date, seen: set[str],
                       problems: list) -> list[tuple[str, str, bool]]:
        """(manifest key, call_id, exists) for manifests that arrived from ``first`` through
        ``today`` into partitions this sync did not list (see ``layout.arrival_key``)."""
        ids: list[str] = []
        for i in range((today - first).days + 1):
            for key in store.list(layout.arrivals_prefix(first + timedelta(days=i))):
                try:
                    call_id = layout.call_id_from_arrival_key(key)
                except (layout.InvalidKeyError, InvalidIdError) as exc:
                    problems.append(ManifestProblem(key, str(exc)))
                    continue
                if call_id not in seen:
                    seen.add(call_id)
                    ids.append(call_id)
        known: set[str] = set()
        for batch in _batches(iter(ids), BATCH):
            q = ",".join("?" for _ in batch)
            known.update(r["call_id"] for r in db.execute(f"SELECT call_id FROM calls WHERE call_id IN ({q})", batch))
        return [(layout.manifest_key(c), c, c in known) for c in ids]

    def _wanted(self, db: sqlite3.Connection, batch: list[str], desc: str, problems: list, counts: dict,
                seen: set[str], *, skip_lookup: bool) -> list[tuple[str, str, bool]]:
        """(key, call_id, exists) for the keys that need fetching."""
        ids = {}
        for key in batch:
            try:
                ids[key] = layout.call_id_from_manifest_key(key)
            except (layout.InvalidKeyError, InvalidIdError) as exc:
                problems.append(ManifestProblem(key, str(exc)))
        seen.update(ids.values())
        status: dict[str, tuple[str, str]] = {}
        if not skip_lookup and ids:
            q = ",".join("?" for _ in ids)
            for r in db.execute(f"SELECT call_id, status, store FROM calls WHERE call_id IN ({q})", tuple(ids.values())):
                status[r["call_id"]] = (r["status"], r["store"])
        out = []
        for key, call_id in ids.items():
            known = status.get(call_id)
            if known is not None and known[0] == "complete" and known[1] == desc:
                counts["unchanged"] += 1
            else:
                out.append((key, call_id, known is not None))
        return out

    def _store_fetched(self, pool: ThreadPoolExecutor, store: Store, wanted: list[tuple[str, str, bool]], desc: str,
                       problems: list, counts: dict, *, missing_ok: bool = False) -> None:
        def fetch(item: tuple[str, str, bool]):
            """Runs on a catalog-sync pool thread. Any failure of this one object is returned as
            its problem (named by key); only an unreachable store (transient) is raised."""
            key, call_id, exists = item
            try:
                doc = load_json_object(get_capped(store, key, MAX_MANIFEST_BYTES), key, max_bytes=MAX_MANIFEST_BYTES)
                m = Manifest.from_dict(doc, where=key)
                if m.call_id != call_id:
                    raise ManifestError(f"{key}: call_id {m.call_id} does not match the key")
                # Kept compact (the store's copy is indented): a third of the size.
                raw = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
                return item, manifest_values(m, desc, raw), raw, None
            except ObjectNotFoundError as exc:
                return item, None, None, None if missing_ok else str(exc)
            except TransientStoreError:
                raise
            except Exception as exc:  # one hostile object must not stop the sync
                return item, None, None, _problem_text(key, exc)

        rows = []
        db = self._db()
        for (key, call_id, exists), values, raw, problem in pool.map(fetch, wanted):
            if problem is not None:
                problems.append(ManifestProblem(key, problem))
            elif values is not None:
                if exists:
                    old = db.execute("SELECT manifest_json, store FROM calls WHERE call_id = ?", (call_id,)).fetchone()
                    if old is not None and old["store"] == desc and old["manifest_json"] == raw:
                        counts["unchanged"] += 1
                        continue
                rows.append(values)
                counts["updated" if exists else "added"] += 1
        if rows:
            with self._tx() as tx:
                tx.executemany(_INSERT, rows)

    # ---- notes ----------------------------------------------------------------------------
    def index_notes(self, call_id: str, notes: Iterable["Note"], *, replace: bool) -> None:
        """Record note objects of ``call_id`` (every version: revisions and withdrawals too) in
        notes_index (``replace``: they are all its notes), then mark which still stand."""
        rows = [(n.call_id, n.note_id, "," + ",".join(n.tags) + ",", n.replaces, int(n.withdrawn)) for n in notes]
        with self._tx() as tx:
            if replace:
                tx.execute("DELETE FROM notes_index WHERE call_id = ?", (call_id,))
            tx.executemany("INSERT OR REPLACE INTO notes_index (call_id, note_id, tags, replaces, withdrawn) "
                           "VALUES (?, ?, ?, ?, ?)", rows)
            tx.execute("UPDATE notes_index SET current = CASE WHEN withdrawn = 1 OR note_id IN "
                       "(SELECT replaces FROM notes_index WHERE call_id = ? AND replaces IS NOT NULL) "
                       "THEN 0 ELSE 1 END WHERE call_id = ?", (call_id, call_id))

    def sync_notes(self, store: Store, call_ids: Iterable[str]) -> int:
        """Re-read the notes of these calls from the store into notes_index; returns how many."""
        from callrec_desktop.notes import NoteStore

        notes = NoteStore(store, self)
        return sum(len(notes.list(c)) for c in call_ids)

    def _sync_all_notes(self, store: Store, problems: list | None = None) -> int:
        """One listing of ``notes/``; reads only notes not yet indexed. A note that cannot be
        read (whatever the reason) is skipped and added to ``problems`` with its key."""
        from callrec_desktop.notes import NoteStore, note_ids_from_key

        db = self._db()
        reader = NoteStore(store)
        new = []
        for key in store.list(layout.NOTES_ROOT):
            ids = note_ids_from_key(key)
            if ids is None:
                continue
            if db.execute("SELECT 1 FROM notes_index WHERE call_id = ? AND note_id = ?", ids).fetchone():
                continue
            try:
                new.append(reader.read(key))
            except TransientStoreError:
                raise
            except Exception as exc:  # one hostile note must not stop the sync
                if problems is not None:
                    problems.append(ManifestProblem(key, _problem_text(key, exc)))
        for note in new:
            self.index_notes(note.call_id, [note], replace=False)
        return len(new)

    # ---- queries ----------------------------------------------------------------------------
    def _where(self, f: CatalogFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def add(sql: str, *values: Any) -> None:
            clauses.append(sql)
            params.extend(values)

        if f.started_from is not None:
            add("started_ms >= ?", _ms(f.started_from))
        if f.started_to is not None:
            add("started_ms < ?", _ms(f.started_to))
        for column, value in (("line_number", f.line), ("department", f.department), ("agent", f.agent),
                              ("workstation", f.workstation), ("store", f.store)):
            if value is not None:
                add(f"{column} = ?", value)
        if f.caller is not None:
            digits = normalise_number(f.caller)
            if not digits:
                raise ValueError(f"caller {f.caller!r} is not a phone number")
            if f.caller_prefix:
                add("caller_digits >= ? AND caller_digits < ?", digits, digits + "\x7f")
            else:
                add("caller_digits = ?", digits)
        if f.min_seconds is not None:
            add("duration_seconds >= ?", float(f.min_seconds))
        if f.max_seconds is not None:
            add("duration_seconds <= ?", float(f.max_seconds))
        if f.end_reason is not None:
            if f.end_reason not in END_REASONS:
                raise ValueError(f"end reason {f.end_reason!r} is not one of {', '.join(END_REASONS)}")
            add("end_reason = ?", f.end_reason)
        if f.had_payment_pause is not None:
            add("payment_pause_count > 0" if f.had_payment_pause else "payment_pause_count = 0")
        if f.has_notes is not None:
            add(("" if f.has_notes else "NOT ") +
                "EXISTS (SELECT 1 FROM notes_index n WHERE n.call_id = calls.call_id AND n.current = 1)")
        if f.tag is not None:
            add("EXISTS (SELECT 1 FROM notes_index n WHERE n.call_id = calls.call_id AND n.current = 1 "
                "AND instr(n.tags, ?) > 0)",
                "," + f.tag + ",")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def query(self, filter: CatalogFilter = CatalogFilter(), *, order_by: str = "started_at", descending: bool = True,
              limit: int = 100, offset: int = 0, after: str | None = None) -> list[CallRow]:
        """A page of calls in order. Page on with ``after``, the call id of the previous page's
        last row (same filter and order): the next page starts right after it, found through
        the index (keyset paging), so the millionth row costs what the first does. ``offset``
        skips rows one by one and slows down with depth."""
        column = ORDER_COLUMNS.get(order_by)
        if column is None:
            raise ValueError(f"order_by must be one of {', '.join(ORDER_COLUMNS)}, got {order_by!r}")
        if not isinstance(limit, int) or not isinstance(offset, int) or limit < 0 or offset < 0:
            raise ValueError("limit and offset must be integers >= 0")
        where, params = self._where(filter)
        direction = "DESC" if descending else "ASC"
        key = f"ifnull({column}, '')" if column in _NULLABLE_ORDER else column  # NULLs sort as ''
        if after is not None:  # the row's own stored sort value, read through the primary key
            where += ((" AND " if where else " WHERE ") +
                      f"({key}, call_id) {'<' if descending else '>'} ((SELECT {key} FROM calls WHERE call_id = ?), ?)")
            params = [*params, after, after]
        sql = (f"SELECT {', '.join(_ROW_COLUMNS)} FROM calls{where} "
               f"ORDER BY {key} {direction}, call_id {direction} LIMIT ? OFFSET ?")
        return [_row(r) for r in self._db().execute(sql, (*params, limit, offset))]

    def count(self, filter: CatalogFilter = CatalogFilter()) -> int:
        where, params = self._where(filter)
        return self._db().execute(f"SELECT count(*) FROM calls{where}", params).fetchone()[0]

    def get(self, call_id: str) -> CallRow | None:
        r = self._db().execute(f"SELECT {', '.join(_ROW_COLUMNS)} FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return _row(r) if r else None

    def manifest(self, call_id: str) -> Manifest:
        r = self._db().execute("SELECT manifest_json FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if r is None:
            raise CatalogError(f"call {call_id!r} is not in the catalogue (sync first?)")
        return Manifest.from_json(r["manifest_json"], where=f"catalogue {call_id}")

    def values(self, column: str, *, limit: int = 1000) -> list[str]:
        """The distinct values of ``column`` (one of ``VALUE_COLUMNS``) in the catalogue, sorted:
        the choices the library offers in its filter lists. Uses the column's index."""
        sql_column = VALUE_COLUMNS.get(column)
        if sql_column is None:
            raise ValueError(f"column must be one of {', '.join(VALUE_COLUMNS)}, got {column!r}")
        rows = self._db().execute(f"SELECT DISTINCT {sql_column} FROM calls WHERE {sql_column} IS NOT NULL "
                                  f"ORDER BY {sql_column} LIMIT ?", (limit,))
        return [r[0] for r in rows if r[0] != ""]

    def all_tags(self) -> list[str]:
        """Every tag used on any note in the catalogue, sorted."""
        out: set[str] = set()
        for r in self._db().execute("SELECT DISTINCT tags FROM notes_index WHERE current = 1"):
            out.update(t for t in r["tags"].split(",") if t)
        return sorted(out)

    def tags(self, call_id: str) -> list[str]:
        out: set[str] = set()
        for r in self._db().execute("SELECT tags FROM notes_index WHERE call_id = ? AND current = 1", (call_id,)):
            out.update(t for t in r["tags"].split(",") if t)
        return sorted(out)


def _problem_text(key: str, exc: BaseException) -> str:
    """What went wrong with one object, for a warning that names its key (once)."""
    text = str(exc)
    if not text:
        text = type(exc).__name__
    elif isinstance(exc, (RecursionError, MemoryError, OverflowError, TypeError, KeyError, AttributeError)):
        text = f"{type(exc).__name__}: {text}"
    return text if key in text else f"{key}: {text}"


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch

