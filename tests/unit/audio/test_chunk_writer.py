"""The chunk writer on a real spool folder: where it cuts, what it seals, what is on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.audio.chunk_writer import ChunkWriter
from callrec_desktop.audio.encoders import CodecSettings
from callrec_desktop.spool import CallSpool, Spool, parse_chunk_name
from tests.unit.test_spool import make_manifest

RATE = 16000


def open_call_spool(tmp_path: Path, settings: CodecSettings) -> tuple[Spool, CallSpool]:
    spool = Spool(tmp_path / "spool")
    return spool, spool.create_call(make_manifest(settings=settings))


def q16(x: np.ndarray) -> np.ndarray:
    return (np.clip(np.round(x * 32768), -32768, 32767) / 32768).astype(np.float32)


def ramp(frames: int, channels: int = 2, start: int = 0) -> np.ndarray:
    """Audio whose every frame is identifiable (a slow sawtooth per channel)."""
    i = np.arange(start, start + frames)
    cols = [((i % 4000) / 4000.0 - 0.5) * 0.8, -((i % 3000) / 3000.0 - 0.5) * 0.8][:channels]
    return np.stack(cols, axis=1).astype(np.float32)


def files(call: CallSpool) -> set[str]:
    return {p.name for p in call.path.iterdir()}


def check_sealed(call: CallSpool, writer: ChunkWriter, codec: str) -> None:
    """Every sealed entry names a file on disk whose size and SHA-256 are the entry's."""
    for e in writer.sealed:
        path = call.path / f"{e.seq:06d}@{e.first_frame}.{codec}"
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (e.bytes, e.sha256), e
        assert e.name == f"{e.seq:06d}.{codec}"
        assert sf.info(str(path)).frames == e.frames


def test_refuses_a_chunk_length_of_zero(tmp_path):
    _, call = open_call_spool(tmp_path, CodecSettings("flac"))
    with pytest.raises(ValueError):
        ChunkWriter(call, CodecSettings("flac"), 0)


@pytest.mark.parametrize("codec", ["flac", "opus"])
def test_splits_at_chunk_frames_exactly_and_seals_durably(tmp_path, codec):
    settings = CodecSettings(codec)
    _, call = open_call_spool(tmp_path, settings)
    cf = 4001  # odd on purpose
    writer = ChunkWriter(call, settings, cf)
    data = ramp(2 * cf + 1234)
    got = []
    pos = 0
    for size in [777, 3000, 1, 4600, 999, 10_000]:  # blocks that never line up with chunk edges
        block = data[pos : pos + size]
        if len(block) == 0:
            break
        got += writer.write(pos, block)
        pos += len(block)
    assert pos == len(data)
    assert [(e.seq, e.first_frame, e.frames) for e in got] == [(1, 0, cf), (2, cf, cf)]
    # the third chunk is still being written: exactly one .part, and it is chunk 3
    parts = [n for n in files(call) if n.endswith(".part")]
    assert parts == [f"000003@{2 * cf}.{codec}.part"]
    last = writer.seal()
    assert (last.seq, last.first_frame, last.frames) == (3, 2 * cf, 1234)
    assert writer.seal() is None
    assert writer.sealed == got + [last]
    assert files(call) == {".lock", "manifest.json", f"000001@0.{codec}", f"000002@{cf}.{codec}",
                           f"000003@{2 * cf}.{codec}"}
    check_sealed(call, writer, codec)
    if codec == "flac":  # lossless: the chunks are the input, frame for frame
        out = np.concatenate([sf.read(str(call.path / f"{e.seq:06d}@{e.first_frame}.flac"), dtype="float32")[0]
                              for e in writer.sealed])
        np.testing.assert_array_equal(out, q16(data))


def test_a_gap_in_the_call_timeline_seals_the_chunk_and_is_never_bridged(tmp_path):
    settings = CodecSettings("flac")
    _, call = open_call_spool(tmp_path, settings)
    writer = ChunkWriter(call, settings, 10 * RATE)
    assert writer.write(0, ramp(1000)) == []
    assert writer.write(1000, ramp(500, start=1000)) == []  # contiguous: same chunk
    sealed = writer.write(8000, ramp(700, start=8000))  # frames 1500..8000 were paused
    assert [(e.seq, e.first_frame, e.frames) for e in sealed] == [(1, 0, 1500)]
    sealed = writer.write(8700 + 1, ramp(10, start=8701))  # even a one-frame gap
    assert [(e.seq, e.first_frame, e.frames) for e in sealed] == [(2, 8000, 700)]
    writer.seal()
    assert [(e.seq, e.first_frame, e.frames) for e in writer.sealed] == [(1, 0, 1500), (2, 8000, 700), (3, 8701, 10)]
    check_sealed(call, writer, "flac")
    chunk2 = sf.read(str(call.path / "000002@8000.flac"), dtype="float32")[0]
    np.testing.assert_array_equal(chunk2, q16(ramp(700, start=8000)))
    assert not [n for n in files(call) if n.endswith(".part")]


def test_a_block_spanning_several_chunks_returns_each_sealed_chunk_in_order(tmp_path):
    settings = CodecSettings("flac")
    _, call = open_call_spool(tmp_path, settings)
    writer = ChunkWriter(call, settings, 1000)
    sealed = writer.write(0, ramp(3500))
    assert [(e.seq, e.first_frame, e.frames) for e in sealed] == [(1, 0, 1000), (2, 1000, 1000), (3, 2000, 1000)]
    assert writer.has_open_chunk
    assert [n for n in files(call) if n.endswith(".part")] == ["000004@3000.flac.part"]
    writer.seal()
    assert not writer.has_open_chunk
    seqs = [e.seq for e in writer.sealed]
    assert seqs == sorted(seqs) == list(range(1, 5))
    check_sealed(call, writer, "flac")


@pytest.mark.parametrize("codec", ["flac", "opus"])
def test_mono_works(tmp_path, codec):
    settings = CodecSettings(codec, channels=1)
    _, call = open_call_spool(tmp_path, settings)
    writer = ChunkWriter(call, settings, RATE)
    writer.write(0, ramp(RATE + 321, channels=1))
    writer.seal()
    assert [(e.first_frame, e.frames) for e in writer.sealed] == [(0, RATE), (RATE, 321)]
    check_sealed(call, writer, codec)
    for e in writer.sealed:
        assert sf.info(str(call.path / f"{e.seq:06d}@{e.first_frame}.{codec}")).channels == 1


def test_abort_leaves_the_part_for_recovery(tmp_path):
    settings = CodecSettings("flac")
    _, call = open_call_spool(tmp_path, settings)
    writer = ChunkWriter(call, settings, RATE)
    writer.write(0, ramp(5000))
    writer.abort()
    assert not writer.has_open_chunk
    assert [n for n in files(call) if parse_chunk_name(call.path / n)] == ["000001@0.flac.part"]
    assert writer.sealed == []
    assert (call.path / "000001@0.flac.part").stat().st_size > 0


def test_a_seal_that_fails_keeps_the_part_and_closes_its_file(tmp_path, monkeypatch):
    """Disk full while the encoder writes its last pages: the error reaches the caller, the
    .part stays for recovery, and the file descriptor is not leaked."""
    import errno
    import os

    settings = CodecSettings("flac")
    _, call = open_call_spool(tmp_path, settings)
    writer = ChunkWriter(call, settings, RATE)
    writer.write(0, ramp(5000))
    part_file = writer._open.file
    real_fsync = os.fsync

    def fsync(fd):
        if fd == part_file.fileno():
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr("callrec_desktop.audio.chunk_writer.os.fsync", fsync)
    with pytest.raises(OSError) as err:
        writer.seal()
    assert err.value.errno == errno.ENOSPC
    assert part_file.closed
    assert writer.sealed == [] and not writer.has_open_chunk
    assert (call.path / "000001@0.flac.part").exists() and not (call.path / "000001@0.flac").exists()


@pytest.mark.parametrize("player", ["ffmpeg", "opusdec", "gstreamer"])
def test_sealed_opus_chunks_open_in_ordinary_players_whole_and_the_right_way_round(tmp_path, player):
    """Stored chunks, including one sealed by a pause after less than one Ogg page, decode in
    ffmpeg, opusdec and GStreamer to their manifest length with the agent (440 Hz) left and the
    caller (1250 Hz) right."""
    from tests.support import players
    from tests.support.recording import band_db, two_tones

    if not players.have(player):
        pytest.skip(f"{player} not installed (scripts/setup.sh installs it)")
    settings = CodecSettings("opus")
    _, call = open_call_spool(tmp_path, settings)
    writer = ChunkWriter(call, settings, RATE)
    data = two_tones(3.0)
    writer.write(0, data[: RATE + 2500])  # one whole chunk, then 2500 frames (156 ms)
    writer.write(2 * RATE, data[2 * RATE :])  # a pause from 1.16 s to 2 s seals the short one
    writer.seal()
    assert [(e.first_frame, e.frames) for e in writer.sealed] == [(0, RATE), (RATE, 2500), (2 * RATE, RATE)]
    check_sealed(call, writer, "opus")
    for e in writer.sealed:
        out = players.decode(player, call.path / f"{e.seq:06d}@{e.first_frame}.opus", RATE, tmp=tmp_path)
        assert out.shape == (e.frames, 2), (e, out.shape)
        body = out[len(out) // 4 :]  # past the encoder's start-up
        assert band_db(body[:, 0], 440) - band_db(body[:, 0], 1250) > 20, e
        assert band_db(body[:, 1], 1250) - band_db(body[:, 1], 440) > 20, e
