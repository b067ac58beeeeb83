"""Scripts for headless recording: a JSON list of call events with times into the source.

Validated completely before any audio is touched: every field, the order of times, and that
each event is allowed in the state the previous ones leave (checked on a real timeline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callrec_desktop.core.timeline import CallInfo, CallTimeline, EventSource, TimelineError

EVENTS: dict[str, dict[str, bool]] = {
    # event -> {field: required}
    "call_started": {"line": True, "caller": False, "external_id": False},
    "payment_started": {},
    "payment_ended": {},
    "transferred": {"to": True},
    "call_ended": {},
}


class ScriptError(ValueError):
    """A script that cannot be run; the message names the file, the event and the problem."""


@dataclass(frozen=True)
class ScriptEvent:
    index: int
    at: float  # seconds into the source
    event: str
    line: str | None = None
    caller: str | None = None
    external_id: str | None = None
    to: str | None = None

    def frame(self, sample_rate: int) -> int:
        return round(self.at * sample_rate)


def parse_script(
    text: str | bytes,
    where: str = "script",
    *,
    check_line: Callable[[str], object] | None = None,
    check_department: Callable[[str], object] | None = None,
) -> list[ScriptEvent]:
    """Parse and validate a script. ``check_line``/``check_department`` raise ValueError for
    unknown lines or departments (their message is kept)."""
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ScriptError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, list) or not doc:
        raise ScriptError(f"{where}: expected a non-empty JSON list of events")
    events: list[ScriptEvent] = []
    last_at = 0.0
    for i, item in enumerate(doc):
        here = f"{where}: event[{i}]"
        if not isinstance(item, dict):
            raise ScriptError(f"{here}: expected an object, got {type(item).__name__}")
        name = item.get("event")
        if name not in EVENTS:
            raise ScriptError(f"{here}.event: {name!r} is not one of {', '.join(EVENTS)}")
        fields = EVENTS[name]
        unknown = set(item) - set(fields) - {"at", "event"}
        if unknown:
            raise ScriptError(f"{here}: unknown field(s) {', '.join(sorted(unknown))} for {name}")
        at = item.get("at")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at < 0:
            raise ScriptError(f"{here}.at: must be a non-negative number of seconds, got {at!r}")
        if at < last_at:
            raise ScriptError(f"{here}.at: {at} goes backwards (previous event at {last_at})")
        last_at = float(at)
        values: dict[str, Any] = {}
        for f, required in fields.items():
            v = item.get(f)
            if v is None:
                if required:
                    raise ScriptError(f"{here}.{f}: required for {name}")
                continue
            if not isinstance(v, str) or not v.strip():
                raise ScriptError(f"{here}.{f}: must be a non-empty string, got {v!r}")
            values[f] = v.strip()
        try:
            if "line" in values and check_line is not None:
                check_line(values["line"])
            if "to" in values and check_department is not None:
                check_department(values["to"])
        except ValueError as exc:
            raise ScriptError(f"{here}: {exc}") from None
        events.append(ScriptEvent(i, float(at), name, **values))
    _check_states(events, where)
    return events


def _check_states(events: list[ScriptEvent], where: str) -> None:
    """Replay the events on a timeline so an impossible sequence fails before recording."""
    tl = CallTimeline()
    src = EventSource.SCRIPT
    for n, e in enumerate(events):
        frame = round(e.at * 1000)  # millisecond resolution is enough to check the order of states
        try:
            if e.event == "call_started":
                tl.start_call(frame, CallInfo(f"check-{n}", e.line or "", ""))
            elif e.event == "payment_started":
                tl.start_payment(frame, src)
            elif e.event == "payment_ended":
                tl.end_payment(frame, src)
            elif e.event == "transferred":
                tl.transfer(frame, e.to or "", src)
            elif e.event == "call_ended":
                tl.end_call(frame, src)
        except TimelineError as exc:
            raise ScriptError(f"{where}: event[{e.index}] ({e.event} at {e.at} s): {exc}") from None
