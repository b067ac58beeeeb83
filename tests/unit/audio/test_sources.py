"""Audio sources without a device: files, synthetic audio, and the PortAudio callback called
directly with synthetic numpy blocks."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.signals import make_stereo, peak_frequency, tone
from callrec_desktop.audio.sources import (
    AudioBlock,
    AudioFileError,
    AudioSource,
    AudioSourceError,
    DeviceLostError,
    DeviceSource,
    FileSource,
    SyntheticSource,
    open_source,
)


def read_all(source, timeout: float | None = None) -> list[AudioBlock]:
    blocks = []
    while (block := source.read(timeout)) is not None:
        blocks.append(block)
    return blocks


def assert_contiguous(blocks: list[AudioBlock]) -> None:
    expected = 0
    for block in blocks:
        assert block.start_frame == expected
        assert block.data.dtype == np.float32
        assert block.data.flags.c_contiguous
        expected = block.end_frame


def ramp(frames: int, channels: int) -> np.ndarray:
    """Distinct, exactly representable values (k / 2**15) so PCM_16 round-trips bit for bit."""
    values = (np.arange(frames * channels) % 60000 - 30000).astype(np.float32) / 32768.0
    return values.reshape(frames, channels)


# --------------------------------------------------------------------------- FileSource


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
@pytest.mark.parametrize("channels", [1, 2])
def test_file_source_yields_exact_samples_in_contiguous_blocks(tmp_path: Path, fmt: str, channels: int) -> None:
    audio = ramp(1000, channels)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, audio, 8000, format=fmt, subtype="PCM_16")

    with FileSource(path, block_frames=300) as source:
        assert isinstance(source, AudioSource)
        assert (source.channels, source.sample_rate) == (channels, 8000)
        blocks = read_all(source)
        assert source.frames_captured == 1000
        assert source.read() is None  # stays at the end
        assert source.overflows == 0

    assert [b.frames for b in blocks] == [300, 300, 300, 100]  # last block partial
    assert_contiguous(blocks)
    np.testing.assert_array_equal(np.concatenate([b.data for b in blocks]), audio)


def test_file_source_refuses_more_than_two_channels(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    sf.write(path, np.zeros((100, 3), dtype=np.float32), 8000)
    with pytest.raises(AudioFileError, match=r"surround\.wav.*3 channels"):
        FileSource(path, block_frames=160)


def test_missing_file_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "call.wav"
    with pytest.raises(AudioFileError, match="not found") as info:
        open_source(str(path), sample_rate=16000, block_frames=320)
    assert str(path) in str(info.value)
    assert isinstance(info.value, AudioSourceError)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all\n" * 50, b"RIFF\x10\x00\x00\x00WAVEfmt garbage"])
def test_corrupt_file_error_names_the_file_and_reason(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError, match=r"cannot read audio file .*broken\.wav: \S+"):
        FileSource(path, block_frames=160)


def test_folder_is_not_an_audio_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="folder"):
        FileSource(tmp_path, block_frames=160)


def test_truncated_flac_raises_audio_file_error_after_the_good_audio(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    audio = ramp(48000, 2)
    sf.write(path, audio, 16000, format="FLAC", subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    blocks = []
    with FileSource(path, block_frames=1600) as source:
        with pytest.raises(AudioFileError, match=r"cut\.flac after frame \d+: \S+"):
            while (block := source.read()) is not None:
                blocks.append(block)
        assert source.read() is None  # the source ended with the error
    got = np.concatenate([b.data for b in blocks])
    assert 0 < got.shape[0] < 48000
    np.testing.assert_array_equal(got, audio[: got.shape[0]])


def test_resampling_48k_to_16k_keeps_the_tone_frequency_and_length(tmp_path: Path) -> None:
    path = tmp_path / "hi.wav"
    sf.write(path, make_stereo(tone(1000, 1.0, 48000), tone(3000, 1.0, 48000)), 48000, subtype="FLOAT")

    with FileSource(path, block_frames=320, sample_rate=16000) as source:
        assert (source.sample_rate, source.file_sample_rate, source.channels) == (16000, 48000, 2)
        blocks = read_all(source)

    assert_contiguous(blocks)
    assert all(b.frames == 320 for b in blocks[:-1])
    audio = np.concatenate([b.data for b in blocks])
    assert abs(audio.shape[0] - 16000) <= 2
    assert peak_frequency(audio[:, 0], 16000) == pytest.approx(1000, abs=2)
    assert peak_frequency(audio[:, 1], 16000) == pytest.approx(3000, abs=2)
    middle = audio[2000:14000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


def test_resampling_mono_8k_up_to_16k(tmp_path: Path) -> None:
    path = tmp_path / "lo.wav"
    sf.write(path, tone(440, 0.5, 8000), 8000)
    with FileSource(path, block_frames=320, sample_rate=16000) as source:
        audio = np.concatenate([b.data for b in read_all(source)])
    assert audio.shape[1] == 1
    assert abs(audio.shape[0] - 8000) <= 2
    assert peak_frequency(audio[:, 0], 16000) == pytest.approx(440, abs=2)


def test_realtime_file_source_is_paced_to_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "half.wav"
    sf.write(path, tone(500, 0.5, 16000), 16000)
    with FileSource(path, block_frames=800, realtime=True) as source:
        t0 = time.monotonic()
        blocks = [b for b in read_all(source, timeout=1.0) if b.frames]
        elapsed = time.monotonic() - t0
    assert sum(b.frames for b in blocks) == 8000
    assert elapsed >= 0.8 * 0.5, f"realtime source delivered 0.5 s of audio in {elapsed:.3f} s"


def test_realtime_read_times_out_with_an_empty_block_and_stop_ends_it(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros((16000 * 30, 1), dtype=np.float32), 16000)
    source = FileSource(path, block_frames=16000, realtime=True)
    source.start()
    block = source.read(timeout=0.01)
    assert block is not None and block.frames == 0 and block.data.shape == (0, 1)
    # stop() from another thread wakes a reader waiting for the next block's due time.
    threading.Timer(0.1, source.stop).start()
    t0 = time.monotonic()
    assert source.read(timeout=None) is None
    assert time.monotonic() - t0 < 0.9


def test_read_before_start_is_a_programming_error(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(10, dtype=np.float32), 8000)
    with pytest.raises(RuntimeError, match="before start"):
        FileSource(path).read()


# --------------------------------------------------------------------------- SyntheticSource


def test_synthetic_source_cuts_an_array_into_blocks() -> None:
    audio = make_stereo(tone(1000, 0.1, 16000), tone(2000, 0.1, 16000))
    with SyntheticSource(audio, 16000, block_frames=512) as source:
        assert (source.channels, source.sample_rate) == (2, 16000)
        blocks = read_all(source)
    assert_contiguous(blocks)
    assert [b.frames for b in blocks] == [512, 512, 512, 64]
    np.testing.assert_array_equal(np.concatenate([b.data for b in blocks]), audio)


def test_synthetic_source_hands_out_given_blocks_as_copies() -> None:
    reused = np.zeros(100, dtype=np.float32)

    def producer():
        for value in (0.1, 0.2, 0.3):
            reused[:] = value  # a producer that reuses its buffer
            yield reused

    with SyntheticSource(producer(), 8000, block_frames=100) as source:
        assert source.channels == 1
        blocks = read_all(source)
    assert_contiguous(blocks)
    assert [float(b.data[0, 0]) for b in blocks] == pytest.approx([0.1, 0.2, 0.3])


def test_synthetic_source_empty_and_channel_checks() -> None:
    with SyntheticSource([], 8000, 100, channels=2) as source:
        assert source.channels == 2
        assert source.read() is None
    with pytest.raises(ValueError, match="got 3"):
        SyntheticSource([np.zeros((10, 3))], 8000, 100)
    with pytest.raises(ValueError, match="channels"):
        SyntheticSource(np.zeros((10, 2)), 8000, 100, channels=1)


def test_signal_helpers() -> None:
    t = tone(1000, 0.5, 16000, amplitude=0.5)
    assert t.dtype == np.float32 and t.shape == (8000,)
    assert np.max(np.abs(t)) == pytest.approx(0.5, abs=1e-3)
    assert peak_frequency(t, 16000) == pytest.approx(1000, abs=0.5)
    stereo = make_stereo(t, tone(300, 0.25, 16000))
    assert stereo.shape == (8000, 2)
    assert not stereo[4000:, 1].any()  # shorter side padded with silence


# --------------------------------------------------------------------------- DeviceSource callback


class Flags:
    """Stands in for sounddevice.CallbackFlags (only the attribute the callback reads)."""

    def __init__(self, input_overflow: bool = False) -> None:
        self.input_overflow = input_overflow


def make_device_source(**kwargs) -> DeviceSource:
    """A DeviceSource whose streams are never opened: tests drive the callbacks themselves."""
    source = DeviceSource(**{"channels": 2, "sample_rate": 16000, "block_frames": 4, **kwargs})
    source._started = True  # white-box: read() without PortAudio streams
    source._stopping = True  # so read() drains what the callbacks queued, then ends
    return source


def test_callback_copies_counts_frames_and_overflows() -> None:
    source = make_device_source()
    capture = source._captures[0]
    buffer = np.arange(8, dtype=np.float32).reshape(4, 2)

    capture.callback(buffer, 4, None, Flags())
    buffer[:] = -1  # PortAudio reuses its buffer: the queued block must be a copy
    capture.callback(buffer, 4, None, Flags(input_overflow=True))

    assert source.frames_captured == 8
    assert source.overflows == 1
    blocks = read_all(source)
    assert_contiguous(blocks)
    np.testing.assert_array_equal(blocks[0].data, np.arange(8, dtype=np.float32).reshape(4, 2))
    np.testing.assert_array_equal(blocks[1].data, -np.ones((4, 2), dtype=np.float32))


def test_callback_drops_blocks_on_a_full_queue_and_read_fills_the_gap_with_silence() -> None:
    source = make_device_source()
    capture = source._captures[0]
    capture.queue = queue.Queue(maxsize=2)
    for value in (1, 2, 3, 4):  # blocks 3 and 4 find the queue full
        capture.callback(np.full((4, 2), value, dtype=np.float32), 4, None, Flags())
    assert source.overflows == 2
    assert source.frames_captured == 16

    blocks = read_all(source)
    audio = np.concatenate([b.data for b in blocks])
    assert_contiguous(blocks)
    assert audio.shape == (8, 2)  # the dropped tail is not invented; nothing arrived after it
    capture.callback(np.full((4, 2), 5, dtype=np.float32), 4, None, Flags())
    tail = read_all(source)
    assert [b.start_frame for b in tail] == [8, 16]  # silence for frames 8-15, then block 5
    np.testing.assert_array_equal(tail[0].data, np.zeros((8, 2), dtype=np.float32))
    np.testing.assert_array_equal(tail[1].data, np.full((4, 2), 5, dtype=np.float32))
    assert capture.gap_frames == 8


def test_two_devices_are_interleaved_by_frame_count() -> None:
    source = make_device_source(agent_device="agent-mic", caller_device="caller-line")
    agent, caller = source._captures
    assert (agent.channels, caller.channels, source.channels) == (1, 1, 2)
    # Different callback sizes on each side; alignment is by frame count.
    agent.callback(np.full((6, 1), 0.5, dtype=np.float32), 6, None, Flags())
    caller.callback(np.full((2, 1), -0.5, dtype=np.float32), 2, None, Flags())
    caller.callback(np.full((4, 1), -0.25, dtype=np.float32), 4, None, Flags())
    blocks = read_all(source)
    assert_contiguous(blocks)
    audio = np.concatenate([b.data for b in blocks])
    np.testing.assert_array_equal(audio[:, 0], np.full(6, 0.5, dtype=np.float32))
    np.testing.assert_array_equal(audio[:, 1], np.array([-0.5, -0.5, -0.25, -0.25, -0.25, -0.25], dtype=np.float32))
    assert source.frames_captured == 6


def test_a_stalled_caller_device_is_padded_so_the_agent_keeps_flowing() -> None:
    source = make_device_source(agent_device="a", caller_device="c", max_skew_seconds=0.001)  # 16 frames
    agent, _ = source._captures
    source._stopping = False
    source._streams = []  # no streams to watch in this test
    agent.callback(np.ones((20, 1), dtype=np.float32), 20, None, Flags())
    agent.pull(0)
    block = source._next_block()
    assert block is not None and block.frames == 4
    np.testing.assert_array_equal(block.data[:, 1], np.zeros(4, dtype=np.float32))
    assert source.caller_padded_frames == 20


def test_device_source_rejects_bad_channel_settings() -> None:
    with pytest.raises(AudioSourceError, match="channels"):
        DeviceSource(channels=3)
    with pytest.raises(AudioSourceError, match="caller device"):
        DeviceSource("mic", "line", channels=1)


def test_open_source_picks_device_or_file(tmp_path: Path) -> None:
    source = open_source("device", sample_rate=16000, block_frames=320, agent_device="3", channels=1)
    assert isinstance(source, DeviceSource)
    assert (source.channels, source.sample_rate, source.block_frames) == (1, 16000, 320)
    path = tmp_path / "call.flac"
    sf.write(path, np.zeros((100, 2), dtype=np.float32), 16000)
    source = open_source(str(path), sample_rate=None, block_frames=50, realtime=True)
    assert isinstance(source, FileSource)
    assert (source.channels, source.realtime) == (2, True)


class FakeStream:
    """Only what the watchdog reads from a sounddevice stream."""

    active = True


def live_device_source(**kwargs) -> DeviceSource:
    source = make_device_source(**kwargs)
    source._stopping = False
    source._streams = [FakeStream() for _ in source._captures]
    return source


def test_watchdog_reports_a_device_that_stopped_calling_back() -> None:
    source = live_device_source(stall_timeout=0.2, start_timeout=0.4)
    capture = source._captures[0]
    capture.seen_at = time.monotonic()
    capture.callback(np.ones((4, 2), dtype=np.float32), 4, None, Flags())
    assert source.read(timeout=1.0).frames == 4  # audio captured before the stall still comes out
    t0 = time.monotonic()
    with pytest.raises(DeviceLostError, match=r"'default input' was lost \(no audio arrived for"):
        while True:
            block = source.read(timeout=0.05)
            assert block is not None and block.frames == 0
    assert 0.15 < time.monotonic() - t0 < 1.5
    with pytest.raises(DeviceLostError):  # and it stays lost
        source.read(timeout=0)


def test_finished_stream_is_lost_after_its_queued_audio_is_handed_out() -> None:
    source = live_device_source(agent_device="Headset")
    capture = source._captures[0]
    capture.seen_at = time.monotonic()
    capture.callback(np.ones((4, 2), dtype=np.float32), 4, None, Flags())
    capture.finished_callback()
    source._streams[0].active = False
    block = source.read(timeout=1.0)
    assert block is not None and block.frames == 4
    with pytest.raises(DeviceLostError, match=r"'Headset' was lost \(the audio stream stopped"):
        source.read(timeout=1.0)


def test_read_on_timeout_returns_an_empty_block_at_the_current_frame() -> None:
    source = live_device_source(stall_timeout=60, start_timeout=60)
    source._captures[0].callback(np.ones((4, 2), dtype=np.float32), 4, None, Flags())
    assert source.read(timeout=0.5).frames == 4
    block = source.read(timeout=0.05)
    assert block is not None and block.frames == 0 and block.start_frame == 4 and block.data.shape == (0, 2)


@pytest.mark.parametrize("written, spec", [("default", None), (" Default ", None), ("", None), ("3", 3),
                                           ("USB Headset", "USB Headset"), (None, None), (2, 2)])
def test_device_spec_reads_devices_as_settings_write_them(written, spec):
    from callrec_desktop.audio.sources import device_spec

    assert device_spec(written) == spec
