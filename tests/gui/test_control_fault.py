"""The window when the control API cannot listen: every port it may use is held by another
program, so payment pages and the phone system cannot pause the recording. The agent must see
that as a red fault that stays (not a dismissable notice, not an errno), and the tray must
announce it. The app's own start-up step (``app._start_integrations``) runs against the real
desk and window; the ports are held by real sockets."""

from __future__ import annotations

import json

import pytest

from callrec_desktop.app import _start_integrations
from callrec_desktop.control.client import ControlClient
from callrec_desktop.control.server import PORTS_PER_PC
from callrec_desktop.control.token import ControlToken
from callrec_desktop.status import Fault
from tests.gui.test_main_window import start_call
from tests.unit.control.test_lifecycle import hold_run

TOKEN = "gui-test-token-0123456789abcdefghijklmnopq"
TEXT = "Payment pages and the phone system cannot reach this PC: card details may be recorded"


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    path = tmp_path / "xdg-runtime"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


def test_no_port_for_the_control_api_is_a_red_fault_that_stays_and_the_tray_announces_it(make_rig, runtime_dir):
    held = hold_run(PORTS_PER_PC)  # this user's port and every one after it that may be used
    started: list = []
    try:
        rig = make_rig(extra_config=f"[control]\nport = {held.base}\n").start()
        rig.wait_capturing()
        w = rig.window
        started = _start_integrations(rig.config, rig.desk, lambda: ControlToken(TOKEN, True))
        banner = w.fault_banners[Fault.CONTROL_UNREACHABLE]
        rig.qtbot.waitUntil(banner.isVisible, timeout=5000)

        assert banner.title.text() == TEXT
        assert "#D92D20" in banner.styleSheet()  # the red of the faults that stop recording, not amber
        detail = banner.message.toolTip() or banner.message.text()
        assert (f"the control API cannot listen on 127.0.0.1 ports {held.base}–{held.base + PORTS_PER_PC - 1}: "
                f"other programs" in rig.desk.status().faults[Fault.CONTROL_UNREACHABLE])
        assert "Errno" not in detail and "Errno" not in rig.desk.status().faults[Fault.CONTROL_UNREACHABLE]
        assert "Take payment" in banner.advice.text()
        assert not w.notice_bar.isVisible()  # not a dismissable notice
        assert not any(s.__class__.__name__ == "ControlServer" for s in started)
        assert not (runtime_dir / "callrec-desktop" / "control.json").exists()  # nothing to publish

        tray = w.tray
        rig.qtbot.waitUntil(lambda: any(title == TEXT for title, _ in tray.notifications), timeout=3000)
        [message] = [m for title, m in tray.notifications if title == TEXT]
        assert "Take payment" in message and "Errno" not in message
        rig.qtbot.waitUntil(lambda: f"⚠ {TEXT}" in tray.tooltip, timeout=3000)
        w.compact_action.trigger()
        rig.qtbot.waitUntil(w.compact.warning.isVisible, timeout=3000)
        assert f"⚠ {TEXT}" in w.compact.warning.text().split("\n")
        w.compact_action.trigger()
        rig.qtbot.waitUntil(w.isVisible, timeout=3000)

        # It stays through calls: only a restart (with a port free) clears it.
        start_call(rig)
        w.end_call_button.click()
        rig.qtbot.waitUntil(lambda: rig.desk.status().call_id is not None
                            and not rig.desk.status().recording, timeout=5000)
        assert banner.isVisible() and Fault.CONTROL_UNREACHABLE in rig.desk.status().faults
        assert [title for title, _ in tray.notifications].count(TEXT) == 1
    finally:
        for s in reversed(started):
            s.stop()
        held.close()


def test_with_a_port_free_there_is_no_fault_and_the_port_is_published(make_rig, runtime_dir):
    held = hold_run(3)
    held.release(held.base + 2)  # the first two are another program's (or other users')
    started: list = []
    try:
        rig = make_rig(extra_config=f"[control]\nport = {held.base}\n").start()
        rig.wait_capturing()
        started = _start_integrations(rig.config, rig.desk, lambda: ControlToken(TOKEN, True))
        published = json.loads((runtime_dir / "callrec-desktop" / "control.json").read_text())
        assert published["port"] == held.base + 2
        assert ControlClient(f"http://127.0.0.1:{published['port']}", TOKEN).status()["capturing"] is True
        assert Fault.CONTROL_UNREACHABLE not in rig.desk.status().faults
        assert not rig.window.fault_banners[Fault.CONTROL_UNREACHABLE].isVisible()
    finally:
        for s in reversed(started):
            s.stop()
        held.close()
    assert not (runtime_dir / "callrec-desktop" / "control.json").exists()
