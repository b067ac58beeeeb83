"""How ``callrec-desktop`` starts: the window first, the recording engine after it.

The app is run as a real process (offscreen Qt, no audio server: this PC then has no
microphone, which the window must say); the window part drives the real MainWindow before
and after a real desk is attached.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from callrec_desktop.config import resources_dir
from callrec_desktop.core.timeline import CallState
from callrec_desktop.status import DeskStatus
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.main_window import MainWindow
from tests.gui.conftest import Rig, make_config

REPO = Path(__file__).resolve().parents[2]
# What the window must not wait for: the audio stack, the encoders, the keyring, boto3,
# the upload retry library, and our own engine modules that pull them in.
ENGINE = ("numpy", "av", "sounddevice", "soundfile", "keyring", "boto3", "botocore", "tenacity",
          "callrec_desktop.desk", "callrec_desktop.recorder", "callrec_desktop.spool", "callrec_desktop.uploader")


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "CALLREC_", "QT_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "x-config"), XDG_DATA_HOME=str(tmp_path / "x-data"),
               XDG_STATE_HOME=str(tmp_path / "x-state"), XDG_CONFIG_DIRS=str(tmp_path / "x-etc"),
               XDG_RUNTIME_DIR=str(tmp_path / "x-run"), PULSE_SERVER="unix:/nonexistent/pulse",
               QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO), **extra)
    (tmp_path / "x-run").mkdir(mode=0o700, exist_ok=True)
    env.pop("DISPLAY", None)
    return env


def _config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "settings.toml"
    cfg.write_text(f'[paths]\nspool_dir = "{tmp_path / "spool"}"\nlog_dir = "{tmp_path / "log"}"\n'
                   '[control]\nenabled = false\n' + extra)
    return cfg


def _module(line: str) -> str | None:
    m = re.match(r"import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)$", line)
    return m.group(2) if m else None


def test_the_window_is_shown_before_any_of_the_engine_is_imported_and_the_engine_then_starts(tmp_path):
    """``-X importtime`` lists every import in order on stderr, where ``-v`` also logs
    "window shown": nothing of the engine may come before that line, and it must come after
    (the desk is built and the no-microphone fault reaches the log)."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-c", "import sys; from callrec_desktop.app import main; sys.exit(main())",
         "--config", str(_config(tmp_path)), "-v"],
        env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    before: list[str] = []
    after: list[str] = []
    seen_window = False
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if "window shown" in line:
                seen_window = True
                continue
            name = _module(line.rstrip("\n"))
            if name is not None:
                (after if seen_window else before).append(name)
            if seen_window and ("no_device" in line or "No microphone" in line or "no audio input" in line):
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert seen_window, "the app never logged 'window shown'"
    early = [n for n in before if n in ENGINE]
    assert early == [], f"imported before the window was shown: {early}"
    assert "PySide6.QtWidgets" in before and "callrec_desktop.ui.main_window" in before
    assert {"numpy", "callrec_desktop.desk", "callrec_desktop.recorder"} <= set(after), sorted(set(after) & set(ENGINE))


def test_a_locked_keyring_at_start_is_reported_by_name_and_exits_2_with_nothing_recorded(tmp_path):
    """An S3 store needs its credentials from the keyring, which is opened after the window
    is shown: a locked keyring must still stop the app with the store named, exit 2."""
    cfg = _config(tmp_path, '[store]\nurl = "s3://callrec-test/calls"\nendpoint_url = "http://127.0.0.1:9"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "callrec_desktop.app", "--config", str(cfg)],
        env=_env(tmp_path, PYTHON_KEYRING_BACKEND="tests.support.memkeyring.LockedTestKeyring"),
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "the central store cannot be used" in proc.stderr
    assert "s3:http://127.0.0.1:9:callrec-test" in proc.stderr and "locked" in proc.stderr
    assert not any((tmp_path / "spool").rglob("*.opus")) and not any((tmp_path / "spool").rglob("*.flac"))


def test_a_store_url_that_cannot_work_is_refused_with_the_settings_before_any_window(tmp_path):
    cfg = _config(tmp_path, '[store]\nurl = "ftp://files.example/calls"\n')
    proc = subprocess.run([sys.executable, "-m", "callrec_desktop.app", "--config", str(cfg), "-v"],
                          env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"the settings are not valid: {cfg}: store.url:" in proc.stderr and "ftp://files.example/calls" in proc.stderr
    assert "window shown" not in proc.stderr


def test_before_the_desk_is_attached_the_window_says_it_is_starting_and_refuses_operations(tmp_path, qtbot,
                                                                                           monkeypatch):
    config = make_config(tmp_path, store=tmp_path / "store")
    adapter = DeskAdapter()
    window = MainWindow(None, adapter, config, notice_text=(resources_dir() / "privacy-notice.txt").read_text())
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.status == DeskStatus()
    assert window.view.title == "Not recording" and "Starting" in window.view.detail
    assert not window.start_call_action.isEnabled() and not window.end_call_action.isEnabled()
    window.take_payment()  # never guarded by the button: refused by words, not dropped silently
    assert window.error_bar.isVisible() and "still starting" in window.error_bar.text.text()

    # the real desk arrives: the same window now records
    rig = Rig(tmp_path, qtbot, monkeypatch)
    rig.window.close()  # only its desk is used here
    adapter.attach(rig.desk)
    window.attach_desk(rig.desk)
    rig.desk.start()
    qtbot.waitUntil(lambda: window.status.capturing, timeout=5000)
    window._choose_line = lambda parent, lines: (config.lines.find("01443 425002"), None)
    window.start_call()
    qtbot.waitUntil(lambda: window.status.state is CallState.RECORDING, timeout=5000)
    assert window.view.title == "Recording"
    window.take_payment()
    qtbot.waitUntil(lambda: window.status.payment_in_progress, timeout=5000)
    window._confirm = lambda *a: True
    window.end_call()
    qtbot.waitUntil(lambda: window.status.state is CallState.ENDED, timeout=5000)
    window.close()
    adapter.shutdown()
    rig.desk.shutdown()
