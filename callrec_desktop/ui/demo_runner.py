"""The window demo: the bundled demo call played through the real pipeline, in a real window.

``DemoSession`` builds its own ``Desk`` (``compose.build_desk``, exactly as the app does)
whose source factory gives a ``DemoSource`` (the demo file paced like a live headset) instead
of the audio device, the automatic payment triggers (``triggers.compose.automatic_triggers``,
as the app: the DTMF trigger on the caller's channel when ``[triggers]`` enables it; no focus
trigger, the demo has no payment application), a ``DeskAdapter`` and a ``MainWindow``.
Recordings go through the spool (a temporary folder of the session's own) and the uploader
into the embedded folder store, never the council's central store (``demo.demo_config``).

``DemoRunner`` applies the script's events (``demo.demo_events``: with the DTMF trigger on, the
pause itself is the trigger's, never the script's) from the GUI thread: a QTimer polls the
capture frame and applies each event once capture has reached it, stamped at the event's own
frame (the desk's operations take ``at_frame``; the look-behind holds those frames in memory),
so where a pause lands does not depend on timer jitter. Then it waits (worker thread) until the
final manifest is in the store and every chunk verifies, and emits ``finished(manifest)``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel

from callrec_desktop.config import Config
from callrec_desktop.core.timeline import EventSource
from callrec_desktop.demo import (
    DemoCall,
    DemoStep,
    demo_config,
    demo_events,
    demo_source_factory,
    demo_steps,
    load_demo,
)
from callrec_desktop.archive import verified_final_manifest
from callrec_desktop.desk import Desk, Fault
from callrec_desktop.ui.adapter import DeskAdapter, TaskResult, emit_signal
from callrec_desktop.ui.main_window import MainWindow
from callrec_desktop.ui.widgets import InfoBar, safe_tooltip

log = logging.getLogger(__name__)

DEMO_INTRO = ("Demonstration call: a recorded call plays through the real recorder into this PC's own "
              "store (never central storage). Watch the recording pause by itself when the caller keys "
              "a card number, resume after the payment, and stop at the transfer to Housing.")
UPLOAD_TIMEOUT_S = 60.0


class DemoRunner(QObject):
    """Plays a demo script against ``desk`` (GUI thread; QTimers only, never blocks)."""

    finished = Signal(object)  # the verified final Manifest
    failed = Signal(str)

    def __init__(self, desk: Desk, adapter: DeskAdapter, store, demo: DemoCall, steps: list[DemoStep], *,
                 sample_rate: int, speed: float = 1.0, poll_ms: int = 20) -> None:
        super().__init__()
        self.desk = desk
        self.adapter = adapter
        self.store = store
        self.demo = demo
        self.steps = list(steps)
        self.rate = sample_rate
        self.call_id: str | None = None
        self.phase = "idle"
        self.done = False
        self.applied: list[tuple[str, str]] = []  # (event, how) for the log and tests
        self._checking = False
        self._poll = QTimer(self)
        self._poll.setInterval(poll_ms)
        self._poll.timeout.connect(self._on_poll_timeout)
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(self._on_deadline_timeout)
        self._timeout_s = demo.seconds / speed + UPLOAD_TIMEOUT_S

    def start(self) -> None:
        """Once the desk has started (its capture is starting or running)."""
        self.phase = "waiting for capture"
        self._deadline.start(round(self._timeout_s * 1000))
        self._poll.start()

    def stop(self) -> None:
        self._poll.stop()
        self._deadline.stop()

    # ---- GUI thread ---------------------------------------------------------------------------
    def _on_poll_timeout(self) -> None:
        try:
            self._advance()
        except Exception as exc:  # never leave the demo half-played without saying why
            log.exception("demo step failed")
            self._fail(f"{type(exc).__name__}: {exc}")

    def _advance(self) -> None:
        status = self.desk.status()
        for fault in (Fault.NO_DEVICE, Fault.DEVICE_LOST, Fault.RECORDING_FAILED, Fault.DISK_FULL):
            if fault in status.faults:
                self._fail(status.faults[fault])
                return
        if self.phase == "uploading":
            if not self._checking:
                self._checking = True
                store, call_id = self.store, self.call_id
                self.adapter.run_task(lambda: verified_final_manifest(store, call_id), self._on_checked, name="demo-check")
            return
        frame = self.desk.current_frame()
        if frame is None or not status.capturing:
            return
        self.phase = "playing"
        while self.steps and frame >= self.steps[0].due_frame:
            self._apply(self.steps.pop(0))
        if not self.steps:
            self.phase = "uploading"
            self._poll.setInterval(250)

    def _apply(self, step: DemoStep) -> None:
        e, src = step.event, EventSource.SCRIPT
        if e.event == "call_started":
            self.call_id = self.desk.start_call(e.line, caller=e.caller, external_id=e.external_id, source=src,
                                                at_frame=step.at_frame)
            how = f"call {self.call_id}"
        elif e.event == "payment_started":  # only with the DTMF trigger off (demo_events)
            self.desk.take_payment(source=src, at_frame=step.at_frame)
            how = "paused for payment by the script"
        elif e.event == "payment_ended":
            how = self._payment_finished()
        elif e.event == "transferred":
            self.desk.transfer(e.to, source=src, at_frame=step.at_frame)
            how = f"transferred to {e.to}"
        elif e.event == "call_ended":
            self.desk.end_call(source=src, at_frame=step.at_frame)
            how = "ended"
        else:  # parse_script allows no other events
            raise ValueError(f"unknown demo event {e.event!r}")
        self.applied.append((e.event, how))
        log.info("demo: %s at %.2f s: %s", e.event, step.at_frame / self.rate, how)

    def _payment_finished(self) -> str:
        """The agent's Payment finished. With no pause on (the trigger did not pause) there is
        nothing to finish: said in the log and in ``applied``, and the demo goes on."""
        if not self.desk.status().payment_in_progress:
            log.warning("demo: no payment pause to finish: the DTMF trigger did not pause")
            return "no payment pause to finish"
        self.desk.payment_finished(source=EventSource.SCRIPT)
        return "payment finished"

    def _on_checked(self, result: TaskResult) -> None:
        self._checking = False
        if self.done:
            return
        if not result.ok:
            self._fail(f"the demo call did not verify in the store: {result.error}")
        elif result.value is not None:
            self.done = True
            self.phase = "done"
            self.stop()
            log.info("demo: call %s is in the store and verifies", self.call_id)
            emit_signal(self.finished, result.value)

    def _on_deadline_timeout(self) -> None:
        self._fail(f"the demo did not finish within {self._timeout_s:.0f} s (phase: {self.phase})")

    def _fail(self, reason: str) -> None:
        if self.done:
            return
        self.done = True
        self.phase = "failed"
        self.stop()
        log.error("demo failed: %s", reason)
        emit_signal(self.failed, reason)


class DemoSession:
    """A demo call's own desk, adapter, window and runner. Build and use on the GUI thread.

    ``speed`` plays the audio faster than real time (tests); ``spool_dir`` defaults to a
    temporary folder removed by ``shutdown()``; ``window_kwargs`` go to ``MainWindow``.
    """

    def __init__(self, config: Config, store, *, demo: DemoCall | None = None, speed: float = 1.0,
                 spool_dir: Path | None = None, notice_text: str = "", **window_kwargs) -> None:
        from callrec_desktop.compose import build_desk
        from callrec_desktop.triggers.compose import automatic_triggers

        self.config = demo_config(config)
        self.demo = demo or load_demo(config=self.config)
        self.store = store
        self._tmp = None
        if spool_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="callrec-demo-spool-")
            spool_dir = Path(self._tmp.name)
        rate = self.config.recorder.sample_rate
        self.desk = build_desk(self.config, store=store, spool_dir=spool_dir, channels=2,
                               source_factory=demo_source_factory(self.config, self.demo, speed))
        self.triggers = automatic_triggers(self.config, self.desk, channels=2)
        for observe in self.triggers.block_observers:
            self.desk.add_block_observer(observe)
        self.dtmf_trigger = self.triggers.dtmf
        self.adapter = DeskAdapter(self.desk)
        self.desk.add_listener(self.adapter.emit_status)
        window_kwargs.setdefault("confirm", lambda *args: True)  # a demo asks no "are you sure?"
        window_kwargs.setdefault("offer_settings", False)
        self.window = MainWindow(self.desk, self.adapter, self.config, notice_text=notice_text, **window_kwargs)
        self.intro = InfoBar(self.window.centralWidget())
        self.intro.show_message(DEMO_INTRO)
        self.window.banner_area.insertWidget(0, self.intro)
        self.progress = QLabel(self.window)
        self.progress.setObjectName("demoProgress")
        self.progress.setTextFormat(Qt.TextFormat.PlainText)  # names the store and failure reasons
        self.progress.setStyleSheet("color: #475467; padding: 0 8px;")
        self.window.statusBar().addPermanentWidget(self.progress, 1)
        steps = demo_steps(demo_events(self.demo, dtmf_trigger=self.dtmf_trigger is not None), rate)
        self.runner = DemoRunner(self.desk, self.adapter, store, self.demo, steps, sample_rate=rate, speed=speed)
        self.runner.finished.connect(self._on_runner_finished)
        self.runner.failed.connect(self._on_runner_failed)
        self._clock = QTimer(self.window)
        self._clock.setInterval(250)
        self._clock.timeout.connect(self._on_clock_timeout)
        self._started_at: float | None = None
        self._speed = speed
        # Closing the demo window ends the demo: capture, uploads and the temporary spool go
        # (after this signal's handlers have run, so the window finishes closing first).
        self.window.closed.connect(lambda: QTimer.singleShot(0, self.shutdown))
        self._shut = False

    def start(self) -> None:
        """Show the window and start the desk (spool recovery and capture: on a worker)."""
        self.window.show()
        self.progress.setText("Demo: starting…")
        self.adapter.run_task(self.desk.start, self._on_desk_started, name="demo-desk-start")

    def _on_desk_started(self, result: TaskResult) -> None:
        if not result.ok:
            self.runner._fail(f"the demo could not start: {result.error}")
            return
        self._started_at = time.monotonic()
        self._clock.start()
        self.runner.start()

    def _on_clock_timeout(self) -> None:
        frame = self.desk.current_frame() or 0
        played = min(frame / self.config.recorder.sample_rate, self.demo.seconds)
        self.progress.setText(f"Demo call: {played:4.0f} s of {self.demo.seconds:.0f} s played")
        if played >= self.demo.seconds:
            self._clock.stop()

    def _on_runner_finished(self, manifest) -> None:
        self._clock.stop()
        pauses = len(manifest.pauses)
        end = manifest.end.department if manifest.end and manifest.end.department else "—"
        self.progress.setText(f"Demo finished: call {manifest.call_id} saved and verified in this PC's store "
                              f"({pauses} payment pause{'s' if pauses != 1 else ''}, transferred to {end}).")
        self.progress.setToolTip(safe_tooltip(f"Stored in {self.store.description}"))

    def _on_runner_failed(self, reason: str) -> None:
        self._clock.stop()
        self.progress.setText(f"Demo stopped: {reason}")
        self.window.show_message(f"The demo stopped: {reason}")

    def stop(self) -> None:
        """Stop the runner and its timers (the window was closed, or the app is quitting)."""
        self.runner.stop()
        self._clock.stop()

    def shutdown(self) -> None:
        """Close the window, end capture, stop the uploader, remove the temporary spool."""
        if self._shut:
            return
        self._shut = True
        self.stop()
        if self.window.isVisible():
            self.window.close()
        self.adapter.shutdown()
        self.desk.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()
