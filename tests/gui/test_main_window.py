"""The call handler's window over a live desk: every button and shortcut, the enforced payment
pause, transfers, the stored result, fault banners, meters, compact mode, tray, help,
geometry, and the --self-test of the packaged entry point."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QThread, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from callrec_desktop.archive import decode_call, load_manifest, verify_call
from callrec_desktop.core.timeline import CallState, EventSource
from callrec_desktop.desk import DeskStatus, Fault, PaymentInProgress
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.call_dialogs import DepartmentDialog, LineDialog
from callrec_desktop.ui.main_window import GEOMETRY_KEY, STORAGE_SLOW_TITLE, describe_upload
from callrec_desktop.ui.widgets import NO_DEVICE_TEXT, PAYMENT_EXPLANATION, describe_state
from callrec_desktop.uploader import UploadStatus
from tests.gui.conftest import BLOCK, make_config

REPO = Path(__file__).resolve().parents[2]


def state_text(rig) -> str:
    return rig.window.state_label.text()


def wait_state(rig, title: str, timeout: int = 5000) -> None:
    rig.qtbot.waitUntil(lambda: rig.window.state_label.text() == title, timeout=timeout)


def stored_manifest(rig, call_id: str, timeout: int = 10000):
    """The finished manifest, once the uploader has put it in the rig's store."""
    found = {}

    def ready() -> bool:
        try:
            m = load_manifest(rig.store, call_id)
        except Exception:
            return False
        if m.status == "complete":
            found["m"] = m
            return True
        return False

    rig.qtbot.waitUntil(ready, timeout=timeout)
    return found["m"]


def start_call(rig) -> str:
    rig.window.start_call_button.click()
    wait_state(rig, "Recording")
    return rig.desk.status().call_id


def activate(rig) -> None:
    rig.window.activateWindow()
    rig.qtbot.waitUntil(lambda: QApplication.activeWindow() is rig.window, timeout=3000)


def press(rig, key, modifiers=Qt.KeyboardModifier.ControlModifier, widget=None) -> None:
    rig.qtbot.keyClick(widget or rig.window, key, modifiers)


# ---- idle, start, line ---------------------------------------------------------------------------

def test_idle_window_says_not_recording_in_words_for_screen_readers_and_only_start_is_enabled(rig):
    assert state_text(rig) == "Not recording"
    assert rig.window.state_label.accessibleName() == "Recording state: Not recording"
    assert "No call in progress" in rig.window.state_label.accessibleDescription()
    assert rig.window.line_number.text() == "No call"
    assert rig.window.start_call_button.isEnabled()
    for button in (rig.window.take_payment_button, rig.window.payment_finished_button,
                   rig.window.transfer_button, rig.window.end_call_button):
        assert not button.isEnabled()
    # the shortcut is in the button text and the tooltip
    assert "Ctrl+N" in rig.window.start_call_button.text()
    assert "Ctrl+N" in rig.window.start_call_button.toolTip()
    assert "Ctrl+Shift+P" in rig.window.payment_finished_button.text()


def test_start_call_asks_for_the_line_and_shows_line_department_caller_and_timer(rig):
    call_id = start_call(rig)
    assert rig.asked_lines == [rig.config.lines]
    w = rig.window
    assert w.line_number.text() == "01443 425002"
    assert w.department.text() == "Council Tax, Business Rate and Benefits"
    assert w.caller.text() == "Caller: 07700900123"
    assert w.state_label.accessibleName() == "Recording state: Recording"
    assert w.state_banner.view.recording
    assert w.windowTitle().startswith("Recording")
    rig.qtbot.waitUntil(lambda: w.call_timer.text() == "00:01", timeout=3000)
    assert rig.desk.status().call_id == call_id and rig.desk.status().line_number == "01443 425002"
    assert not w.start_call_button.isEnabled()
    assert w.take_payment_button.isEnabled() and w.end_call_button.isEnabled() and w.transfer_button.isEnabled()


def test_cancelling_the_line_choice_starts_nothing(rig):
    rig.line_choice = None
    rig.window.start_call_button.click()
    assert rig.desk.status().state is CallState.IDLE and state_text(rig) == "Not recording"


def test_keyboard_shortcuts_drive_every_operation(rig):
    activate(rig)
    press(rig, Qt.Key.Key_N)
    wait_state(rig, "Recording")
    press(rig, Qt.Key.Key_P)
    wait_state(rig, "Paused for payment")
    press(rig, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    wait_state(rig, "Recording")
    press(rig, Qt.Key.Key_E)
    wait_state(rig, "Call ended — not recording")
    assert rig.confirmations and rig.confirmations[-1][0] == "End call"
    press(rig, Qt.Key.Key_N)
    wait_state(rig, "Recording")
    press(rig, Qt.Key.Key_T)
    wait_state(rig, "Transferred to Planning — not recording")


# ---- the payment pause -----------------------------------------------------------------------------

def test_payment_pause_is_enforced_and_only_payment_finished_resumes(rig):
    start_call(rig)
    w = rig.window
    assert not w.payment_hint.isVisible()
    w.take_payment_button.click()
    wait_state(rig, "Paused for payment")
    assert "Card details are not being recorded" in w.state_banner.detail.text()
    assert w.state_label.accessibleName() == "Recording state: Paused for payment"
    assert "Card details are not being recorded" in w.state_label.accessibleDescription()
    rig.qtbot.waitUntil(lambda: w.state_banner.timer.text() == "00:01", timeout=3000)
    assert w.state_banner.timer.isVisible() and w.state_banner.timer_caption.text() == "Paused for"
    # no way back except Payment finished: the controls are disabled and say why
    assert w.payment_hint.isVisible() and PAYMENT_EXPLANATION in w.payment_hint.text()
    assert not w.take_payment_button.isEnabled()
    assert PAYMENT_EXPLANATION in w.take_payment_button.toolTip()
    assert not w.resume_action.isEnabled() and PAYMENT_EXPLANATION in w.resume_action.toolTip()
    assert w.payment_finished_button.isEnabled()
    w.resume_action.trigger()
    w.take_payment_action.trigger()
    assert rig.desk.status().state is CallState.PAUSED
    with pytest.raises(PaymentInProgress):
        rig.desk.resume()
    assert state_text(rig) == "Paused for payment"
    w.payment_finished_button.click()
    wait_state(rig, "Recording")
    assert not w.payment_hint.isVisible() and not w.state_banner.timer.isVisible()
    assert w.take_payment_button.isEnabled() and not w.payment_finished_button.isEnabled()


def test_a_full_call_reaches_the_store_with_the_payment_pause_as_digital_silence(rig):
    call_id = start_call(rig)
    rig.qtbot.waitUntil(lambda: rig.desk.current_frame() >= 8 * BLOCK + 0, timeout=3000)
    rig.window.take_payment_button.click()
    paused_at = rig.desk.current_frame()
    rig.qtbot.waitUntil(lambda: rig.desk.current_frame() >= paused_at + 10 * BLOCK, timeout=3000)
    rig.window.payment_finished_button.click()
    resumed_at = rig.desk.current_frame()
    rig.qtbot.waitUntil(lambda: rig.desk.current_frame() >= resumed_at + 10 * BLOCK, timeout=3000)
    rig.window.end_call_button.click()
    wait_state(rig, "Call ended — not recording")
    m = stored_manifest(rig, call_id)
    assert m.end.reason == "hangup" and m.line_number == "01443 425002" and m.caller == "07700900123"
    assert m.agent == "agent007"
    [pause] = m.pauses
    assert (pause.reason, pause.source) == ("payment", "agent")
    # stamped at the capture frame current when the button was pressed (± one block of timing)
    assert abs(pause.duration_frames - (resumed_at - paused_at)) <= BLOCK
    assert verify_call(rig.store, m) == []
    audio = decode_call(rig.store, m)
    a, b = pause.offset_frames, pause.offset_frames + pause.duration_frames
    assert not audio[a:b].any(), "audio inside the payment pause reached the store"
    assert np.abs(audio[:a]).max() > 0.1 and np.abs(audio[b:]).max() > 0.1
    rig.qtbot.waitUntil(lambda: "all recordings are in central storage" in rig.window.upload_label.text(),
                        timeout=5000)


# ---- transfer and end ------------------------------------------------------------------------------

def test_transfer_asks_department_and_confirmation_and_ends_the_recording(rig):
    call_id = start_call(rig)
    rig.confirm_answer = False
    rig.window.transfer_button.click()
    assert rig.asked_departments == rig.config.lines.transfer_departments
    title, text = rig.confirmations[-1]
    assert title == "Transfer call" and "Planning" in text and "Recording stops" in text
    assert rig.desk.status().state is CallState.RECORDING  # refused: nothing changed
    rig.confirm_answer = True
    rig.window.transfer_button.click()
    wait_state(rig, "Transferred to Planning — not recording")
    assert rig.window.state_label.accessibleName() == "Recording state: Transferred to Planning — not recording"
    assert not rig.window.state_banner.view.recording
    assert rig.window.start_call_button.isEnabled() and not rig.window.end_call_button.isEnabled()
    m = stored_manifest(rig, call_id)
    assert m.end.reason == "transferred" and m.end.department == "Planning"


def test_the_windows_own_dialogs_start_and_transfer_calls(make_rig, qtbot):
    """No answers injected: the real line and department dialogs and the confirmation box
    (loaded on first use, after the window is shown), answered on screen as a handler would."""
    rig = make_rig(real_dialogs=True).start()
    rig.wait_capturing()
    steps: list = []  # (dialog class, what the handler does), in the order they must appear
    seen: list[str] = []

    def on_poll() -> None:  # also runs inside each dialog's own event loop
        dialog = QApplication.activeModalWidget()
        if dialog is None or not dialog.isVisible() or not steps:
            return
        kind, act = steps.pop(0)
        seen.append(f"{type(dialog).__name__} as {kind.__name__}")
        if isinstance(dialog, kind):
            act(dialog)
        else:
            dialog.reject()  # the wrong dialog: close it so the test fails instead of hanging

    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(on_poll)
    poll.start()

    def choose_row(row: int, caller: str | None = None):
        def act(d) -> None:
            d.list.setCurrentRow(row if row >= 0 else d.list.count() + row)
            if caller is not None:
                d.caller.setText(caller)
            d.accept()
        return act

    def press(label: str):
        def act(box: QMessageBox) -> None:
            [button] = [b for b in box.buttons() if b.text() == label]
            button.click()
        return act

    try:
        steps.append((LineDialog, choose_row(3, " 07700 900456 ")))
        rig.window.start_call_button.click()
        wait_state(rig, "Recording")
        assert rig.window.department.text() == "Planning" and rig.window.caller.text() == "Caller: 07700 900456"
        call_id = rig.desk.status().call_id

        department = rig.config.lines.transfer_departments[-1]
        steps.extend([(DepartmentDialog, choose_row(-1)), (QMessageBox, press("Cancel"))])
        rig.window.transfer_button.click()
        assert rig.desk.status().state is CallState.RECORDING  # cancelled at the confirmation: nothing changed
        steps.extend([(DepartmentDialog, choose_row(-1)), (QMessageBox, press(f"Transfer to {department}"))])
        rig.window.transfer_button.click()
        wait_state(rig, f"Transferred to {department} — not recording")
    finally:
        poll.stop()
        if rig.desk.status().state in (CallState.RECORDING, CallState.PAUSED):
            rig.desk.end_call()  # a failure mid-call: closing the window would ask, and nobody would answer
    assert seen == ["LineDialog as LineDialog", "DepartmentDialog as DepartmentDialog", "QMessageBox as QMessageBox",
                    "DepartmentDialog as DepartmentDialog", "QMessageBox as QMessageBox"]
    m = stored_manifest(rig, call_id)
    assert m.end.reason == "transferred" and m.end.department == department


def test_transfer_to_an_unknown_department_is_refused_with_a_message(rig):
    start_call(rig)
    rig.department_choice = "Nowhere"
    rig.window.transfer_button.click()
    assert rig.window.error_bar.isVisible() and "unknown department" in rig.window.error_bar.text.text()
    assert state_text(rig) == "Recording"


def test_end_call_needs_a_confirmation(rig):
    start_call(rig)
    rig.confirm_answer = False
    rig.window.end_call_button.click()
    assert rig.confirmations[-1][0] == "End call"
    assert state_text(rig) == "Recording"
    rig.confirm_answer = True
    rig.window.end_call_button.click()
    wait_state(rig, "Call ended — not recording")


def test_closing_during_a_call_asks_first(rig):
    start_call(rig)
    rig.confirm_answer = False
    rig.window.close()
    assert rig.window.isVisible() and rig.confirmations[-1][0] == "Close callrec-desktop"


# ---- faults ------------------------------------------------------------------------------------------

def test_device_lost_during_a_call_says_not_recording_until_the_device_is_back(rig):
    call_id = start_call(rig)
    rig.controls.lose.set()
    wait_state(rig, "NOT RECORDING")
    w = rig.window
    assert "microphone or headset was lost" in w.state_banner.detail.text()
    assert w.state_label.accessibleName() == "Recording state: NOT RECORDING"
    assert "not being recorded" in w.state_label.accessibleDescription()
    banner = w.fault_banners[Fault.DEVICE_LOST]
    assert banner.isVisible() and "Test headset" in banner.message.text()
    assert not w.start_call_button.isEnabled() and not w.take_payment_button.isEnabled()
    assert stored_manifest(rig, call_id).end.reason == "interrupted"
    # the headset is back: Try again restarts capture on a worker; the banner goes
    rig.controls.lose.clear()
    banner.retry_button.click()
    rig.qtbot.waitUntil(lambda: not banner.isVisible(), timeout=5000)
    wait_state(rig, "Call ended — not recording")
    assert w.start_call_button.isEnabled()


@pytest.mark.parametrize("err, fault, words", [
    (errno.ENOSPC, Fault.DISK_FULL, "This PC's disk is full"),
    (errno.EIO, Fault.RECORDING_FAILED, "Recording failed"),
])
def test_a_write_failure_during_a_call_says_not_recording_and_the_banner_stays_until_audio_is_written(
        rig, err, fault, words):
    start_call(rig)
    rig.disk_error = err
    wait_state(rig, "NOT RECORDING")
    w = rig.window
    assert w.state_banner.detail.text().startswith(words)
    assert w.fault_banners[fault].isVisible()
    rig.qtbot.wait(300)  # the failed call's final manifest is still written: the banner must stay
    assert w.fault_banners[fault].isVisible()
    rig.disk_error = None
    start_call(rig)
    rig.qtbot.waitUntil(lambda: not w.fault_banners[fault].isVisible(), timeout=5000)
    assert state_text(rig) == "Recording"


def test_a_store_that_goes_quiet_is_shown_as_slow_then_unreachable_then_fine_again(make_rig, qtbot, s3_server):
    """The real S3 server behind a proxy that stops answering (the ``silent`` fault): a request
    that gets no answer fails only at the read timeout (30 s, as in the app), but the window
    says "slow to answer" after STORAGE_SLOW_SECONDS. Then the proxy drops what it holds (the
    request fails: "unreachable") and answers again: the banners clear and the call uploads."""
    from callrec_desktop.storage.s3 import S3Store
    from tests.support.faultproxy import FaultProxy

    bucket = s3_server.make_bucket()
    with FaultProxy("127.0.0.1", s3_server.port, p=1.0, faults=("silent",)) as proxy:
        store = S3Store(bucket, "calls", endpoint_url=proxy.endpoint_url, region=s3_server.region,
                        addressing_style="path", credentials=(s3_server.access_key, s3_server.secret_key))
        rig = make_rig(store=store).start()
        rig.wait_capturing()
        call_id = start_call(rig)  # its first upload (provisional manifest or first chunk) gets no answer
        slow, unreachable = rig.window.storage_slow_banner, rig.window.fault_banners[Fault.STORAGE_UNREACHABLE]
        qtbot.waitUntil(slow.isVisible, timeout=10000)
        upload = rig.window.status.upload
        assert upload.request_started is not None and upload.last_error is None  # not failed yet
        assert not unreachable.isVisible()
        assert slow.accessibleName() == f"Warning: {STORAGE_SLOW_TITLE}"
        assert "an upload has had no answer for" in slow.message.text()
        assert state_text(rig) == "Recording"  # the call goes on, into the spool

        faults_seen: list = []  # every status the desk publishes (the window may coalesce two)
        rig.desk.add_listener(lambda st: faults_seen.append(set(st.faults)))
        proxy.p = 0.0  # from now on it relays
        proxy.release()  # and the held request fails, then the retry goes through
        qtbot.waitUntil(lambda: any(Fault.STORAGE_UNREACHABLE in f for f in faults_seen), timeout=10000)
        qtbot.waitUntil(lambda: rig.window.status.upload.last_success is not None, timeout=10000)
        assert not unreachable.isVisible() and not rig.window.upload_error.isVisible()
        assert not slow.isVisible() and state_text(rig) == "Recording"
        rig.window.end_call_button.click()
        m = stored_manifest(rig, call_id, timeout=15000)  # the whole call reached the S3 server
        assert verify_call(store, m) == [] and proxy.counts["silent"] == 1


def test_storage_unreachable_banner_shows_while_the_store_is_missing_and_clears_when_it_is_back(make_rig):
    rig = make_rig(store_exists=False).start()
    rig.wait_capturing()
    start_call(rig)
    banner = rig.window.fault_banners[Fault.STORAGE_UNREACHABLE]
    rig.qtbot.waitUntil(banner.isVisible, timeout=5000)
    assert "kept safely on this PC" in banner.title.text() and "not found" in banner.message.text()
    # the fault and the upload status arrive as two desk updates: the window catches up at once
    rig.qtbot.waitUntil(lambda: rig.window.upload_error.isVisible(), timeout=3000)
    assert "Last upload error" in rig.window.upload_error.text()
    assert state_text(rig) == "Recording"  # recording goes on into the spool
    rig.store_root.mkdir()
    rig.qtbot.waitUntil(lambda: not banner.isVisible(), timeout=8000)
    assert not rig.window.upload_error.isVisible()


def test_the_compact_window_lists_the_faults_its_missing_banners_would_show(make_rig):
    """In compact mode the full window (and its banners) is hidden: the compact window says the
    same in one line per fault, and clears it when the fault is resolved."""
    rig = make_rig(store_exists=False).start()
    rig.wait_capturing()
    w = rig.window
    w.compact_action.trigger()
    rig.qtbot.waitUntil(w.compact.isVisible, timeout=3000)
    assert not w.isVisible() and not w.compact.warning.isVisible()
    start_call(rig)
    rig.qtbot.waitUntil(w.compact.warning.isVisible, timeout=5000)
    assert w.compact.warning.text() == "⚠ Central storage unreachable"
    assert w.compact.warning.accessibleName() == "Warnings: Central storage unreachable"
    rig.controls.lose.set()  # and now the headset: both, the one that stops recording first
    rig.qtbot.waitUntil(lambda: w.compact.warning.text().count("⚠") == 2, timeout=5000)
    assert w.compact.warning.text().split("\n") == ["⚠ The microphone or headset was lost",
                                                    "⚠ Central storage unreachable"]
    assert w.compact.state.title.text() == "NOT RECORDING"
    assert w.compact.line.text() == w.line_number.text() + " – " + w.department.text()  # as the full window
    assert w.line_number.text() == "01443 425002"
    rig.store_root.mkdir()
    rig.qtbot.waitUntil(lambda: "Central storage" not in w.compact.warning.text(), timeout=8000)
    assert w.compact.warning.text() == "⚠ The microphone or headset was lost"


def test_a_new_fault_is_announced_on_the_desktop_once_and_listed_in_the_tray_tooltip(make_rig):
    """The tray is unavailable offscreen; ``TrayIcon`` keeps what it shows (or would show)."""
    import shutil

    rig = make_rig(store_exists=False).start()
    rig.wait_capturing()
    start_call(rig)
    tray = rig.window.tray
    rig.qtbot.waitUntil(lambda: len(tray.notifications) > 0, timeout=5000)
    [(title, message)] = tray.notifications
    assert title == "Central storage unreachable — recordings are kept safely on this PC"
    assert "upload by themselves" in message and "not found" in message
    rig.qtbot.waitUntil(lambda: "⚠ Central storage unreachable" in tray.tooltip, timeout=3000)
    assert tray.tooltip.startswith("callrec-desktop — Recording\n01443 425002")
    rig.store_root.mkdir()
    rig.qtbot.waitUntil(lambda: "⚠" not in tray.tooltip, timeout=8000)
    shutil.rmtree(rig.store_root)  # the share goes away again within minutes: no second announcement
    rig.qtbot.waitUntil(lambda: Fault.STORAGE_UNREACHABLE in rig.window.status.faults, timeout=8000)
    rig.qtbot.waitUntil(lambda: "⚠ Central storage unreachable" in tray.tooltip, timeout=3000)
    assert len(tray.notifications) == 1


def test_no_device_says_so_plainly_and_try_again_finds_it(make_rig):
    rig = make_rig(device=False).start()
    w = rig.window
    banner = w.fault_banners[Fault.NO_DEVICE]
    rig.qtbot.waitUntil(banner.isVisible, timeout=3000)
    assert banner.title.text() == NO_DEVICE_TEXT
    assert NO_DEVICE_TEXT in w.state_banner.detail.text()
    assert not w.start_call_button.isEnabled() and "No microphone" in w.start_call_button.toolTip()
    rig.device_available = True
    banner.retry_button.click()
    rig.qtbot.waitUntil(lambda: not banner.isVisible(), timeout=5000)
    rig.qtbot.waitUntil(w.start_call_button.isEnabled, timeout=3000)


def test_no_device_through_the_real_device_source_on_a_pc_without_audio(make_rig, no_audio_env):
    from callrec_desktop.compose import device_source_factory

    holder = {}
    rig = make_rig(source_factory=lambda: device_source_factory(holder["config"])())
    holder["config"] = rig.config
    rig.start()
    banner = rig.window.fault_banners[Fault.NO_DEVICE]
    rig.qtbot.waitUntil(banner.isVisible, timeout=8000)
    assert "no audio input device" in banner.message.text()
    assert not rig.window.fault_banners[Fault.DEVICE_LOST].isVisible()
    assert state_text(rig) == "Not recording"


def test_the_demo_is_offered_when_there_is_no_device(make_rig):
    asked = []
    rig = make_rig(device=False, on_demo=lambda: asked.append(True)).start()
    banner = rig.window.fault_banners[Fault.NO_DEVICE]
    rig.qtbot.waitUntil(banner.isVisible, timeout=3000)
    banner.demo_button.click()
    assert asked == [True]


def test_a_notice_shows_as_a_dismissible_bar(rig):
    start_call(rig)
    rig.desk.take_payment(source=EventSource.AUTOMATIC, notice="Card tones heard: paused for payment")
    w = rig.window
    rig.qtbot.waitUntil(w.notice_bar.isVisible, timeout=3000)
    assert w.notice_bar.text.text() == "Card tones heard: paused for payment"
    assert "started automatically" in w.state_banner.detail.text()
    w.notice_bar.dismiss.click()
    assert not w.notice_bar.isVisible()
    w.render(rig.desk.status())  # the same notice again: stays dismissed
    assert not w.notice_bar.isVisible()


# ---- meters ------------------------------------------------------------------------------------------

def test_level_meters_move_with_the_audio_and_say_no_signal_when_the_microphone_is_dead(rig):
    w = rig.window
    rig.qtbot.waitUntil(lambda: w.agent_meter.db is not None and w.agent_meter.bar.value() > 400, timeout=3000)
    assert -15 < w.agent_meter.db < -10  # 0.3 amplitude sine: -13.5 dBFS
    assert -26 < w.caller_meter.db < -20  # 0.1: -23 dBFS
    assert w.agent_meter.value.text() == "Sound"
    start_call(rig)
    rig.controls.agent_amp = 0.0
    rig.qtbot.waitUntil(lambda: w.agent_meter.no_signal, timeout=3000)
    assert "No signal" in w.agent_meter.value.text()
    assert w.agent_meter.bar.accessibleDescription().startswith("No signal")
    assert not w.caller_meter.no_signal
    assert "your microphone" in w.compact.warning.text()
    rig.controls.agent_amp = 0.3
    rig.qtbot.waitUntil(lambda: not w.agent_meter.no_signal, timeout=3000)


def test_silence_outside_a_call_is_not_flagged(rig):
    rig.controls.agent_amp = 0.0
    rig.qtbot.waitUntil(lambda: rig.window.agent_meter.db is not None and rig.window.agent_meter.db < -60, timeout=3000)
    rig.qtbot.wait(500)
    assert not rig.window.agent_meter.no_signal


# ---- compact mode, tray, help, geometry ---------------------------------------------------------------

def test_compact_mode_shows_state_line_and_payment_buttons_on_top(rig):
    start_call(rig)
    w = rig.window
    w.compact_action.trigger()
    rig.qtbot.waitUntil(w.compact.isVisible, timeout=3000)
    assert not w.isVisible()
    assert w.compact.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
    assert w.compact.state.title.text() == "Recording"
    assert w.compact.state.accessibleName() == "Recording state: Recording"
    assert "01443 425002" in w.compact.line.text()
    w.compact.pay.click()
    rig.qtbot.waitUntil(lambda: w.compact.state.title.text() == "Paused for payment", timeout=3000)
    assert not w.compact.pay.isEnabled() and w.compact.paid.isEnabled()
    assert "Paused for payment" in w.tray.tooltip and w.tray.icon.toolTip() == w.tray.tooltip
    w.compact.paid.click()
    rig.qtbot.waitUntil(lambda: w.compact.state.title.text() == "Recording", timeout=3000)
    w.compact.full.click()
    rig.qtbot.waitUntil(w.isVisible, timeout=3000)
    assert not w.compact.isVisible() and not w.compact_action.isChecked()


def test_the_tray_icon_carries_the_recording_state(rig):
    w = rig.window
    assert w.tray.kind == "idle" and "Not recording" in w.tray.tooltip
    start_call(rig)
    assert w.tray.kind == "recording"
    assert w.tray.icon.toolTip() == "callrec-desktop — Recording\n01443 425002 – Council Tax, Business Rate and Benefits"
    assert w.tray.available == w.tray.icon.isVisible()


def test_help_shows_how_calls_are_recorded_and_the_privacy_notice(rig):
    rig.window.help_action.trigger()
    dialog = rig.window.help_dialog
    rig.qtbot.waitUntil(dialog.isVisible, timeout=3000)
    text = dialog.text()
    assert "Call Recording Privacy Notice" in text
    assert "01443 425002 – Council Tax, Business Rate and Benefits" in text
    assert "We will keep the call recording for 13 months" in text
    assert "Payment finished" in text and "Ctrl+Shift+P" in text


def test_window_geometry_is_kept_between_runs(make_rig, tmp_path):
    first = make_rig().start()
    first.window.resize(700, 650)
    size = (first.window.width(), first.window.height())
    assert size != (760, 720)  # not the default
    first.close()
    saved = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
    assert saved.value(GEOMETRY_KEY)
    second = make_rig()
    assert (second.window.width(), second.window.height()) == size


# ---- the pieces, without a desk -------------------------------------------------------------------------

def test_the_line_and_department_dialogs_list_the_lines_and_departments(qtbot, tmp_path):
    config = make_config(tmp_path, store=tmp_path)
    d = LineDialog(config.lines)
    qtbot.addWidget(d)
    assert d.list.count() == len(config.lines.lines)
    d.list.setCurrentRow(3)
    d.caller.setText(" 07700 900123 ")
    line, caller = d.choice()
    assert line.department == "Planning" and caller == "07700 900123"
    t = DepartmentDialog(config.lines.transfer_departments)
    qtbot.addWidget(t)
    t.list.setCurrentRow(t.list.count() - 1)
    assert t.choice() == config.lines.transfer_departments[-1]


def test_state_words_never_claim_recording_when_capture_stopped():
    import time

    now = time.monotonic()
    lost = DeskStatus(state=CallState.RECORDING, capturing=False, call_started=now,
                      faults={Fault.DEVICE_LOST: "gone"})
    view = describe_state(lost, now)
    assert view.title == "NOT RECORDING" and not view.recording and view.kind == "fault"
    ended_error = DeskStatus(state=CallState.ENDED, capturing=True, last_end_reason="error",
                             faults={Fault.DISK_FULL: "full"})
    assert describe_state(ended_error, now).title == "NOT RECORDING"
    assert describe_state(DeskStatus(state=CallState.RECORDING, capturing=True), now).recording


def test_upload_health_in_words():
    text, error = describe_upload(UploadStatus(backlog_chunks=3, backlog_bytes=1_250_000, oldest_age_seconds=125,
                                               last_error="store folder not found"))
    assert text == "Uploads: 3 chunks (1.2 MB) waiting on this PC, oldest 2 min."
    assert describe_upload(UploadStatus(backlog_chunks=1, backlog_bytes=4321))[0].startswith("Uploads: 1 chunk (4 KB)")
    assert error == "Last upload error: store folder not found"


def test_the_adapter_delivers_worker_statuses_on_the_gui_thread_newest_first(qtbot):
    class FakeDesk:
        def __init__(self):
            self.current = DeskStatus()

        def status(self):
            return self.current

    desk = FakeDesk()
    adapter = DeskAdapter(desk)
    seen = []
    adapter.status_changed.connect(lambda s: seen.append((s, QThread.currentThread())))
    stale = DeskStatus(state=CallState.RECORDING)
    desk.current = DeskStatus(state=CallState.PAUSED, payment_started=1.0)

    def worker():
        adapter.emit_status(stale)  # a snapshot older than the desk's current state

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: bool(seen), timeout=3000)
    status, thread = seen[-1]
    assert thread is QApplication.instance().thread()
    assert status.state is CallState.PAUSED, "the adapter forwarded a stale snapshot"
    done = []
    adapter.run_task(lambda: threading.current_thread().name, done.append, name="probe")
    qtbot.waitUntil(lambda: bool(done), timeout=3000)
    assert done[0].ok and done[0].value.startswith("callrec-ui-task-probe")
    assert adapter.shutdown()


def test_errors_on_worker_threads_reach_the_one_error_report_on_the_gui_thread(qtbot, capsys):
    from types import SimpleNamespace

    from callrec_desktop.app import ErrorReporter

    reporter = ErrorReporter(headless=True, log_file=None)
    adapter = DeskAdapter()
    reporter.adapter = adapter
    adapter.error_reported.connect(reporter.report)
    seen = []
    reporter.on_error = lambda summary: seen.append((summary, QThread.currentThread()))
    try:
        raise ValueError("boom")
    except ValueError as exc:
        args = SimpleNamespace(exc_type=ValueError, exc_value=exc, exc_traceback=exc.__traceback__,
                               thread=SimpleNamespace(name="callrec-uploader"))
    t = threading.Thread(target=reporter.thread_excepthook, args=(args,))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: bool(seen), timeout=3000)
    assert seen[0][0] == "ValueError on thread callrec-uploader: boom"
    assert seen[0][1] is QApplication.instance().thread()
    assert "unexpected error: ValueError on thread callrec-uploader: boom" in capsys.readouterr().err
    assert adapter.shutdown()


# ---- the packaged entry point ---------------------------------------------------------------------------

def _app_env(tmp_path: Path) -> dict:
    return dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "x-config"), XDG_DATA_HOME=str(tmp_path / "x-data"),
                XDG_STATE_HOME=str(tmp_path / "x-state"), XDG_CONFIG_DIRS=str(tmp_path / "x-etc"),
                PYTHONPATH=str(REPO))


def test_self_test_records_through_the_real_window_and_exits_0(tmp_path):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "spool"}"\nlog_dir = "{tmp_path / "log"}"\n')
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop.app", "--self-test", "--config", str(cfg)],
                          env=_app_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stdout.startswith("self-test: ok "), proc.stdout
    assert (tmp_path / "log" / "callrec-desktop.log").read_text().count("self-test: ok") == 1


def test_bad_settings_stop_the_app_with_the_file_and_key_named_and_exit_2(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[audio]\nchannels = 3\n')
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop.app", "--self-test", "--config", str(cfg)],
                          env=_app_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{cfg}: audio.channels: must be one of 1, 2" in proc.stderr
    assert "self-test" not in proc.stdout


# ---- one truth for the call state (issue 9) ----------------------------------------------------------------

@pytest.mark.parametrize("first, second, shown", [
    ("take_payment", "payment_finished", "Recording"),
    ("payment_finished", "take_payment", "Paused for payment"),
])
def test_the_window_shows_what_the_recorder_does_when_a_control_api_event_lands_inside_a_button_press(
        rig, monkeypatch, first, second, shown):
    """The agent presses a payment button; the payment page's opposite signal (control API
    thread) lands after the recorder applied the press and before the desk showed it. The
    window must end up showing what the gate does, and offer the button that fits it."""
    from tests.gui.conftest import RATE

    call_id = start_call(rig)
    w, desk = rig.window, rig.desk
    if first == "payment_finished":
        w.take_payment_button.click()
        wait_state(rig, "Paused for payment")
    recorder = desk._recorder
    method = {"take_payment": "start_payment", "payment_finished": "end_payment"}[first]
    real = getattr(recorder, method)

    def pressed(*args, **kwargs):  # on the GUI thread, inside the button's desk operation
        real(*args, **kwargs)
        other = threading.Thread(target=getattr(desk, second), kwargs={"source": EventSource.CONTROL_API})
        other.start()
        other.join(5)

    monkeypatch.setattr(recorder, method, pressed)
    (w.take_payment_button if first == "take_payment" else w.payment_finished_button).click()
    wait_state(rig, shown)
    rig.qtbot.waitUntil(lambda: w.status == desk.status(), timeout=5000)  # nothing newer to render
    paused = recorder.status().payment_in_progress
    assert paused is (shown == "Paused for payment") is desk.status().payment_in_progress
    assert w.take_payment_button.isEnabled() is not paused and w.payment_finished_button.isEnabled() is paused
    # What the window said is what the gate did, read back from the store.
    frame = recorder.status().frames_captured
    rig.qtbot.waitUntil(lambda: (desk.current_frame() or 0) > frame + RATE // 2, timeout=5000)
    assert state_text(rig) == shown
    w.end_call_button.click()
    m = stored_manifest(rig, call_id)
    last = m.pauses[-1]
    last_end = last.offset_frames + last.duration_frames
    chunk_ends = [c.first_frame + c.frames for c in m.chunks]
    if paused:
        assert last_end == m.frames and all(end <= last.offset_frames for end in chunk_ends)  # nothing kept after
    else:
        assert last.end_source == "control_api" and max(chunk_ends) == m.frames > last_end  # kept to the end


# ---- the session ending during a call (issue 9, SIGTERM / logoff) ------------------------------------------

def test_when_the_session_is_ending_closing_during_a_call_asks_nothing(rig):
    start_call(rig)
    rig.confirm_answer = False  # nobody would answer yes
    asked = len(rig.confirmations)
    rig.window.session_ending()  # the desktop session manager's commitDataRequest
    rig.window.close()
    assert not rig.window.isVisible() and len(rig.confirmations) == asked


def test_the_session_ending_while_the_close_question_is_open_closes_without_an_answer(make_rig, qtbot):
    """The agent pressed close and walked away; then logoff. What the app's SIGTERM / logoff
    handler does runs inside the question's own event loop: the call ends as shutdown, the
    window closes although the question was never answered, and the call is stored final."""
    rig = make_rig(real_dialogs=True).start()
    rig.wait_capturing()
    call_id = rig.desk.start_call("01443 425002")
    wait_state(rig, "Recording")
    seen = []

    def logoff() -> None:  # runs in the question's event loop
        box = QApplication.activeModalWidget()
        seen.append(box.text() if isinstance(box, QMessageBox) else None)
        rig.desk.end_for_shutdown()
        rig.window.close_without_asking()
        box.reject()  # its loop ends, unanswered

    QTimer.singleShot(0, logoff)
    rig.window.close()
    assert seen and "A call is in progress" in seen[0]
    assert not rig.window.isVisible()
    m = stored_manifest(rig, call_id)
    assert (m.end.reason, m.end.source) == ("shutdown", "system")
    assert verify_call(rig.store, m) == []
