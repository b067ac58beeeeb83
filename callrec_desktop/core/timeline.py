"""The call timeline: what happened, at which capture frame, and whether each frame may be kept.

Pure: no I/O, no threads, no clocks. Every event is stamped with the capture frame index at
which it takes effect; the gate (``segments``) answers per frame, so whoever encodes late
still drops exactly the frames captured after a pause or a transfer.

States of the capture stream::

    idle ──start_call──▶ recording ⇄ paused (payment | agent request) ──▶ ended
                              └─ end_call / transfer / interrupt / shutdown / disk full ─┘

A payment pause is enforced: ``resume`` raises ``PaymentInProgressError``; only
``end_payment`` lifts it. Ending or transferring a call during a payment is allowed.
"""

from __future__ import annotations

import bisect
import numbers
from dataclasses import dataclass, field, replace
from enum import Enum


class CallState(Enum):
    IDLE = "idle"
    RECORDING = "recording"
    PAUSED = "paused"
    ENDED = "ended"


class EndReason(Enum):
    HANGUP = "hangup"
    TRANSFERRED = "transferred"
    INTERRUPTED = "interrupted"  # the device vanished, or the program died (crash recovery)
    ERROR = "error"
    # The program was closed during the call: SIGTERM, the session ending (logoff, shutdown)
    # or the agent closing the window. The chunks are sealed and the manifest final; unlike
    # ``interrupted`` nothing was lost. Last, so older readers' messages list the same prefix.
    SHUTDOWN = "shutdown"
    # This PC's disk filled up during the call: recording stopped there, the manifest is final
    # at once with only the chunks that reached the disk whole, and the call ends where its
    # last durable audio (or pause) ends. After ``shutdown``, for the same reason.
    DISK_FULL = "disk_full"


class PauseReason(Enum):
    PAYMENT = "payment"
    AGENT_REQUEST = "agent_request"


class EventSource(Enum):
    """Who asked for a change: kept with every pause and resume."""

    AGENT = "agent"
    CONTROL_API = "control_api"
    AUTOMATIC = "automatic"
    SCRIPT = "script"
    SYSTEM = "system"


class TimelineError(Exception):
    """Base class: an event the timeline refuses. Nothing changes when it is raised."""


class IllegalTransitionError(TimelineError):
    """The event is not allowed in the current state (e.g. a payment ending that never started)."""


class PaymentInProgressError(IllegalTransitionError):
    """Resume was asked for while a payment is being taken."""


class EventOrderError(TimelineError):
    """An event stamped before an event already applied."""


@dataclass(frozen=True)
class CallInfo:
    """What is known about a call when it starts."""

    call_id: str
    line_number: str
    department: str
    caller: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class Pause:
    reason: PauseReason
    source: EventSource
    start_frame: int
    end_frame: int | None = None
    end_source: EventSource | None = None


@dataclass
class CallSession:
    """One call's own record: its events as frames, its pauses, how it ended."""

    info: CallInfo
    start_frame: int
    state: CallState = CallState.RECORDING
    pauses: list[Pause] = field(default_factory=list)
    end_frame: int | None = None
    end_reason: EndReason | None = None
    end_source: EventSource | None = None
    transferred_to: str | None = None

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def open_pause(self) -> Pause | None:
        if self.pauses and self.pauses[-1].end_frame is None:
            return self.pauses[-1]
        return None

    @property
    def payment_in_progress(self) -> bool:
        p = self.open_pause
        return p is not None and p.reason is PauseReason.PAYMENT


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` of the capture stream share one state."""

    start: int
    end: int
    call_id: str | None
    state: CallState

    @property
    def keep(self) -> bool:
        return self.state is CallState.RECORDING


class CallTimeline:
    """The capture stream's timeline: at most one call at a time, any number in sequence.

    Not thread-safe: the recorder serialises access.
    """

    def __init__(self) -> None:
        # (frame, call_id, state): the state from that frame onward. Sorted by frame.
        self._marks: list[tuple[int, str | None, CallState]] = [(0, None, CallState.IDLE)]
        self._frames: list[int] = [0]
        self.calls: dict[str, CallSession] = {}
        self.current: CallSession | None = None

    # ---- queries -------------------------------------------------------------------
    @property
    def last_event_frame(self) -> int:
        return self._frames[-1]

    @property
    def state(self) -> CallState:
        """The state after the latest event."""
        return self._marks[-1][2]

    @property
    def first_known_frame(self) -> int:
        """The earliest frame the timeline can still answer for (0 until ``forget_before``)."""
        return self._frames[0]

    def state_at(self, frame: int) -> tuple[str | None, CallState]:
        self._check_known(frame)
        i = bisect.bisect_right(self._frames, frame) - 1
        _, call_id, state = self._marks[i]
        return call_id, state

    def segments(self, start: int, end: int) -> list[Segment]:
        """Split frames ``[start, end)`` into runs of one state (the gate)."""
        if end <= start:
            return []
        self._check_known(start)
        i = bisect.bisect_right(self._frames, start) - 1
        out: list[Segment] = []
        last = len(self._frames) - 1
        while True:
            _, call_id, state = self._marks[i]
            lo = max(start, self._frames[i])
            hi = min(end, self._frames[i + 1]) if i < last else end
            if hi > lo:
                out.append(Segment(lo, hi, call_id, state))
            if i >= last or self._frames[i + 1] >= end:
                break
            i += 1
        return out

    def forget_before(self, frame: int) -> None:
        """Drop marks wholly before ``frame`` (keeps memory flat over a long shift).

        Answers for ``frame`` and later are unchanged; asking about a frame before
        ``first_known_frame`` afterwards raises ValueError instead of guessing.
        """
        i = bisect.bisect_right(self._frames, frame) - 1
        if i > 0:
            del self._marks[:i]
            del self._frames[:i]

    # ---- events --------------------------------------------------------------------
    def start_call(self, frame: int, info: CallInfo) -> CallSession:
        frame = self._check_order(frame)
        if not isinstance(info, CallInfo):
            raise IllegalTransitionError(f"start_call needs a CallInfo, got {type(info).__name__}")
        if self.current is not None and self.current.state is not CallState.ENDED:
            raise IllegalTransitionError(
                f"call {info.call_id} cannot start: call {self.current.call_id} is still {self.current.state.value}"
            )
        if info.call_id in self.calls:
            raise IllegalTransitionError(f"call {info.call_id} already exists")
        session = CallSession(info=info, start_frame=frame)
        self.calls[info.call_id] = session
        self.current = session
        self._mark(frame, info.call_id, CallState.RECORDING)
        return session

    def start_payment(self, frame: int, source: EventSource) -> None:
        source = _enum(EventSource, source, "event source")
        s = self._active("payment cannot start")
        if s.payment_in_progress:
            raise IllegalTransitionError("payment cannot start: a payment is already in progress")
        frame = self._check_order(frame)
        if s.open_pause is not None:  # an agent pause becomes a payment pause
            self._close_pause(s, frame, source)
        s.pauses.append(Pause(PauseReason.PAYMENT, source, frame))
        s.state = CallState.PAUSED
        self._mark(frame, s.call_id, CallState.PAUSED)

    def end_payment(self, frame: int, source: EventSource) -> None:
        source = _enum(EventSource, source, "event source")
        s = self._active("payment cannot end")
        if not s.payment_in_progress:
            raise IllegalTransitionError("payment cannot end: no payment is in progress")
        frame = self._check_order(frame)
        self._close_pause(s, frame, source)
        s.state = CallState.RECORDING
        self._mark(frame, s.call_id, CallState.RECORDING)

    def pause(self, frame: int, source: EventSource, reason: PauseReason = PauseReason.AGENT_REQUEST) -> None:
        # Coerce first: a reason given as the string "payment" must still be an enforced payment pause.
        source = _enum(EventSource, source, "event source")
        reason = _enum(PauseReason, reason, "pause reason")
        if reason is PauseReason.PAYMENT:
            self.start_payment(frame, source)
            return
        s = self._active("recording cannot pause")
        if s.state is CallState.PAUSED:
            raise IllegalTransitionError("recording cannot pause: it is already paused")
        frame = self._check_order(frame)
        s.pauses.append(Pause(reason, source, frame))
        s.state = CallState.PAUSED
        self._mark(frame, s.call_id, CallState.PAUSED)

    def resume(self, frame: int, source: EventSource) -> None:
        source = _enum(EventSource, source, "event source")
        s = self._active("recording cannot resume")
        if s.payment_in_progress:
            raise PaymentInProgressError(
                "recording cannot resume while a payment is in progress: finish the payment first"
            )
        if s.state is not CallState.PAUSED:
            raise IllegalTransitionError("recording cannot resume: it is not paused")
        frame = self._check_order(frame)
        self._close_pause(s, frame, source)
        s.state = CallState.RECORDING
        self._mark(frame, s.call_id, CallState.RECORDING)

    def transfer(self, frame: int, department: str, source: EventSource) -> CallSession:
        if not isinstance(department, str) or not department.strip():
            raise IllegalTransitionError(f"transfer needs a department, got {department!r}")
        source = _enum(EventSource, source, "event source")
        return self._end(frame, EndReason.TRANSFERRED, source, "call cannot be transferred", department.strip())

    def end_call(self, frame: int, source: EventSource, reason: EndReason = EndReason.HANGUP) -> CallSession:
        # Coerce first: the string "transferred" must be refused like the enum member.
        source = _enum(EventSource, source, "event source")
        reason = _enum(EndReason, reason, "end reason")
        if reason is EndReason.TRANSFERRED:
            raise IllegalTransitionError("use transfer() to end a call by transferring it")
        return self._end(frame, reason, source, "call cannot end")

    # ---- internals -----------------------------------------------------------------
    def _active(self, what: str) -> CallSession:
        s = self.current
        if s is None or s.state is CallState.ENDED:
            raise IllegalTransitionError(f"{what}: no call is in progress")
        return s

    def _end(
        self, frame: int, reason: EndReason, source: EventSource, what: str, department: str | None = None
    ) -> CallSession:
        s = self._active(what)
        frame = self._check_order(frame)
        if s.open_pause is not None:
            self._close_pause(s, frame, source)
        s.state = CallState.ENDED
        s.end_frame = frame
        s.end_reason = reason
        s.end_source = source
        s.transferred_to = department
        self._mark(frame, s.call_id, CallState.ENDED)
        return s

    @staticmethod
    def _close_pause(s: CallSession, frame: int, source: EventSource) -> None:
        s.pauses[-1] = replace(s.pauses[-1], end_frame=frame, end_source=source)

    def _check_order(self, frame: int) -> int:
        """``frame`` as a plain int if it may be applied now, else EventOrderError."""
        # bool is an int subclass: True must not pass as frame 1. Integer types such as
        # numpy.int64 are accepted and normalised to int.
        if isinstance(frame, bool) or not isinstance(frame, numbers.Integral) or frame < 0:
            raise EventOrderError(f"event frame must be a non-negative integer, got {frame!r}")
        frame = int(frame)
        if frame < self._frames[-1]:
            raise EventOrderError(
                f"event at frame {frame} is earlier than the last event (frame {self._frames[-1]})"
            )
        return frame

    def _check_known(self, frame: int) -> None:
        if frame < self._frames[0]:
            raise ValueError(
                f"frame {frame} is before the earliest frame the timeline still knows ({self._frames[0]})"
            )

    def _mark(self, frame: int, call_id: str | None, state: CallState) -> None:
        if self._frames[-1] == frame:
            # Several events at one frame: the last one decides the state from there on.
            self._marks[-1] = (frame, call_id, state)
        else:
            self._marks.append((frame, call_id, state))
            self._frames.append(frame)


def _enum(cls: type[Enum], value: object, what: str):  # type: ignore[no-untyped-def]
    """``value`` as a member of ``cls`` (a member or its value), else IllegalTransitionError."""
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise IllegalTransitionError(f"unknown {what} {value!r} (expected one of {allowed})") from None
