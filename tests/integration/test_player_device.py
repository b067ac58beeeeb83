"""The player through the real output path: Player → sounddevice OutputStream → PortAudio →
ALSA pulse plugin → the private PulseAudio's null sink ``vsink``. The test records the sink's
monitor with a sounddevice InputStream and checks what was heard (channel modes, speed, seek).

Calls are recorded with the real pipeline (FLAC chunks in a folder store)."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from callrec_desktop.core.timeline import EventSource
from callrec_desktop.playback.call_audio import CallAudio
from callrec_desktop.playback.player import Player
from tests.support.recording import RATE, band_db, finish, pipeline, settings, two_tones

pytestmark = pytest.mark.device

LOUD = 0.05


def wait_until(condition, timeout, interval=0.01):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


class Monitor:
    """Records vsink.monitor (PULSE_SOURCE) through PortAudio; the callback only copies."""

    def __init__(self):
        import sounddevice as sd

        self.q: queue.Queue = queue.Queue()
        self.frames = 0
        self.stream = sd.InputStream(device="pulse", samplerate=RATE, channels=2, dtype="float32",
                                     blocksize=320, callback=self._callback)

    def _callback(self, indata, frames, time_info, status):
        self.q.put(indata.copy())
        self.frames += frames

    def __enter__(self):
        self.stream.start()
        return self

    def __exit__(self, *exc):
        self.stream.stop()
        self.stream.close()

    def collected(self) -> np.ndarray:
        parts = []
        while not self.q.empty():
            parts.append(self.q.get_nowait())
        return np.concatenate(parts) if parts else np.zeros((0, 2), np.float32)


def loud_part(x: np.ndarray) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x).max(axis=1) > LOUD)
    assert idx.size, "nothing was heard on the monitor"
    return x[idx[0] : idx[-1] + 1]


def recorded_call(tmp_path, audio):
    p = pipeline(tmp_path, audio, settings("flac", chunk_seconds=1.0))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    [m] = finish(p)
    return CallAudio(p.store, m)


def play_to_end(call_audio, **kw) -> tuple[np.ndarray, Player]:
    done = threading.Event()
    with Monitor() as mon:
        player = Player(call_audio, device="pulse", **kw)
        try:
            player.add_listener("finished", done.set)
            player.play()
            assert done.wait(call_audio.duration * 2 + 5), "the player never finished"
            assert player.error is None
            heard_at_end = mon.frames
            # the device still holds ~latency of audio: keep recording 0.3 s more
            assert wait_until(lambda: mon.frames >= heard_at_end + 0.3 * RATE, 5)
        finally:
            player.close()
    return mon.collected(), player


@pytest.fixture(scope="module")
def tones_call(tmp_path_factory):
    return recorded_call(tmp_path_factory.mktemp("tones"), two_tones(2.0))


@pytest.mark.parametrize("mode, hear, not_hear", [("caller", 1250, 440), ("agent", 440, 1250)])
def test_channel_mode_plays_one_side_on_both_ears(pulse_server, tones_call, mode, hear, not_hear):
    heard, _ = play_to_end(tones_call, channel_mode=mode, normalise=False)
    x = loud_part(heard)
    assert abs(len(x) - 2.0 * RATE) < 0.2 * RATE, len(x) / RATE
    mid = x[len(x) // 4 : 3 * len(x) // 4]
    for ch in range(2):
        assert band_db(mid[:, ch], hear) > band_db(mid[:, ch], not_hear) + 30, (mode, ch)


def test_at_one_and_a_half_speed_the_pitch_is_kept_and_the_time_shrinks(pulse_server, tmp_path):
    call = recorded_call(tmp_path, two_tones(3.0))
    heard, _ = play_to_end(call, speed=1.5, normalise=False)
    x = loud_part(heard)
    assert abs(len(x) / RATE - 2.0) < 0.2, len(x) / RATE
    mid = x[len(x) // 4 : 3 * len(x) // 4]
    for ch, hz in ((0, 440), (1, 1250)):
        spec = np.abs(np.fft.rfft(mid[:, ch] * np.hanning(len(mid))))
        peak = np.fft.rfftfreq(len(mid), 1 / RATE)[spec.argmax()]
        assert abs(peak - hz) <= 5, (ch, peak)


def test_seek_lands_where_asked(pulse_server, tmp_path):
    first = two_tones(4.0, 600, 600)
    second = two_tones(4.0, 1700, 1700)
    call = recorded_call(tmp_path, np.concatenate([first, second]))
    positions = []
    with Monitor() as mon:
        player = Player(call, device="pulse", normalise=False)
        try:
            player.add_listener("position_changed", positions.append)
            player.play()
            assert wait_until(lambda: player.position >= 1.0, 5), player.position
            before = mon.frames
            player.seek(5.0)
            assert abs(player.position - 5.0) < 0.05
            t_seek = time.monotonic()
            assert wait_until(lambda: player.position >= 6.0, 5), player.position
            elapsed = time.monotonic() - t_seek
            # the position runs at real time from where it was sent (within device latency)
            assert abs(player.position - (5.0 + elapsed)) < 0.35, (player.position, elapsed)
            after = mon.frames
        finally:
            player.close()
        audio = mon.collected()
    assert any(4.99 <= p <= 5.01 for p in positions)
    pre = loud_part(audio[:before])
    assert band_db(pre[-RATE // 2 :, 0], 600) > band_db(pre[-RATE // 2 :, 0], 1700) + 30
    post = audio[before + round(0.25 * RATE) : after]  # skip the audio still in the device at the seek
    assert len(post) > 0.5 * RATE
    for ch in range(2):
        assert band_db(post[:, ch], 1700) > band_db(post[:, ch], 600) + 30, ch


def test_skip_silence_jumps_over_a_long_payment_pause(pulse_server, tmp_path):
    audio = two_tones(7.0)
    p = pipeline(tmp_path, audio, settings("flac", chunk_seconds=1.0))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=1 * RATE)
    p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=5 * RATE)
    [m] = finish(p)
    heard, player = play_to_end(CallAudio(p.store, m), skip_silence=True)
    x = loud_part(heard)
    # 1 s of tone, the pause cut to 0.5 s, 2 s of tone: 3.5 s instead of 7 s
    assert abs(len(x) / RATE - 3.5) < 0.25, len(x) / RATE
    assert player.position == pytest.approx(7.0)
