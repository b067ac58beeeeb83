"""The DTMF payment trigger end to end: real Desk, recorder, look-behind, FLAC chunks, spool,
uploader and folder store; the stored recording is decoded and searched for key tones."""

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
    presses Payment finished at 8 s; at 10 s the caller keys 3 more digits (a security code)."""
    audio = _conversation(12.0, seed=21)
    card_onsets, card_tones = keyed(CARD, 5.0, tone=0.08, gap=0.08)
    code_onsets, code_tones = keyed("737", 10.0, tone=0.08, gap=0.08)
    audio[:, 1] = place(len(audio), card_onsets + code_onsets, card_tones + code_tones, base=audio[:, 1])
    audio[5 * RATE : 8 * RATE, 1] = place(3 * RATE, [o - 5 * RATE for o in card_onsets], card_tones)  # only keys
    audio[10 * RATE : 11 * RATE, 1] = place(RATE, [o - 10 * RATE for o in code_onsets], code_tones)
    audio = audio.astype(np.float32)

    rig = desk_rig(tmp_path, audio, lookbehind_seconds=2.0)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE, channel=1, margin_seconds=0.1)
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
    # each pause starts at or before the first tone, by the margin (and not much more)
    for pause, onset in ((first, card_onsets[0]), (second, code_onsets[0])):
        assert onset - round(0.1 * RATE) - 320 <= pause.offset_frames <= onset - round(0.1 * RATE)
    resumed = first.offset_frames + first.duration_frames
    assert finished and resumed == finished[0]  # payment finished is stamped at the frames captured

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
    assert paused and paused[0].notice == NOTICE and paused[0].payment_source == "automatic"
    assert "Card key tones heard" in NOTICE


def test_keys_heard_while_no_call_is_recorded_do_nothing(tmp_path):
    onsets, tones = keyed("1234", 1.0)
    audio = np.stack([np.zeros(3 * RATE), place(3 * RATE, onsets, tones)], axis=1).astype(np.float32)
    rig = desk_rig(tmp_path, audio)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE)
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
        trigger = DtmfPaymentTrigger(rig.desk, RATE)
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
    assert rig.desk.status().payment_source == "agent" and rig.desk.status().notice is None


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
    trigger = DtmfPaymentTrigger(desk, RATE, channel=0)  # type: ignore[arg-type]
    onsets, tones = keyed("5", 0.2)
    x = place(RATE // 2, onsets, tones).astype(np.float32)[:, None]
    with caplog.at_level(logging.WARNING, logger="callrec_desktop.triggers.dtmf_trigger"):
        for i in range(0, len(x), 320):
            trigger(AudioBlock(i, x[i : i + 320]))  # must not raise
    assert list(trigger.hits) == [DtmfHit(trigger.hits[0].frame, "5")]
    assert desk.asked and desk.asked[0]["at_frame"] == trigger.hits[0].frame - 1600
    assert any(str(error) in r.getMessage() or r.exc_info for r in caplog.records)


def test_the_margin_never_reaches_before_the_recording_stretch(tmp_path):
    """Keys right after the call starts: the pause is stamped no earlier than the call start
    (the timeline refuses events out of order), so it is still applied, at the call start."""
    onsets, tones = keyed("12", 1.05)
    audio = np.stack([np.zeros(3 * RATE), place(3 * RATE, onsets, tones)], axis=1).astype(np.float32)
    rig = desk_rig(tmp_path, audio)
    try:
        trigger = DtmfPaymentTrigger(rig.desk, RATE, margin_seconds=0.1)
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
