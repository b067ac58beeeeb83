"""The DTMF payment trigger end to end: real Desk (or bare Recorder), recorder, look-behind,
FLAC chunks, spool, uploader and folder store; the stored recording is decoded and searched
for key tones. Also where the pause starts (the reach-back rule) and its limits."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from callrec_desktop.archive import decode_call
from callrec_desktop.audio.dtmf import COL_HZ, ROW_HZ, DtmfDetector, DtmfHit
from callrec_desktop.audio.sources import AudioBlock
from callrec_desktop.core.timeline import CallState
from callrec_desktop.desk import NotCapturing
from callrec_desktop.triggers.dtmf_trigger import NOTICE, DtmfPaymentTrigger
from tests.support.recording import IDENTITY, settings
from tests.support.recording import RATE, band_db
from tests.unit.audio.test_dtmf import detect, keyed, place, speech
from tests.unit.triggers import desk_rig

CARD = "4929123456781234"


def q16(x: np.ndarray) -> np.ndarray:
    """What 16-bit FLAC gives back for float input."""
    return np.clip(np.round(x * 32768), -32768, 32767) / 32768


def _conversation(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([0.6 * speech(seconds, rng), 0.6 * speech(seconds, rng)], axis=1)


def test_card_digits_keyed_by_the_caller_never_reach_the_store(tmp_path):
    """Caller speaks, then keys 16 card digits (80 ms tones, 80 ms gaps) from t = 5 s; the agent
    presses Payment finished at 8 s; at 10 s the caller keys 3 more digits (a security code).
    Each pause reaches back at least 1.5 s before the first digit heard (never before what
    the 2 s look-behind holds, nor before the agent's Payment finished)."""
    audio = _conversation(12.0, seed=21)
    card_onsets, card_tones = keyed(CARD, 5.0, tone=0.08, gap=0.08)
    code_onsets, code_tones = keyed("737", 10.0, tone=0.08, gap=0.08)
    audio[:, 1] = place(len(audio), card_onsets + code_onsets, card_tones + code_tones, base=audio[:, 1])
    audio[5 * RATE : 8 * RATE, 1] = place(3 * RATE, [o - 5 * RATE for o in card_onsets], card_tones)  # only keys
    audio[10 * RATE : 11 * RATE, 1] = place(RATE, [o - 10 * RATE for o in code_onsets], code_tones)
    audio = audio.astype(np.float32)

    rig = desk_rig(tmp_path, audio, lookbehind_seconds=2.0)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE, channel=1, lookbehind_frames=2 * RATE, reach_back_seconds=1.5)
        finished = []

        def agent_presses_payment_finished(block: AudioBlock) -> None:
            if not finished and block.start_frame >= 8 * RATE:
                finished.append(block.start_frame + len(block.data))  # frames captured so far
                rig.desk.payment_finished()

        rig.observers += [agent_presses_payment_finished, trigger]
        call_id = rig.desk.start_call("01443 425002", caller="07700900123")
        rig.source.go.set()
        m = rig.wait_complete(call_id)
    finally:
        rig.desk.shutdown()

    assert "".join(h.digit for h in trigger.hits) == CARD + "737"
    assert m.frames == len(audio) and m.end.reason == "hangup"
    first, second = m.pauses
    assert (first.reason, first.source, second.reason, second.source) == ("payment", "automatic", "payment", "automatic")
    resumed = first.offset_frames + first.duration_frames
    assert finished and resumed == finished[0]  # payment finished is stamped at the frames captured
    # each pause starts 1.5 s (the reach-back) or more before the first digit heard, but within
    # the look-behind, and the second not before the agent's Payment finished
    (hit1, at1), (hit2, at2) = trigger.pauses
    assert first.offset_frames == at1 and hit1 - 2 * RATE - 320 <= at1 <= hit1 - round(1.5 * RATE)
    assert abs(hit1 - card_onsets[0]) <= 160 and abs(hit2 - code_onsets[0]) <= 160
    assert hit2 - 2 * RATE - 320 <= at2 <= hit2 - round(1.5 * RATE)
    assert second.offset_frames == max(resumed, at2)  # the recorder stamps nothing before the last event

    out = decode_call(rig.store, m)
    caller = out[:, 1]
    # nothing of the payments is stored: digital silence from each pause to its end
    assert not out[first.offset_frames : resumed].any()
    assert not out[second.offset_frames :].any()
    for tones_from in (first.offset_frames, second.offset_frames):
        for hz in ROW_HZ + COL_HZ:
            assert band_db(caller[tones_from : tones_from + RATE], hz) == -300.0
    assert detect(caller) == [], "key tones found in the stored recording"
    assert detect(out[:, 0]) == []
    # the conversation around the payments is kept, sample for sample (16-bit FLAC)
    np.testing.assert_allclose(out[: first.offset_frames], q16(audio[: first.offset_frames]), atol=1 / 32768)
    np.testing.assert_allclose(out[resumed : second.offset_frames], q16(audio[resumed : second.offset_frames]),
                               atol=1 / 32768)
    # before the keys, speech really was recorded on both sides
    assert np.abs(out[: 5 * RATE - 1600]).max(axis=0).min() > 0.1

    paused = [s for s in rig.statuses if s.state is CallState.PAUSED]
    assert any(s.notice == NOTICE for s in paused) and all(s.payment_source == "automatic" for s in paused)
    assert "Card key tones heard" in NOTICE


def test_keys_heard_while_no_call_is_recorded_do_nothing(tmp_path):
    onsets, tones = keyed("1234", 1.0)
    audio = np.stack([np.zeros(3 * RATE), place(3 * RATE, onsets, tones)], axis=1).astype(np.float32)
    rig = desk_rig(tmp_path, audio)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE, lookbehind_frames=2 * RATE)
        rig.observers.append(trigger)
        rig.source.go.set()
        assert rig.source.ended.wait(20)
    finally:
        rig.desk.shutdown()
    assert "".join(h.digit for h in trigger.hits) == "1234"
    assert rig.desk.status().state is CallState.IDLE
    assert all(s.payment_started is None for s in rig.statuses)


def test_a_pause_already_running_is_left_alone(tmp_path):
    onsets, tones = keyed("9876", 1.0)
    audio = np.stack([np.zeros(3 * RATE), place(3 * RATE, onsets, tones)], axis=1).astype(np.float32)
    rig = desk_rig(tmp_path, audio)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE, lookbehind_frames=2 * RATE)
        rig.observers.append(trigger)
        call_id = rig.desk.start_call("01443 425002")
        rig.desk.take_payment()  # the agent was quicker
        rig.source.go.set()
        m = rig.wait_complete(call_id)
    finally:
        rig.desk.shutdown()
    assert len(trigger.hits) == 4
    [pause] = m.pauses
    assert pause.source == "agent" and pause.offset_frames == 0
    paused = [s for s in rig.statuses if s.state is CallState.PAUSED]
    assert paused and all(s.payment_source == "agent" and s.notice is None for s in paused)


class _RefusingDesk:
    """A fake desk (the real one is driven above) whose operations fail, to prove the trigger
    never lets an exception out onto the recorder thread."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.asked: list[dict] = []

    def add_listener(self, listener) -> None:  # noqa: ANN001
        pass

    def status(self):  # noqa: ANN201
        from callrec_desktop.desk import DeskStatus

        return DeskStatus(state=CallState.RECORDING)

    def current_frame(self) -> int:
        return 0

    def take_payment(self, **kw) -> None:  # noqa: ANN003
        self.asked.append(kw)
        raise self.error


@pytest.mark.parametrize("error", [NotCapturing("cannot record: no audio capture"), RuntimeError("bug")])
def test_a_refused_or_failing_pause_is_logged_and_never_raised(error, caplog):
    desk = _RefusingDesk(error)
    trigger = DtmfPaymentTrigger(desk, RATE, channel=0, lookbehind_frames=RATE // 10,  # type: ignore[arg-type]
                                 reach_back_seconds=0.05)
    onsets, tones = keyed("5", 0.2)
    x = place(RATE // 2, onsets, tones).astype(np.float32)[:, None]
    with caplog.at_level(logging.WARNING, logger="callrec_desktop.triggers.dtmf_trigger"):
        for i in range(0, len(x), 320):
            trigger(AudioBlock(i, x[i : i + 320]))  # must not raise
    assert list(trigger.hits) == [DtmfHit(trigger.hits[0].frame, "5")]
    assert desk.asked and desk.asked[0]["at_frame"] == trigger.hits[0].frame - 800  # the reach-back
    assert any(str(error) in r.getMessage() or r.exc_info for r in caplog.records)


def test_the_reach_back_never_reaches_before_the_recording_stretch(tmp_path):
    """Keys right after the call starts: the pause is stamped no earlier than the call start
    (the recorder never stamps an event before the previous one), so it starts with the call."""
    onsets, tones = keyed("12", 1.05)
    audio = np.stack([np.zeros(3 * RATE), place(3 * RATE, onsets, tones)], axis=1).astype(np.float32)
    rig = desk_rig(tmp_path, audio)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE, lookbehind_frames=2 * RATE)
        started = []

        def call_starts_at_one_second(block: AudioBlock) -> None:
            if not started and block.start_frame >= RATE:
                started.append(rig.desk.start_call("01443 425002"))

        rig.observers += [call_starts_at_one_second, trigger]
        rig.source.go.set()
        assert rig.source.ended.wait(20)
        m = rig.wait_complete(started[0])
    finally:
        rig.desk.shutdown()
    [pause] = m.pauses
    assert pause.source == "automatic" and pause.offset_frames == 0
    assert not decode_call(rig.store, m).any()


def test_the_detector_runs_on_the_callers_channel_of_a_mono_source_too():
    det = DtmfDetector(RATE, channel=1)
    onsets, tones = keyed("0", 0.1)
    x = place(RATE // 2, onsets, tones).astype(np.float32)[:, None]
    assert [h.digit for h in det.feed(AudioBlock(0, x))] == ["0"]


# ---- the reach-back rule ---------------------------------------------------------------------


class _Recording:
    """A target that is always recording and remembers what it was asked (pure rule tests)."""

    def __init__(self) -> None:
        self.asked: list[int | None] = []

    def status(self):  # noqa: ANN201
        from callrec_desktop.desk import DeskStatus

        return DeskStatus(state=CallState.RECORDING)

    def take_payment(self, *, source, at_frame=None, notice=None) -> None:  # noqa: ANN001
        assert source.value == "automatic" and notice == NOTICE
        self.asked.append(at_frame)


class _Onsets(DtmfDetector):
    """The real detector, with the loose onset the test says (``earliest_tone_energy``)."""

    def __init__(self, onset: int | None) -> None:
        super().__init__(RATE, 1)
        self.onset = onset
        self.since: list[int] = []

    def earliest_tone_energy(self, since_frame: int) -> int | None:
        self.since.append(since_frame)
        return None if self.onset is None or self.onset < since_frame else self.onset


@pytest.mark.parametrize("block_at, onset, expected", [
    (104_000, None, 100_000 - 24_000),  # no dual-tone energy remembered: the reach-back alone
    (104_000, 90_000, 100_000 - 24_000),  # energy after (first hit - reach-back): never later than that
    (104_000, 73_000, 73_000),  # earlier energy still in the look-behind: its onset
    (104_000, 50_000, 100_000 - 24_000),  # energy older than the look-behind is not asked about
    (120_000, None, 120_000 - 32_000),  # the reach-back would pass what the look-behind still holds
])
def test_the_pause_starts_at_the_earliest_tone_energy_and_at_least_the_reach_back_before_the_hit(
        block_at, onset, expected):
    detector = _Onsets(onset)
    trigger = DtmfPaymentTrigger(_Recording(), RATE, lookbehind_frames=2 * RATE, reach_back_seconds=1.5,
                                 detector=detector)
    block = AudioBlock(block_at, np.zeros((4000, 2), np.float32))
    assert trigger.pause_frame(DtmfHit(100_000, "4"), block) == expected
    assert detector.since == [block_at - 32_000]  # asked from the oldest frame the look-behind holds


def test_a_detector_without_onsets_gives_the_reach_back_alone():
    class Plain:
        def feed(self, block):  # noqa: ANN001, ANN202
            return [DtmfHit(block.start_frame + 100, "1")] if block.start_frame == 48_000 else []

    target = _Recording()
    trigger = DtmfPaymentTrigger(target, RATE, lookbehind_frames=2 * RATE, detector=Plain())  # type: ignore[arg-type]
    for start in range(0, 64_000, 4000):
        trigger(AudioBlock(start, np.zeros((4000, 2), np.float32)))
    assert target.asked == [48_100 - 24_000] and trigger.pauses[0] == (48_100, 24_100)


@pytest.mark.parametrize("reach_back, lookbehind, message", [
    (-1.0, 2 * RATE, "0 or more"), (float("nan"), 2 * RATE, "0 or more"),
    (2.5, 2 * RATE, "not be more than the look-behind (2 s)"),
])
def test_the_reach_back_is_positive_and_within_the_look_behind(reach_back, lookbehind, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DtmfPaymentTrigger(_Recording(), RATE, lookbehind_frames=lookbehind, reach_back_seconds=reach_back)


def _short_then_long(short: str, long: str, start: float, seconds: float,
                     every: float = 0.1) -> tuple[np.ndarray, list[int]]:
    """Caller channel: ``short`` keyed as 20 ms tones (ITU-T Q.24: a receiver must reject
    them, and ours does; multimon-ng still decodes them), then ``long`` as 40 ms tones, all
    with 1 ms ramps, -15 dBFS per tone, one every ``every`` seconds. Returns the stereo audio
    (a steady tone on the agent's side) and every tone's onset frame."""
    from tests.support.dtmf_reference import dtmf_tone

    caller = np.zeros(round(seconds * RATE))
    onsets = []
    for i, d in enumerate(short + long):
        at = round((start + every * i) * RATE)
        tone = dtmf_tone(d, RATE, 0.02 if i < len(short) else 0.04, -15.0, ramp_seconds=0.001)
        caller[at : at + len(tone)] += tone
        onsets.append(at)
    agent = 0.3 * np.sin(2 * np.pi * 220 * np.arange(len(caller)) / RATE)
    return np.stack([agent, caller], axis=1).astype(np.float32), onsets


@pytest.mark.parametrize("loose_onsets, short, every", [(True, "492912345678", 0.15), (False, "492912", 0.1)])
def test_digits_the_detector_missed_before_its_first_hit_are_removed_too(tmp_path, loose_onsets, short, every):
    """A bare Recorder (``callrec record``'s target) through RecorderTarget: the first digits
    are too short for the detector, which first hits a later one. With the detector's loose
    onsets the pause reaches back to the first tone, 1.8 s before the first hit (more than the
    1.5 s reach-back); without them, the reach-back alone covers six missed digits. Either
    way the stored recording holds no key-tone energy at all."""
    from callrec_desktop.core.timeline import EventSource
    from callrec_desktop.triggers.compose import RecorderTarget
    from tests.support.recording import pipeline

    audio, onsets = _short_then_long(short, "3456781234"[: 16 - len(short)], 3.0, 7.0, every)
    p = pipeline(tmp_path, audio, settings("flac", lookbehind_seconds=2.0), block_frames=320)
    detector = DtmfDetector(RATE, 1)
    if not loose_onsets:
        detector.earliest_tone_energy = lambda since_frame: None  # type: ignore[method-assign]
    trigger = DtmfPaymentTrigger(RecorderTarget(p.recorder), RATE, lookbehind_frames=2 * RATE, detector=detector)
    p.recorder._block_observers.append(trigger)  # the recorder's hook for meters and detectors
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    p.uploader.start()
    p.recorder.run()
    p.uploader.stop(10)
    assert p.uploader.drain(30)
    [m] = p.recorder.results.manifests

    first_hit = int(np.argmin([abs(trigger.hits[0].frame - o) for o in onsets]))
    assert len(short) <= first_hit and abs(trigger.hits[0].frame - onsets[first_hit]) <= 160  # the short ones missed
    [pause] = m.pauses
    assert (pause.reason, pause.source) == ("payment", "automatic")
    if loose_onsets:  # the loose onset: at the first short tone (within one 5 ms hop before it)
        assert trigger.hits[0].frame - pause.offset_frames > 1.75 * RATE
        assert onsets[0] - 80 <= pause.offset_frames <= onsets[0], (pause.offset_frames, onsets[0])
    else:
        assert pause.offset_frames == trigger.hits[0].frame - round(1.5 * RATE) < onsets[0]
    out = decode_call(p.store, m)
    assert not out[pause.offset_frames :].any()
    assert detect(out[:, 1]) == []
    for hz in ROW_HZ + COL_HZ:
        assert band_db(out[:, 1], hz) == -300.0
