"""The call handler's desk: the one object the window, the control API and the automatic
payment triggers drive. No Qt, no widgets: the GUI observes it through ``ui.adapter``.

It owns a long-running capture (the recorder thread reads the device all shift; the gate
keeps only frames inside a call), the upload worker, and the fault list the window shows as
banners. Every operation can be called from any thread; it validates, stamps the event at
the current capture frame and returns at once (no I/O on the caller's thread).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from callrec_desktop.audio.sources import AudioBlock, AudioSource, AudioSourceError, NoInputDeviceError
from callrec_desktop.config import Lines, UnknownLineError
from callrec_desktop.core.timeline import CallState, EventSource, IllegalTransitionError, PaymentInProgressError
from callrec_desktop.recorder import Identity, Recorder, RecorderEvent, RecordingSettings
from callrec_desktop.spool import Spool
from callrec_desktop.status import (  # noqa: F401 - re-exported: the desk's own vocabulary
    DeskError, DeskStatus, Fault, NotAllowed, NotCapturing, PaymentInProgress, UnknownDepartment, UnknownLine,
    UploadStatus,
)
from callrec_desktop.uploader import Uploader

log = logging.getLogger(__name__)


DeskListener = Callable[[DeskStatus], None]
SourceFactory = Callable[[], AudioSource]


class Desk:
    def __init__(
        self,
        *,
        lines: Lines,
        spool: Spool,
        uploader: Uploader,
        settings: RecordingSettings,
        identity: Identity,
        source_factory: SourceFactory,
        block_observers: list[Callable[[AudioBlock], None]] | None = None,
    ) -> None:
        self.lines = lines
        self._spool = spool
        self._uploader = uploader
        self._settings = settings
        self._identity = identity
        self._source_factory = source_factory
        # Replaced (never mutated) when one is added, so the recorder thread can iterate it freely.
        self._extra_observers: tuple[Callable[[AudioBlock], None], ...] = tuple(block_observers or ())
        self._lock = threading.Lock()  # guards _status and _recorder
        self._status = DeskStatus()
        self._recorder: Recorder | None = None
        self._listeners: list[DeskListener] = []
        # Level meters: newest (agent, caller) RMS in dBFS; stale values are dropped.
        self.levels: queue.Queue[tuple[float, float | None]] = queue.Queue(maxsize=1)
        self._calls_ended_by_failure: set[str] = set()

    # ---- lifecycle (composition root) -----------------------------------------------------
    def add_listener(self, listener: DeskListener) -> None:
        """Called with a new status on whichever thread changed it; must return quickly."""
        self._listeners.append(listener)

    def add_block_observer(self, observer: Callable[[AudioBlock], None]) -> None:
        """Also show every captured block to ``observer`` (recorder thread; e.g. the DTMF
        trigger, which needs the desk and so is built after it). Takes effect at once."""
        self._extra_observers = (*self._extra_observers, observer)

    def _observe_extra(self, block: AudioBlock) -> None:
        for observe in self._extra_observers:
            observe(block)

    def start(self) -> None:
        """Recover the spool, start uploading and start capturing (if a device is there)."""
        report = self._spool.recover()
        for call_id in report.interrupted_calls:
            log.warning("call %s was interrupted by a crash; recovered, and not resumed", call_id)
        self._uploader.start()
        self.start_capture()

    def start_capture(self) -> bool:
        """(Re)open the audio source and start the recorder thread. False if no device."""
        with self._lock:
            if self._recorder is not None:
                return True
        try:
            source = self._source_factory()
            recorder = Recorder(
                source, self._spool, self._settings, self._identity,
                listeners=[self._on_recorder_event],
                block_observers=[self._measure_levels, self._observe_extra],
            )
        except (AudioSourceError, ValueError) as exc:
            self._set_fault(Fault.NO_DEVICE, str(exc))
            return False
        with self._lock:
            self._recorder = recorder
        recorder.start()
        self._update(capturing=True)
        self._clear_fault(Fault.NO_DEVICE)
        self._clear_fault(Fault.DEVICE_LOST)
        return True

    def shutdown(self, timeout: float = 10.0, upload_timeout: float = 5.0) -> bool:
        """End capture (an open call ends as interrupted), flush, stop the uploader after a
        last pass of at most ``upload_timeout`` seconds. True if nothing is left to upload;
        anything left stays in the spool and uploads at the next start."""
        with self._lock:
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.stop()
            recorder.join(timeout)
        return self._uploader.finish(timeout, upload_timeout)

    def status(self) -> DeskStatus:
        with self._lock:
            return self._status

    def upload_status_changed(self, status: UploadStatus) -> None:
        """The uploader's ``on_status`` hook (uploader thread)."""
        # DISK_FULL is this PC's disk (the recorder's fault, cleared when a chunk is sealed
        # again); a full central store is a storage fault, cleared by the next good upload.
        permanent_disk = status.last_error is not None and "disk full" in status.last_error
        if status.last_error is None:
            self._clear_fault(Fault.STORAGE_UNREACHABLE)
        elif permanent_disk:
            self._set_fault(Fault.STORAGE_UNREACHABLE, f"Central storage is full: recordings are kept on this "
                            f"PC and will upload when there is room ({status.last_error})")
        else:
            self._set_fault(Fault.STORAGE_UNREACHABLE, f"Central storage unreachable: recordings are kept on this "
                            f"PC and will upload when it is back ({status.last_error})")
        self._update(upload=status)

    # ---- operations: any thread --------------------------------------------------------------
    def start_call(self, line_key: str, *, caller: str | None = None, external_id: str | None = None,
                   source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> str:
        try:
            line = self.lines.find(line_key)
        except UnknownLineError as exc:
            raise UnknownLine(str(exc)) from None
        recorder = self._need_recorder()
        try:
            call_id = recorder.start_call(line.number or line.id, line.department, caller=caller,
                                          external_id=external_id, source=source, at_frame=at_frame)
        except IllegalTransitionError as exc:
            raise NotAllowed(str(exc)) from None
        self._update(state=CallState.RECORDING, call_id=call_id, line_number=line.number or line.id,
                     department=line.department, caller=caller, call_started=time.monotonic(),
                     payment_started=None, payment_source=None, last_end_reason=None, transferred_to=None,
                     notice=None)
        return call_id

    def take_payment(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None,
                     notice: str | None = None) -> None:
        self._do(lambda r: r.start_payment(source=source, at_frame=at_frame))
        self._update(state=CallState.PAUSED, payment_started=time.monotonic(), payment_source=source.value,
                     notice=notice)

    def payment_finished(self, *, source: EventSource = EventSource.AGENT) -> None:
        self._do(lambda r: r.end_payment(source=source))
        self._update(state=CallState.RECORDING, payment_started=None, payment_source=None, notice=None)

    def resume(self, *, source: EventSource = EventSource.AGENT) -> None:
        """Generic resume: refused while a payment is in progress (the pause is enforced)."""
        self._do(lambda r: r.resume(source=source))
        self._update(state=CallState.RECORDING, notice=None)

    def transfer(self, department: str, *, source: EventSource = EventSource.AGENT,
                 at_frame: int | None = None) -> None:
        if department not in self.lines.transfer_departments:
            raise UnknownDepartment(f"unknown department {department!r}; known: {', '.join(self.lines.transfer_departments)}")
        self._do(lambda r: r.transfer(department, source=source, at_frame=at_frame))
        self._update(state=CallState.ENDED, payment_started=None, payment_source=None,
                     last_end_reason="transferred", transferred_to=department, notice=None)

    def end_call(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> None:
        self._do(lambda r: r.end_call(source=source, at_frame=at_frame))
        self._update(state=CallState.ENDED, payment_started=None, payment_source=None,
                     last_end_reason="hangup", transferred_to=None, notice=None)

    def report_fault(self, fault: Fault, message: str) -> None:
        """Show ``fault`` (a banner that stays) with ``message``; for the app's integrations. Any thread."""
        self._set_fault(fault, message)

    def notify(self, message: str) -> None:
        """A one-off message for the agent (shown as an info bar). Any thread."""
        self._update(notice=message)

    def current_frame(self) -> int | None:
        with self._lock:
            r = self._recorder
        return None if r is None else r.status().frames_captured

    # ---- internals ---------------------------------------------------------------------------
    def _need_recorder(self) -> Recorder:
        with self._lock:
            r = self._recorder
        if r is None:
            reason = self._status.faults.get(Fault.NO_DEVICE) or self._status.faults.get(Fault.DEVICE_LOST) or "no audio capture"
            raise NotCapturing(f"cannot record: {reason}")
        return r

    def _do(self, op: Callable[[Recorder], None]) -> None:
        recorder = self._need_recorder()
        try:
            op(recorder)
        except PaymentInProgressError as exc:
            raise PaymentInProgress(str(exc)) from None
        except IllegalTransitionError as exc:
            raise NotAllowed(str(exc)) from None

    def _update(self, **changes) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
            status = self._status
        for listener in self._listeners:
            try:
                listener(status)
            except Exception:
                log.exception("desk listener failed")

    def _set_fault(self, fault: Fault, message: str) -> None:
        with self._lock:
            if self._status.faults.get(fault) == message:
                return
            faults = dict(self._status.faults)
        faults[fault] = message
        self._update(faults=faults)

    def _clear_fault(self, fault: Fault) -> None:
        with self._lock:
            if fault not in self._status.faults:
                return
            faults = dict(self._status.faults)
        faults.pop(fault)
        self._update(faults=faults)

    def _measure_levels(self, block: AudioBlock) -> None:
        """Runs on the recorder thread for every block: RMS per channel into a size-1 queue."""
        data = block.data
        rms = np.sqrt(np.mean(np.square(data, dtype=np.float64), axis=0)) if len(data) else np.zeros(data.shape[1])
        db = 20 * np.log10(np.maximum(rms, 1e-6))
        value = (float(db[0]), float(db[1]) if len(db) > 1 else None)
        try:
            self.levels.get_nowait()  # drop the stale value
        except queue.Empty:
            pass
        try:
            self.levels.put_nowait(value)
        except queue.Full:
            pass

    def _on_recorder_event(self, event: RecorderEvent) -> None:
        """Recorder thread. Turns recorder events into faults and state."""
        if event.kind == "chunk_sealed" or event.kind == "manifest_written":
            self._uploader.wake()
        if event.kind == "chunk_sealed":
            # Audio reached the disk again. Not on manifest_written: a failed call's final
            # manifest is still written after the failure and must not clear its banner.
            self._clear_fault(Fault.DISK_FULL)
            self._clear_fault(Fault.RECORDING_FAILED)
        elif event.kind == "error":
            text = str(event.detail)
            fault = Fault.DISK_FULL if ("No space" in text or "disk full" in text.lower()) else Fault.RECORDING_FAILED
            self._set_fault(fault, f"Recording stopped: {text}. The call is NOT being recorded.")
            self._update(state=CallState.ENDED, payment_started=None, last_end_reason="error")
        elif event.kind == "source_failed":
            with self._lock:
                self._recorder = None
            if isinstance(event.detail, NoInputDeviceError):  # never opened: no device, not a lost one
                self._set_fault(Fault.NO_DEVICE, str(event.detail))
            else:
                self._set_fault(Fault.DEVICE_LOST, f"Audio device lost: {event.detail}. The call is NOT being recorded.")
            st = self._status
            if st.state in (CallState.RECORDING, CallState.PAUSED):
                self._update(state=CallState.ENDED, payment_started=None, last_end_reason="interrupted")
            self._update(capturing=False)
        elif event.kind == "late_event":
            self._update(notice=f"A pause arrived late; {event.detail}")
