"""The chunk encoders, checked by independent tools: opusinfo and ffprobe (subprocess),
libsndfile and ffmpeg's decoders (frame counts), the players ordinary users have (ffmpeg,
opusdec, GStreamer: tests/support/players.py), and spectra (channel separation)."""

from __future__ import annotations

import errno
import io
import re
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.audio.encoders import CodecSettings, family1_head, make_encoder
from callrec_desktop.config import RecorderSettings
from tests.support import players

RATE = 16000
needs_tools = pytest.mark.skipif(
    not (shutil.which("opusinfo") and shutil.which("ffprobe")), reason="opusinfo/ffprobe not installed")


def default_settings(codec: str = "opus", channels: int = 2) -> CodecSettings:
    """What ships: the encoder settings built from the default [recorder] configuration."""
    r = RecorderSettings()
    return CodecSettings(codec=codec, sample_rate=r.sample_rate, channels=channels,
                         opus_bitrate_per_channel=r.opus_bitrate_per_channel, opus_complexity=r.opus_complexity)


def encode(path: Path, settings: CodecSettings, data: np.ndarray, block: int = 320) -> Path:
    with open(path, "xb", buffering=0) as f:
        enc = make_encoder(f, settings)
        for i in range(0, len(data), block):
            enc.write(data[i : i + block])
        enc.close()
    return path


def noise(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return (0.2 * np.random.default_rng(seed).standard_normal((frames, channels))).astype(np.float32)


def two_tones(frames: int, left: float = 440.0, right: float = 1250.0) -> np.ndarray:
    t = np.arange(frames) / RATE
    return np.stack([0.3 * np.sin(2 * np.pi * left * t), 0.3 * np.sin(2 * np.pi * right * t)], axis=1).astype(np.float32)


def speechish(seconds: float, seed: int = 1) -> np.ndarray:
    """Noise-like, speech-ish stereo: band-limited (200-3400 Hz) noise, syllable-rate (~4 Hz)
    envelopes, agent and caller taking turns of a few seconds with some overlap and silence."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    spec = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    f = np.fft.rfftfreq(n, 1 / RATE)
    spec[(f < 200) | (f > 3400)] = 0
    spec *= (1 / np.maximum(f, 200) ** 0.5)[:, None]  # speech-like spectral tilt
    x = np.fft.irfft(spec, n, axis=0)
    x /= np.abs(x).max()
    t = np.arange(n) / RATE
    syll = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.28))
    turns = np.zeros((n, 2))
    pos, who = 0, 0
    while pos < n:
        length = round(rng.uniform(1.5, 5.0) * RATE)
        turns[pos : pos + length, who] = 1.0
        if rng.random() < 0.3:  # a little overlap (interruptions)
            turns[pos : pos + length // 5, 1 - who] = 1.0
        pos += length + round(rng.uniform(0.1, 0.8) * RATE)  # a short silence between turns
        who = 1 - who
    return (0.5 * x * syll[:, None] * turns).astype(np.float32)


def band_db(x: np.ndarray, freq: float) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(10 * np.log10(spec[(f > freq - 20) & (f < freq + 20)].sum() + 1e-30))


def ffmpeg_frames(path: Path) -> tuple[int, int]:
    """(frames, sample rate) as ffmpeg's own demuxer and decoder see the file."""
    with av.open(str(path)) as c:
        total, rate = 0, None
        for frame in c.decode(audio=0):
            total += frame.samples
            rate = frame.sample_rate
    return total, rate


def ffprobe(path: Path) -> dict[str, str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert not out.stderr.strip(), out.stderr
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


# ---- validity for independent tools -----------------------------------------------------------


@needs_tools
def test_stereo_opus_is_two_uncoupled_streams_for_opusinfo_and_ffprobe(tmp_path):
    path = encode(tmp_path / "c.opus", default_settings(), two_tones(3 * RATE + 17))
    info = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=30)
    assert info.returncode == 0, info.stdout + info.stderr
    assert "WARNING" not in info.stdout + info.stderr and "ERROR" not in info.stdout + info.stderr, info.stdout
    assert "Channel Mapping Family: 1 Map: [0, 1]" in info.stdout  # players open family 1, not 255
    assert "Streams: 2, Coupled: 0" in info.stdout
    assert "Original sample rate: 16000 Hz" in info.stdout
    probe = ffprobe(path)
    assert probe["codec_name"] == "opus"
    assert probe["channels"] == "2"
    assert probe["format_name"] == "ogg"


@needs_tools
def test_mono_opus_is_valid(tmp_path):
    path = encode(tmp_path / "m.opus", default_settings(channels=1), two_tones(RATE)[:, :1])
    info = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=30)
    assert info.returncode == 0 and "Channels: 1" in info.stdout, info.stdout
    probe = ffprobe(path)
    assert (probe["codec_name"], probe["channels"]) == ("opus", "1")


@needs_tools
def test_flac_chunk_is_valid_for_ffprobe(tmp_path):
    data = noise(2 * RATE + 333, 2)
    path = encode(tmp_path / "c.flac", default_settings("flac"), data)
    probe = ffprobe(path)
    assert (probe["codec_name"], probe["channels"], probe["sample_rate"]) == ("flac", "2", "16000")
    assert probe["duration_ts"] == str(len(data))


FAMILY255_CHUNK = (Path(__file__).resolve().parents[2] / "data" / "family255" / "store" / "audio" / "2026" / "12"
                   / "04" / "20261204T041144Z-86c35a3bf215" / "000001.opus")


@pytest.mark.parametrize("player", players.PLAYERS)
def test_stereo_opus_opens_in_ordinary_players_agent_left_caller_right(tmp_path, player):
    """What a team leader's player does with a stored chunk: the whole length, the agent's tone
    on the left, the caller's on the right, more than 20 dB apart in every whole second."""
    if not players.have(player):
        pytest.skip(f"{player} not installed (scripts/setup.sh installs it)")
    frames = 3 * RATE + 17
    data = two_tones(frames)
    path = encode(tmp_path / "c.opus", default_settings(), data)
    out = players.decode(player, path, RATE)
    assert out.shape == (frames, 2)  # exact: pre-skip and end trimming honoured
    for s in range(1, 3):
        sec = out[s * RATE : (s + 1) * RATE]
        left = band_db(sec[:, 0], 440) - band_db(sec[:, 0], 1250)
        right = band_db(sec[:, 1], 1250) - band_db(sec[:, 1], 440)
        assert left > 20 and right > 20, (player, s, left, right)
        assert band_db(sec[:, 0], 440) > band_db(data[RATE : 2 * RATE, 0], 440) - 3  # the tone, at its level
        assert band_db(sec[:, 1], 1250) > band_db(data[RATE : 2 * RATE, 1], 1250) - 3


@pytest.mark.skipif(not players.have("opusdec"), reason="opusdec not installed")
def test_opusdec_refuses_the_old_family_255_chunks_which_is_why_they_are_no_longer_written(tmp_path):
    info = subprocess.run(["opusinfo", str(FAMILY255_CHUNK)], capture_output=True, text=True, timeout=30)
    assert "Channel Mapping Family: 255" in info.stdout, info.stdout
    with pytest.raises(players.PlayerRefused, match="Failed to open"):
        players.decode("opusdec", FAMILY255_CHUNK, RATE, tmp=tmp_path)
    assert players.decode("ffmpeg", FAMILY255_CHUNK, RATE).shape == (2 * RATE, 2)  # ffmpeg and libsndfile do read them
    assert sf.info(str(FAMILY255_CHUNK)).frames == 2 * RATE


def test_the_header_rewrite_takes_only_two_uncoupled_streams_in_order():
    ok = b"OpusHead" + bytes([1, 2, 0x38, 0x01, 0x80, 0x3E, 0, 0, 0, 0, 255, 2, 0, 0, 1])
    assert family1_head(ok) == ok[:18] + b"\x01" + ok[19:]
    for bad, words in [(ok[:18] + bytes([1, 1, 1, 0, 1]), "family=1 streams=1 coupled=1"),  # coupled stereo
                       (ok[:21] + bytes([1, 0]), "mapping=[1, 0]"),  # channels swapped
                       (ok[:18] + bytes([255, 2, 0, 0, 1, 2]), "unexpected Opus header (24 bytes"),
                       (b"OpusTags" + ok[8:], "unexpected Opus header")]:
        with pytest.raises(ValueError, match=re.escape(words)):
            family1_head(bad)


# ---- frame counts -----------------------------------------------------------------------------

# Odd sizes on purpose, including chunks shorter than one Ogg page (200 ms): a chunk sealed by
# a pause or the call's end is often that short.
ODD_SIZES = [1, 195, 319, 2243, 3105, 16001, 3 * RATE + 17]


@pytest.mark.parametrize("channels", [2, 1])
@pytest.mark.parametrize("frames", ODD_SIZES)
def test_opus_decodes_to_exactly_the_frames_written(tmp_path, frames, channels):
    data = noise(frames, channels)
    path = encode(tmp_path / "c.opus", default_settings("opus", channels), data, block=333)
    assert sf.info(str(path)).frames == frames
    decoded, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert (len(decoded), rate, decoded.shape[1]) == (frames, RATE, channels)
    ff_frames, ff_rate = ffmpeg_frames(path)  # ffmpeg decodes Opus at 48 kHz
    assert ff_frames * RATE == frames * ff_rate


@pytest.mark.parametrize("channels", [2, 1])
@pytest.mark.parametrize("frames", ODD_SIZES)
def test_flac_decodes_to_exactly_the_frames_written_bit_for_bit(tmp_path, frames, channels):
    data = noise(frames, channels)
    path = encode(tmp_path / "c.flac", default_settings("flac", channels), data, block=333)
    decoded, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert (len(decoded), rate) == (frames, RATE)
    q16 = np.clip(np.round(data * 32768), -32768, 32767) / 32768
    np.testing.assert_array_equal(decoded, q16.astype(np.float32))
    assert ffmpeg_frames(path) == (frames, RATE)


def test_opus_content_is_the_audio_written_not_shifted(tmp_path):
    """Pre-skip handled: the decoded tone lines up with the input (no 104-frame shift)."""
    t = np.arange(2 * RATE) / RATE
    burst = np.where((t >= 0.5) & (t < 1.0), 0.5 * np.sin(2 * np.pi * 700 * t), 0.0).astype(np.float32)
    data = np.stack([burst, burst], axis=1)
    path = encode(tmp_path / "c.opus", default_settings(), data)
    out, _ = sf.read(str(path), dtype="float32", always_2d=True)
    env = np.abs(out[:, 0]) > 0.25
    onset = int(np.argmax(env))
    assert abs(onset - RATE // 2) < 40, onset
    assert abs(int(len(env) - np.argmax(env[::-1])) - RATE) < 40


# ---- quality and size at default settings ------------------------------------------------------


def test_channels_stay_apart_at_default_settings(tmp_path):
    data = two_tones(6 * RATE)
    path = encode(tmp_path / "c.opus", default_settings(), data)
    out, _ = sf.read(str(path), dtype="float32", always_2d=True)
    worst = []
    for s in range(1, 6):  # every whole second but the encoder's start-up
        sec = out[s * RATE : (s + 1) * RATE]
        left = band_db(sec[:, 0], 440) - band_db(sec[:, 0], 1250)
        right = band_db(sec[:, 1], 1250) - band_db(sec[:, 1], 440)
        worst.append(min(left, right))
    assert min(worst) >= 30, worst
    # and the tones themselves survive at about their level (not just "quiet everywhere")
    assert band_db(out[RATE : 2 * RATE, 0], 440) > band_db(data[RATE : 2 * RATE, 0], 440) - 3


def test_size_at_default_settings_is_at_most_12_mb_per_hour(tmp_path):
    """60 s of speech-ish stereo, cut into default-length chunks the way the chunk writer
    stores it (each chunk a whole Ogg file with its own headers), extrapolated to an hour."""
    from callrec_desktop.audio.chunk_writer import ChunkWriter
    from tests.unit.audio.test_chunk_writer import open_call_spool

    data = speechish(60.0)
    windows = data[: len(data) // 1600 * 1600].reshape(-1, 1600, 2)  # 100 ms
    active = (np.sqrt((windows**2).mean(axis=1)) > 0.01).mean(axis=0)
    assert ((active > 0.3) & (active < 0.9)).all(), active  # each side talks for a good part of the call
    spool, call = open_call_spool(tmp_path, default_settings())
    writer = ChunkWriter(call, default_settings(), chunk_frames=round(RecorderSettings().chunk_seconds * RATE))
    writer.write(0, data)
    writer.seal()
    total = sum(e.bytes for e in writer.sealed)
    assert len(writer.sealed) == 6
    per_hour = total * 60
    assert per_hour <= 12_000_000, f"{per_hour / 1e6:.1f} MB/hour"
    # not trivially small either: the audio really was encoded at a speech bitrate
    assert per_hour >= 4_000_000, f"{per_hour / 1e6:.1f} MB/hour"


# ---- write errors --------------------------------------------------------------------------------


class DiskFullFile(io.FileIO):
    """A real file that fails with ENOSPC once it would grow past ``limit`` bytes (a fault-
    injecting stand-in for a full disk, which cannot be mounted unprivileged here)."""

    def __init__(self, path: Path, limit: int) -> None:
        super().__init__(path, "xb")
        self.limit = limit

    def write(self, b) -> int:
        if self.tell() + len(b) > self.limit:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(b)


@pytest.mark.parametrize("codec", ["opus", "flac"])
def test_a_full_disk_raises_oserror_enospc_so_the_recorder_can_handle_it(tmp_path, codec):
    f = DiskFullFile(tmp_path / f"c.{codec}", limit=3000)
    enc = make_encoder(f, default_settings(codec))
    data = noise(5 * RATE, 2)
    with pytest.raises(OSError) as err:
        for i in range(0, len(data), 320):
            enc.write(data[i : i + 320])
        enc.close()
    assert err.value.errno == errno.ENOSPC
    f.close()


def test_unknown_codec_is_refused(tmp_path):
    with open(tmp_path / "x", "wb") as f, pytest.raises(ValueError, match="unknown codec"):
        make_encoder(f, CodecSettings(codec="mp3"))
