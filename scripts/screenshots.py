#!/usr/bin/env python3
"""Screenshots of the call handler's window in each state, on a virtual screen.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts its own Xvfb (``Xvfb :N -screen 0 1280x800x24 -nolisten tcp``), runs the real window
over a real Desk (recorder, spool, uploader, folder store in a temporary folder) fed by
generated speech-like audio at real-time pace, drives it through the states and saves
``<state>.png`` with ``widget.grab()``. Needs ``xvfb`` and Qt's xcb libraries
(scripts/setup.sh test installs them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    from tests.support.xvfb import XvfbError, start_xvfb, stop_xvfb

    try:
        xvfb, display = start_xvfb()
    except XvfbError as exc:
        raise SystemExit(f"screenshots: {exc}") from None
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    try:
        with tempfile.TemporaryDirectory(prefix="callrec-shots-") as tmp:
            return Shooter(Path(tmp), args.out).run()
    finally:
        stop_xvfb(xvfb)


class Shooter:
    def __init__(self, tmp: Path, out: Path) -> None:
        # Private settings and data: nothing of the real user's is read or written.
        for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"),
                         ("XDG_CONFIG_DIRS", "etc")):
            os.environ[var] = str(tmp / sub)
        self.tmp = tmp
        self.out = out
        self.out.mkdir(parents=True, exist_ok=True)
        from PySide6.QtWidgets import QApplication

        self.app = QApplication.instance() or QApplication(["callrec-desktop"])
        self.app.setApplicationName("callrec-desktop")
        self.rigs = []

    # ---- building ---------------------------------------------------------------------------
    def rig(self, name: str, *, store_exists: bool = True, device: bool = True):

        from callrec_desktop.audio.sources import DeviceLostError, NoInputDeviceError, SyntheticSource
        from callrec_desktop.compose import build_desk
        from callrec_desktop.config import load_config, resources_dir
        from callrec_desktop.demo import demo_call_audio
        from callrec_desktop.storage.folder import FolderStore
        from callrec_desktop.ui.adapter import DeskAdapter
        from callrec_desktop.ui.main_window import MainWindow
        from callrec_desktop.ui.settings_dialog import SettingsServices

        root = self.tmp / name
        root.mkdir()
        store_root = root / "store"
        if store_exists:
            store_root.mkdir()
        from callrec_desktop.config import default_paths

        # IT's machine-wide file (in the private XDG_CONFIG_DIRS): the settings dialog shows its
        # keys as "set by IT"
        cfg = default_paths().system_file
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(f'[recorder]\nchunk_seconds = 2\nlookbehind_seconds = 0.5\n[store]\nurl = "{store_root}"\n'
                       '[upload]\ninitial_backoff_seconds = 0.2\nmax_backoff_seconds = 2\nmax_attempts_per_pass = 1\n'
                       '[identity]\nagent_id = "s.jones"\nworkstation = "CC-DESK-14"\n'
                       f'[paths]\nspool_dir = "{root / "spool"}"\nlog_dir = "{root / "log"}"\n')
        config = load_config(env={})
        rate = config.recorder.sample_rate
        audio = demo_call_audio(rate)
        lose = threading.Event()

        def blocks():
            block = round(config.recorder.block_ms * rate / 1000)
            while True:
                for i in range(0, len(audio) - block, block):
                    yield audio[i:i + block]

        class LosableSource:
            def __init__(self):
                self.inner = SyntheticSource(blocks(), sample_rate=rate, realtime=True, channels=2)

            def __getattr__(self, item):
                return getattr(self.inner, item)

            def read(self, timeout=None):
                if lose.is_set():
                    raise DeviceLostError("audio input device 'Jabra Evolve2 40' was lost (no audio arrived for "
                                          "2.0 s; unplugged, or the audio service stopped?): recording cannot continue")
                return self.inner.read(timeout)

        def factory():
            if not device:
                raise NoInputDeviceError("no audio input device is available (PortAudio found none)")
            return LosableSource()

        desk = build_desk(config, store=FolderStore(store_root), source_factory=factory)
        adapter = DeskAdapter(desk)
        desk.add_listener(adapter.emit_status)
        services = SettingsServices(
            credentials=None, token_provider=lambda: "d1f0c6a9-3b4e-4f7a-9c21-5e8b7a60c2f4",
            list_devices=lambda: [{"name": "Jabra Evolve2 40: USB Audio (hw:1,0)"},
                                  {"name": "Softphone mix (monitor)"}])
        window = MainWindow(desk, adapter, config, notice_text=(resources_dir() / "privacy-notice.txt").read_text(),
                            services=services, confirm=lambda *a: True, on_demo=lambda: None,
                            choose_line=lambda parent, lines: (lines.find("council-tax"), "07700 900123"),
                            choose_department=lambda parent, departments: "Planning")
        window.resize(760, 640)
        window.move(40, 40)
        window.show()
        desk.start()
        r = type("Rig", (), {})()
        r.config, r.desk, r.adapter, r.window, r.lose, r.store_root = config, desk, adapter, window, lose, store_root
        self.rigs.append(r)
        self.wait(0.3)
        return r

    # ---- driving ----------------------------------------------------------------------------
    def library(self) -> None:
        """The team leaders' Library over calls recorded by the real pipeline, with a range note
        and a selection, playing on the virtual audio server's output when it can start."""
        from datetime import datetime, timezone

        from callrec_desktop.catalog import Catalog
        from callrec_desktop.config import load_config
        from callrec_desktop.notes import NoteStore
        from callrec_desktop.storage.folder import FolderStore
        from callrec_desktop.ui.adapter import DeskAdapter
        from callrec_desktop.ui.library_window import LibraryWindow
        from callrec_desktop.ui.settings_services import PlaybackChoice
        from tests.support.pulse import PulseServer, PulseUnavailable, pulse_environment
        from tests.support.recording import record_calls

        root = self.tmp / "library"
        (root / "store").mkdir(parents=True)
        store = FolderStore(root / "store")
        when = datetime(2026, 11, 23, 10, 4, tzinfo=timezone.utc)
        calls = record_calls(root / "spool", store, when, [
            {"line": ("01443 425002", "Council Tax"), "caller": "07700 900123", "seconds": 24.0,
             "payment": (9.0, 15.0)},
            {"line": ("01443 425003", "Housing"), "caller": "07700 900456", "seconds": 12.0, "transfer": "Planning"},
            {"line": ("01443 425005", "Planning"), "caller": "07700 900789", "seconds": 8.0},
        ], agent="s.jones")
        NoteStore(store).add(calls[0].call_id, "t.leader", 3.0, "Good check of identity before the balance",
                             ["good-practice"], end_seconds=7.5, manifest=calls[0])
        try:
            pulse = PulseServer().start()
        except PulseUnavailable as exc:
            print(f"screenshots: no virtual audio server ({exc}); the Library will say it has no sound output")
            pulse = None
        env = pulse.env if pulse is not None else {}
        with pulse_environment(env):
            catalog = Catalog(root / "catalog.sqlite")
            adapter = DeskAdapter()
            window = LibraryWindow(catalog, store, adapter, user="t.leader", workstation="CC-TL-02",
                                   cache_dir=root / "waveforms", playback=PlaybackChoice(load_config(env={})))
            window.show()
            try:
                window.sync_button.click()
                self.wait_until(lambda: len(window.model.call_ids()) == 3, what="library sync")
                window.select_row(window.model.call_ids().index(calls[0].call_id))
                self.wait_until(lambda: window.player.wave.waveform is not None, what="waveform")
                self.wait_until(lambda: window.player.output.count() > 1 or pulse is None, what="outputs")
                window.player.wave.set_selection((16.0, 21.0))
                self.shot(window, "library")
            finally:
                window.close()
                window.player.clear()
                adapter.shutdown()
                catalog.close()
                if pulse is not None:
                    pulse.stop()

    def wait(self, seconds: float) -> None:
        from PySide6.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def wait_until(self, predicate, timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshots: timed out waiting for {what or predicate}")
            self.wait(0.05)

    def shot(self, widget, name: str) -> None:
        self.wait(0.25)  # let meters and timers repaint
        path = self.out / f"{name}.png"
        if not widget.grab().save(str(path)):
            raise SystemExit(f"screenshots: could not save {path}")
        print(f"screenshots: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")

    def run(self) -> int:
        from callrec_desktop.desk import Fault

        r = self.rig("main")
        w = r.window
        self.wait_until(lambda: w.status.capturing, what="capture")
        self.wait(1.0)
        self.shot(w, "idle")

        w.start_call()
        self.wait_until(lambda: w.view.kind == "recording", what="recording")
        self.wait(3.2)
        self.shot(w, "recording")

        w.take_payment()
        self.wait(2.2)
        self.shot(w, "paused_for_payment")

        w.compact_action.setChecked(True)
        w.compact.move(900, 60)
        self.wait(0.5)
        self.shot(w.compact, "compact")
        w.compact_action.setChecked(False)

        w.payment_finished()
        self.wait(0.6)
        w.transfer()
        self.wait(0.6)
        self.shot(w, "transferred")

        w.open_settings()
        self.wait_until(lambda: w.settings_dialog is not None and w.settings_dialog.isVisible(), what="settings")
        w.settings_dialog.tabs.setCurrentIndex(1)
        self.shot(w.settings_dialog, "settings")
        w.settings_dialog.tabs.setCurrentIndex(2)
        self.shot(w.settings_dialog, "settings_storage")
        w.settings_dialog.reject()

        w.show_help()
        self.wait(0.3)
        self.shot(w.help_dialog, "help")
        w.help_dialog.close()

        # a fault during a call: storage unreachable, then the headset lost
        f = self.rig("fault", store_exists=False)
        self.wait_until(lambda: f.window.status.capturing, what="capture")
        f.desk.start_call("01443 425005", caller="07700 900456")
        self.wait_until(lambda: Fault.STORAGE_UNREACHABLE in f.window.status.faults, what="storage banner")
        f.lose.set()
        self.wait_until(lambda: f.window.view.title == "NOT RECORDING", what="device lost")
        self.shot(f.window, "fault_not_recording")
        f.window.compact_action.setChecked(True)
        f.window.compact.move(900, 60)
        self.wait_until(lambda: f.window.compact.warning.text().count("⚠") == 2, what="compact warnings")
        self.shot(f.window.compact, "compact_fault")
        f.window.compact_action.setChecked(False)

        # the caller keys their card number (the demo audio, about 20 s in): the composed DTMF
        # trigger pauses the call by itself, reaching back before the first tone
        from callrec_desktop.triggers.compose import automatic_triggers

        k = self.rig("keytones")
        triggers = automatic_triggers(k.config, k.desk, channels=k.config.audio.channels, window=False)
        for observe in triggers.block_observers:
            k.desk.add_block_observer(observe)
        self.wait_until(lambda: k.window.status.capturing, what="capture")
        k.window.start_call()
        self.wait_until(lambda: k.window.view.kind == "payment", timeout=40.0, what="the key tones' pause")
        self.wait(1.0)
        self.shot(k.window, "paused_by_key_tones")
        k.window.payment_finished()

        n = self.rig("nodevice", device=False)
        self.wait_until(lambda: Fault.NO_DEVICE in n.window.status.faults, what="no device")
        self.shot(n.window, "no_device")

        self.library()

        for rig in self.rigs:
            rig.window.close()
            rig.adapter.shutdown()
            rig.desk.shutdown()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
