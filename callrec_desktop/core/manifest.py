"""The manifest: one JSON document per call that says what was recorded and what was not.

Schema (``schema_version`` 1) is documented in docs/manifest.md. Reading is strict: a
manifest that does not match gives ``ManifestError`` naming the field and the problem, never
a half-filled object.

Store objects are untrusted (a broken PC, or an attacker with a write key, can put anything
there), so reading bounds everything before any of it is used: the object's size
(``MAX_MANIFEST_BYTES``), JSON nesting (``MAX_JSON_DEPTH``), every integer (at most
``MAX_JSON_INT_DIGITS`` digits), every time (years ``MIN_YEAR``..``MAX_YEAR``), the call's
length (``MAX_CALL_SECONDS``: 24 h), the sample rate, and every chunk and pause, which must lie
inside the call. ``load_json_object`` is the same bounded reader for the other JSON objects in
a store (notes, access events).
"""

from __future__ import annotations

import calendar
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from callrec_desktop.core.ids import InvalidIdError, validate_call_id
from callrec_desktop.core.timeline import EndReason, EventSource, PauseReason

SCHEMA_VERSION = 1
RETENTION_MONTHS = 13
CODECS = {"opus": ("ogg", "opus"), "flac": ("flac", "flac")}  # codec -> (container, file extension)
STATUSES = ("recording", "complete")
# hangup, transferred, interrupted, error, shutdown, disk_full. "shutdown" and "disk_full" are
# new in schema_version 1 (no bump): readers from before them refuse such a manifest; see
# docs/manifest.md.
END_REASONS = tuple(r.value for r in EndReason)
PAUSE_REASONS = tuple(r.value for r in PauseReason)  # payment, agent_request
EVENT_SOURCES = tuple(s.value for s in EventSource)  # agent, control_api, automatic, script, system
DIRECTIONS = ("inbound", "outbound")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# ---- bounds on what a store object may claim (see the module docstring) -----------------------
MAX_JSON_BYTES = 1024 * 1024  # a note, an access event, a marker: a few KB in practice
MAX_MANIFEST_BYTES = 24 * 1024 * 1024  # 24 h in 1 s chunks is ~20 MB of indented JSON
MAX_JSON_DEPTH = 32  # a manifest nests 3 deep
MAX_JSON_INT_DIGITS = 19  # fits a signed 64-bit integer (SQLite's INTEGER)
MAX_CALL_SECONDS = 24 * 3600  # no call is longer than a day
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192_000
MAX_BITRATE = 2_000_000
MAX_CHUNKS = 100_000
MAX_CHUNK_BYTES = 256 * 1024 * 1024
CHUNK_HEADER_BYTES = 64 * 1024  # container and codec headers a chunk may add to its audio
MIN_YEAR, MAX_YEAR = 2000, 2100  # every time in a store object (retention may run to MAX_YEAR + 2)
_MIN_TIME = datetime(MIN_YEAR, 1, 1, tzinfo=timezone.utc)
_MAX_TIME = datetime(MAX_YEAR + 1, 1, 1, tzinfo=timezone.utc)
_MAX_RETENTION_TIME = datetime(MAX_YEAR + 3, 1, 1, tzinfo=timezone.utc)


class ManifestError(ValueError):
    """A manifest that cannot be trusted; the message names the field and what is wrong."""


class StoreDataError(ValueError):
    """A JSON object from a store (or a spool) that is too big, too deep, not UTF-8 or not JSON."""


def _no_constant(name: str) -> Any:
    raise StoreDataError(f"{name} is not a number JSON allows")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise StoreDataError(f"key {dup[:40]!r} appears twice")
    return doc


_INT_LIMIT = 10**MAX_JSON_INT_DIGITS


def _check_tree(doc: Any, max_depth: int) -> None:
    """Raise if ``doc`` nests deeper than ``max_depth``, holds an integer of more than
    ``MAX_JSON_INT_DIGITS`` digits or a float that is not finite. One pass, level by level
    (no recursion to exhaust); checking here, not in json's parse hooks, keeps parsing at C speed."""
    level, depth = [doc], 1
    while level:
        deeper = []
        for item in level:
            values = item.values() if type(item) is dict else item
            if depth > max_depth:
                raise StoreDataError(f"nested more than {max_depth} deep")
            for v in values:
                t = type(v)
                if t is dict or t is list:
                    deeper.append(v)
                elif t is int:
                    if not -_INT_LIMIT < v < _INT_LIMIT:
                        raise StoreDataError(f"integer of {len(str(abs(v)))} digits (at most {MAX_JSON_INT_DIGITS})")
                elif t is float and not math.isfinite(v):
                    raise StoreDataError(f"number {v!r} is out of range")
        level, depth = deeper, depth + 1


def object_problem(key: str, exc: BaseException) -> str:
    """What to say about a store object that could not be read (skipped with a warning):
    a ValueError from the bounded readers already names the key; anything else gets the key
    and the exception's type in front."""
    why = str(exc)
    if not isinstance(exc, ValueError) and key not in why:
        why = f"{key}: {type(exc).__name__}: {why}"
    return why


def load_json_object(data: bytes | str, where: str, *, max_bytes: int = MAX_JSON_BYTES,
                     max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """Parse an untrusted JSON object with bounds: at most ``max_bytes``, strict UTF-8, nesting
    at most ``max_depth``, integers of at most ``MAX_JSON_INT_DIGITS`` digits, finite floats,
    no NaN/Infinity, no duplicate keys, and a JSON object at the top. Anything else is a
    ``StoreDataError`` naming ``where``, never a RecursionError, OverflowError or MemoryError.
    Pure; runs on any thread."""
    if isinstance(data, str):
        size = len(data)  # characters: at most 4 bytes each, checked again as bytes when encoded
    elif isinstance(data, (bytes, bytearray, memoryview)):
        size = len(data)
    else:
        raise StoreDataError(f"{where}: expected bytes, got {type(data).__name__}")
    if size > max_bytes:
        raise StoreDataError(f"{where}: {size} bytes, more than the {max_bytes} allowed for this object")
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoreDataError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_no_duplicates)
    except StoreDataError as exc:
        raise StoreDataError(f"{where}: not acceptable JSON ({exc})") from None
    except json.JSONDecodeError as exc:
        raise StoreDataError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise StoreDataError(f"{where}: not acceptable JSON (nested more than {max_depth} deep)") from None
    except (ValueError, OverflowError) as exc:
        raise StoreDataError(f"{where}: not acceptable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise StoreDataError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    try:
        _check_tree(doc, max_depth)
    except StoreDataError as exc:
        raise StoreDataError(f"{where}: not acceptable JSON ({exc})") from None
    return doc


def check_time_bounds(when: datetime, what: str, *, latest: datetime = _MAX_TIME) -> datetime:
    """``when`` if it lies in ``MIN_YEAR``..``MAX_YEAR`` (or before ``latest``), else ValueError."""
    if not _MIN_TIME <= when < latest:
        raise ValueError(f"{what} {when.isoformat()} is outside {MIN_YEAR}..{latest.year - 1}")
    return when


def add_months(when: datetime, months: int) -> datetime:
    """``when`` plus whole calendar months; the day is clamped to the target month's length.

    31 Jan + 1 month is 28 (or 29) Feb, not 3 March: retention counts calendar months.
    """
    total = when.month - 1 + months
    year, month = when.year + total // 12, total % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)


def retention_until(started_at: datetime) -> datetime:
    return add_months(started_at, RETENTION_MONTHS)


def iso_utc(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(text: str) -> datetime:
    """An aware ISO 8601 time in UTC. ValueError for anything else, including a time whose
    conversion to UTC leaves the calendar (``0001-01-01T00:00:00+14:00``)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 time, got {type(text).__name__}")
    if len(text) > 64:
        raise ValueError(f"{len(text)} characters is too long for a time")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    try:
        return dt.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{text} is out of range once converted to UTC") from None


def _to_ms_utc(when: datetime) -> datetime:
    """``when`` in UTC, cut to whole milliseconds (what iso_utc writes)."""
    utc = when.astimezone(timezone.utc)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def chunk_file_name(seq: int, codec: str) -> str:
    """The file name of chunk ``seq``: derived only from an integer and a known codec."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1 or seq > 999_999:
        raise ValueError(f"chunk sequence out of range: {seq!r}")
    if codec not in CODECS:
        raise ValueError(f"unknown codec: {codec!r} (expected one of {', '.join(CODECS)})")
    return f"{seq:06d}.{CODECS[codec][1]}"


@dataclass(frozen=True)
class ChunkEntry:
    seq: int
    first_frame: int  # into the call's own timeline (frame 0 = call start)
    frames: int
    bytes: int
    sha256: str
    name: str


@dataclass(frozen=True)
class PauseEntry:
    reason: str  # payment | agent_request
    source: str  # agent | control_api | automatic | script | system
    offset_frames: int  # into the call's timeline
    duration_frames: int
    offset_seconds: float
    wall_seconds: float
    end_source: str | None


@dataclass(frozen=True)
class AudioFormat:
    codec: str
    sample_rate: int
    channels: int
    channel_layout: tuple[str, ...]  # ("agent", "caller") or ("agent",)
    bitrate: int | None  # bits per second for lossy codecs, all channels together

    @property
    def container(self) -> str:
        return CODECS[self.codec][0]

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_layout", tuple(self.channel_layout))


@dataclass(frozen=True)
class EndInfo:
    reason: str
    source: str | None = None
    department: str | None = None  # set when transferred


@dataclass(frozen=True)
class Manifest:
    call_id: str
    status: str
    line_number: str
    department: str
    direction: str
    caller: str | None
    external_id: str | None
    agent: str
    workstation: str
    started_at: datetime
    ended_at: datetime | None
    frames: int
    audio: AudioFormat
    chunks: tuple[ChunkEntry, ...] = ()
    pauses: tuple[PauseEntry, ...] = ()
    end: EndInfo | None = None
    legal_hold: bool = False
    app_version: str = ""
    recovered: bool = False
    retention: datetime | None = field(default=None)

    def __post_init__(self) -> None:
        # Times are kept as they are written: aware, UTC, millisecond precision. Without this a
        # manifest would not read back equal to itself (microseconds are not written), and a
        # naive datetime would silently be taken as the PC's local time by iso_utc().
        for name in ("started_at", "ended_at", "retention"):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
                raise ManifestError(f"manifest: {name}: must be an aware datetime, got {value!r}")
            object.__setattr__(self, name, _to_ms_utc(value))
        if self.retention is None:  # fixed once, so it reads back equal
            object.__setattr__(self, "retention", retention_until(self.started_at))
        object.__setattr__(self, "chunks", tuple(self.chunks))
        object.__setattr__(self, "pauses", tuple(self.pauses))

    @property
    def retention_until(self) -> datetime:
        return self.retention or retention_until(self.started_at)

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.audio.sample_rate

    # ---- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "call_id": self.call_id,
            "status": self.status,
            "line": {"number": self.line_number, "department": self.department},
            "direction": self.direction,
            "caller": self.caller,
            "external_id": self.external_id,
            "agent": self.agent,
            "workstation": self.workstation,
            "started_at": iso_utc(self.started_at),
            "ended_at": iso_utc(self.ended_at) if self.ended_at else None,
            "frames": self.frames,
            "duration_seconds": round(self.duration_seconds, 3),
            "audio": {
                "codec": self.audio.codec,
                "container": self.audio.container,
                "sample_rate": self.audio.sample_rate,
                "channels": self.audio.channels,
                "channel_layout": list(self.audio.channel_layout),
                "bitrate": self.audio.bitrate,
            },
            "chunks": [asdict(c) for c in self.chunks],
            "pauses": [asdict(p) for p in self.pauses],
            "end": asdict(self.end) if self.end else None,
            "retention_until": iso_utc(self.retention_until),
            "legal_hold": self.legal_hold,
            "app_version": self.app_version,
            "recovered": self.recovered,
        }

    def to_json(self) -> bytes:
        """The manifest as UTF-8 JSON. Refuses (ManifestError) to write what from_json would refuse."""
        doc = self.to_dict()
        self.from_dict(doc, f"manifest {self.call_id!r} being written")
        return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, where: str = "manifest") -> "Manifest":
        """Parse with the bounds of ``load_json_object`` (``MAX_MANIFEST_BYTES``) and of the
        schema; ``ManifestError`` for anything else, whatever the bytes are."""
        try:
            doc = load_json_object(data, where, max_bytes=MAX_MANIFEST_BYTES)
        except StoreDataError as exc:
            raise ManifestError(str(exc)) from None
        return cls.from_dict(doc, where)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "manifest") -> "Manifest":
        """A manifest from parsed JSON, every field checked and bounded; ``ManifestError`` (naming
        ``where`` and the field) for anything else, never another exception."""
        try:
            return cls._from_dict(doc, where)
        except ManifestError:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise ManifestError(f"{where}: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_dict(cls, doc: Any, where: str) -> "Manifest":
        r = _Reader(doc, where)
        version = r.int("schema_version")
        if version != SCHEMA_VERSION:
            raise ManifestError(f"{where}: schema_version: {version} is not supported (this program reads {SCHEMA_VERSION})")
        try:
            call_id = validate_call_id(r.raw("call_id"))
        except InvalidIdError as exc:
            raise ManifestError(f"{where}: call_id: {exc}") from None
        status = r.choice("status", STATUSES)
        line = r.sub("line")
        audio = r.sub("audio")
        codec = audio.choice("codec", tuple(CODECS))
        channels = audio.int("channels")
        if channels not in (1, 2):
            raise audio._fail("channels", f"must be 1 or 2, got {channels}")
        layout = tuple(audio.list("channel_layout", str))
        if len(layout) != channels:
            raise audio._fail("channel_layout", f"{len(layout)} names for {channels} channels")
        container = audio.str("container")
        if container != CODECS[codec][0]:
            raise audio._fail("container", f"{container!r} does not match codec {codec} "
                                           f"(expected {CODECS[codec][0]!r})")
        fmt = AudioFormat(codec, audio.int("sample_rate", minimum=MIN_SAMPLE_RATE, maximum=MAX_SAMPLE_RATE),
                          channels, layout, audio.opt_int("bitrate", minimum=1, maximum=MAX_BITRATE))
        # Every frame number is bounded by the call's length, itself at most MAX_CALL_SECONDS:
        # what a reader allocates or writes for this call follows from these numbers.
        frames = r.int("frames", minimum=0, maximum=MAX_CALL_SECONDS * fmt.sample_rate)
        chunk_docs = r.list("chunks", dict)
        if len(chunk_docs) > MAX_CHUNKS:
            raise r._fail("chunks", f"{len(chunk_docs)} chunks, at most {MAX_CHUNKS}")
        chunks = []
        for i, c in enumerate(chunk_docs):
            cr = _Reader(c, f"{where}: chunks[{i}]")
            seq = cr.int("seq", minimum=1, maximum=999_999)
            sha = cr.str("sha256")
            if not _SHA256_RE.fullmatch(sha):
                raise cr._fail("sha256", "not a lowercase hex SHA-256")
            name = cr.str("name")
            if name != chunk_file_name(seq, codec):
                raise cr._fail("name", f"{name!r} does not match seq {seq} and codec {codec} "
                                      f"(expected {chunk_file_name(seq, codec)!r})")
            first, n = cr.int("first_frame", minimum=0, maximum=frames), cr.int("frames", minimum=0, maximum=frames)
            if first + n > frames:
                raise cr._fail("frames", f"the chunk runs to frame {first + n}, past the call's {frames} frames")
            # A chunk is never larger than 32-bit PCM of its frames plus its headers: a manifest
            # cannot make a reader fetch (or hold) more than the audio it claims.
            size = cr.int("bytes", minimum=0,
                          maximum=min(MAX_CHUNK_BYTES, n * channels * 4 + CHUNK_HEADER_BYTES))
            chunks.append(ChunkEntry(seq, first, n, size, sha, name))
        seqs = [c.seq for c in chunks]
        if seqs != sorted(set(seqs)):
            raise ManifestError(f"{where}: chunks: sequence numbers must be unique and increasing")
        pauses: list[PauseEntry] = []
        pause_docs = r.list("pauses", dict)
        if len(pause_docs) > MAX_CHUNKS:
            raise r._fail("pauses", f"{len(pause_docs)} pauses, at most {MAX_CHUNKS}")
        for i, p in enumerate(pause_docs):
            pr = _Reader(p, f"{where}: pauses[{i}]")
            pauses.append(PauseEntry(
                pr.choice("reason", PAUSE_REASONS), pr.choice("source", EVENT_SOURCES),
                pr.int("offset_frames", minimum=0, maximum=frames), pr.int("duration_frames", minimum=0, maximum=frames),
                pr.float("offset_seconds"), pr.float("wall_seconds"), pr.opt_choice("end_source", EVENT_SOURCES)))
            here = pauses[-1]
            if here.offset_frames + here.duration_frames > frames:
                raise pr._fail("duration_frames", f"the pause runs to frame {here.offset_frames + here.duration_frames}, "
                                                  f"past the call's {frames} frames")
            if len(pauses) > 1 and here.offset_frames < pauses[-2].offset_frames + pauses[-2].duration_frames:
                raise pr._fail("offset_frames", f"pause at frame {here.offset_frames} overlaps the one before "
                                                f"(frames {pauses[-2].offset_frames}..."
                                                f"{pauses[-2].offset_frames + pauses[-2].duration_frames})")
        end = None
        if r.raw("end") is not None:
            er = r.sub("end")
            end = EndInfo(er.choice("reason", END_REASONS), er.opt_choice("source", EVENT_SOURCES),
                          er.opt_str("department"))
            if end.reason == "transferred" and not (end.department and end.department.strip()):
                raise er._fail("department", "a transferred call must name the department")
        if status == "complete" and end is None:
            raise ManifestError(f"{where}: end: a complete manifest must say how the call ended")
        started = r.time("started_at")
        ended = r.opt_time("ended_at")
        if status == "complete" and ended is None:
            raise ManifestError(f"{where}: ended_at: a complete manifest must say when the call ended")
        if ended is not None and ended < started:
            raise ManifestError(f"{where}: ended_at: {iso_utc(ended)} is before started_at {iso_utc(started)}")
        duration = r.float("duration_seconds")
        if not math.isclose(duration, frames / fmt.sample_rate, rel_tol=0, abs_tol=0.001):
            raise ManifestError(f"{where}: duration_seconds: {duration} does not match frames / sample_rate "
                                f"({frames} / {fmt.sample_rate})")
        recovered = r.bool("recovered") if "recovered" in doc else False
        return cls(
            call_id=call_id, status=status,
            line_number=line.str("number"), department=line.str("department"),
            direction=r.choice("direction", DIRECTIONS),
            caller=r.opt_str("caller"), external_id=r.opt_str("external_id"),
            agent=r.str("agent"), workstation=r.str("workstation"),
            started_at=started, ended_at=ended,
            frames=frames, audio=fmt, chunks=tuple(chunks), pauses=tuple(pauses), end=end,
            legal_hold=r.bool("legal_hold"), app_version=r.str("app_version"),
            recovered=recovered, retention=r.time("retention_until", latest=_MAX_RETENTION_TIME),
        )


class _Reader:
    """Typed access to one JSON object, with errors that name the field."""

    def __init__(self, doc: Any, where: str) -> None:
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(doc).__name__}")
        self.doc, self.where = doc, where

    def _fail(self, key: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.where}: {key}: {problem}")

    def raw(self, key: str) -> Any:
        if key not in self.doc:
            raise self._fail(key, "missing")
        return self.doc[key]

    def sub(self, key: str) -> "_Reader":
        return _Reader(self.raw(key), f"{self.where}: {key}")

    def str(self, key: str) -> str:
        v = self.raw(key)
        if not isinstance(v, str):
            raise self._fail(key, f"expected a string, got {type(v).__name__}")
        return v

    def opt_str(self, key: str) -> str | None:
        return None if self.doc.get(key) is None else self.str(key)

    def int(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._fail(key, f"expected an integer, got {type(v).__name__}")
        if minimum is not None and v < minimum:
            raise self._fail(key, f"must be at least {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise self._fail(key, f"must be at most {maximum}, got {v}")
        return v

    def opt_int(self, key: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
        return None if self.doc.get(key) is None else self.int(key, minimum, maximum)

    def float(self, key: str) -> float:
        """A finite, non-negative number (every float in the schema is a time in seconds)."""
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._fail(key, f"expected a number, got {type(v).__name__}")
        if isinstance(v, int) and abs(v) > 10**MAX_JSON_INT_DIGITS:
            raise self._fail(key, "number out of range")
        if not math.isfinite(v) or v < 0 or v > MAX_CALL_SECONDS:
            raise self._fail(key, f"must be a finite number of seconds from 0 to {MAX_CALL_SECONDS}, got {v!r}")
        return float(v)

    def bool(self, key: str) -> bool:
        v = self.raw(key)
        if not isinstance(v, bool):
            raise self._fail(key, f"expected true or false, got {v!r}")
        return v

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        v = self.str(key)
        if v not in allowed:
            raise self._fail(key, f"{v!r} is not one of {', '.join(allowed)}")
        return v

    def opt_choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        return None if self.doc.get(key) is None else self.choice(key, allowed)

    def list(self, key: str, item_type: type) -> list:
        v = self.raw(key)
        if not isinstance(v, list) or not all(isinstance(x, item_type) for x in v):
            raise self._fail(key, f"expected a list of {item_type.__name__}")
        return v

    def time(self, key: str, latest: datetime = _MAX_TIME) -> datetime:
        v = self.str(key)
        try:
            return check_time_bounds(parse_iso_utc(v), "time", latest=latest)
        except ValueError as exc:
            raise self._fail(key, f"not an ISO 8601 UTC time from {MIN_YEAR} to {latest.year - 1} ({exc})") from None

    def opt_time(self, key: str) -> datetime | None:
        return None if self.doc.get(key) is None else self.time(key)
