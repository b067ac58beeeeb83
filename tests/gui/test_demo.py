"""The window demo end to end: the bundled demo call through the real desk, recorder, DTMF
trigger, spool, uploader and embedded folder store, shown in the real window (offscreen).

Played 3x faster than real time (``speed``; every event is stamped by capture frame, so the
result is the same as at real time) to keep the test near 15 s. Nothing is mocked; the window's
"are you sure?" dialogs are not involved (the demo drives the desk, as the app does).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.app import run_demo
from callrec_desktop.archive import decode_call
from callrec_desktop.audio.dtmf import DtmfDetector
from callrec_desktop.audio.sources import AudioBlock
from callrec_desktop.config import load_config
from callrec_desktop.demo import demo_events, demo_steps, load_demo
from callrec_desktop.ui.widgets import describe_state

SPEED = 3.0
RATE = 16000


def dtmf_hits(audio: np.ndarray, channel: int) -> list:
    detector = DtmfDetector(RATE, channel)
    hits = []
    for i in range(0, len(audio), 320):
        hits += detector.feed(AudioBlock(i, np.ascontiguousarray(audio[i:i + 320])))
    return hits


@pytest.fixture
def demo_session(qtbot, tmp_path):
    config = load_config()  # the packaged defaults (XDG dirs point into tmp_path): DTMF trigger on
    session = run_demo(None, None, config, speed=SPEED)
    yield session
    session.shutdown()
    assert not [t for t in session.window.timers() if t.isActive()], "a QTimer of the demo window is still running"
    assert not session.runner._poll.isActive() and not session.runner._deadline.isActive()
    session.window.deleteLater()


def test_the_demo_plays_the_call_through_the_window_into_the_embedded_store(demo_session, qtbot, tmp_path):
    session = demo_session
    seen: list[str] = []

    def on_status(status) -> None:
        title = describe_state(status, time.monotonic()).title
        if not seen or seen[-1] != title:
            seen.append(title)

    session.adapter.status_changed.connect(on_status)
    with qtbot.waitSignal(session.runner.finished, timeout=45_000) as blocker:
        pass
    manifest = blocker.args[0]

    # the window went Recording → Paused for payment → Recording → Transferred to Housing
    assert "Recording" in seen and "Paused for payment" in seen, seen
    paused = seen.index("Paused for payment")
    assert "Recording" in seen[:paused] and "Recording" in seen[paused:], seen
    assert seen[-1] == "Transferred to Housing — not recording", seen
    assert session.window.view.title == "Transferred to Housing — not recording"
    assert "Demo finished" in session.progress.text()

    # the stored call: in the embedded default store, one payment pause, ended by the transfer
    store_dir = tmp_path / "xdg-data" / "callrec-desktop" / "store"
    assert session.store.description == f"folder {store_dir}"
    assert manifest.line_number == "01443 425002" and manifest.caller == "07700 900123"
    assert manifest.end.reason == "transferred" and manifest.end.department == "Housing"
    assert len(manifest.pauses) == 1
    pause = manifest.pauses[0]
    # the pause is the DTMF trigger's (the demo applies no scripted payment_started); the
    # scripted agent's Payment finished ended it
    assert pause.reason == "payment" and pause.source == "automatic" and pause.end_source == "script"
    assert [event for event, _ in session.runner.applied] == ["call_started", "payment_ended", "transferred"]
    assert ("payment_ended", "payment finished") in session.runner.applied

    # every key tone of the original falls inside the pause...
    original, rate = sf.read(load_demo().audio, dtype="float32", always_2d=True)
    assert rate == RATE
    keyed = dtmf_hits(original, 1)
    assert "".join(h.digit for h in keyed) == "4000056655665556"
    first, last = keyed[0].frame, keyed[-1].frame + round(0.13 * RATE)
    assert pause.offset_frames <= first and last <= pause.offset_frames + pause.duration_frames
    # ...and none of them is in the stored audio, which still holds the conversation
    stored = decode_call(session.store, manifest)
    assert dtmf_hits(stored, 1) == [] and dtmf_hits(stored, 0) == []
    transfer = next(e for e in load_demo().events if e.event == "transferred")
    assert abs(len(stored) - transfer.frame(RATE)) <= 320
    speech = np.sqrt(np.mean(np.square(stored[: pause.offset_frames]), axis=0))
    assert (20 * np.log10(speech) > -35).all(), speech  # both sides spoke before the payment
    assert not stored[pause.offset_frames + 320: pause.offset_frames + pause.duration_frames - 320].any()


def test_with_the_trigger_on_the_demo_leaves_the_pause_to_it():
    """With the DTMF trigger on, the script's payment_started is not applied (the pause must
    come from the trigger); with it off, the scripted agent pauses. Every step is applied once
    capture reaches it, stamped at its own frame."""
    demo = load_demo()
    assert [e.event for e in demo.events] == ["call_started", "payment_started", "payment_ended", "transferred"]
    assert [e.event for e in demo_events(demo, dtmf_trigger=True)] == ["call_started", "payment_ended", "transferred"]
    assert demo_events(demo, dtmf_trigger=False) == demo.events
    for step in demo_steps(demo.events, RATE):
        assert step.due_frame == step.at_frame == step.event.frame(RATE)


def test_try_the_demo_opens_a_demo_window_over_the_main_one(make_rig, qtbot):
    """A PC without a microphone: the app's window offers the demo; run_demo (the button's hook)
    leaves the device desk alone and plays the demo in a window of its own, without a second
    tray icon, and closing that window ends the demo session."""
    rig = make_rig(device=False, on_demo=lambda: None).start()
    rig.wait_status(lambda s: bool(s.faults))
    session = run_demo(rig.window, rig.desk, rig.config, speed=SPEED)
    try:
        qtbot.waitUntil(lambda: session.window.view.title == "Recording", timeout=10_000)
        assert session.window.geometry() == rig.window.geometry()
        assert not session.window.tray.icon.isVisible()
        assert rig.desk.status().state.name == "IDLE"  # the device desk is not touched
        session.window.close()
        qtbot.waitUntil(lambda: session._shut, timeout=5000)
        assert not session.runner._poll.isActive()
    finally:
        session.shutdown()


def test_the_demo_is_refused_while_a_real_call_is_recorded(rig):
    from callrec_desktop.app import DemoUnavailable

    rig.desk.start_call("01443 425002")
    with pytest.raises(DemoUnavailable, match="finish it"):
        run_demo(rig.window, rig.desk, rig.config)
