"""The recorder: capture → look-behind → gate (call timeline) → chunk writer → spool.

Threads:
- the source's own thread (PortAudio callback) only copies blocks into a queue;
- the recorder thread (``run``) owns the look-behind buffer, the encoders and the spool files;
- any other thread (GUI, control API, CLI) signals call events through the public methods,
  which only touch the timeline under a short lock and never do I/O.

Every event is stamped with a capture frame index. Frames leave the look-behind buffer only
once they are ``lookbehind_frames`` old, and the gate decides per frame from the timeline, so a
pause stamped up to that far in the past still removes exactly the frames it should.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np

from callrec_desktop.audio.chunk_writer import ChunkWriter
from callrec_desktop.audio.encoders import CodecSettings
from callrec_desktop.audio.lookbehind import LookBehindBuffer
from callrec_desktop.audio.sources import AudioBlock, AudioSource, AudioSourceError
from callrec_desktop.core.ids import new_call_id
from callrec_desktop.core.manifest import AudioFormat, EndInfo, Manifest, PauseEntry
from callrec_desktop.core.timeline import (
    CallInfo,
    CallSession,
    CallState,
    CallTimeline,
    EndReason,
    EventSource,
    PauseReason,
    Segment,
)
from callrec_desktop.spool import CallSpool, Spool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingSettings:
    codec: CodecSettings
    chunk_frames: int
    lookbehind_frames: int


@dataclass(frozen=True)
class Identity:
    agent: str
    workstation: str
    app_version: str


@dataclass(frozen=True)
class RecorderEvent:
    """What the recorder tells its listeners. Delivered on the recorder thread (or the calling
    thread for ``state_changed``): listeners must return quickly and never block."""

    kind: str  # call_opened | chunk_sealed | manifest_written | call_finished | state_changed | error | late_event | source_failed
    call_id: str | None = None
    detail: object = None


@dataclass(frozen=True)
class RecorderStatus:
    """The call state as the gate applies it from the latest event on, taken in one piece under
    the recorder's lock: whatever shows the call state (the desk, the window) derives it from
    this, so it can never say "Paused" while frames are kept or "Recording" while they are
    dropped.

    ``revision`` counts the timeline's changes (every event, every end the recorder itself
    applies); a snapshot with a higher revision is newer. Listeners are told on whichever
    thread made the change and outside the lock, so two threads' notices can arrive in either
    order: compare revisions, never trust arrival order."""

    state: CallState
    call_id: str | None
    line_number: str | None  # None once the call has ended (``call`` still says)
    department: str | None
    payment_in_progress: bool
    frames_captured: int
    overflows: int
    revision: int = 0
    call: CallInfo | None = None  # the current call, or the last one after it ended
    payment_source: str | None = None  # who started the payment pause in progress
    pause_started_frame: int | None = None  # capture frame of the open pause, if any
    end_reason: str | None = None  # how the current call ended, once it has
    end_source: str | None = None
    transferred_to: str | None = None


@dataclass
class _ActiveCall:
    session: CallSession
    spool: CallSpool
    writer: ChunkWriter
    last_state: CallState = CallState.RECORDING
    failed: bool = False
    # Set when writing failed: the capture frame up to which the call's timeline is accounted
    # for (durable chunks, then pauses), where its manifest ends. Nothing after it is claimed.
    written_to: int | None = None


@dataclass
class _PendingFinal:
    """A final manifest that could not be written (the disk is full): kept in memory and
    written again on the recorder thread at every chance (``Recorder.RETRY_SECONDS``) and at
    the latest when the recorder stops. ``spool`` is None when even the call's folder could
    not be made; the folder lock stays held meanwhile, so no recovery finalises it otherwise."""

    manifest: Manifest
    spool: CallSpool | None


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk (or an exhausted quota) gives, whatever layer raised it."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


@dataclass
class _Finished:
    manifests: list[Manifest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Recorder:
    def __init__(
        self,
        source: AudioSource,
        spool: Spool,
        settings: RecordingSettings,
        identity: Identity,
        *,
        listeners: Iterable[Callable[[RecorderEvent], None]] = (),
        block_observers: Iterable[Callable[[AudioBlock], None]] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        if settings.codec.channels != source.channels:
            raise ValueError(
                f"the source has {source.channels} channel(s) but recording is set for {settings.codec.channels}"
            )
        if settings.codec.sample_rate != source.sample_rate:
            raise ValueError(
                f"the source runs at {source.sample_rate} Hz but recording is set for {settings.codec.sample_rate} Hz"
            )
        self._source = source
        self._spool = spool
        self._settings = settings
        self._identity = identity
        self._listeners = list(listeners)
        # Called on the recorder thread with every captured block, before the look-behind
        # buffer (level meters, the DTMF detector). They must be quick and must not block.
        self._block_observers = list(block_observers)
        self._clock = clock
        self._rate = settings.codec.sample_rate
        # Guards _timeline, _gated_to and _revision; held briefly, never during I/O, and no
        # listener is ever called while it is held (a listener may ask for ``status()``).
        self._lock = threading.Lock()
        self._timeline = CallTimeline()
        self._gated_to = 0
        self._revision = 0  # +1 on every change of the timeline (see RecorderStatus)
        self._pushed_to = 0  # end of the newest block handed to the look-behind (recorder thread)
        self._stop_reason: EndReason | None = None
        self._t0 = clock()
        self._lookbehind = LookBehindBuffer(settings.lookbehind_frames)
        self._active: _ActiveCall | None = None
        self._done: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_error: AudioSourceError | None = None
        self._eof = False
        self._pending_finals: list[_PendingFinal] = []  # recorder thread only
        self._finals_tried_at = 0.0  # time.monotonic() of the last retry
        self.results = _Finished()

    # ---- control: any thread ------------------------------------------------------------
    def add_listener(self, listener: Callable[[RecorderEvent], None]) -> None:
        self._listeners.append(listener)

    def start_call(
        self,
        line_number: str,
        department: str,
        *,
        caller: str | None = None,
        external_id: str | None = None,
        source: EventSource = EventSource.AGENT,
        at_frame: int | None = None,
    ) -> str:
        """Start recording a call on a line. Returns the new call's id."""
        with self._lock:
            frame, late = self._stamp(at_frame, "call_started")
            call_id = new_call_id(self._wall(frame))
            self._timeline.start_call(frame, CallInfo(call_id, line_number, department, caller, external_id))
            self._revision += 1
        self._emit_late(late)
        self._emit(RecorderEvent("state_changed", call_id, CallState.RECORDING))
        return call_id

    def start_payment(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> None:
        self._event("payment_started", lambda f: self._timeline.start_payment(f, source), at_frame)

    def end_payment(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> None:
        self._event("payment_ended", lambda f: self._timeline.end_payment(f, source), at_frame)

    def pause(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> None:
        self._event("paused", lambda f: self._timeline.pause(f, source, PauseReason.AGENT_REQUEST), at_frame)

    def resume(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> None:
        self._event("resumed", lambda f: self._timeline.resume(f, source), at_frame)

    def transfer(self, department: str, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None) -> None:
        self._event("transferred", lambda f: self._timeline.transfer(f, department, source), at_frame)

    def end_call(self, *, source: EventSource = EventSource.AGENT, at_frame: int | None = None,
                 reason: EndReason = EndReason.HANGUP) -> None:
        self._event("call_ended", lambda f: self._timeline.end_call(f, source, reason), at_frame)

    def status(self) -> RecorderStatus:
        """One consistent snapshot (see ``RecorderStatus``). Any thread; never blocks for long."""
        with self._lock:
            s = self._timeline.current
            live = s is not None and s.state is not CallState.ENDED
            pause = s.open_pause if live else None
            return RecorderStatus(
                state=s.state if s is not None else CallState.IDLE,
                call_id=s.call_id if s is not None else None,
                line_number=s.info.line_number if live else None,
                department=s.info.department if live else None,
                payment_in_progress=bool(s and s.payment_in_progress),
                frames_captured=self._source.frames_captured,
                overflows=self._source.overflows,
                revision=self._revision,
                call=s.info if s is not None else None,
                payment_source=pause.source.value if pause is not None and s.payment_in_progress else None,
                pause_started_frame=pause.start_frame if pause is not None else None,
                end_reason=s.end_reason.value if s is not None and s.end_reason is not None else None,
                end_source=s.end_source.value if s is not None and s.end_source is not None else None,
                transferred_to=s.transferred_to if s is not None else None,
            )

    # ---- the recorder thread --------------------------------------------------------------
    def start(self) -> None:
        """Run the recorder on its own thread."""
        self._thread = threading.Thread(target=self.run, name="callrec-recorder", daemon=True)
        self._thread.start()

    def stop(self, end_open_call_as: EndReason | None = None) -> None:
        """Ask the recorder thread to finish: it drains the look-behind buffer, seals the last
        chunk and ends any open call with ``end_open_call_as`` (default: ``run``'s choice,
        interrupted), writing its final manifest. Any thread; returns at once (``join`` waits).

        The desk passes ``EndReason.SHUTDOWN`` when the program is closed during a call."""
        self._stop_reason = end_open_call_as  # read by the recorder thread once _stop is seen
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        """True while the recorder thread runs (e.g. still finishing after ``join`` timed out)."""
        return self._thread is not None and self._thread.is_alive()

    def run(self, *, end_open_call_as: EndReason | None = None) -> _Finished:
        """Capture until the source ends or ``stop()``; then finish every call.

        A call still open at the end is ended with ``end_open_call_as`` (default: hangup when
        the source simply ran out, interrupted when stopped).
        """
        source_failed = False
        try:
            self._source.start()
            while not self._stop.is_set():
                block = self._read_batch()
                self._retry_finals()  # a final manifest the full disk refused: once a second
                if block is None:
                    break
                if len(block.data) == 0:
                    continue
                for observe in self._block_observers:
                    observe(block)
                self._pushed_to = block.start_frame + len(block.data)
                for ready in self._lookbehind.push(block):
                    self._gate(ready)
        except AudioSourceError as exc:
            # The device vanished (or never opened): keep what was captured, end the call as
            # interrupted, and say so. The caller decides whether to start capturing again.
            # The call ends in the timeline before anyone is told, so whoever reads the state
            # on the notice already sees it ended (never "Recording" with no capture).
            source_failed = True
            message = f"audio capture stopped: {exc}"
            log.error(message)
            self.results.errors.append(message)
            call_id = self._end_open_call(EndReason.INTERRUPTED)
            if call_id is not None:
                self._emit(RecorderEvent("state_changed", call_id, CallState.ENDED))
            self._emit(RecorderEvent("source_failed", None, exc))
        finally:
            self._source.stop()
            for ready in self._lookbehind.drain():
                self._gate(ready)
            if source_failed:
                reason = EndReason.INTERRUPTED
            else:
                stopped = self._stop.is_set()
                reason = ((self._stop_reason if stopped else None) or end_open_call_as
                          or (EndReason.INTERRUPTED if stopped else EndReason.HANGUP))
            call_id = self._end_open_call(reason)
            if call_id is not None:
                self._emit(RecorderEvent("state_changed", call_id, CallState.ENDED))
            self._finish_ended_calls(final=True)
            self._retry_finals(force=True)
            self._give_up_finals()
        return self.results

    def _end_open_call(self, reason: EndReason) -> str | None:
        """End the open call, if any, after the last frame captured so far (everything handed
        to the look-behind is kept up to there). Recorder thread. The call's id, or None."""
        with self._lock:
            s = self._timeline.current
            if s is None or s.state is CallState.ENDED:
                return None
            frame = max(self._pushed_to, self._gated_to, self._timeline.last_event_frame)
            self._timeline.end_call(frame, EventSource.SYSTEM, reason)
            self._revision += 1
            return s.call_id

    # ---- internals -------------------------------------------------------------------------
    BATCH_SECONDS = 0.25

    def _read_batch(self) -> AudioBlock | None:
        """The next block; small device blocks (20 ms) are joined into about 250 ms first.

        Waking, gating and calling the encoder 50 times a second cost three times the CPU of
        the capture itself (bench/bench_live_capture.py); the look-behind is far longer than
        the batch, so pauses are as exact as before. An error from the source after part of a
        batch was read is raised on the next call, after that audio has been handed over.
        """
        if self._pending_error is not None:
            exc, self._pending_error = self._pending_error, None
            raise exc
        if self._eof:
            return None
        block = self._source.read(timeout=0.2)
        target = round(self.BATCH_SECONDS * self._rate)
        if block is None or len(block.data) == 0 or len(block.data) >= target:
            return block
        parts = [block.data]
        have = len(block.data)
        deadline = time.monotonic() + 2 * self.BATCH_SECONDS
        while have < target and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                nxt = self._source.read(timeout=remaining)
            except AudioSourceError as exc:
                self._pending_error = exc
                break
            if nxt is None:
                self._eof = True
                break
            if len(nxt.data):
                parts.append(nxt.data)
                have += len(nxt.data)
        if len(parts) == 1:
            return block
        return AudioBlock(block.start_frame, np.concatenate(parts))

    def _event(self, name: str, apply: Callable[[int], None], at_frame: int | None) -> None:
        with self._lock:
            frame, late = self._stamp(at_frame, name)
            apply(frame)  # raises (nothing changed) if the timeline refuses the event
            self._revision += 1
            s = self._timeline.current
            state = s.state if s else CallState.IDLE
            call_id = s.call_id if s else None
        self._emit_late(late)
        self._emit(RecorderEvent("state_changed", call_id, state))

    def _stamp(self, at_frame: int | None, name: str) -> tuple[int, RecorderEvent | None]:
        """The frame an event takes effect at: as asked, but never before frames already gated.
        Called under the lock; the ``late_event`` to emit (once the lock is released), if any."""
        wanted = self._source.frames_captured if at_frame is None else at_frame
        # Never before frames already gated, nor before the previous event (a detector's
        # stamp can fall just before a "payment finished" the agent pressed a moment ago).
        frame = max(wanted, self._gated_to, self._timeline.last_event_frame)
        late = None
        if wanted < self._gated_to:
            # Only possible if a signal arrives later than the look-behind window: say so loudly.
            n = self._gated_to - wanted
            log.error("%s arrived %d frames (%.2f s) too late to be applied where stamped", name, n, n / self._rate)
            late = RecorderEvent("late_event", None, {"event": name, "late_frames": n})
        return frame, late

    def _emit_late(self, late: RecorderEvent | None) -> None:
        if late is not None:
            self._emit(late)

    def _wall(self, frame: int) -> datetime:
        return self._t0 + timedelta(seconds=frame / self._rate)

    def _emit(self, event: RecorderEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener must never break recording
                log.exception("recorder listener failed on %s", event.kind)

    def _gate(self, block: AudioBlock) -> None:
        start, end = block.start_frame, block.start_frame + len(block.data)
        with self._lock:
            segments = self._timeline.segments(start, end)
            self._gated_to = end
        for seg in segments:
            try:
                self._apply(seg, block)
            except Exception as exc:  # disk full, spool gone, or a bug: end the call loudly
                self._fail(exc)
        self._finish_ended_calls()

    def _apply(self, seg: Segment, block: AudioBlock) -> None:
        active = self._active
        if active is not None and seg.call_id != active.session.call_id:
            self._finish(active)
            active = None
        if seg.call_id is None or seg.state in (CallState.IDLE, CallState.ENDED) or seg.call_id in self._done:
            return
        if active is None:
            session = self._timeline.calls[seg.call_id]
            try:
                active = self._open(session)
            except Exception as exc:  # no folder for the call (disk full?): end it, keep trying to say so
                self._fail(exc, session)
                return
        if active.failed:
            return
        if seg.state is CallState.RECORDING:
            lo, hi = seg.start - block.start_frame, seg.end - block.start_frame
            sealed = active.writer.write(seg.start - active.session.start_frame, block.data[lo:hi])
            if sealed:
                self._sealed(active, sealed)
        elif seg.state is CallState.PAUSED:
            entry = active.writer.seal()
            if entry is not None:
                self._sealed(active, [entry])
        if seg.state is not active.last_state:
            active.last_state = seg.state
            self._write_manifest(active, "recording")

    def _open(self, session: CallSession, make_active: bool = True) -> _ActiveCall:
        manifest = self._manifest(session, [], "recording")
        call_spool = self._spool.create_call(manifest)
        active = _ActiveCall(session, call_spool, ChunkWriter(call_spool, self._settings.codec, self._settings.chunk_frames))
        if make_active:
            self._active = active
        self._emit(RecorderEvent("call_opened", session.call_id, manifest))
        return active

    def _sealed(self, active: _ActiveCall, entries: list) -> None:
        for entry in entries:
            self._emit(RecorderEvent("chunk_sealed", active.session.call_id, entry))
        self._write_manifest(active, "recording")

    def _write_manifest(self, active: _ActiveCall, status: str) -> Manifest:
        manifest = self._manifest(active.session, active.writer.sealed, status, active.written_to)
        active.spool.write_manifest(manifest)
        self._emit(RecorderEvent("manifest_written", active.session.call_id, manifest))
        return manifest

    def _finish_ended_calls(self, final: bool = False) -> None:
        with self._lock:
            ended = [
                s for s in self._timeline.calls.values()
                if s.call_id not in self._done and s.end_frame is not None and (final or s.end_frame <= self._gated_to)
            ]
        for session in ended:
            active = self._active
            if active is not None and active.session is session:
                self._finish(active)
                continue
            try:  # a call too short to have kept a frame still gets its folder and manifest
                opened = self._open(session, make_active=False)
            except Exception as exc:
                self._fail(exc, session)
                continue
            self._finish(opened)

    def _finish(self, active: _ActiveCall) -> None:
        """Seal the last chunk and write the final manifest. If that fails the call is ended
        as failed (``_fail``) and its final manifest, listing only the durable chunks, is
        written at once, or kept and retried while the disk is full. Recorder thread."""
        call_id = active.session.call_id
        pending = False
        try:
            try:
                if not active.failed:
                    entry = active.writer.seal()
                    if entry is not None:
                        self._emit(RecorderEvent("chunk_sealed", call_id, entry))
            except Exception as exc:  # the last chunk could not be sealed: it is not listed
                self._fail(exc, active=active)
            manifest = self._manifest(active.session, active.writer.sealed, "complete", active.written_to)
            try:
                active.spool.write_manifest(manifest)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                if not active.failed:  # the call itself was fine until its manifest: say so
                    self._fail(exc, active=active, what=f"call {call_id} is recorded but its final manifest is "
                                                        f"kept in memory until there is room")
                    manifest = self._manifest(active.session, active.writer.sealed, "complete", active.written_to)
                log.error("call %s: its final manifest cannot be written (%s); kept in memory and retried",
                          call_id, exc)
                self._pending_finals.append(_PendingFinal(manifest, active.spool))
                pending = True
            else:
                self._finished(manifest)
        except Exception as exc:
            self._fail(exc, active=active)
        finally:
            if not pending:
                active.spool.release()
            self._done.add(call_id)
            if self._active is active:
                self._active = None
            with self._lock:
                self._timeline.calls.pop(call_id, None)
                self._timeline.forget_before(self._gated_to)

    def _finished(self, manifest: Manifest) -> None:
        """A final manifest is on disk: tell everyone. Recorder thread."""
        self.results.manifests.append(manifest)
        self._emit(RecorderEvent("manifest_written", manifest.call_id, manifest))
        self._emit(RecorderEvent("call_finished", manifest.call_id, manifest))

    RETRY_SECONDS = 1.0  # how often a final manifest kept in memory is written again

    def _retry_finals(self, force: bool = False) -> None:
        """Write the final manifests a full disk held back, oldest first, at most once every
        ``RETRY_SECONDS`` (every time with ``force``). Recorder thread."""
        if not self._pending_finals:
            return
        now = time.monotonic()
        if not force and now - self._finals_tried_at < self.RETRY_SECONDS:
            return
        self._finals_tried_at = now
        while self._pending_finals:
            p = self._pending_finals[0]
            try:
                if p.spool is None:  # the folder itself could not be made: make it with the final manifest
                    p.spool = self._spool.create_call(p.manifest)
                else:
                    p.spool.write_manifest(p.manifest)
            except Exception as exc:  # still full (or worse): keep it, try again later
                log.debug("final manifest of %s still cannot be written: %s", p.manifest.call_id, exc)
                return
            p.spool.release()
            self._pending_finals.pop(0)
            log.warning("call %s: its final manifest is written (it ended as %s)",
                        p.manifest.call_id, p.manifest.end.reason if p.manifest.end else None)
            self._finished(p.manifest)

    def _give_up_finals(self) -> None:
        """The recorder stops with final manifests still unwritten: say so and release their
        folders; the next start's recovery ends them as ``interrupted`` with the chunks that
        exist and never more (``Spool.recover``). Recorder thread."""
        for p in self._pending_finals:
            if p.spool is not None:
                message = (f"call {p.manifest.call_id}: its final manifest could not be written (the disk is "
                           f"still full); the spool's recovery finishes it at the next start")
                p.spool.release()
            else:
                message = (f"call {p.manifest.call_id}: nothing of it could be written (the disk is still full), "
                           f"not even its manifest: it is recorded nowhere")
            log.error(message)
            self.results.errors.append(message)
        self._pending_finals.clear()

    def _fail(self, exc: Exception, session: CallSession | None = None, active: _ActiveCall | None = None,
              *, what: str | None = None) -> None:
        """A write failed (disk full, spool gone): stop writing this call, end it (``disk_full``
        or ``error``), keep what is sealed, and tell everyone. Recording must never look fine
        when it is not, and nothing unrecorded is claimed: the call's manifest ends where its
        durable audio, then its pauses, end (``_written_to``), not where capture got to. A
        call that had already ended (its last seal failed) takes the failure as its end reason
        when frames were lost.

        ``active`` is the call whose write failed (default: the one being recorded);
        ``session`` names a call that has no folder (it could not be made), whose final
        manifest (no chunks) is kept and retried like one that could not be written. The
        ``error`` event's detail is the message, which says "disk is full" for a full disk;
        ``what`` replaces its first words ("call ... ended"). Recorder thread."""
        if active is None and session is None:
            active = self._active
        call_id = session.call_id if session else (active.session.call_id if active else None)
        disk_full = is_disk_full(exc)
        reason = EndReason.DISK_FULL if disk_full else EndReason.ERROR
        if disk_full:
            message = f"{what or f'call {call_id} ended'} because this PC's disk is full ({exc})"
        else:
            message = f"{what or f'recording of call {call_id}'} failed: {exc}"
        log.error(message, exc_info=not isinstance(exc, OSError))
        self.results.errors.append(message)
        if active is not None and not active.failed:
            active.failed = True
            active.writer.abort()
        with self._lock:
            s = self._timeline.calls.get(call_id) if call_id else None
            if s is not None and s.state is not CallState.ENDED:
                self._timeline.end_call(max(self._gated_to, self._timeline.last_event_frame), EventSource.SYSTEM, reason)
                self._revision += 1
        if active is not None and active.written_to is None:
            active.written_to = self._written_to(active.session, active.writer.sealed)
            with self._lock:
                s = active.session
                if s.end_frame is not None and active.written_to < s.end_frame and s.end_reason is not reason:
                    # It had ended (hung up, transferred...) but its last frames never reached
                    # the disk: the recording ended with the failure, and says so.
                    s.end_reason, s.end_source, s.transferred_to = reason, EventSource.SYSTEM, None
                    self._revision += 1
        if session is not None and session.call_id not in self._done:
            self._done.add(session.call_id)
            if session.end_frame is not None:
                manifest = self._manifest(session, [], "complete", self._written_to(session, []))
                self._pending_finals.append(_PendingFinal(manifest, None))
        self._emit(RecorderEvent("error", call_id, message))

    def _written_to(self, session: CallSession, sealed: list) -> int:
        """The capture frame up to which ``session`` is accounted for once writing failed:
        from the end of its last durable chunk (or its start), on through every pause that
        begins there, up to where the gate had got. Frames after it were captured but never
        reached the disk whole, so the manifest must not claim them. Recorder thread."""
        with self._lock:
            limit = session.end_frame if session.end_frame is not None else self._gated_to
            at = session.start_frame + (sealed[-1].first_frame + sealed[-1].frames if sealed else 0)
            for p in session.pauses:
                if p.start_frame <= at:
                    at = max(at, p.end_frame if p.end_frame is not None else limit)
            return min(at, limit)

    def _manifest(self, session: CallSession, chunks: list, status: str, written_to: int | None = None) -> Manifest:
        """The call's manifest listing ``chunks``; ``written_to`` (a capture frame) cuts the call
        short where its recording failed (``_written_to``): the end and every pause stop there."""
        with self._lock:
            start = session.start_frame
            end_frame = session.end_frame if session.end_frame is not None else max(self._gated_to, start)
            if written_to is not None:
                end_frame = max(start, min(end_frame, written_to))
            pauses = tuple(
                PauseEntry(
                    reason=p.reason.value, source=p.source.value,
                    offset_frames=p.start_frame - start,
                    duration_frames=_until(p, end_frame) - p.start_frame,
                    offset_seconds=round((p.start_frame - start) / self._rate, 3),
                    wall_seconds=round((_until(p, end_frame) - p.start_frame) / self._rate, 3),
                    end_source=p.end_source.value if p.end_source and p.end_frame <= end_frame else None,
                )
                # A provisional manifest covers the frames gated so far; a pause stamped inside
                # the look-behind window (not yet reached) appears once the gate reaches it.
                for p in session.pauses if p.start_frame <= end_frame
            )
            end = None
            if status == "complete":
                end = EndInfo(
                    session.end_reason.value if session.end_reason else EndReason.INTERRUPTED.value,
                    session.end_source.value if session.end_source else None,
                    session.transferred_to,
                )
            info = session.info
        codec = self._settings.codec
        return Manifest(
            call_id=info.call_id, status=status, line_number=info.line_number, department=info.department,
            direction="inbound", caller=info.caller, external_id=info.external_id,
            agent=self._identity.agent, workstation=self._identity.workstation,
            started_at=self._wall(start), ended_at=self._wall(end_frame) if status == "complete" else None,
            frames=end_frame - start,
            audio=AudioFormat(codec.codec, codec.sample_rate, codec.channels,
                              ("agent", "caller") if codec.channels == 2 else ("agent",), codec.bitrate),
            chunks=tuple(chunks), pauses=pauses, end=end, app_version=self._identity.app_version,
        )


def _until(pause, end_frame: int) -> int:
    """Where a pause ends as far as a manifest covering frames up to ``end_frame`` can say."""
    return end_frame if pause.end_frame is None else min(pause.end_frame, end_frame)
