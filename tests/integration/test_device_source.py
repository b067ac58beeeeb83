"""DeviceSource through the real PortAudio path, recording the virtual audio server's null sink
(see tests/support/pulse.py). No mocks: ALSA's pulse plugin, PortAudio, sounddevice."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support.signals import make_stereo, peak_frequency, tone
from callrec_desktop.audio.sources import (
    NO_INPUT_DEVICE_MESSAGE,
    AudioBlock,
    DeviceLostError,
    DeviceSource,
    NoInputDeviceError,
    list_input_devices,
)

pytestmark = pytest.mark.device

RATE = 16000
BLOCK = 320  # 20 ms


def wait_for_audio_flowing(source: DeviceSource, timeout: float = 5.0) -> AudioBlock:
    """Read until the first non-empty block (the stream is running); bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        block = source.read(timeout=0.1)
        assert block is not None
        if block.frames:
            return block
    pytest.fail(f"no audio from {source.device_names} within {timeout} s")


def level_at(x: np.ndarray, freq: float) -> float:
    """Magnitude of the windowed spectrum at ``freq`` (relative units)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    k = int(round(freq * x.size / RATE))
    return float(spectrum[max(0, k - 2) : k + 3].max())


def test_records_agent_left_and_caller_right_tones(pulse_server) -> None:
    stimulus = make_stereo(tone(1000, 2.5, RATE), tone(2500, 2.5, RATE))
    blocks: list[AudioBlock] = []
    with DeviceSource("pulse", None, channels=2, sample_rate=RATE, block_frames=BLOCK) as source:
        blocks.append(wait_for_audio_flowing(source))
        t_play = time.monotonic()
        player = pulse_server.play(stimulus, RATE, wait=False)
        t_first_tone = None
        tone_frames = 0
        deadline = t_play + 10.0
        while tone_frames < 1.5 * RATE and time.monotonic() < deadline:
            block = source.read(timeout=0.2)
            assert block is not None
            blocks.append(block)
            if block.frames and np.sqrt(np.mean(block.data[:, 0] ** 2)) > 0.1:
                tone_frames += block.frames
                t_first_tone = t_first_tone or time.monotonic()
        overflows = source.overflows
        captured = source.frames_captured
    player.wait(timeout=10)

    assert tone_frames >= 1.5 * RATE, f"only {tone_frames / RATE:.2f} s of tone arrived within 10 s"
    print(f"first tone block {t_first_tone - t_play:.3f} s after paplay started")
    assert overflows == 0
    expected = 0
    for block in blocks:
        assert block.start_frame == expected and block.data.shape[1] == 2
        expected = block.end_frame
    assert captured >= expected

    audio = np.concatenate([b.data for b in blocks])
    loud = np.flatnonzero(np.abs(audio[:, 0]) > 0.05)
    segment = audio[loud[0] + BLOCK : loud[-1] - BLOCK]  # whole tone, edges trimmed
    assert segment.shape[0] >= RATE
    left, right = segment[:, 0], segment[:, 1]
    assert peak_frequency(left, RATE) == pytest.approx(1000, abs=3)
    assert peak_frequency(right, RATE) == pytest.approx(2500, abs=3)
    # Channels stay apart: each tone is at least 40 dB down on the other side.
    assert level_at(left, 2500) < 0.01 * level_at(left, 1000)
    assert level_at(right, 1000) < 0.01 * level_at(right, 2500)
    assert np.sqrt(np.mean(left**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


@pytest.mark.parametrize("how", ["system default", "name", "index as text"])
def test_device_can_be_named_by_default_name_or_index(pulse_server, how: str) -> None:
    pulse_index = next(d["index"] for d in list_input_devices() if d["name"] == "pulse")
    spec = {"system default": None, "name": "pulse", "index as text": str(pulse_index)}[how]
    with DeviceSource(spec, None, channels=1, sample_rate=RATE, block_frames=BLOCK) as source:
        block = wait_for_audio_flowing(source)
        assert block.data.shape == (BLOCK, 1) and block.data.dtype == np.float32
        assert source.device_names == ["default" if spec is None else "pulse"]


def test_a_missing_named_device_lists_the_available_ones(pulse_server) -> None:
    source = DeviceSource("Jabra Evolve 9000", None, channels=2, sample_rate=RATE, block_frames=BLOCK)
    with pytest.raises(NoInputDeviceError) as info:
        source.start()
    message = str(info.value)
    assert "'Jabra Evolve 9000' not found" in message
    assert "available input devices:" in message and "pulse" in message
    with pytest.raises(NoInputDeviceError, match=r"'99' not found.*available input devices"):
        DeviceSource("99", None, channels=2, sample_rate=RATE, block_frames=BLOCK).start()


def test_a_pc_with_no_microphone_gets_a_clear_error(no_audio_env) -> None:
    assert list_input_devices() == []
    with pytest.raises(NoInputDeviceError) as info:
        DeviceSource(None, None, channels=2, sample_rate=RATE, block_frames=BLOCK).start()
    assert str(info.value) == NO_INPUT_DEVICE_MESSAGE
    with pytest.raises(NoInputDeviceError, match="'pulse' not found: no audio input device is available"):
        DeviceSource("pulse", None, channels=1, sample_rate=RATE, block_frames=BLOCK).start()


def read_until_lost(source: DeviceSource, timeout: float) -> tuple[DeviceLostError, float, int]:
    t0 = time.monotonic()
    frames = 0
    while time.monotonic() - t0 < timeout:
        try:
            block = source.read(timeout=0.2)
        except DeviceLostError as exc:
            return exc, time.monotonic() - t0, frames
        assert block is not None
        frames += block.frames
    pytest.fail(f"read() did not report the lost device within {timeout} s")


def test_audio_server_going_away_mid_stream_raises_device_lost(private_pulse_server) -> None:
    with DeviceSource(None, None, channels=2, sample_rate=RATE, block_frames=BLOCK) as source:
        wait_for_audio_flowing(source)
        private_pulse_server.stop()
        error, after, _ = read_until_lost(source, timeout=10.0)
    assert after < 3.0, f"loss reported only after {after:.1f} s"
    assert "'default' was lost" in str(error)


def test_a_hung_audio_server_trips_the_watchdog(private_pulse_server) -> None:
    with DeviceSource(None, None, channels=2, sample_rate=RATE, block_frames=BLOCK) as source:
        wait_for_audio_flowing(source)
        private_pulse_server.freeze()
        try:
            error, after, _ = read_until_lost(source, timeout=10.0)
        finally:
            private_pulse_server.thaw()
    assert 1.5 < after < 4.0, f"watchdog fired after {after:.1f} s (stall limit 2 s)"
    assert "no audio arrived for" in str(error)


def test_separate_agent_and_caller_devices_are_interleaved(pulse_server) -> None:
    # Both ALSA devices reach the same monitor here, each as a mono downmix of it: enough to
    # run two real streams side by side and check the consumer-side interleaving.
    with DeviceSource("pulse", "default", channels=2, sample_rate=RATE, block_frames=BLOCK) as source:
        assert source.dual
        blocks = [wait_for_audio_flowing(source)]
        player = pulse_server.play(make_stereo(tone(800, 1.5, RATE), tone(800, 1.5, RATE)), RATE, wait=False)
        deadline = time.monotonic() + 10.0
        loud = 0
        while loud < RATE and time.monotonic() < deadline:
            block = source.read(timeout=0.2)
            assert block is not None
            blocks.append(block)
            if block.frames and np.sqrt(np.mean(block.data**2, axis=0)).min() > 0.1:
                loud += block.frames
        overflows = source.overflows
        names = source.device_names
    player.wait(timeout=10)
    assert names == ["pulse", "default"]
    assert overflows == 0
    assert loud >= RATE, "a second of the tone did not arrive on both channels"
    expected = 0
    for block in blocks:
        assert block.start_frame == expected and block.data.shape[1] == 2
        expected = block.end_frame
    audio = np.concatenate([b.data for b in blocks])
    on = np.flatnonzero(np.all(np.abs(audio) > 0.05, axis=1))
    segment = audio[on[0] + BLOCK : on[-1] - BLOCK]
    assert segment.shape[0] >= RATE // 2
    assert peak_frequency(segment[:, 0], RATE) == pytest.approx(800, abs=3)
    assert peak_frequency(segment[:, 1], RATE) == pytest.approx(800, abs=3)
