"""The desk without Qt: one truth for the call state, faults never lost, ending at shutdown.

A real Desk over the real recorder, spool, uploader and folder store, fed by a real-time
synthetic stereo source (the desk captures all shift, as on a handler's PC). Races are not
left to chance: a hook stops one thread at the exact point named in issue 9 (after the
recorder applied its event, before the desk showed it), another thread's event lands there,
then the first goes on. What the desk finally says is checked against the recorder's own
snapshot and against what the gate kept, read back from the stored manifest and chunks.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

import numpy as np
import pytest

from callrec_desktop.archive import decode_call, load_manifest, verify_call
from callrec_desktop.audio.sources import SyntheticSource
from callrec_desktop.config import Line, Lines
from callrec_desktop.core.timeline import CallState, EventSource
from callrec_desktop.desk import CALL_FIELDS, Desk
from callrec_desktop.spool import Spool
from callrec_desktop.status import DeskStatus, Fault, NotAllowed
from callrec_desktop.storage.folder import FolderStore
from callrec_desktop.uploader import Uploader
from tests.support.recording import IDENTITY, RATE, settings

BLOCK = 320  # 20 ms
LINES = Lines(lines=(Line("council_tax", "01443 425002", "Council Tax"),), transfer_departments=("Planning",))
API = EventSource.CONTROL_API
WAIT = 10.0  # seconds: generous bounds on waits for conditions, never a measurement


def tone_blocks():
    """Endless 20 ms stereo blocks of two tones (agent 440 Hz, caller 1250 Hz)."""
    n = 0
    while True:
        t = (np.arange(BLOCK) + n) / RATE
        n += BLOCK
        yield np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 1250 * t)],
                       axis=1).astype(np.float32)


class Watch:
    """Wakes waiters on every desk status and every captured block (no polling, no sleep)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.cond = threading.Condition()
        self.frames = 0
        self.statuses: list[DeskStatus] = []
        desk.add_listener(self._on_status)
        desk.add_block_observer(self._on_block)

    def _on_status(self, status: DeskStatus) -> None:
        with self.cond:
            self.statuses.append(status)
            self.cond.notify_all()

    def _on_block(self, block) -> None:
        with self.cond:
            self.frames = block.start_frame + len(block.data)
            self.cond.notify_all()

    def until(self, predicate: Callable[[], bool], what: str) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, WAIT), f"timed out waiting for {what}"

    def frames_past(self, frame: int) -> None:
        self.until(lambda: self.frames > frame, f"capture to pass frame {frame}")


@pytest.fixture
def make_desk(tmp_path):
    made: list[Desk] = []

    def make(*, lookbehind_seconds: float = 0.25) -> tuple[Desk, FolderStore, Watch]:
        spool = Spool(tmp_path / "spool")
        (tmp_path / "store").mkdir(exist_ok=True)
        store = FolderStore(tmp_path / "store")
        desk = Desk(lines=LINES, spool=spool, uploader=Uploader(spool, store),
                    settings=settings("flac", chunk_seconds=0.5, lookbehind_seconds=lookbehind_seconds),
                    identity=IDENTITY,
                    source_factory=lambda: SyntheticSource(tone_blocks(), sample_rate=RATE, block_frames=BLOCK,
                                                           realtime=True, channels=2))
        made.append(desk)
        return desk, store, Watch(desk)

    yield make
    for desk in made:
        desk.shutdown(timeout=5, upload_timeout=1)


def started(make_desk, **kw) -> tuple[Desk, FolderStore, Watch]:
    desk, store, watch = make_desk(**kw)
    desk.start()
    watch.frames_past(2 * BLOCK)
    return desk, store, watch


def finished_manifest(desk: Desk, store: FolderStore, call_id: str):
    """End capture (the call ends if still open), upload, and read the stored manifest."""
    assert desk.shutdown(timeout=5, upload_timeout=10)
    m = load_manifest(store, call_id)
    assert m.status == "complete" and verify_call(store, m) == []
    return m


def kept_frames(m) -> list[tuple[int, int]]:
    """[start, end) of every chunk on the call's timeline: exactly the frames the gate kept."""
    return [(c.first_frame, c.first_frame + c.frames) for c in m.chunks]


# ==== the call state has one source: the recorder =============================================

def test_the_desk_shows_what_the_recorder_does_through_a_whole_call(make_desk):
    desk, store, watch = started(make_desk)
    recorder = desk._recorder
    call_id = desk.start_call("01443 425002", caller="07700900123")
    st = desk.status()
    assert (st.state, st.call_id, st.line_number, st.department, st.caller) == (
        CallState.RECORDING, call_id, "01443 425002", "Council Tax", "07700900123")
    assert st.call_started is not None and not st.payment_in_progress
    desk.take_payment(source=API)
    st = desk.status()
    assert st.state is CallState.PAUSED and st.payment_in_progress and st.payment_source == "control_api"
    assert recorder.status().payment_in_progress
    desk.payment_finished()
    assert desk.status().state is CallState.RECORDING and not desk.status().payment_in_progress
    desk.transfer("Planning")
    st = desk.status()
    assert (st.state, st.last_end_reason, st.transferred_to, st.line_number) == (
        CallState.ENDED, "transferred", "Planning", "01443 425002")  # the line stays shown after the end
    with pytest.raises(NotAllowed):
        desk.payment_finished()


def test_the_call_state_cannot_be_written_around_the_recorder(make_desk):
    desk, _, _ = make_desk()
    for name in CALL_FIELDS:
        with pytest.raises(ValueError, match="comes from the recorder"):
            desk._update(**{name: None})


class Interleave:
    """Stop thread ``first`` at a hook point and run ``second`` there (on this thread)."""

    def __init__(self) -> None:
        self.first: threading.Thread | None = None
        self.reached = threading.Event()
        self.go_on = threading.Event()
        self.armed = True

    def hold_here(self) -> None:
        """Called from a hook: blocks the first thread once, at this point."""
        if self.armed and threading.current_thread() is self.first:
            self.armed = False
            self.reached.set()
            assert self.go_on.wait(WAIT), "the test never let the first thread go on"

    def run(self, first: Callable[[], None], second: Callable[[], None]) -> None:
        errors: list[BaseException] = []

        def body() -> None:
            try:
                first()
            except BaseException as exc:  # reported on the test's thread
                errors.append(exc)

        self.first = threading.Thread(target=body, name="first-operation")
        self.first.start()
        try:
            assert self.reached.wait(WAIT), "the first operation never reached the hook point"
            second()
        finally:
            self.go_on.set()
            self.first.join(WAIT)
        assert not self.first.is_alive()
        if errors:
            raise errors[0]


# Where the first operation is stopped:
# - after_recorder_call: the recorder applied the event and returned; the desk has not yet
#   done anything after the call (the gap named in the issue);
# - before_desk_listener: the timeline changed and its lock is released, the desk's listener
#   is about to run;
# - inside_desk_sync: the desk took the recorder's snapshot and is about to show it.
HOOK_POINTS = ["after_recorder_call", "before_desk_listener", "inside_desk_sync"]


def install_hook(point: str, desk: Desk, method: str, gap: Interleave, monkeypatch) -> None:
    """The hooks on the running recorder (before_desk_listener is put in by ``racing_desk``)."""
    recorder = desk._recorder
    if point == "after_recorder_call":
        real = getattr(recorder, method)

        def wrapped(*args, **kwargs):
            result = real(*args, **kwargs)
            gap.hold_here()
            return result

        monkeypatch.setattr(recorder, method, wrapped)
    elif point == "inside_desk_sync":
        real_status = recorder.status

        def status():
            snap = real_status()
            gap.hold_here()
            return snap

        monkeypatch.setattr(recorder, "status", status)


def racing_desk(point: str, make_desk, gap: Interleave, monkeypatch):
    """A started desk; for before_desk_listener its recorder listener holds the first thread."""
    if point == "before_desk_listener":
        real_listener = Desk._on_recorder_event

        def listener(self, rec, event):
            if event.kind == "state_changed":
                gap.hold_here()
            return real_listener(self, rec, event)

        monkeypatch.setattr(Desk, "_on_recorder_event", listener)  # bound when capture starts
    return started(make_desk)


@pytest.mark.parametrize("point", HOOK_POINTS)
def test_payment_ended_landing_inside_take_payment_leaves_the_desk_recording_as_the_gate_keeps(
        point, make_desk, monkeypatch):
    """The issue's race: the agent presses Take payment; the payment page's "payment ended"
    arrives between the recorder call and the desk's update. The desk used to end up saying
    "Paused for payment" (and refusing Payment finished) while the gate kept every frame."""
    gap = Interleave()
    desk, store, watch = racing_desk(point, make_desk, gap, monkeypatch)
    recorder = desk._recorder
    call_id = desk.start_call("01443 425002")
    if point != "before_desk_listener":
        install_hook(point, desk, "start_payment", gap, monkeypatch)
    gap.run(lambda: desk.take_payment(), lambda: desk.payment_finished(source=API))

    st, rs = desk.status(), recorder.status()
    assert st.state is CallState.RECORDING and st.state is rs.state
    assert st.payment_in_progress is rs.payment_in_progress is False
    assert st.recording and st.payment_started is None and st.payment_source is None
    # The listeners' last word is the same (the window's adapter re-reads, others do not).
    assert watch.statuses[-1].state is CallState.RECORDING
    with pytest.raises(NotAllowed):  # the payment is over: a second "finished" is refused...
        desk.payment_finished()
    # ...and what the desk says is what the gate did: frames after the pause are kept.
    resumed_at = recorder.status().frames_captured
    watch.frames_past(resumed_at + RATE)
    m = finished_manifest(desk, store, call_id)
    [pause] = m.pauses
    assert (pause.reason, pause.source, pause.end_source) == ("payment", "agent", "control_api")
    after = pause.offset_frames + pause.duration_frames
    kept = kept_frames(m)
    assert kept[-1][1] == m.frames > after + RATE // 2  # recording ran on to the end of the call
    assert sum(hi - max(lo, after) for lo, hi in kept if hi > after) == m.frames - after
    audio = decode_call(store, m)
    assert np.count_nonzero(audio[after:].any(axis=1)) > 0.99 * (m.frames - after)
    assert m.end.reason == "shutdown"


@pytest.mark.parametrize("point", HOOK_POINTS)
def test_take_payment_landing_inside_payment_finished_leaves_the_desk_paused_as_the_gate_drops(
        point, make_desk, monkeypatch):
    """The mirror race: Payment finished is pressed, and a new "payment started" (the next
    card, from the control API) lands in the gap. The desk must say paused: frames are dropped."""
    gap = Interleave()
    desk, store, watch = racing_desk(point, make_desk, gap, monkeypatch)
    recorder = desk._recorder
    call_id = desk.start_call("01443 425002")
    gap.armed = False  # not this one
    desk.take_payment()
    gap.armed = True
    if point != "before_desk_listener":
        install_hook(point, desk, "end_payment", gap, monkeypatch)
    gap.run(lambda: desk.payment_finished(), lambda: desk.take_payment(source=API))

    st, rs = desk.status(), recorder.status()
    assert st.state is CallState.PAUSED and st.state is rs.state
    assert st.payment_in_progress is rs.payment_in_progress is True
    assert st.payment_source == "control_api" and st.payment_started is not None and not st.recording
    assert watch.statuses[-1].state is CallState.PAUSED
    paused_at = recorder.status().frames_captured
    watch.frames_past(paused_at + RATE)
    m = finished_manifest(desk, store, call_id)
    first, second = m.pauses
    assert (second.reason, second.source) == ("payment", "control_api")
    assert second.offset_frames + second.duration_frames == m.frames  # still paused when the call ended
    assert all(hi <= second.offset_frames for _, hi in kept_frames(m)), "frames kept while the desk said paused"
    assert m.frames - second.offset_frames > RATE // 2


def test_a_stale_snapshot_delivered_last_never_replaces_a_newer_one(make_desk):
    """Snapshots carry the recorder's revision: one taken before a change and handed to the
    desk after it (a slow listener thread) is ignored."""
    desk, _, watch = started(make_desk)
    recorder = desk._recorder
    desk.start_call("01443 425002")
    desk.take_payment()
    stale = recorder.status()
    desk.payment_finished()
    real_status = recorder.status
    recorder.status = lambda: stale  # the next sync is handed the old snapshot
    try:
        desk._sync(recorder)
    finally:
        recorder.status = real_status
    assert desk.status().state is CallState.RECORDING and not desk.status().payment_in_progress


def test_the_payment_timer_runs_on_through_repeated_syncs_and_restarts_for_a_new_payment(make_desk):
    desk, _, _ = started(make_desk)
    desk.start_call("01443 425002")
    desk.take_payment()
    t0 = desk.status().payment_started
    desk.notify("hello")
    desk._sync(desk._recorder)
    assert desk.status().payment_started == t0
    desk.payment_finished()
    assert desk.status().payment_started is None
    desk.take_payment()
    assert desk.status().payment_started is not None and desk.status().payment_started >= t0


def test_a_lost_device_is_shown_as_ended_interrupted_from_the_recorders_own_state(make_desk):
    desk, store, watch = started(make_desk)
    recorder = desk._recorder
    call_id = desk.start_call("01443 425002")
    watch.frames_past(recorder.status().frames_captured + RATE // 2)
    from callrec_desktop.audio.sources import DeviceLostError

    real_read = recorder._source.read

    def read(timeout=None):
        raise DeviceLostError("audio input device 'Test headset' was lost")

    recorder._source.read = read
    watch.until(lambda: not desk.status().capturing, "the desk to see capture stop")
    st = desk.status()
    assert (st.state, st.last_end_reason, st.call_id) == (CallState.ENDED, "interrupted", call_id)
    assert Fault.DEVICE_LOST in st.faults
    rs = recorder.status()
    assert (rs.state, rs.end_reason) == (CallState.ENDED, "interrupted")
    recorder._source.read = real_read
    recorder.join(WAIT)
    m = finished_manifest(desk, store, call_id)
    assert m.end.reason == "interrupted"


# ==== faults ====================================================================================

def test_faults_set_and_cleared_at_once_on_many_threads_are_never_lost(make_desk):
    """Every round, one thread per fault sets (or clears) its own fault at the same instant
    (a Barrier); afterwards exactly the faults that were set are shown. A tiny switch interval
    makes the threads interleave inside the desk's code, as they would on a loaded PC."""
    desk, _, _ = make_desk()
    faults = list(Fault)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for round_no in range(150):
            # Which faults are set this round, which are cleared (each pattern different).
            wanted = {f for i, f in enumerate(faults) if (round_no >> i) & 1 or round_no % 7 == i}
            barrier = threading.Barrier(len(faults))

            def work(fault: Fault) -> None:
                barrier.wait(WAIT)
                if fault in wanted:
                    desk._set_fault(fault, f"{fault.value} in round {round_no}")
                else:
                    desk._clear_fault(fault)

            threads = [threading.Thread(target=work, args=(f,)) for f in faults]
            for t in threads:
                t.start()
            for t in threads:
                t.join(WAIT)
            shown = desk.status().faults
            assert set(shown) == wanted, f"round {round_no}: shown {sorted(f.value for f in shown)}"
            assert all(shown[f] == f"{f.value} in round {round_no}" for f in wanted)
    finally:
        sys.setswitchinterval(old_interval)


# ==== shutdown ==================================================================================

@pytest.mark.parametrize("paused", [False, True])
def test_shutdown_during_a_call_ends_it_as_shutdown_with_every_captured_frame_sealed(make_desk, paused):
    desk, store, watch = started(make_desk)
    recorder = desk._recorder
    call_id = desk.start_call("01443 425002")
    started_by = recorder.status().frames_captured  # the call started at or before this frame
    if paused:
        watch.frames_past(recorder.status().frames_captured + RATE // 2)
        desk.take_payment()
    watch.frames_past(recorder.status().frames_captured + RATE)
    last_seen = watch.frames
    m = finished_manifest(desk, store, call_id)
    assert (m.end.reason, m.end.source) == ("shutdown", "system")
    assert m.frames >= last_seen - started_by  # the end is after every frame seen before shutdown
    st = desk.status()
    assert (st.state, st.last_end_reason, st.capturing) == (CallState.ENDED, "shutdown", False)
    if paused:
        [pause] = m.pauses
        assert pause.offset_frames + pause.duration_frames == m.frames and pause.end_source == "system"
        assert all(hi <= pause.offset_frames for _, hi in kept_frames(m))
    else:
        # Every frame handed to the recorder up to the end is in a chunk: nothing was lost.
        assert kept_frames(m)[-1][1] == m.frames and sum(hi - lo for lo, hi in kept_frames(m)) == m.frames


def test_end_for_shutdown_ends_an_open_call_at_once_and_is_harmless_without_one(make_desk):
    """What SIGTERM / logoff does first, on the GUI thread: the end is stamped now, so the call
    is final even if the process is killed before the orderly shutdown completes."""
    desk, store, watch = started(make_desk)
    assert desk.end_for_shutdown() is False  # no call: nothing to end
    call_id = desk.start_call("01443 425002")
    desk.take_payment()
    assert desk.end_for_shutdown() is True
    st = desk.status()
    assert (st.state, st.last_end_reason, st.payment_in_progress) == (CallState.ENDED, "shutdown", False)
    assert desk.end_for_shutdown() is False  # already ended
    m = finished_manifest(desk, store, call_id)
    assert (m.end.reason, m.end.source) == ("shutdown", "system")
    assert m.pauses[0].end_source == "system"


def test_start_capture_on_two_threads_at_once_starts_one_recorder(make_desk):
    """Try again pressed twice (two workers): the second call, while the first is opening the
    device, must not start a second recorder that would capture all shift unseen."""
    desk, _, _ = make_desk()
    opening, go_on = threading.Event(), threading.Event()
    made = []
    real_factory = desk._source_factory

    def slow_factory():
        made.append(1)
        opening.set()
        assert go_on.wait(WAIT)
        return real_factory()

    desk._source_factory = slow_factory
    first = threading.Thread(target=desk.start_capture)
    first.start()
    assert opening.wait(WAIT)
    assert desk.start_capture() is True  # while the first is still opening: nothing more
    go_on.set()
    first.join(WAIT)
    assert len(made) == 1 and desk.status().capturing and desk._recorder is not None
    assert desk.start_capture() is True and len(made) == 1
