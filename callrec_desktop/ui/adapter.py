"""The one way back to the GUI thread.

``DeskAdapter`` is a QObject that lives on the GUI thread. Worker threads (recorder, uploader,
control API, triggers, and the window's own background jobs) never touch widgets: they call
``emit_status`` (the desk's listener) or finish a job started with ``run_task``, and the
adapter re-emits on the GUI thread through queued connections.

Statuses are coalesced and re-read: the desk calls its listeners outside its lock, so two
threads' updates can reach the adapter in the opposite order to the one they happened in. The
adapter therefore never forwards the snapshot a worker handed it; when the queued signal is
delivered on the GUI thread it emits ``desk.status()``, the newest state, so the window can
never be left showing an older one ("Recording" after the pause had already happened).
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot

log = logging.getLogger(__name__)

TASK_THREAD_PREFIX = "callrec-ui-task"

_emit_leak: bool | None = None
_incref: Callable[[object], None] | None = None  # Py_IncRef, loaded (ctypes) only if the leak is found


def _emit_leaks_true() -> bool:
    """PySide6 6.12.0's ``SignalInstance.emit()`` returns ``True`` without taking a reference,
    so every emit from Python drops one reference to ``True``; after a few thousand the
    interpreter aborts ("bool_dealloc: deallocating True or False"). Measured once, here, so a
    fixed PySide6 needs no compensation and a broken one gets exactly one incref per emit."""
    from PySide6.QtCore import QObject as _QObject
    from PySide6.QtCore import Signal as _Signal

    class _Probe(_QObject):
        probed = _Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(8):
        probe.probed.emit()
    leaked = sys.getrefcount(True) - before <= -8
    if leaked:
        global _incref
        import ctypes  # only here: ctypes is a few ms of start-up that a fixed PySide6 never needs

        _incref = ctypes.pythonapi.Py_IncRef
        _incref.argtypes = [ctypes.py_object]
        _incref.restype = None
        for _ in range(8):
            _incref(True)  # give back what the probe itself lost
    return leaked


def emit_signal(signal, *args) -> None:
    """``signal.emit(*args)``, compensating PySide6 6.12.0's lost reference (see above).
    Every signal the ui package emits goes through here. Any thread."""
    global _emit_leak
    if _emit_leak is None:
        _emit_leak = _emit_leaks_true()
        if _emit_leak:
            log.warning("this PySide6 drops a reference on every Signal.emit(); compensating")
    result = signal.emit(*args)
    if _emit_leak and result is True:
        _incref(result)  # set before _emit_leak became True


@dataclass(frozen=True)
class TaskResult:
    """What a background job returned (``value``) or raised (``error``)."""

    job_id: int
    name: str
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class DeskAdapter(QObject):
    """Turns desk callbacks and background jobs into signals on the GUI thread.

    Create it on the GUI thread, without a parent (Python owns it, so a late callback from a
    worker can never reach a deleted C++ object).
    """

    status_changed = Signal(object)  # DeskStatus, always emitted on the GUI thread
    task_finished = Signal(object)  # TaskResult, on the GUI thread
    error_reported = Signal(str)  # an unexpected error on a worker thread, for the one error dialog

    _status_posted = Signal()
    _task_done = Signal(int, object, object)
    _error_posted = Signal(str)

    def __init__(self, desk=None) -> None:
        super().__init__()
        self._desk = desk
        self._lock = threading.Lock()
        self._pending = False
        self._latest = None
        self._closed = False
        self._jobs = itertools.count(1)
        self._callbacks: dict[int, tuple[str, Callable[[TaskResult], None] | None]] = {}
        self._threads: dict[int, threading.Thread] = {}
        # Explicitly queued, also for emits made on the GUI thread itself: one path, in order.
        self._status_posted.connect(self._on_status_posted, Qt.ConnectionType.QueuedConnection)
        self._task_done.connect(self._on_task_done, Qt.ConnectionType.QueuedConnection)
        self._error_posted.connect(self.error_reported, Qt.ConnectionType.QueuedConnection)

    def attach(self, desk) -> None:
        """The desk, once built (GUI thread): from now on every delivery re-reads its newest
        status. Adds ``emit_status`` as the desk's listener."""
        self._desk = desk
        desk.add_listener(self.emit_status)

    # ---- any thread ---------------------------------------------------------------------------
    def emit_status(self, status) -> None:
        """The desk's listener. Runs on whichever thread changed the desk; returns at once."""
        with self._lock:
            if self._closed:
                return
            self._latest = status
            if self._pending:
                return  # a delivery is already queued; it will read the newest status
            self._pending = True
        emit_signal(self._status_posted)

    def report_error(self, message: str) -> None:
        """An unexpected error on a worker thread: shown by the window's one error dialog."""
        if not self._closed:
            emit_signal(self._error_posted, message)

    # ---- GUI thread ----------------------------------------------------------------------------
    @Slot()
    def _on_status_posted(self) -> None:
        with self._lock:
            self._pending = False
            latest = self._latest
        status = self._desk.status() if self._desk is not None else latest
        if status is not None and not self._closed:
            emit_signal(self.status_changed, status)

    def run_task(self, fn: Callable[[], Any], on_done: Callable[[TaskResult], None] | None = None,
                 *, name: str = "task") -> int:
        """Run ``fn()`` on a new worker thread; ``on_done(TaskResult)`` is called on the GUI thread.

        ``fn`` must not touch widgets or create QObjects: give it plain values (a frozen
        dataclass or a closure over them) and let ``on_done`` show the result.
        """
        job_id = next(self._jobs)
        self._callbacks[job_id] = (name, on_done)

        def work() -> None:  # runs on the worker thread
            try:
                value, error = fn(), None
            except BaseException as exc:  # delivered to on_done; never lost
                value, error = None, exc
                if not isinstance(exc, Exception):
                    log.error("background job %s stopped: %r", name, exc)
            if not self._closed:
                emit_signal(self._task_done, job_id, value, error)

        thread = threading.Thread(target=work, name=f"{TASK_THREAD_PREFIX}-{name}-{job_id}", daemon=True)
        self._threads[job_id] = thread
        thread.start()
        return job_id

    @Slot(int, object, object)
    def _on_task_done(self, job_id: int, value: Any, error: BaseException | None) -> None:
        self._threads.pop(job_id, None)
        name, on_done = self._callbacks.pop(job_id, ("task", None))
        result = TaskResult(job_id, name, value, error)
        if error is not None and on_done is None:
            log.error("background job %s failed: %s", name, error, exc_info=error)
        if on_done is not None:
            on_done(result)
        emit_signal(self.task_finished, result)

    def busy(self) -> bool:
        """True while a background job started here is still running."""
        return any(t.is_alive() for t in self._threads.values())

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop delivering, and wait for running jobs. True if every job finished in time."""
        with self._lock:
            self._closed = True
        ok = True
        for thread in list(self._threads.values()):
            thread.join(timeout)
            ok = ok and not thread.is_alive()
        self._threads.clear()
        self._callbacks.clear()
        return ok
