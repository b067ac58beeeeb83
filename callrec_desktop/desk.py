"""The call handler's desk: the one object the window, the control API and the automatic
payment triggers drive. No Qt, no widgets: the GUI observes it through ``ui.adapter``.

It owns a long-running capture (the recorder thread reads the device all shift; the gate
keeps only frames inside a call), the upload worker, and the fault list the window shows as
banners. Every operation can be called from any thread; it validates, stamps the event at
the current capture frame and returns at once (no I/O on the caller's thread).

One truth for the call state: the desk keeps no call state of its own. Whatever the status
says about the call (recording, paused for payment, ended and why) is copied from a
``RecorderStatus`` snapshot, the timeline the gate applies, taken in one piece under the
recorder's lock; snapshots carry a revision and an older one never replaces a newer one,
whichever thread delivers it last. So the window can never say "Paused" while frames are
kept, nor "Recording" while they are dropped, however a "payment ended" from the control API
interleaves with the agent's "Take payment". Faults, upload health, notices and
``capturing`` are the desk's own, each changed in one step under the desk's lock.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from callrec_desktop.audio.sources import AudioBlock, AudioSource, AudioSourceError, NoInputDeviceError
from callrec_desktop.config import Lines, UnknownLineError
from callrec_desktop.core.timeline import (
    CallState, EndReason, EventSource, IllegalTransitionError, PaymentInProgressError,
)
from callrec_desktop.recorder import Identity, Recorder, RecorderEvent, RecorderStatus, RecordingSettings
from callrec_desktop.spool import Spool
from callrec_desktop.status import (  # noqa: F401 - re-exported: the desk's own vocabulary
    DeskError, DeskStatus, Fault, NotAllowed, NotCapturing, PaymentInProgress, UnknownDepartment, UnknownLine,
    UploadStatus,
)
from callrec_desktop.uploader import Uploader

log = logging.getLogger(__name__)


DeskListener = Callable[[DeskStatus], None]
SourceFactory = Callable[[], AudioSource]

# The DeskStatus fields that describe the call: written only from a RecorderStatus (``_sync``).
CALL_FIELDS = frozenset({"state", "call_id", "line_number", "department", "caller", "call_started",
                         "payment_started", "payment_source", "last_end_reason", "transferred_to"})


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
        # Guards _status, _recorder, _opening, _mirrored, _mirrored_revision and _payment_key. Never held
        # while calling the recorder (its listeners call back in) nor while calling listeners.
        self._lock = threading.Lock()
        self._status = DeskStatus()
        self._recorder: Recorder | None = None  # the one capturing now, if any
        self._opening = False  # start_capture is opening a device (on some thread)
        # The recorder whose call state the status shows: the latest one started. It stays
        # after its capture failed (its call ended as interrupted) until another one starts.
        self._mirrored: Recorder | None = None
        self._mirrored_revision = -1  # the newest of its snapshots applied
        self._payment_key: tuple[str, int | None] | None = None  # (call, pause frame) the payment timer is for
        self._listeners: list[DeskListener] = []
        # Listeners are called one thread at a time, each time with the newest status, so the
        # last call any listener gets always carries the latest state (see ``_notify``).
        self._notify_lock = threading.RLock()
        # Level meters: newest (agent, caller) RMS in dBFS; stale values are dropped.
        self.levels: queue.Queue[tuple[float, float | None]] = queue.Queue(maxsize=1)

    # ---- lifecycle (composition root) -----------------------------------------------------
    def add_listener(self, listener: DeskListener) -> None:
        """Called with the newest status on whichever thread changed it; must return quickly
        and must not wait for another thread that may be changing the desk."""
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
        """(Re)open the audio source and start the recorder thread. False if no device.
        Any thread (a worker: opening a device is I/O); a second call while one is opening the
        device returns True at once rather than start a second recorder."""
        with self._lock:
            if self._recorder is not None or self._opening:
                return True
            self._opening = True
        try:
            source = self._source_factory()
            recorder = Recorder(
                source, self._spool, self._settings, self._identity,
                block_observers=[self._measure_levels, self._observe_extra],
            )
        except BaseException as exc:
            with self._lock:
                self._opening = False
            if not isinstance(exc, (AudioSourceError, ValueError)):
                raise
            self._set_fault(Fault.NO_DEVICE, str(exc))
            return False
        # Bound to its recorder: a late event from a replaced recorder is recognised as such.
        recorder.add_listener(functools.partial(self._on_recorder_event, recorder))
        with self._lock:
            self._opening = False
            self._recorder = recorder
            self._mirrored = recorder
            self._mirrored_revision = -1
            # Before start(): a source that fails at once sets capturing False after this.
            self._status = replace(self._status, capturing=True)
        self._clear_fault(Fault.NO_DEVICE)
        self._clear_fault(Fault.DEVICE_LOST)
        recorder.start()
        self._notify()
        return True

    def shutdown(self, timeout: float = 10.0, upload_timeout: float = 5.0, *,
                 end_reason: EndReason = EndReason.SHUTDOWN) -> bool:
        """End capture, seal and finish any open call with ``end_reason`` (default
        ``shutdown``: the program is being closed; its manifest is final), stop the uploader
        after a last pass of at most ``upload_timeout`` seconds. Waits at most ``timeout``
        seconds for the recorder and uploader threads together, then ``upload_timeout`` for the
        pass. True if nothing is left to upload; anything left stays in the spool and uploads
        at the next start. Any thread but the recorder's (the GUI thread at exit)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.stop(end_open_call_as=end_reason)
            recorder.join(timeout)
            if recorder.is_alive():
                log.error("the recorder did not finish within %.1f s; the spool recovers its call at the next start",
                          timeout)
            self._sync(recorder, capturing=False)
        return self._uploader.finish(max(0.1, deadline - time.monotonic()), upload_timeout)

    def status(self) -> DeskStatus:
        """The newest snapshot. Any thread; no I/O."""
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
        call_ids: list[str] = []
        self._do(lambda r: call_ids.append(
            r.start_call(line.number or line.id, line.department, caller=caller, external_id=external_id,
                         source=source, at_frame=at_frame)), notice=None)
        return call_ids[0]

    def take_payment(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None,
                     notice: str | None = None) -> None:
        self._do(lambda r: r.start_payment(source=source, at_frame=at_frame), notice=notice)

    def payment_finished(self, *, source: EventSource = EventSource.AGENT) -> None:
        self._do(lambda r: r.end_payment(source=source), notice=None)

    def resume(self, *, source: EventSource = EventSource.AGENT) -> None:
        """Generic resume: refused while a payment is in progress (the pause is enforced)."""
        self._do(lambda r: r.resume(source=source), notice=None)

    def transfer(self, department: str, *, source: EventSource = EventSource.AGENT,
                 at_frame: int | None = None) -> None:
        if department not in self.lines.transfer_departments:
            raise UnknownDepartment(f"unknown department {department!r}; known: {', '.join(self.lines.transfer_departments)}")
        self._do(lambda r: r.transfer(department, source=source, at_frame=at_frame), notice=None)

    def end_call(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None,
                 reason: EndReason = EndReason.HANGUP) -> None:
        """End the call (``reason``: hangup, or shutdown when the session is ending)."""
        self._do(lambda r: r.end_call(source=source, at_frame=at_frame, reason=reason), notice=None)

    def end_for_shutdown(self) -> bool:
        """The program is being closed (SIGTERM, logoff): end the open call, if any, now with
        reason ``shutdown``; the recorder thread seals it. True if a call was ended. Any thread;
        never raises for a desk with no call or no capture."""
        with self._lock:
            recorder = self._recorder
        if recorder is None or recorder.status().state not in (CallState.RECORDING, CallState.PAUSED):
            return False
        try:
            self.end_call(source=EventSource.SYSTEM, reason=EndReason.SHUTDOWN)
        except DeskError:  # ended (or capture lost) in the meantime: nothing left to end
            return False
        return True

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

    def _do(self, op: Callable[[Recorder], None], **extra) -> None:
        """Apply ``op`` to the recorder (which changes the timeline under its own lock), then
        show the recorder's state with ``extra`` (non-call fields). Caller's thread."""
        recorder = self._need_recorder()
        try:
            op(recorder)
        except PaymentInProgressError as exc:
            raise PaymentInProgress(str(exc)) from None
        except IllegalTransitionError as exc:
            raise NotAllowed(str(exc)) from None
        # The recorder's state_changed listener has already synced; this covers a listener
        # that failed, and applies ``extra``. A state newer than ours is never undone here.
        self._sync(recorder, **extra)

    def _sync(self, recorder: Recorder, **extra) -> None:
        """Show ``recorder``'s call state (if it is the mirrored recorder and its snapshot is
        newer than the one shown) together with ``extra``, then tell the listeners. Any thread;
        the snapshot is taken before the desk's lock (the recorder's lock is never held
        together with it)."""
        snap = recorder.status()
        with self._lock:
            changes = {}
            if recorder is self._mirrored and snap.revision > self._mirrored_revision:
                self._mirrored_revision = snap.revision
                changes = self._call_fields(snap)
            changes.update(extra)
            if changes:
                self._status = replace(self._status, **changes)
        self._notify()

    def _call_fields(self, snap: RecorderStatus) -> dict:
        """The DeskStatus call fields for ``snap``. Caller holds ``_lock``."""
        if snap.call is None:
            return {}  # a recorder that has had no call yet: keep showing the last call
        old = self._status
        now = time.monotonic()
        same_call = snap.call_id == old.call_id
        payment_key = (snap.call_id, snap.pause_started_frame) if snap.payment_in_progress else None
        if payment_key is None:
            payment_started = None
        elif payment_key == self._payment_key and old.payment_started is not None:
            payment_started = old.payment_started  # the same payment: its timer runs on
        else:
            payment_started = now
        self._payment_key = payment_key
        ended = snap.state is CallState.ENDED
        return dict(
            state=snap.state, call_id=snap.call_id, line_number=snap.call.line_number,
            department=snap.call.department, caller=snap.call.caller,
            call_started=old.call_started if same_call and old.call_started is not None else now,
            payment_started=payment_started, payment_source=snap.payment_source,
            last_end_reason=snap.end_reason if ended else None,
            transferred_to=snap.transferred_to if ended else None,
        )

    def _update(self, **changes) -> None:
        """Change the desk's own fields (never the call state: that comes from the recorder)."""
        wrong = CALL_FIELDS.intersection(changes)
        if wrong:
            raise ValueError(f"the call state comes from the recorder, not _update: {sorted(wrong)}")
        with self._lock:
            self._status = replace(self._status, **changes)
        self._notify()

    def _notify(self) -> None:
        """Call every listener with the newest status. Serialised, and the status is read
        inside, so whichever thread notifies last hands out the latest state (a notice from a
        slower thread can never deliver an older status after a newer one)."""
        with self._notify_lock:
            status = self.status()
            for listener in list(self._listeners):
                try:
                    listener(status)
                except Exception:
                    log.exception("desk listener failed")

    def _set_fault(self, fault: Fault, message: str) -> None:
        """Show ``fault`` with ``message``. Read, change and write in one step under the lock,
        so faults set or cleared at once on several threads are never lost. Any thread."""
        with self._lock:
            if self._status.faults.get(fault) == message:
                return
            self._status = replace(self._status, faults={**self._status.faults, fault: message})
        self._notify()

    def _clear_fault(self, fault: Fault) -> None:
        """Stop showing ``fault`` (one step under the lock, as ``_set_fault``). Any thread."""
        with self._lock:
            if fault not in self._status.faults:
                return
            faults = dict(self._status.faults)
            del faults[fault]
            self._status = replace(self._status, faults=faults)
        self._notify()

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

    def _on_recorder_event(self, recorder: Recorder, event: RecorderEvent) -> None:
        """``recorder``'s listener: on the recorder thread, or on the thread of a call event
        (``state_changed``). Turns recorder events into faults, and shows its state."""
        kind = event.kind
        if kind == "chunk_sealed" or kind == "manifest_written":
            self._uploader.wake()
        if kind == "chunk_sealed":
            # Audio reached the disk again. Not on manifest_written: a failed call's final
            # manifest is still written after the failure and must not clear its banner.
            self._clear_fault(Fault.DISK_FULL)
            self._clear_fault(Fault.RECORDING_FAILED)
        elif kind == "error":
            text = str(event.detail)
            if "No space" in text or "disk full" in text.lower() or "disk is full" in text.lower():
                # The recorder has ended the call as disk_full and finalised its manifest with
                # what reached the disk (or keeps it until there is room): say the call ended.
                self._set_fault(Fault.DISK_FULL, f"{text[:1].upper()}{text[1:]}. What reached the disk is kept; "
                                                 f"nothing more is recorded until space is freed.")
            else:
                self._set_fault(Fault.RECORDING_FAILED, f"Recording stopped: {text}. The call is NOT being recorded.")
            self._sync(recorder)  # the recorder ended the call ("error", "disk_full") before telling us
        elif kind == "source_failed":
            with self._lock:
                if self._recorder is recorder:
                    self._recorder = None
                mirrored = self._mirrored is recorder
            if not mirrored:
                return  # a recorder already replaced: nothing it says is shown any more
            if isinstance(event.detail, NoInputDeviceError):  # never opened: no device, not a lost one
                self._set_fault(Fault.NO_DEVICE, str(event.detail))
            else:
                self._set_fault(Fault.DEVICE_LOST, f"Audio device lost: {event.detail}. The call is NOT being recorded.")
            # The recorder ended the open call as "interrupted" before telling us.
            self._sync(recorder, capturing=False)
        elif kind == "late_event":
            self._update(notice=f"A pause arrived late; {event.detail}")
        elif kind in ("state_changed", "call_finished"):
            self._sync(recorder)
