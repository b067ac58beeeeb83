"""The whole recording path from a real capture device: PulseAudio null sink → ALSA pulse
plugin → PortAudio → sounddevice → recorder → Opus chunks → spool → uploader → folder store.

The payment window is stamped the way a CTI connector or detector would: at capture frames.
A watcher on the recorder thread (a block observer) notes the capture frame where the
"card digits" tone starts and where it stops; the test thread then signals payment started
and ended at those frames (slightly widened), while the audio is still in the look-behind."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from callrec_desktop.archive import decode_call, load_manifest, verify_call
from callrec_desktop.audio.sources import DeviceSource
from callrec_desktop.core.timeline import EventSource
from tests.support.recording import RATE, band_db, pipeline, settings

pytestmark = pytest.mark.device

SPEECH_HZ, CARD_HZ = 600.0, 1700.0


def segment(freq: float, seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([x, x], axis=1).astype(np.float32)


class ToneWatcher:
    """Runs on the recorder thread: remembers the first frame each tone is dominant."""

    def __init__(self):
        self.first = {}
        self.card_ended = None
        self.events = {name: threading.Event() for name in ("card", "card_ended")}

    def __call__(self, block):
        x = block.data[:, 1]
        if len(x) < 160 or np.abs(x).max() < 0.05:
            return
        card = band_db(x, CARD_HZ) > band_db(x, SPEECH_HZ) + 10
        if card and "card" not in self.first:
            self.first["card"] = block.start_frame
            self.events["card"].set()
        if not card and "card" in self.first and self.card_ended is None:
            self.card_ended = block.start_frame + len(x)
            self.events["card_ended"].set()


def test_a_tone_played_during_the_payment_window_never_reaches_the_store(tmp_path, pulse_server):
    watcher = ToneWatcher()
    source = DeviceSource("pulse", None, channels=2, sample_rate=RATE, block_frames=320)
    rs = settings("opus", chunk_seconds=1.0, lookbehind_seconds=2.0)
    p = pipeline(tmp_path, np.zeros((0, 2), np.float32), rs, source=source)
    p.recorder._block_observers.append(watcher)  # the recorder's hook for meters and detectors
    p.recorder.start()
    p.uploader.start()
    try:
        p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.CONTROL_API)
        player = pulse_server.play(np.concatenate([segment(SPEECH_HZ, 2.0), segment(CARD_HZ, 1.5),
                                                   segment(SPEECH_HZ, 2.0)]), wait=False)
        # signalled as soon as the tone is seen: well inside the 2 s look-behind
        assert watcher.events["card"].wait(10)
        p.recorder.start_payment(source=EventSource.CONTROL_API, at_frame=watcher.first["card"] - 1600)
        assert watcher.events["card_ended"].wait(10)
        p.recorder.end_payment(source=EventSource.CONTROL_API, at_frame=watcher.card_ended + 1600)
        player.wait(20)
        p.recorder.end_call(source=EventSource.CONTROL_API)
    finally:
        p.recorder.stop()
        p.recorder.join(30)
        p.uploader.stop(10)
    assert p.uploader.drain(30)
    [finished] = p.recorder.results.manifests
    m = load_manifest(p.store, finished.call_id)
    assert verify_call(p.store, m) == []
    [pause] = m.pauses
    assert pause.reason == "payment" and pause.source == "control_api"
    out = decode_call(p.store, m)
    a = pause.offset_frames
    b = a + pause.duration_frames
    assert not out[a:b].any(), "the payment window is not digital silence"
    before, after = out[:a, 1], out[b:, 1]
    # the card tone is absent from everything stored ...
    for part in (before, after):
        assert band_db(part, CARD_HZ) < band_db(part, SPEECH_HZ) - 40
    # ... and the speech tone around it is present, on both sides of the window
    assert np.abs(before).max() > 0.1 and np.abs(after).max() > 0.1
    assert abs(band_db(before, SPEECH_HZ) - band_db(after, SPEECH_HZ)) < 6
    assert p.recorder.results.errors == [] and source.overflows == 0


def test_the_composed_dtmf_trigger_reaches_back_over_digits_it_missed_on_the_device(tmp_path, pulse_server):
    """The automatic triggers as ``callrec record`` composes them (``automatic_triggers`` over a
    bare Recorder), on the real capture path: the caller keys six 20 ms tones (which the
    detector must reject, ITU-T Q.24) then ten 40 ms tones. The pause starts before the first
    short tone captured, so the stored caller side holds no key-tone energy at all."""
    from callrec_desktop.audio.dtmf import COL_HZ, ROW_HZ
    from callrec_desktop.config import load_config
    from callrec_desktop.triggers.compose import RecorderTarget, automatic_triggers
    from tests.support.dtmf_reference import dtmf_tone, multimon_digits

    card = "4929123456781234"
    lead = 2.0
    caller = np.zeros(round((lead + 2.5) * RATE))
    for i, d in enumerate(card):
        x = dtmf_tone(d, RATE, 0.02 if i < 6 else 0.04, -15.0, ramp_seconds=0.001)
        at = round((lead + 0.1 * i) * RATE)
        caller[at : at + len(x)] = x
    agent = 0.3 * np.sin(2 * np.pi * SPEECH_HZ * np.arange(len(caller)) / RATE)
    played = np.stack([agent, caller], axis=1).astype(np.float32)
    assert multimon_digits(caller, RATE) == card  # the short ones decode too: a leak would show

    class FirstTone:
        """Recorder thread: the first captured frame of the caller's first key tone."""

        def __init__(self) -> None:
            self.frame: int | None = None

        def __call__(self, block) -> None:  # noqa: ANN001
            hot = np.flatnonzero(np.abs(block.data[:, 1]) > 0.02)
            if self.frame is None and len(hot):
                self.frame = block.start_frame + int(hot[0])

    config = load_config(system_file=None, user_file=None, env={})
    source = DeviceSource("pulse", None, channels=2, sample_rate=RATE, block_frames=320)
    p = pipeline(tmp_path, np.zeros((0, 2), np.float32), settings("opus", lookbehind_seconds=2.0), source=source)
    triggers = automatic_triggers(config, RecorderTarget(p.recorder), channels=2)
    first = FirstTone()
    p.recorder._block_observers += [first, *triggers.block_observers]  # the recorder's hook for detectors
    p.recorder.start()
    p.uploader.start()
    try:
        p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT)
        pulse_server.play(played, wait=True, timeout=30)
        p.recorder.end_call(source=EventSource.SCRIPT)
    finally:
        p.recorder.stop()
        p.recorder.join(30)
        p.uploader.stop(10)
    assert p.uploader.drain(30)
    [finished] = p.recorder.results.manifests
    m = load_manifest(p.store, finished.call_id)
    [pause] = m.pauses
    assert (pause.reason, pause.source) == ("payment", "automatic")
    hit_frame, asked = triggers.dtmf.pauses[0]  # capture frames
    assert first.frame is not None and hit_frame - first.frame >= 0.5 * RATE  # the detector missed the short ones
    assert asked <= first.frame  # the pause reaches back over them
    out = decode_call(p.store, m)
    assert not out[pause.offset_frames :].any()
    for hz in ROW_HZ + COL_HZ:
        assert band_db(out[:, 1], hz) < band_db(out[:, 0], SPEECH_HZ) - 60
    assert verify_call(p.store, m) == [] and p.recorder.results.errors == [] and source.overflows == 0
