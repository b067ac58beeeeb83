"""The manifest: what was recorded and what was not, read back strictly."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from callrec_desktop.core.manifest import (
    RETENTION_MONTHS,
    SCHEMA_VERSION,
    AudioFormat,
    ChunkEntry,
    EndInfo,
    Manifest,
    ManifestError,
    PauseEntry,
    add_months,
    chunk_file_name,
    iso_utc,
    parse_iso_utc,
    retention_until,
)

UTC = timezone.utc
CALL_ID = "20261129T092233Z-3f9a1c0b7d2e"
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def make(**overrides) -> Manifest:
    fields = dict(
        call_id=CALL_ID,
        status="complete",
        line_number="01443 425002",
        department="Council Tax",
        direction="inbound",
        caller="07700900123",
        external_id="cti-88812",
        agent="jbloggs",
        workstation="CC-PC-014",
        started_at=utc(2026, 11, 29, 9, 22, 33, 412000),
        ended_at=utc(2026, 11, 29, 9, 24, 3, 412000),
        frames=90 * 48000,
        audio=AudioFormat("opus", 48000, 2, ("agent", "caller"), 32000),
        chunks=(
            ChunkEntry(1, 0, 10 * 48000, 40_211, SHA, "000001.opus"),
            ChunkEntry(2, 10 * 48000, 10 * 48000, 39_877, "a" * 64, "000002.opus"),
        ),
        pauses=(
            PauseEntry("payment", "control_api", 12 * 48000, 18 * 48000, 12.0, 18.004, "control_api"),
            PauseEntry("agent_request", "agent", 60 * 48000, 48000, 60.0, 1.0, None),
        ),
        end=EndInfo("transferred", "agent", "Planning"),
        legal_hold=False,
        app_version="0.1.0",
    )
    fields.update(overrides)
    return Manifest(**fields)


def good_doc() -> dict:
    return json.loads(make().to_json())


def read(doc) -> Manifest:
    return Manifest.from_json(json.dumps(doc), where="spool/x/manifest.json")


# ==== round trip =======================================================================

def test_round_trip_is_equal():
    m = make()
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert back.to_json() == m.to_json()


@pytest.mark.parametrize(
    "overrides",
    [
        dict(status="recording", ended_at=None, end=None, chunks=(), pauses=()),
        dict(caller=None, external_id=None),
        dict(audio=AudioFormat("flac", 16000, 1, ("agent",), None), frames=16000 * 7 + 5,
             chunks=(ChunkEntry(1, 0, 16000 * 7 + 5, 1234, SHA, "000001.flac"),), pauses=()),
        dict(end=EndInfo("hangup", "agent"), legal_hold=True, recovered=True),
        dict(end=EndInfo("interrupted", "system"), recovered=True),
        dict(retention=utc(2030, 1, 1)),
        dict(direction="outbound", department="Housing Repairs", line_number="01443 425003"),
    ],
)
def test_round_trip_variants(overrides):
    m = make(**overrides)
    assert Manifest.from_json(m.to_json()) == m


def test_round_trip_with_microseconds_and_other_time_zones():
    bst = timezone(timedelta(hours=1))
    m = make(started_at=datetime(2026, 6, 1, 10, 0, 0, 123456, tzinfo=bst),
             ended_at=datetime(2026, 6, 1, 10, 1, 30, 999999, tzinfo=bst))
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert m.started_at == utc(2026, 6, 1, 9, 0, 0, 123000)
    assert m.started_at.tzinfo is UTC
    assert back.to_dict()["started_at"] == "2026-06-01T09:00:00.123Z"
    assert back.to_dict()["ended_at"] == "2026-06-01T09:01:30.999Z"


def test_list_fields_are_normalised_to_tuples_and_round_trip():
    m = make(chunks=list(make().chunks), pauses=list(make().pauses),
             audio=AudioFormat("opus", 48000, 2, ["agent", "caller"], 32000))
    assert isinstance(m.chunks, tuple) and isinstance(m.pauses, tuple)
    assert m.audio.channel_layout == ("agent", "caller")
    assert Manifest.from_json(m.to_json()) == m


def test_to_dict_content():
    d = make().to_dict()
    assert d["schema_version"] == SCHEMA_VERSION == 1
    assert d["call_id"] == CALL_ID
    assert d["line"] == {"number": "01443 425002", "department": "Council Tax"}
    assert d["started_at"] == "2026-11-29T09:22:33.412Z"
    assert d["ended_at"] == "2026-11-29T09:24:03.412Z"
    assert d["retention_until"] == "2027-12-29T09:22:33.412Z"
    assert d["frames"] == 4_320_000 and d["duration_seconds"] == 90.0
    assert d["audio"] == {"codec": "opus", "container": "ogg", "sample_rate": 48000, "channels": 2,
                          "channel_layout": ["agent", "caller"], "bitrate": 32000}
    assert d["chunks"][0] == {"seq": 1, "first_frame": 0, "frames": 480000, "bytes": 40211,
                              "sha256": SHA, "name": "000001.opus"}
    assert d["pauses"][0] == {"reason": "payment", "source": "control_api", "offset_frames": 576000,
                              "duration_frames": 864000, "offset_seconds": 12.0, "wall_seconds": 18.004,
                              "end_source": "control_api"}
    assert d["end"] == {"reason": "transferred", "source": "agent", "department": "Planning"}
    assert d["legal_hold"] is False and d["recovered"] is False and d["app_version"] == "0.1.0"


def test_to_json_is_utf8_and_keeps_non_ascii():
    m = make(agent="Siân Llewellyn", department="Treth y Cyngor")
    raw = m.to_json()
    assert isinstance(raw, bytes) and raw.endswith(b"\n")
    assert "Siân".encode() in raw
    assert Manifest.from_json(raw).agent == "Siân Llewellyn"


def test_to_json_refuses_to_write_what_cannot_be_read():
    with pytest.raises(ManifestError, match="call_id"):
        make(call_id="../../etc").to_json()
    with pytest.raises(ManifestError, match="end"):
        make(end=None).to_json()  # complete without an end
    with pytest.raises(ManifestError, match="wall_seconds"):
        make(pauses=(PauseEntry("payment", "agent", 0, 10, 0.0, float("nan"), None),)).to_json()


def test_naive_datetimes_are_refused():
    with pytest.raises(ManifestError, match="started_at: must be an aware datetime"):
        make(started_at=datetime(2026, 11, 29, 9, 22, 33))
    with pytest.raises(ManifestError, match="ended_at"):
        make(ended_at=datetime(2026, 11, 29, 9, 24, 3))


def test_duration_seconds():
    assert make(frames=48000 * 3 + 24000).duration_seconds == 3.5


# ==== calendar months ====================================================================

@pytest.mark.parametrize(
    "start,months,expected",
    [
        (utc(2026, 1, 31), 1, utc(2026, 2, 28)),
        (utc(2028, 1, 31), 1, utc(2028, 2, 29)),  # leap year
        (utc(2026, 1, 31), 13, utc(2027, 2, 28)),
        (utc(2027, 1, 31), 13, utc(2028, 2, 29)),
        (utc(2026, 3, 31), 1, utc(2026, 4, 30)),
        (utc(2026, 12, 15), 1, utc(2027, 1, 15)),  # December -> next year
        (utc(2026, 12, 31), 13, utc(2028, 1, 31)),
        (utc(2026, 11, 29, 9, 0), 13, utc(2027, 12, 29, 9, 0)),
        (utc(2026, 5, 31, 23, 59, 59, 999000), 13, utc(2027, 6, 30, 23, 59, 59, 999000)),
        (utc(2028, 2, 29), 12, utc(2029, 2, 28)),
        (utc(2026, 3, 15), -3, utc(2025, 12, 15)),
        (utc(2026, 3, 31), 0, utc(2026, 3, 31)),
    ],
)
def test_add_months(start, months, expected):
    assert add_months(start, months) == expected
    assert add_months(start, months).tzinfo is start.tzinfo


def test_retention_is_13_calendar_months_with_the_day_clamped():
    assert RETENTION_MONTHS == 13
    assert retention_until(utc(2026, 1, 31, 8, 15)) == utc(2027, 2, 28, 8, 15)
    assert retention_until(utc(2026, 11, 29, 9, 0)) == utc(2027, 12, 29, 9, 0)
    assert make(started_at=utc(2026, 1, 31, 8, 15), ended_at=utc(2026, 1, 31, 8, 30)).retention_until == \
        utc(2027, 2, 28, 8, 15)


def test_retention_is_not_start_plus_396_days():
    # 13 calendar months are 395 to 397 days depending on which months they span.
    # 2026-11-29 + 13 months = 2027-12-29 (395 days); + 396 days = 2027-12-30.
    start = utc(2026, 11, 29, 9, 0)
    assert retention_until(start) == utc(2027, 12, 29, 9, 0)
    assert start + timedelta(days=396) == utc(2027, 12, 30, 9, 0)
    assert retention_until(start) != start + timedelta(days=396)
    # And across a leap day they differ the other way.
    start = utc(2027, 1, 31)
    assert retention_until(start) == utc(2028, 2, 29)
    assert start + timedelta(days=396) == utc(2028, 3, 2)


def test_explicit_retention_wins():
    m = make(retention=utc(2031, 5, 1))
    assert m.retention_until == utc(2031, 5, 1)
    assert m.to_dict()["retention_until"] == "2031-05-01T00:00:00.000Z"


def test_iso_utc_and_parse():
    assert iso_utc(utc(2026, 11, 29, 9, 22, 33, 412999)) == "2026-11-29T09:22:33.412Z"
    assert iso_utc(datetime(2026, 6, 1, 10, tzinfo=timezone(timedelta(hours=1)))) == "2026-06-01T09:00:00.000Z"
    assert parse_iso_utc("2026-11-29T09:22:33.412Z") == utc(2026, 11, 29, 9, 22, 33, 412000)
    with pytest.raises(ValueError, match="no time zone"):
        parse_iso_utc("2026-11-29T09:22:33")


def test_chunk_file_name():
    assert chunk_file_name(1, "opus") == "000001.opus"
    assert chunk_file_name(999_999, "flac") == "999999.flac"
    for bad in (0, -1, 1_000_000, True, 1.0, "1"):
        with pytest.raises(ValueError, match="chunk sequence out of range"):
            chunk_file_name(bad, "opus")
    with pytest.raises(ValueError, match="unknown codec"):
        chunk_file_name(1, "mp3")


# ==== strict reading =====================================================================

def _set(doc: dict, path: str, value) -> None:
    keys = path.split(".")
    target = doc
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


_DELETE = object()

# Every required field, missing: the error names it.
REQUIRED = [
    "schema_version", "call_id", "status", "line", "line.number", "line.department", "direction", "agent",
    "workstation", "started_at", "frames", "duration_seconds", "audio", "audio.codec", "audio.container",
    "audio.sample_rate", "audio.channels", "audio.channel_layout", "chunks", "chunks.0.seq",
    "chunks.0.first_frame", "chunks.0.frames", "chunks.0.bytes", "chunks.0.sha256", "chunks.0.name", "pauses",
    "pauses.0.reason", "pauses.0.source", "pauses.0.offset_frames", "pauses.0.duration_frames",
    "pauses.0.offset_seconds", "pauses.0.wall_seconds", "end", "end.reason", "retention_until", "legal_hold",
    "app_version",
]


def _field_name(path: str) -> str:
    """How an error names a field, as a regex: chunks.0.seq -> 'chunks[0]: seq', audio.codec -> 'audio: codec'."""
    parts = path.split(".")
    if len(parts) == 3:
        return re.escape(f"{parts[0]}[{parts[1]}]: {parts[2]}")
    return re.escape(": ".join(parts))


@pytest.mark.parametrize("path", REQUIRED)
def test_missing_field_is_named(path):
    doc = good_doc()
    _set(doc, path, _DELETE)
    with pytest.raises(ManifestError, match=rf"^spool/x/manifest\.json: {_field_name(path)}: missing$"):
        read(doc)


WRONG = [
    # (path, bad value, fragment of the message after the field name)
    ("schema_version", "1", "expected an integer"),
    ("schema_version", 1.0, "expected an integer"),
    ("schema_version", True, "expected an integer"),
    ("schema_version", 2, "2 is not supported"),
    ("schema_version", 0, "0 is not supported"),
    ("call_id", 42, "not a call id"),
    ("call_id", "../../etc", "not a call id: '../../etc'"),
    ("call_id", "20261129T092233Z-3f9a1c0b7d2e/../../x", "not a call id"),
    ("call_id", "２０２６1129T092233Z-3f9a1c0b7d2e", "not a call id"),
    ("status", "done", "'done' is not one of recording, complete"),
    ("status", None, "expected a string"),
    ("line", "01443 425002", "expected a JSON object"),
    ("line.number", 1443425002, "expected a string"),
    ("line.department", None, "expected a string"),
    ("direction", "sideways", "is not one of inbound, outbound"),
    ("caller", 7700900123, "expected a string"),
    ("external_id", ["x"], "expected a string"),
    ("agent", None, "expected a string"),
    ("workstation", 14, "expected a string"),
    ("started_at", "yesterday", "not an ISO 8601 UTC time"),
    ("started_at", "2026-11-29T09:22:33", "no time zone"),
    ("started_at", 1796000000, "expected a string"),
    ("ended_at", "2026-13-01T00:00:00Z", "not an ISO 8601 UTC time"),
    ("ended_at", "2026-11-29T09:00:00.000Z", "is before started_at"),
    ("frames", -1, "must be at least 0"),
    ("frames", 4320000.0, "expected an integer"),
    ("frames", "4320000", "expected an integer"),
    ("duration_seconds", 91.0, "does not match frames / sample_rate"),
    ("duration_seconds", "90", "expected a number"),
    ("audio", [], "expected a JSON object"),
    ("audio.codec", "mp3", "'mp3' is not one of opus, flac"),
    ("audio.container", "flac", "does not match codec opus"),
    ("audio.sample_rate", 0, "must be at least 8000"),
    ("audio.sample_rate", "48000", "expected an integer"),
    ("audio.channels", 3, "must be 1 or 2"),
    ("audio.channels", 0, "must be 1 or 2"),
    ("audio.channel_layout", ["agent"], "1 names for 2 channels"),
    ("audio.channel_layout", ["agent", "caller", "supervisor"], "3 names for 2 channels"),
    ("audio.channel_layout", "agent,caller", "expected a list of str"),
    ("audio.channel_layout", ["agent", 2], "expected a list of str"),
    ("audio.bitrate", "32k", "expected an integer"),
    ("audio.bitrate", 0, "must be at least 1"),
    ("chunks", {}, "expected a list of dict"),
    ("chunks", ["000001.opus"], "expected a list of dict"),
    ("chunks.0.seq", 0, "must be at least 1"),
    ("chunks.0.seq", 1_000_000, "must be at most 999999"),
    ("chunks.0.seq", "1", "expected an integer"),
    ("chunks.0.first_frame", -5, "must be at least 0"),
    ("chunks.0.frames", None, "expected an integer"),
    ("chunks.0.bytes", -1, "must be at least 0"),
    ("chunks.0.sha256", "abc", "not a lowercase hex SHA-256"),
    ("chunks.0.sha256", SHA.upper(), "not a lowercase hex SHA-256"),
    ("chunks.0.sha256", SHA + "0", "not a lowercase hex SHA-256"),
    ("chunks.0.sha256", SHA[:-1] + "g", "not a lowercase hex SHA-256"),
    ("chunks.0.sha256", SHA + "\n", "not a lowercase hex SHA-256"),
    ("chunks.0.sha256", None, "expected a string"),
    ("chunks.0.name", "000001.flac", "does not match seq 1 and codec opus"),
    ("chunks.0.name", "000002.opus", "does not match seq 1 and codec opus"),
    ("chunks.0.name", "1.opus", "does not match seq 1 and codec opus"),
    ("chunks.0.name", "../../etc/passwd", "does not match seq 1 and codec opus"),
    ("chunks.0.name", "000001.opus/../../x", "does not match seq 1 and codec opus"),
    ("pauses", None, "expected a list of dict"),
    ("pauses.0.reason", "lunch", "'lunch' is not one of payment, agent_request"),
    ("pauses.0.source", "keyboard", "'keyboard' is not one of agent, control_api"),
    ("pauses.0.end_source", "keyboard", "'keyboard' is not one of agent, control_api"),
    ("pauses.0.offset_frames", -1, "must be at least 0"),
    ("pauses.0.duration_frames", 1.5, "expected an integer"),
    ("pauses.0.offset_seconds", "12", "expected a number"),
    ("pauses.0.offset_seconds", -0.5, "must be a finite number of seconds from 0 to 86400"),
    ("pauses.0.wall_seconds", True, "expected a number"),
    ("end", "transferred", "expected a JSON object"),
    ("end.reason", "fired", "'fired' is not one of hangup, transferred, interrupted, error"),
    ("end.source", "keyboard", "'keyboard' is not one of agent"),
    ("end.department", None, "a transferred call must name the department"),
    ("end.department", "", "a transferred call must name the department"),
    ("end.department", "  ", "a transferred call must name the department"),
    ("end.department", 7, "expected a string"),
    ("retention_until", "2027-12-29", "no time zone"),
    ("retention_until", None, "expected a string"),
    ("legal_hold", "false", "expected true or false"),
    ("legal_hold", 0, "expected true or false"),
    ("app_version", 1, "expected a string"),
    ("recovered", "no", "expected true or false"),
    ("recovered", 1, "expected true or false"),
]


@pytest.mark.parametrize("path,value,problem", WRONG, ids=[f"{p}={v!r}" for p, v, _ in WRONG])
def test_bad_field_is_named(path, value, problem):
    doc = good_doc()
    _set(doc, path, value)
    with pytest.raises(ManifestError) as exc:
        read(doc)
    message = str(exc.value)
    assert re.match(rf"spool/x/manifest\.json: {_field_name(path)}: .*{re.escape(problem)}", message), message


def test_error_names_the_exact_chunk_index():
    doc = good_doc()
    doc["chunks"][1]["sha256"] = "nope"
    with pytest.raises(ManifestError, match=r"manifest\.json: chunks\[1\]: sha256: not a lowercase hex SHA-256$"):
        read(doc)
    doc = good_doc()
    doc["pauses"][1]["reason"] = "nope"
    with pytest.raises(ManifestError, match=r"manifest\.json: pauses\[1\]: reason: 'nope' is not one of"):
        read(doc)


def test_chunk_name_must_match_the_codec():
    doc = json.loads(make(audio=AudioFormat("flac", 16000, 1, ("agent",), None), frames=16000, pauses=(),
                          chunks=(ChunkEntry(1, 0, 16000, 10, SHA, "000001.flac"),)).to_json())
    assert read(doc).chunks[0].name == "000001.flac"
    doc["chunks"][0]["name"] = "000001.opus"
    with pytest.raises(ManifestError, match=r"chunks\[0\]: name: '000001.opus' does not match seq 1 and codec flac \(expected '000001.flac'\)"):
        read(doc)


def test_chunk_seq_that_does_not_match_the_name_is_refused():
    doc = good_doc()
    doc["chunks"][0]["seq"] = 3
    with pytest.raises(ManifestError, match=r"chunks\[0\]: name: '000001.opus' does not match seq 3 and codec opus"):
        read(doc)


def test_chunks_must_be_in_increasing_order():
    doc = good_doc()
    doc["chunks"].reverse()
    with pytest.raises(ManifestError, match="chunks: sequence numbers must be unique and increasing"):
        read(doc)


def test_complete_without_end_is_refused():
    doc = good_doc()
    doc["end"] = None
    with pytest.raises(ManifestError, match=r"manifest\.json: end: a complete manifest must say how the call ended"):
        read(doc)


def test_complete_without_ended_at_is_refused():
    doc = good_doc()
    doc["ended_at"] = None
    with pytest.raises(ManifestError, match="ended_at: a complete manifest must say when the call ended"):
        read(doc)


def test_recording_status_may_lack_end_and_ended_at():
    doc = good_doc()
    doc.update(status="recording", end=None, ended_at=None)
    m = read(doc)
    assert m.status == "recording" and m.end is None and m.ended_at is None


def test_transferred_without_department_is_refused():
    doc = good_doc()
    del doc["end"]["department"]
    with pytest.raises(ManifestError, match="manifest.json: end: department: a transferred call must name the department"):
        read(doc)


def test_hangup_needs_no_department():
    doc = good_doc()
    doc["end"] = {"reason": "hangup", "source": "agent", "department": None}
    assert read(doc).end == EndInfo("hangup", "agent", None)


def test_recovered_may_be_absent():
    doc = good_doc()
    del doc["recovered"]
    assert read(doc).recovered is False


def test_derived_fields_are_checked_not_trusted():
    doc = good_doc()
    doc["duration_seconds"] = 90.0004  # within rounding
    assert read(doc).duration_seconds == 90.0


@pytest.mark.parametrize("top", [[], "manifest", 1, None])
def test_top_level_must_be_an_object(top):
    with pytest.raises(ManifestError, match="spool/x/manifest.json: expected a JSON object"):
        read(top)


@pytest.mark.parametrize("raw", [b"", b"{", b"{'a': 1}", b"\xff\xfe\x00garbage", "{\"schema_version\": 1,}"])
def test_invalid_json_names_where(raw):
    with pytest.raises(ManifestError, match=r"^store/20261129/x/manifest\.json: not (valid JSON|UTF-8)"):
        Manifest.from_json(raw, where="store/20261129/x/manifest.json")


def test_default_where_is_manifest():
    with pytest.raises(ManifestError, match=r"^manifest: not valid JSON"):
        Manifest.from_json("nope")
    with pytest.raises(ManifestError, match=r"^manifest: schema_version: missing"):
        Manifest.from_json("{}")


def test_nan_and_infinity_are_refused():
    raw = make().to_json().decode().replace('"wall_seconds": 18.004', '"wall_seconds": NaN')
    with pytest.raises(ManifestError, match=r"^manifest: not acceptable JSON \(NaN is not a number"):
        Manifest.from_json(raw)
    raw = make().to_json().decode().replace('"offset_seconds": 12.0', '"offset_seconds": Infinity')
    with pytest.raises(ManifestError, match=r"^manifest: not acceptable JSON \(Infinity is not a number"):
        Manifest.from_json(raw)
    raw = make().to_json().decode().replace('"offset_seconds": 12.0', '"offset_seconds": 1e999')
    with pytest.raises(ManifestError, match=r"^manifest: not acceptable JSON \(number inf is out of range"):
        Manifest.from_json(raw)


def test_unknown_extra_fields_are_ignored():
    doc = good_doc()
    doc["future_field"] = {"x": 1}
    assert read(doc) == make()


def test_manifest_error_is_a_value_error():
    assert issubclass(ManifestError, ValueError)


def test_reading_does_not_mutate_the_document():
    doc = good_doc()
    before = copy.deepcopy(doc)
    Manifest.from_dict(doc)
    assert doc == before


def test_examples_in_docs_read_back():
    """docs/manifest.md shows real to_json() output: every JSON example must read and re-write identically."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[3] / "docs" / "manifest.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        m = Manifest.from_json(block, where="docs/manifest.md")
        assert m.to_json().decode() == block
    assert Manifest.from_json(blocks[0]).retention_until == utc(2027, 12, 29, 9, 22, 33, 412000)


# ==== hostile manifests: bounded, and always a ManifestError ===========================================

from callrec_desktop.core.manifest import (  # noqa: E402
    MAX_CALL_SECONDS,
    MAX_JSON_DEPTH,
    MAX_MANIFEST_BYTES,
    StoreDataError,
    load_json_object,
)


def test_deep_nesting_is_refused_without_recursion_error():
    with pytest.raises(ManifestError, match=r"^k: not (valid|acceptable) JSON"):
        Manifest.from_json(b"[" * 200_000, where="k")
    nested = json.dumps({"a": 1}).encode()
    for _ in range(MAX_JSON_DEPTH):
        nested = b'{"x": ' + nested + b"}"
    with pytest.raises(StoreDataError, match=f"nested more than {MAX_JSON_DEPTH} deep"):
        load_json_object(nested, "k")


def test_huge_integer_is_refused_before_any_arithmetic():
    raw = make().to_json().decode().replace(f'"frames": {90 * 48000}', '"frames": ' + "1" + "0" * 400)
    with pytest.raises(ManifestError, match=r"integer of 401 digits"):
        Manifest.from_json(raw, where="k")


def test_frames_beyond_a_day_are_refused():
    doc = good_doc()
    doc["frames"] = 365 * 86400 * 48000
    doc["duration_seconds"] = 365 * 86400.0
    with pytest.raises(ManifestError, match=rf"frames: must be at most {MAX_CALL_SECONDS * 48000}"):
        read(doc)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                  "1999-12-31T23:59:59Z", "2101-01-01T00:00:00Z"])
def test_times_outside_2000_to_2100_are_refused(when):
    doc = good_doc()
    doc["started_at"] = when
    with pytest.raises(ManifestError, match=r"started_at: not an ISO 8601 UTC time from 2000 to 2100"):
        read(doc)


def test_overlapping_pauses_are_refused():
    doc = good_doc()
    doc["pauses"][1]["offset_frames"] = 13 * 48000  # inside the first pause (12 s .. 30 s)
    with pytest.raises(ManifestError, match=r"pauses\[1\]: offset_frames: pause at frame 624000 overlaps"):
        read(doc)


def test_chunk_or_pause_past_the_end_is_refused():
    doc = good_doc()
    doc["chunks"][1]["frames"] = 81 * 48000
    with pytest.raises(ManifestError, match=r"chunks\[1\]: frames: the chunk runs to frame 4368000, past"):
        read(doc)
    doc = good_doc()
    doc["pauses"][1]["duration_frames"] = 31 * 48000
    with pytest.raises(ManifestError, match=r"pauses\[1\]: duration_frames: the pause runs to frame"):
        read(doc)


def test_oversized_invalid_utf8_and_duplicate_keys_are_refused():
    with pytest.raises(ManifestError, match=rf"^k: {MAX_MANIFEST_BYTES + 1} bytes, more than the"):
        Manifest.from_json(b" " * (MAX_MANIFEST_BYTES + 1), where="k")
    with pytest.raises(ManifestError, match=r"^k: not UTF-8"):
        Manifest.from_json(make().to_json().replace(b"jbloggs", b"jb\xffloggs"), where="k")
    with pytest.raises(ManifestError, match=r"key 'agent' appears twice"):
        Manifest.from_json(make().to_json().replace(b'"agent": "jbloggs"', b'"agent": "jbloggs", "agent": "x"'),
                           where="k")


def test_chunk_bytes_are_bounded_by_its_frames():
    doc = good_doc()
    doc["chunks"][0]["bytes"] = 10 * 48000 * 2 * 4 + 64 * 1024 + 1  # more than 32-bit PCM plus headers
    with pytest.raises(ManifestError, match=r"chunks\[0\]: bytes: must be at most 3905536"):
        read(doc)
