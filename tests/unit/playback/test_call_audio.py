"""CallAudio against folder stores filled by the real recorder pipeline.

FLAC calls are compared frame for frame with ``archive.decode_call`` (the whole-call
reference); Opus calls by tone energy. Laziness is checked by counting ``store.get`` calls
through a thin wrapper around the real FolderStore (the wrapper only counts and delegates)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from callrec_desktop.archive import ArchiveError, decode_call
from callrec_desktop.core.timeline import EventSource
from callrec_desktop.playback.call_audio import CallAudio
from callrec_desktop.storage.layout import chunk_key
from tests.support.recording import RATE, band_db, finish, pipeline, settings, two_tones


class CountingStore:
    """Delegates to a real store; counts ``get`` per key."""

    def __init__(self, inner):
        self.inner = inner
        self.description = inner.description
        self.gets: list[str] = []

    def get(self, key):
        self.gets.append(key)
        return self.inner.get(key)

    def put(self, *a, **k):
        return self.inner.put(*a, **k)

    def list(self, prefix):
        return self.inner.list(prefix)


def record(tmp_path, codec="flac", seconds=8.0, chunk_seconds=1.0, pause=(2.3, 3.7), transfer_at=None, audio=None):
    audio = two_tones(seconds) if audio is None else audio
    p = pipeline(tmp_path, audio, settings(codec, chunk_seconds=chunk_seconds))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    if pause:
        p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=round(pause[0] * RATE))
        p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=round(pause[1] * RATE))
    if transfer_at:
        p.recorder.transfer("Planning", source=EventSource.SCRIPT, at_frame=round(transfer_at * RATE))
    [m] = finish(p)
    return p.store, m


@pytest.fixture(scope="module")
def flac_call(tmp_path_factory):
    return record(tmp_path_factory.mktemp("flac"), transfer_at=7.5)


def test_reads_equal_the_whole_call_decode_across_chunk_boundaries_and_pauses(flac_call):
    store, m = flac_call
    ref = decode_call(store, m)
    ca = CallAudio(store, m, cache_chunks=2)
    rng = np.random.default_rng(1)
    starts = [0, RATE - 7, round(2.3 * RATE) - 100, round(3.7 * RATE) - 5, m.frames - 50,
              *rng.integers(0, m.frames, 20).tolist()]
    for start in starts:
        for n in (1, 333, RATE + 17, 3 * RATE):
            got = ca.read(start, n)
            want = np.zeros((n, 2), np.float32)
            k = max(0, min(n, m.frames - start))
            want[:k] = ref[start : start + k]
            np.testing.assert_array_equal(got, want, err_msg=f"read({start}, {n})")
    assert got.dtype == np.float32


def test_pauses_are_digital_silence_and_reads_past_the_end_are_zero_padded(flac_call):
    store, m = flac_call
    ca = CallAudio(store, m)
    a, b = round(2.3 * RATE), round(3.7 * RATE)
    assert not ca.read(a, b - a).any()
    assert ca.read(a - 160, 160).any()
    tail = ca.read(m.frames - 100, 1000)
    assert tail.shape == (1000, 2) and tail[:100].any() and not tail[100:].any()
    assert ca.read(m.frames + 5, 10).shape == (10, 2)
    assert not ca.read(-50, 50).any()
    assert ca.read(0, 0).shape == (0, 2)


def test_marks_name_the_payment_pause_and_the_transfer(flac_call):
    store, m = flac_call
    pause, end = CallAudio(store, m).marks
    assert (pause.kind, pause.start_frame, pause.end_frame, pause.reason, pause.source) == (
        "pause", round(2.3 * RATE), round(3.7 * RATE), "payment", "script")
    assert (end.kind, end.start_frame, end.reason, end.department) == ("end", m.frames, "transferred", "Planning")


def test_reading_the_first_second_fetches_only_the_first_chunk(tmp_path):
    store, m = record(tmp_path, seconds=30.0, chunk_seconds=1.0, pause=None)
    assert len(m.chunks) >= 25
    counting = CountingStore(store)
    ca = CallAudio(counting, m)
    first = ca.read(0, RATE)
    assert counting.gets == [chunk_key(m.call_id, m.chunks[0].name)]
    assert first.any()
    ca.read(100, RATE // 2)  # cached: no second fetch
    assert len(counting.gets) == 1


def test_lru_cache_keeps_at_most_cache_chunks_and_is_thread_safe(flac_call):
    store, m = flac_call
    ref = decode_call(store, m)
    ca = CallAudio(store, m, cache_chunks=3)
    errors = []

    def reader(seed):
        rng = np.random.default_rng(seed)
        try:
            for start in rng.integers(0, m.frames, 40):
                np.testing.assert_array_equal(ca.read(int(start), 800)[: max(0, m.frames - start)],
                                              ref[start : start + 800])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors[0]
    assert len(ca._cache) <= 3


def test_a_corrupted_chunk_gives_an_archive_error_naming_the_chunk(tmp_path):
    store, m = record(tmp_path, seconds=5.0, chunk_seconds=1.0, pause=None)
    entry = m.chunks[2]
    path = tmp_path / "store" / chunk_key(m.call_id, entry.name)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    ca = CallAudio(store, m)
    assert ca.read(0, RATE).any()  # chunks before it still play
    with pytest.raises(ArchiveError, match=rf"chunk {entry.seq} SHA-256"):
        ca.read(entry.first_frame + 10, 100)


def test_opus_call_keeps_its_tones(tmp_path):
    store, m = record(tmp_path, codec="opus", seconds=6.0, chunk_seconds=2.0, pause=(2.0, 3.0))
    ca = CallAudio(store, m)
    x = ca.read(4 * RATE, RATE)
    assert band_db(x[:, 0], 440) > band_db(x[:, 0], 1250) + 25
    assert band_db(x[:, 1], 1250) > band_db(x[:, 1], 440) + 25
    assert not ca.read(2 * RATE, RATE).any()


def test_an_old_family_255_opus_call_still_plays_and_verifies(tmp_path):
    """Calls stored before chunks became channel mapping family 1 (tests/data/family255) play
    as before: tones on the right sides, the pause silent, the short chunk sealed by the pause
    in place, and every chunk verifies against the manifest."""
    from callrec_desktop.archive import verify_call
    from tests.support.old_recordings import FAMILY255_PAUSE, FAMILY255_SECONDS, family255_store

    store, m = family255_store(tmp_path)
    assert verify_call(store, m) == []
    assert m.frames == round(FAMILY255_SECONDS * RATE) and [c.frames for c in m.chunks] == [2 * RATE, 4800, 28800]
    ca = CallAudio(store, m)
    ref = decode_call(store, m)
    np.testing.assert_array_equal(ca.read(0, m.frames), ref)
    a, b = (round(s * RATE) for s in FAMILY255_PAUSE)
    assert not ca.read(a, b - a).any()
    for start in (round(0.5 * RATE), round(4.0 * RATE)):  # chunk 1 and chunk 3
        x = ca.read(start, RATE)
        assert band_db(x[:, 0], 440) > band_db(x[:, 0], 1250) + 25
        assert band_db(x[:, 1], 1250) > band_db(x[:, 1], 440) + 25
    short = ca.read(2 * RATE, 4800)  # chunk 2: 300 ms, less than two Ogg pages
    assert np.abs(short[800:, 0]).max() > 0.2 and np.abs(short[800:, 1]).max() > 0.2
