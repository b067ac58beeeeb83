"""Fixtures for the window tests: a real Desk (recorder, spool, uploader, folder store in
tmp_path) fed by a real-time synthetic source, the real adapter and window.

Nothing is mocked except the interactions a person would do in a modal dialog (which line,
which department, "are you sure?"): the window takes those as callables, and the tests pass
ones that answer as told and remember what they were asked.

Faults are injected through the real mechanisms:
- device lost: ``ControlledSource`` wraps the synthetic source and raises the sources module's
  own ``DeviceLostError`` from ``read()`` when ``controls.lose`` is set;
- no device: the source factory raises ``NoInputDeviceError`` (and, separately, the real
  ``DeviceSource`` against no audio server, see ``no_audio_env``);
- disk full / recording failed: the chunk writer's file creation raises ENOSPC / EIO, as in
  tests/unit/test_recorder.py (no small filesystem can be mounted unprivileged here);
- storage unreachable: a folder store whose root does not exist (an unmounted share).
"""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from callrec_desktop.audio import chunk_writer
from callrec_desktop.audio.sources import DeviceLostError, NoInputDeviceError, SyntheticSource
from callrec_desktop.compose import build_desk
from callrec_desktop.config import Config, load_config, resources_dir
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.ui.adapter import DeskAdapter
from callrec_desktop.ui.main_window import MainWindow

RATE = 16000
BLOCK = 320  # 20 ms


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    """platformdirs (user config, data, logs) point into tmp_path: no test touches the real home."""
    for var, sub in (("XDG_CONFIG_HOME", "xdg-config"), ("XDG_DATA_HOME", "xdg-data"),
                     ("XDG_STATE_HOME", "xdg-state"), ("XDG_CONFIG_DIRS", "xdg-etc")):
        monkeypatch.setenv(var, str(tmp_path / sub))


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Fail a test that leaves a thread of ours running (napari does the same for QThreads)."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in left:
        t.join(5)
    still = [t.name for t in left if t.is_alive()]
    assert not still, f"threads left running: {still}"


def write_config(tmp_path: Path, *, store: Path, extra: str = "") -> Path:
    path = tmp_path / "test-settings.toml"
    path.write_text(
        "[recorder]\ncodec = \"flac\"\nchunk_seconds = 1\nlookbehind_seconds = 0.2\n"
        f"[store]\nurl = \"{store}\"\n"
        "[upload]\ninitial_backoff_seconds = 0.05\nmax_backoff_seconds = 1\nmax_attempts_per_pass = 1\n"
        "[identity]\nagent_id = \"agent007\"\nworkstation = \"ws-test\"\n"
        f"[paths]\nspool_dir = \"{tmp_path / 'spool'}\"\nlog_dir = \"{tmp_path / 'log'}\"\n" + extra)
    return path


def make_config(tmp_path: Path, *, store: Path, extra: str = "", system_file: Path | None = None) -> Config:
    cfg = write_config(tmp_path, store=store, extra=extra)
    return load_config(system_file=system_file, user_file=None, env={"CALLREC_CONFIG": str(cfg)})


@dataclass
class Controls:
    """Live knobs of the synthetic source (read by its generator on the recorder thread)."""

    agent_amp: float = 0.3
    caller_amp: float = 0.1
    lose: threading.Event = field(default_factory=threading.Event)


def tone_blocks(ctl: Controls):
    """Endless 20 ms stereo blocks: 440 Hz agent, 1250 Hz caller, amplitudes from ``ctl``."""
    n = 0
    while True:
        t = (np.arange(BLOCK) + n) / RATE
        n += BLOCK
        yield np.stack([ctl.agent_amp * np.sin(2 * np.pi * 440 * t),
                        ctl.caller_amp * np.sin(2 * np.pi * 1250 * t)], axis=1).astype(np.float32)


class ControlledSource:
    """A real-time SyntheticSource that raises DeviceLostError when ``controls.lose`` is set,
    like a device source whose headset was unplugged."""

    def __init__(self, ctl: Controls) -> None:
        self.inner = SyntheticSource(tone_blocks(ctl), sample_rate=RATE, block_frames=BLOCK, realtime=True, channels=2)
        self.ctl = ctl

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, timeout=None):
        if self.ctl.lose.is_set():
            raise DeviceLostError("audio input device 'Test headset' was lost (unplugged?): recording cannot continue")
        return self.inner.read(timeout)

    def __enter__(self):
        self.inner.start()
        return self

    def __exit__(self, *exc):
        self.inner.stop()


class Rig:
    """A live desk and its window. Answers for the window's dialogs are set on the rig."""

    def __init__(self, tmp_path: Path, qtbot, monkeypatch, *, store_exists: bool = True, device: bool = True,
                 source_factory=None, channels: int = 2, extra_config: str = "", real_dialogs: bool = False,
                 store=None, **window_kwargs) -> None:
        self.tmp_path = tmp_path
        self.qtbot = qtbot
        self.store_root = tmp_path / "store"
        if store_exists:
            self.store_root.mkdir(exist_ok=True)
        self.config = make_config(tmp_path, store=self.store_root, extra=extra_config)
        self.store = store if store is not None else FolderStore(self.store_root)
        self.controls = Controls()
        self.device_available = device
        self.disk_error: int | None = None  # an errno the chunk writer raises when set
        self.confirm_answer = True
        self.confirmations: list[tuple[str, str]] = []
        self.line_choice = (self.config.lines.find("01443 425002"), "07700900123")
        self.department_choice: str | None = "Planning"
        self.asked_lines = []
        real_start = chunk_writer.ChunkWriter._start
        rig = self

        def start(writer, first_frame):
            if rig.disk_error is not None:
                raise OSError(rig.disk_error, "No space left on device" if rig.disk_error == errno.ENOSPC
                              else "Input/output error")
            return real_start(writer, first_frame)

        monkeypatch.setattr(chunk_writer.ChunkWriter, "_start", start)
        self.desk = build_desk(self.config, store=self.store, source_factory=source_factory or self._make_source,
                               channels=channels)
        self.adapter = DeskAdapter(self.desk)
        self.desk.add_listener(self.adapter.emit_status)
        self.qsettings = QSettings(str(tmp_path / "window.ini"), QSettings.Format.IniFormat)
        notice = (resources_dir() / "privacy-notice.txt").read_text(encoding="utf-8")
        window_kwargs.setdefault("no_signal_seconds", 0.3)
        if not real_dialogs:  # answered by the test (real_dialogs: the window's own, answered on screen)
            window_kwargs.update(confirm=self._confirm, choose_line=self._choose_line,
                                 choose_department=self._choose_department)
        self.window = MainWindow(self.desk, self.adapter, self.config, notice_text=notice, qsettings=self.qsettings,
                                 **window_kwargs)
        self.closed = False

    # the window's dialogs, answered by the test
    def _confirm(self, parent, title, text, accept_text):
        self.confirmations.append((title, text))
        return self.confirm_answer

    def _choose_line(self, parent, lines):
        self.asked_lines.append(lines)
        return self.line_choice

    def _choose_department(self, parent, departments):
        self.asked_departments = departments
        return self.department_choice

    def _make_source(self):
        if not self.device_available:
            raise NoInputDeviceError("no audio input device is available (PortAudio found none)")
        return ControlledSource(self.controls)

    def start(self, show: bool = True) -> Rig:
        self.desk.start()
        if show:
            self.window.show()
            self.qtbot.waitExposed(self.window)
        return self

    def wait_status(self, predicate, timeout: int = 5000) -> None:
        """Until the window has rendered a status for which ``predicate(status)`` holds."""
        self.qtbot.waitUntil(lambda: predicate(self.window.status), timeout=timeout)

    def wait_capturing(self) -> None:
        self.wait_status(lambda s: s.capturing)
        self.qtbot.waitUntil(lambda: (self.desk.current_frame() or 0) > BLOCK * 2, timeout=5000)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.confirm_answer = True
        self.window.close()
        self.adapter.shutdown()
        self.desk.shutdown()
        assert not [t for t in self.window.timers() if t.isActive()], "a QTimer of the window is still running"
        self.window.deleteLater()


@pytest.fixture
def make_rig(tmp_path, qtbot, monkeypatch):
    rigs: list[Rig] = []

    def make(**kwargs) -> Rig:
        rig = Rig(tmp_path, qtbot, monkeypatch, **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


@pytest.fixture
def rig(make_rig) -> Rig:
    """A started desk with a live tone source, and its window shown."""
    r = make_rig().start()
    r.wait_capturing()
    return r
