"""The payment-window trigger's logic, with a fake title probe: a function handing out titles
from a list. (The real X11 probe is tested against a real X server in
tests/integration/test_focus_x11.py.) The desk is the real one."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from callrec_desktop.core.timeline import CallState
from callrec_desktop.triggers.focus import FocusPaymentTrigger, FocusWatcher
from tests.support.recording import RATE
from tests.unit.triggers import desk_rig

PATTERNS = ["card payment", r"pay\s*360", "^Capita Pay"]


def _calls(titles: list[str | None]) -> list[str]:
    seen: list[str] = []
    watcher = FocusWatcher(PATTERNS, 100, seen.append, probe=lambda: None)
    for title in titles:
        watcher.poll_once(title)
    return seen


def test_focus_moving_onto_a_payment_window_reports_once_per_focus_change():
    assert _calls([None, "CRM - Firefox", "Card Payment - Firefox", "Card Payment - Firefox",
                   "Card Payment - Firefox", "CRM - Firefox", "Card Payment - Firefox"]) == [
        "Card Payment - Firefox", "Card Payment - Firefox"]


def test_non_matching_titles_never_report():
    assert _calls(["CRM", "Outlook", "Payroll 2024.xlsx", "capitalisation.docx", None, ""]) == []


def test_patterns_are_case_insensitive_regular_expressions():
    assert _calls(["x", "CARD PAYMENT", "y", "Pay 360 portal", "z", "PAY360", "w", "capita pay - card"]) == [
        "CARD PAYMENT", "Pay 360 portal", "PAY360", "capita pay - card"]
    assert _calls(["Welcome to Capita Pay"]) == []  # "^" anchors at the start of the title


def test_a_new_payment_title_counts_as_a_new_focus():
    """A different payment window (or the payment page's next step) reports again: the safe
    side; the desk ignores it while the payment pause is on."""
    assert _calls(["Card payment - step 1", "Card payment - step 2"]) == ["Card payment - step 1", "Card payment - step 2"]


def test_the_watcher_thread_polls_the_probe_and_stops():
    titles = iter(["CRM", "CRM", "Take a card payment", "Take a card payment", "CRM", "Take a card payment"])
    done = threading.Event()
    seen: list[str] = []

    def fake_probe() -> str | None:
        title = next(titles, None)
        if title is None:
            done.set()
        return title

    watcher = FocusWatcher(PATTERNS, 5, seen.append, probe=fake_probe)
    watcher.start()
    try:
        assert done.wait(5)
    finally:
        watcher.stop()
    assert not watcher._thread.is_alive()
    assert seen == ["Take a card payment", "Take a card payment"]


def test_a_failing_probe_or_handler_does_not_stop_the_watcher():
    calls = {"n": 0}
    done = threading.Event()

    def flaky_probe() -> str | None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("display hiccup")
        if calls["n"] >= 4:
            done.set()
        return "Card payment"

    def failing_handler(title: str) -> None:
        raise RuntimeError("handler bug")

    watcher = FocusWatcher(PATTERNS, 5, failing_handler, probe=flaky_probe)
    watcher.start()
    try:
        assert done.wait(5)
    finally:
        watcher.stop()
    assert calls["n"] >= 4


def test_an_invalid_poll_interval_is_refused():
    with pytest.raises(ValueError, match="poll_ms"):
        FocusWatcher(PATTERNS, 0, print)


@pytest.fixture
def rig(tmp_path):
    r = desk_rig(tmp_path, np.zeros((RATE, 2), dtype=np.float32))  # held at frame 0: nothing captured
    yield r
    r.desk.shutdown()


def test_the_trigger_pauses_a_recorded_call_once_and_never_resumes(rig):
    desk = rig.desk
    trigger = FocusPaymentTrigger(desk, PATTERNS, 100, probe=lambda: None)
    focus = trigger.watcher.poll_once

    focus("Card payment")  # idle: no call, nothing to pause
    assert desk.status().state is CallState.IDLE
    focus("CRM")

    desk.start_call("01443 425002")
    focus("CRM")
    assert desk.status().state is CallState.RECORDING
    focus("Pay360 - Card payment")
    st = desk.status()
    assert st.state is CallState.PAUSED and st.payment_source == "automatic"
    assert st.notice == "Payment window 'Pay360 - Card payment' has focus: recording paused for payment."
    focus("CRM")  # the focus leaves: still paused (the agent ends the payment)
    assert desk.status().state is CallState.PAUSED and desk.status().payment_in_progress

    desk.payment_finished()
    assert desk.status().state is CallState.RECORDING
    focus("Pay360 - Card payment")  # back to the payment window: a new payment
    assert desk.status().state is CallState.PAUSED and desk.status().payment_source == "automatic"


def test_a_pause_the_agent_already_started_is_left_alone(rig):
    desk = rig.desk
    trigger = FocusPaymentTrigger(desk, PATTERNS, 100, probe=lambda: None)
    desk.start_call("01443 425002")
    desk.take_payment()
    trigger.watcher.poll_once("Card payment")
    st = desk.status()
    assert st.payment_source == "agent" and st.notice is None


def test_the_trigger_runs_its_own_thread(rig):
    titles = iter(["CRM", "CRM", "Capita Pay - card entry"])
    done = threading.Event()

    def fake_probe() -> str | None:
        title = next(titles, None)
        if title is None:
            done.set()
            return "Capita Pay - card entry"
        return title

    rig.desk.start_call("01443 425002")
    trigger = FocusPaymentTrigger(rig.desk, PATTERNS, 5, probe=fake_probe)
    trigger.start()
    try:
        assert done.wait(5)
    finally:
        trigger.stop()
    st = rig.desk.status()
    assert st.state is CallState.PAUSED and "Capita Pay - card entry" in st.notice
