"""The manifest: one JSON document per call that says what was recorded and what was not.

Schema (``schema_version`` 1) is documented in docs/manifest.md. Reading is strict: a
manifest that does not match gives ``ManifestError`` naming the field and the problem, never
a half-filled object.
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
END_REASONS = tuple(r.value for r in EndReason)  # hangup, transferred, interrupted, error
PAUSE_REASONS = tuple(r.value for r in PauseReason)  # payment, agent_request
EVENT_SOURCES = tuple(s.value for s in EventSource)  # agent, control_api, automatic, script, system
DIRECTIONS = ("inbound", "outbound")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest that cannot be trusted; the message names the field and what is wrong."""


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
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp has no time zone")
    return dt.astimezone(timezone.utc)


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
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(doc, where)

    @classmethod
    def from_dict(cls, doc: Any, where: str = "manifest") -> "Manifest":
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
        fmt = AudioFormat(codec, audio.int("sample_rate", minimum=1), channels, layout,
                          audio.opt_int("bitrate", minimum=1))
        chunks = []
        for i, c in enumerate(r.list("chunks", dict)):
            cr = _Reader(c, f"{where}: chunks[{i}]")
            seq = cr.int("seq", minimum=1, maximum=999_999)
            sha = cr.str("sha256")
            if not _SHA256_RE.fullmatch(sha):
                raise cr._fail("sha256", "not a lowercase hex SHA-256")
            name = cr.str("name")
            if name != chunk_file_name(seq, codec):
                raise cr._fail("name", f"{name!r} does not match seq {seq} and codec {codec} "
                                      f"(expected {chunk_file_name(seq, codec)!r})")
            chunks.append(ChunkEntry(seq, cr.int("first_frame", minimum=0), cr.int("frames", minimum=0),
                                     cr.int("bytes", minimum=0), sha, name))
        seqs = [c.seq for c in chunks]
        if seqs != sorted(set(seqs)):
            raise ManifestError(f"{where}: chunks: sequence numbers must be unique and increasing")
        pauses = []
        for i, p in enumerate(r.list("pauses", dict)):
            pr = _Reader(p, f"{where}: pauses[{i}]")
            pauses.append(PauseEntry(
                pr.choice("reason", PAUSE_REASONS), pr.choice("source", EVENT_SOURCES),
                pr.int("offset_frames", minimum=0), pr.int("duration_frames", minimum=0),
                pr.float("offset_seconds"), pr.float("wall_seconds"), pr.opt_choice("end_source", EVENT_SOURCES)))
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
        frames = r.int("frames", minimum=0)
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
            recovered=recovered, retention=r.time("retention_until"),
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

    def opt_int(self, key: str, minimum: int | None = None) -> int | None:
        return None if self.doc.get(key) is None else self.int(key, minimum)

    def float(self, key: str) -> float:
        """A finite, non-negative number (every float in the schema is a time in seconds)."""
        v = self.raw(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._fail(key, f"expected a number, got {type(v).__name__}")
        if not math.isfinite(v) or v < 0:
            raise self._fail(key, f"must be a finite number of seconds >= 0, got {v!r}")
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

    def time(self, key: str) -> datetime:
        v = self.str(key)
        try:
            return parse_iso_utc(v)
        except ValueError as exc:
            raise self._fail(key, f"not an ISO 8601 UTC time ({exc})") from None

    def opt_time(self, key: str) -> datetime | None:
        return None if self.doc.get(key) is None else self.time(key)
