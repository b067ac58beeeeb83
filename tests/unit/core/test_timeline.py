"""The call timeline and its gate: which capture frames may be kept, decided per frame."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callrec_desktop.core.timeline import (
    CallInfo,
    CallState,
    CallTimeline,
    EndReason,
    EventOrderError,
    EventSource,
    IllegalTransitionError,
    Pause,
    PauseReason,
    PaymentInProgressError,
    Segment,
    TimelineError,
)

A = EventSource.AGENT
API = EventSource.CONTROL_API
SCRIPT = EventSource.SCRIPT
REC, PAU, END, IDLE = CallState.RECORDING, CallState.PAUSED, CallState.ENDED, CallState.IDLE


def info(n: int = 1) -> CallInfo:
    return CallInfo(call_id=f"20261129T0922{n:02d}Z-00000000000{n % 10}", line_number="01443 425002",
                    department="Council Tax", caller="07700900123")


def tl_in_call(frame: int = 0) -> CallTimeline:
    tl = CallTimeline()
    tl.start_call(frame, info())
    return tl


def snapshot(tl: CallTimeline):
    """Everything observable about a timeline, to prove a refused event changed nothing."""
    return (
        tl.state,
        tl.last_event_frame,
        [(s.start, s.end, s.call_id, s.state) for s in tl.segments(0, tl.last_event_frame + 10)],
        {cid: copy.deepcopy(vars(s)) for cid, s in tl.calls.items()},
        tl.current.call_id if tl.current else None,
    )


def kept(tl: CallTimeline, start: int, end: int) -> list[int]:
    return [f for seg in tl.segments(start, end) if seg.keep for f in range(seg.start, seg.end)]


# ==== legal transitions =================================================================

def test_new_timeline_is_idle_and_keeps_nothing():
    tl = CallTimeline()
    assert tl.state is IDLE
    assert tl.current is None and tl.calls == {}
    assert tl.state_at(0) == (None, IDLE)
    assert tl.segments(0, 1000) == [Segment(0, 1000, None, IDLE)]
    assert kept(tl, 0, 1000) == []


def test_idle_to_recording_via_start_call():
    tl = CallTimeline()
    s = tl.start_call(100, info())
    assert s.state is REC and s.start_frame == 100 and s.call_id == info().call_id
    assert tl.current is s and tl.calls == {info().call_id: s}
    assert tl.state is REC
    assert tl.state_at(99) == (None, IDLE)
    assert tl.state_at(100) == (info().call_id, REC)
    assert tl.segments(0, 200) == [Segment(0, 100, None, IDLE), Segment(100, 200, info().call_id, REC)]


def test_recording_to_paused_via_start_payment():
    tl = tl_in_call()
    tl.start_payment(500, API)
    s = tl.current
    assert s.state is PAU and tl.state is PAU
    assert s.payment_in_progress
    assert s.pauses == [Pause(PauseReason.PAYMENT, API, 500)]
    assert tl.state_at(499)[1] is REC and tl.state_at(500)[1] is PAU


def test_recording_to_paused_via_agent_pause():
    tl = tl_in_call()
    tl.pause(300, A)
    s = tl.current
    assert s.state is PAU and not s.payment_in_progress
    assert s.pauses == [Pause(PauseReason.AGENT_REQUEST, A, 300)]


def test_pause_with_payment_reason_is_a_payment():
    tl = tl_in_call()
    tl.pause(300, API, reason=PauseReason.PAYMENT)
    assert tl.current.payment_in_progress
    with pytest.raises(PaymentInProgressError):
        tl.resume(400, A)


def test_payment_pause_to_recording_via_end_payment():
    tl = tl_in_call()
    tl.start_payment(500, API)
    tl.end_payment(900, API)
    s = tl.current
    assert s.state is REC and not s.payment_in_progress and s.open_pause is None
    assert s.pauses == [Pause(PauseReason.PAYMENT, API, 500, 900, API)]
    assert tl.state_at(899)[1] is PAU and tl.state_at(900)[1] is REC


def test_agent_pause_to_recording_via_resume():
    tl = tl_in_call()
    tl.pause(300, A)
    tl.resume(450, EventSource.AGENT)
    assert tl.state is REC
    assert tl.current.pauses == [Pause(PauseReason.AGENT_REQUEST, A, 300, 450, A)]


def test_agent_pause_upgrades_to_payment_pause():
    tl = tl_in_call()
    tl.pause(300, A)
    tl.start_payment(400, API)
    s = tl.current
    assert s.state is PAU and s.payment_in_progress
    assert s.pauses == [
        Pause(PauseReason.AGENT_REQUEST, A, 300, 400, API),
        Pause(PauseReason.PAYMENT, API, 400),
    ]
    # Once upgraded the pause is enforced: resume is refused, only end_payment lifts it.
    with pytest.raises(PaymentInProgressError):
        tl.resume(450, A)
    tl.end_payment(600, API)
    assert tl.state is REC
    assert kept(tl, 0, 700) == list(range(0, 300)) + list(range(600, 700))


@pytest.mark.parametrize("pause_first", [None, "agent", "payment"])
def test_end_call_from_recording_or_paused(pause_first):
    tl = tl_in_call()
    if pause_first == "agent":
        tl.pause(100, A)
    elif pause_first == "payment":
        tl.start_payment(100, API)
    s = tl.end_call(200, A)
    assert s.state is END and tl.state is END
    assert s.end_frame == 200 and s.end_reason is EndReason.HANGUP and s.end_source is A
    assert s.transferred_to is None
    assert s.open_pause is None  # a pause still open at the end is closed at the end
    if pause_first:
        assert (s.pauses[-1].start_frame, s.pauses[-1].end_frame, s.pauses[-1].end_source) == (100, 200, A)
    assert tl.state_at(200) == (s.call_id, END)
    assert kept(tl, 0, 400) == (list(range(100)) if pause_first else list(range(200)))


@pytest.mark.parametrize("reason", [EndReason.INTERRUPTED, EndReason.ERROR, EndReason.HANGUP, EndReason.SHUTDOWN])
def test_end_call_reasons(reason):
    tl = tl_in_call()
    s = tl.end_call(50, EventSource.SYSTEM, reason=reason)
    assert s.end_reason is reason and s.end_source is EventSource.SYSTEM


@pytest.mark.parametrize("pause_first", [None, "payment"])
def test_shutdown_ends_the_call_like_a_hangup_and_closes_an_open_payment_pause(pause_first):
    """SIGTERM / logoff during a call: the call ends at that frame with reason ``shutdown``
    (given as the member or its value), a payment pause still open is closed there, and
    nothing after it is kept."""
    tl = tl_in_call()
    if pause_first:
        tl.start_payment(100, API)
    s = tl.end_call(200, EventSource.SYSTEM, reason="shutdown")
    assert (s.state, s.end_frame, s.end_reason, s.end_source) == (END, 200, EndReason.SHUTDOWN, EventSource.SYSTEM)
    assert s.open_pause is None and not s.payment_in_progress
    assert kept(tl, 0, 400) == list(range(100 if pause_first else 200))


def test_end_reasons_keep_their_order_with_shutdown_last():
    """The manifest's END_REASONS follow this order, and ``'x' is not one of hangup, ...``
    messages from older versions stay a prefix of the new one (disk_full came after shutdown)."""
    assert [r.value for r in EndReason] == ["hangup", "transferred", "interrupted", "error", "shutdown", "disk_full"]


@pytest.mark.parametrize("pause_first", [None, "agent", "payment"])
def test_transfer_ends_recording_at_that_frame(pause_first):
    tl = tl_in_call()
    if pause_first == "agent":
        tl.pause(100, A)
    elif pause_first == "payment":
        tl.start_payment(100, API)
    s = tl.transfer(250, "Planning", A)
    assert s.state is END and s.end_reason is EndReason.TRANSFERRED
    assert s.transferred_to == "Planning" and s.end_frame == 250 and s.end_source is A
    assert s.open_pause is None and not s.payment_in_progress
    assert tl.state_at(249)[1] is (PAU if pause_first else REC)
    assert tl.state_at(250)[1] is END
    assert kept(tl, 0, 1000) == (list(range(100)) if pause_first else list(range(250)))


def test_transfer_department_is_trimmed():
    tl = tl_in_call()
    assert tl.transfer(10, "  Planning ", A).transferred_to == "Planning"


def test_after_the_end_nothing_is_kept_until_the_next_call():
    tl = tl_in_call()
    tl.end_call(100, A)
    assert tl.segments(100, 10_000) == [Segment(100, 10_000, info().call_id, END)]
    assert not any(seg.keep for seg in tl.segments(0, 10_000) if seg.start >= 100)


# ==== illegal transitions ================================================================

def _idle():
    return CallTimeline()


def _recording():
    return tl_in_call(10)


def _agent_paused():
    tl = tl_in_call(10)
    tl.pause(20, A)
    return tl


def _paying():
    tl = tl_in_call(10)
    tl.start_payment(20, API)
    return tl


def _ended():
    tl = tl_in_call(10)
    tl.start_payment(20, API)
    tl.end_payment(30, API)
    tl.end_call(40, A)
    return tl


ILLEGAL = [
    # (name, make timeline, event, expected error, message fragment)
    ("payment end without start", _recording, lambda t: t.end_payment(50, API), IllegalTransitionError,
     "no payment is in progress"),
    ("payment end during agent pause", _agent_paused, lambda t: t.end_payment(50, API), IllegalTransitionError,
     "no payment is in progress"),
    ("payment end with no call", _idle, lambda t: t.end_payment(50, API), IllegalTransitionError,
     "no call is in progress"),
    ("payment start with no call", _idle, lambda t: t.start_payment(50, API), IllegalTransitionError,
     "no call is in progress"),
    ("payment start after the end", _ended, lambda t: t.start_payment(50, API), IllegalTransitionError,
     "no call is in progress"),
    ("double payment start", _paying, lambda t: t.start_payment(50, API), IllegalTransitionError,
     "already in progress"),
    ("payment via pause() during payment", _paying, lambda t: t.pause(50, API, PauseReason.PAYMENT),
     IllegalTransitionError, "already in progress"),
    ("resume during payment", _paying, lambda t: t.resume(50, A), PaymentInProgressError,
     "while a payment is in progress"),
    ("resume while recording", _recording, lambda t: t.resume(50, A), IllegalTransitionError, "not paused"),
    ("resume with no call", _idle, lambda t: t.resume(50, A), IllegalTransitionError, "no call is in progress"),
    ("agent pause during payment", _paying, lambda t: t.pause(50, A), IllegalTransitionError, "already paused"),
    ("double agent pause", _agent_paused, lambda t: t.pause(50, A), IllegalTransitionError, "already paused"),
    ("pause with no call", _idle, lambda t: t.pause(50, A), IllegalTransitionError, "no call is in progress"),
    ("pause after the end", _ended, lambda t: t.pause(50, A), IllegalTransitionError, "no call is in progress"),
    ("start_call inside a call", _recording, lambda t: t.start_call(50, info(2)), IllegalTransitionError,
     "is still recording"),
    ("start_call inside a payment", _paying, lambda t: t.start_call(50, info(2)), IllegalTransitionError,
     "is still paused"),
    ("start_call reusing an id", _ended, lambda t: t.start_call(50, info(1)), IllegalTransitionError,
     "already exists"),
    ("start_call without CallInfo", _idle, lambda t: t.start_call(50, "c1"), IllegalTransitionError,
     "needs a CallInfo"),
    ("end_call with no call", _idle, lambda t: t.end_call(50, A), IllegalTransitionError, "no call is in progress"),
    ("end_call twice", _ended, lambda t: t.end_call(50, A), IllegalTransitionError, "no call is in progress"),
    ("transfer with no call", _idle, lambda t: t.transfer(50, "Planning", A), IllegalTransitionError,
     "no call is in progress"),
    ("transfer after the end", _ended, lambda t: t.transfer(50, "Planning", A), IllegalTransitionError,
     "no call is in progress"),
    ("transfer to empty department", _recording, lambda t: t.transfer(50, "", A), IllegalTransitionError,
     "needs a department"),
    ("transfer to blank department", _paying, lambda t: t.transfer(50, "   ", A), IllegalTransitionError,
     "needs a department"),
    ("transfer to None", _recording, lambda t: t.transfer(50, None, A), IllegalTransitionError,
     "needs a department"),
    ("end_call(reason=TRANSFERRED)", _recording, lambda t: t.end_call(50, A, reason=EndReason.TRANSFERRED),
     IllegalTransitionError, "use transfer()"),
    ("end_call(reason='transferred')", _recording, lambda t: t.end_call(50, A, reason="transferred"),
     IllegalTransitionError, "use transfer()"),
    ("unknown end reason", _recording, lambda t: t.end_call(50, A, reason="bored"), IllegalTransitionError,
     "unknown end reason 'bored'"),
    ("unknown source", _recording, lambda t: t.start_payment(50, "keyboard"), IllegalTransitionError,
     "unknown event source 'keyboard'"),
    ("unknown pause reason", _recording, lambda t: t.pause(50, A, reason="lunch"), IllegalTransitionError,
     "unknown pause reason 'lunch'"),
]


@pytest.mark.parametrize("name,make,event,error,message", ILLEGAL, ids=[c[0] for c in ILLEGAL])
def test_illegal_event_raises_and_changes_nothing(name, make, event, error, message):
    tl = make()
    before = snapshot(tl)
    with pytest.raises(error, match=message) as exc:
        event(tl)
    assert isinstance(exc.value, IllegalTransitionError) and isinstance(exc.value, TimelineError)
    assert snapshot(tl) == before


def test_payment_in_progress_error_is_an_illegal_transition():
    assert issubclass(PaymentInProgressError, IllegalTransitionError)


def test_resume_stays_refused_for_the_whole_payment():
    tl = _paying()
    for f in (20, 21, 25, 29):
        with pytest.raises(PaymentInProgressError):
            tl.resume(f, EventSource.AGENT)
    with pytest.raises(PaymentInProgressError):
        tl.resume(29, EventSource.CONTROL_API)
    assert tl.state is PAU
    assert kept(tl, 0, 100) == list(range(10, 20))


def test_string_payment_reason_is_still_an_enforced_payment_pause():
    tl = tl_in_call()
    tl.pause(100, "agent", reason="payment")
    s = tl.current
    assert s.payment_in_progress and s.pauses[-1].reason is PauseReason.PAYMENT
    assert s.pauses[-1].source is EventSource.AGENT
    with pytest.raises(PaymentInProgressError):
        tl.resume(200, "agent")


# ==== event order and frame values =======================================================

ORDERED_EVENTS = [
    ("start_payment", lambda t, f: t.start_payment(f, API)),
    ("pause", lambda t, f: t.pause(f, A)),
    ("end_call", lambda t, f: t.end_call(f, A)),
    ("transfer", lambda t, f: t.transfer(f, "Planning", A)),
]


@pytest.mark.parametrize("name,event", ORDERED_EVENTS, ids=[e[0] for e in ORDERED_EVENTS])
def test_event_before_the_last_event_is_refused(name, event):
    tl = tl_in_call(1000)
    before = snapshot(tl)
    with pytest.raises(EventOrderError, match="frame 999 is earlier than the last event \\(frame 1000\\)"):
        event(tl, 999)
    assert snapshot(tl) == before


def test_end_payment_and_resume_before_the_last_event_are_refused():
    tl = _paying()
    with pytest.raises(EventOrderError, match="earlier"):
        tl.end_payment(19, API)
    assert tl.current.payment_in_progress
    tl.end_payment(30, API)
    tl.pause(40, A)
    with pytest.raises(EventOrderError, match="earlier"):
        tl.resume(39, A)
    assert tl.state is PAU


def test_start_call_before_the_previous_end_is_refused():
    tl = _ended()  # ended at 40
    before = snapshot(tl)
    with pytest.raises(EventOrderError):
        tl.start_call(39, info(2))
    assert snapshot(tl) == before
    assert info(2).call_id not in tl.calls


@pytest.mark.parametrize("frame", [-1, -1000, 1.0, 1.5, "10", None, True, False, float("nan")])
def test_bad_frame_values_are_refused(frame):
    tl = CallTimeline()
    with pytest.raises(EventOrderError, match="non-negative integer"):
        tl.start_call(frame, info())
    assert tl.state is IDLE and tl.calls == {}
    tl = tl_in_call()
    before = snapshot(tl)
    with pytest.raises(EventOrderError, match="non-negative integer"):
        tl.start_payment(frame, API)
    assert snapshot(tl) == before


def test_numpy_integer_frames_are_accepted_as_ints():
    tl = CallTimeline()
    tl.start_call(np.int64(48_000), info())
    tl.start_payment(np.uint32(96_000), API)
    assert type(tl.last_event_frame) is int and tl.last_event_frame == 96_000
    assert type(tl.current.pauses[0].start_frame) is int
    assert tl.segments(0, 100_000)[1] == Segment(48_000, 96_000, info().call_id, REC)


def test_events_at_the_same_frame_as_the_last_are_allowed():
    tl = tl_in_call(100)
    tl.pause(100, A)
    tl.resume(100, A)
    tl.start_payment(100, API)
    assert tl.state_at(100) == (info().call_id, PAU)
    assert tl.state_at(99) == (None, IDLE)


# ==== several events at one frame ========================================================

def test_call_start_and_payment_start_at_frame_zero_pause_from_frame_zero():
    tl = CallTimeline()
    tl.start_call(0, info())
    tl.start_payment(0, SCRIPT)
    assert tl.state_at(0) == (info().call_id, PAU)
    assert tl.segments(0, 480) == [Segment(0, 480, info().call_id, PAU)]
    assert kept(tl, 0, 480) == []
    tl.end_payment(240, SCRIPT)
    assert tl.segments(0, 480) == [Segment(0, 240, info().call_id, PAU), Segment(240, 480, info().call_id, REC)]


def test_payment_start_and_end_at_the_same_frame_keep_every_frame():
    tl = tl_in_call(0)
    tl.start_payment(50, API)
    tl.end_payment(50, API)
    assert tl.current.pauses == [Pause(PauseReason.PAYMENT, API, 50, 50, API)]
    assert kept(tl, 0, 100) == list(range(100))


def test_end_and_next_start_at_the_same_frame():
    tl = tl_in_call(0)
    tl.end_call(100, A)
    tl.start_call(100, info(2))
    assert tl.state_at(99) == (info(1).call_id, REC)
    assert tl.state_at(100) == (info(2).call_id, REC)
    assert tl.calls[info(1).call_id].state is END
    assert tl.current.call_id == info(2).call_id


def test_payment_start_and_transfer_at_the_same_frame():
    tl = tl_in_call(0)
    tl.start_payment(70, API)
    s = tl.transfer(70, "Housing", API)
    assert s.pauses == [Pause(PauseReason.PAYMENT, API, 70, 70, API)]
    assert tl.state_at(70) == (s.call_id, END)
    assert kept(tl, 0, 200) == list(range(70))


# ==== several calls in sequence ==========================================================

def test_several_calls_in_sequence():
    tl = CallTimeline()
    c1, c2, c3 = info(1), info(2), info(3)
    tl.start_call(0, c1)
    tl.start_payment(100, API)
    tl.end_payment(200, API)
    tl.transfer(300, "Planning", A)
    tl.start_call(500, c2)
    tl.end_call(600, A)
    tl.start_call(800, c3)
    tl.pause(850, A)
    assert set(tl.calls) == {c1.call_id, c2.call_id, c3.call_id}
    assert tl.current.call_id == c3.call_id
    assert tl.calls[c1.call_id].transferred_to == "Planning"
    assert tl.calls[c2.call_id].end_reason is EndReason.HANGUP
    assert tl.calls[c2.call_id].pauses == []
    assert tl.segments(0, 1000) == [
        Segment(0, 100, c1.call_id, REC),
        Segment(100, 200, c1.call_id, PAU),
        Segment(200, 300, c1.call_id, REC),
        Segment(300, 500, c1.call_id, END),
        Segment(500, 600, c2.call_id, REC),
        Segment(600, 800, c2.call_id, END),
        Segment(800, 850, c3.call_id, REC),
        Segment(850, 1000, c3.call_id, PAU),
    ]
    assert tl.state_at(550) == (c2.call_id, REC)
    assert tl.state_at(700) == (c2.call_id, END)


# ==== the gate: exact frame boundaries ===================================================

def test_block_straddling_a_pause_start_splits_at_exactly_that_frame():
    tl = tl_in_call(0)
    tl.start_payment(1000, API)
    cid = info().call_id
    assert tl.segments(960, 1024) == [Segment(960, 1000, cid, REC), Segment(1000, 1024, cid, PAU)]
    assert kept(tl, 960, 1024) == list(range(960, 1000))
    assert 999 in kept(tl, 999, 1001) and 1000 not in kept(tl, 999, 1001)


def test_frame_at_the_pause_start_is_not_kept_and_frame_at_payment_end_is_kept():
    tl = tl_in_call(0)
    tl.start_payment(1000, API)
    tl.end_payment(2000, API)
    assert tl.segments(1000, 1001) == [Segment(1000, 1001, info().call_id, PAU)]
    assert not tl.segments(1000, 1001)[0].keep
    assert tl.segments(1999, 2000)[0].state is PAU
    assert tl.segments(2000, 2001) == [Segment(2000, 2001, info().call_id, REC)]
    assert tl.segments(2000, 2001)[0].keep
    assert kept(tl, 990, 2010) == list(range(990, 1000)) + list(range(2000, 2010))


def test_block_containing_a_whole_pause_splits_in_three():
    tl = tl_in_call(0)
    tl.pause(100, A)
    tl.resume(103, A)
    cid = info().call_id
    assert tl.segments(64, 128) == [Segment(64, 100, cid, REC), Segment(100, 103, cid, PAU),
                                    Segment(103, 128, cid, REC)]


def test_frame_at_transfer_is_not_kept():
    tl = tl_in_call(0)
    tl.transfer(500, "Planning", A)
    assert kept(tl, 480, 520) == list(range(480, 500))


def test_segments_of_an_empty_or_reversed_range_are_empty():
    tl = tl_in_call(0)
    assert tl.segments(10, 10) == []
    assert tl.segments(10, 5) == []


def test_segments_after_the_last_event_extend_to_the_end():
    tl = tl_in_call(10)
    assert tl.segments(5000, 6000) == [Segment(5000, 6000, info().call_id, REC)]


def test_segment_keep_is_only_recording():
    assert Segment(0, 1, "x", REC).keep
    assert not Segment(0, 1, "x", PAU).keep
    assert not Segment(0, 1, "x", END).keep
    assert not Segment(0, 1, None, IDLE).keep


# ==== forget_before ======================================================================

def _busy_timeline() -> CallTimeline:
    tl = CallTimeline()
    tl.start_call(100, info(1))
    tl.start_payment(200, API)
    tl.end_payment(300, API)
    tl.transfer(400, "Planning", A)
    tl.start_call(500, info(2))
    tl.pause(600, A)
    return tl


@pytest.mark.parametrize("cut", [0, 50, 100, 150, 200, 299, 300, 450, 500, 600, 700])
def test_forget_before_keeps_answers_for_later_frames(cut):
    tl = _busy_timeline()
    expect_states = {f: tl.state_at(f) for f in range(cut, 800)}
    expect_segments = tl.segments(cut, 800)
    tl.forget_before(cut)
    assert tl.first_known_frame <= cut
    assert {f: tl.state_at(f) for f in range(cut, 800)} == expect_states
    assert tl.segments(cut, 800) == expect_segments
    # Events keep working after forgetting.
    tl.resume(800, A)
    assert tl.state_at(800) == (info(2).call_id, REC)


def test_forget_before_drops_old_marks_and_refuses_questions_about_them():
    tl = _busy_timeline()
    tl.forget_before(450)
    assert tl.first_known_frame == 400
    assert len(tl._marks) == 3  # (400 ended), (500 recording), (600 paused)
    with pytest.raises(ValueError, match="before the earliest frame"):
        tl.state_at(250)
    with pytest.raises(ValueError, match="before the earliest frame"):
        tl.segments(250, 260)


def test_forget_before_does_not_allow_earlier_events():
    tl = _busy_timeline()
    tl.forget_before(10_000)
    with pytest.raises(EventOrderError):
        tl.resume(599, A)
    assert tl.state is PAU


# ==== pauses list ========================================================================

def test_pauses_keep_reason_source_start_end_and_end_source():
    tl = tl_in_call(0)
    tl.pause(10, EventSource.AGENT)
    tl.resume(20, EventSource.CONTROL_API)
    tl.start_payment(30, EventSource.AUTOMATIC)
    tl.end_payment(40, EventSource.CONTROL_API)
    tl.pause(50, EventSource.SCRIPT)
    tl.start_payment(60, EventSource.CONTROL_API)
    s = tl.end_call(70, EventSource.SYSTEM, reason=EndReason.INTERRUPTED)
    assert s.pauses == [
        Pause(PauseReason.AGENT_REQUEST, EventSource.AGENT, 10, 20, EventSource.CONTROL_API),
        Pause(PauseReason.PAYMENT, EventSource.AUTOMATIC, 30, 40, EventSource.CONTROL_API),
        Pause(PauseReason.AGENT_REQUEST, EventSource.SCRIPT, 50, 60, EventSource.CONTROL_API),
        Pause(PauseReason.PAYMENT, EventSource.CONTROL_API, 60, 70, EventSource.SYSTEM),
    ]
    assert kept(tl, 0, 100) == list(range(0, 10)) + list(range(20, 30)) + list(range(40, 50))


def test_open_pause_is_reported_until_closed():
    tl = tl_in_call(0)
    assert tl.current.open_pause is None
    tl.pause(10, A)
    assert tl.current.open_pause == Pause(PauseReason.AGENT_REQUEST, A, 10)
    tl.resume(20, A)
    assert tl.current.open_pause is None


# ==== property: the gate always covers the range and agrees with state_at ==============

# One random step: (kind, frame gap). Illegal steps are tried too; they must change nothing.
STEP_KINDS = ["start_call", "start_payment", "end_payment", "pause", "resume", "end_call", "transfer"]


def _apply(tl: CallTimeline, kind: str, frame: int, n: int) -> None:
    if kind == "start_call":
        tl.start_call(frame, CallInfo(f"20261129T092233Z-{n:012x}", "01443 425002", "Council Tax"))
    elif kind == "start_payment":
        tl.start_payment(frame, API)
    elif kind == "end_payment":
        tl.end_payment(frame, API)
    elif kind == "pause":
        tl.pause(frame, A)
    elif kind == "resume":
        tl.resume(frame, A)
    elif kind == "end_call":
        tl.end_call(frame, A)
    else:
        tl.transfer(frame, "Planning", A)


def _reference_state(steps_applied, frame):
    """The state of ``frame`` from the list of applied (frame, state) events: the last one at or before it."""
    state = IDLE
    for f, st_ in steps_applied:
        if f <= frame:
            state = st_
    return state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(st.sampled_from(STEP_KINDS), st.integers(0, 40)), max_size=40),
    cuts=st.lists(st.integers(0, 1200), max_size=12),
)
def test_segments_cover_the_range_and_keep_equals_recording(steps, cuts):
    tl = CallTimeline()
    applied = []  # (frame, state after the event) for events the timeline accepted
    frame = 0
    for n, (kind, gap) in enumerate(steps):
        frame += gap
        before = snapshot(tl)
        try:
            _apply(tl, kind, frame, n)
        except TimelineError:
            assert snapshot(tl) == before
            continue
        applied.append((frame, tl.state))
    horizon = frame + 50
    bounds = sorted({0, horizon, *(c % (horizon + 1) for c in cuts)})
    for start, end in zip(bounds, bounds[1:]):
        segs = tl.segments(start, end)
        # Contiguous, non-empty, no gaps, no overlaps, exactly [start, end).
        assert segs[0].start == start and segs[-1].end == end
        assert all(s.end > s.start for s in segs)
        assert all(a.end == b.start for a, b in zip(segs, segs[1:]))
        for s in segs:
            for f in range(s.start, s.end):
                call_id, state = tl.state_at(f)
                assert s.keep == (state is REC)
                assert (s.call_id, s.state) == (call_id, state)
                assert state is _reference_state(applied, f)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.sampled_from(STEP_KINDS), st.integers(0, 40)), max_size=30),
    cut=st.integers(0, 1300),
)
def test_forget_before_never_changes_later_answers(steps, cut):
    tl = CallTimeline()
    frame = 0
    for n, (kind, gap) in enumerate(steps):
        frame += gap
        try:
            _apply(tl, kind, frame, n)
        except TimelineError:
            pass
    end = max(frame, cut) + 50
    expected = tl.segments(cut, end)
    tl.forget_before(cut)
    assert tl.segments(cut, end) == expected


def test_negative_frames_are_not_answered():
    tl = tl_in_call(0)
    with pytest.raises(ValueError, match="before the earliest frame"):
        tl.segments(-1, 10)
    with pytest.raises(ValueError, match="before the earliest frame"):
        tl.state_at(-1)
