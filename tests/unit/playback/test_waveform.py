"""The waveform overview: equal to a brute-force min/max over the whole-call decode, cached on
disk (the second load reads no chunk from the store), pauses exactly zero."""

from __future__ import annotations

import numpy as np

from callrec_desktop.archive import decode_call
from callrec_desktop.playback.call_audio import CallAudio
from callrec_desktop.playback.waveform import cache_path, compute, load_or_compute
from tests.support.recording import RATE
from tests.unit.playback.test_call_audio import CountingStore, record


def brute_force(audio, bucket):
    n = -(-len(audio) // bucket)
    mins = np.array([[audio[i * bucket : (i + 1) * bucket, c].min() for i in range(n)] for c in range(audio.shape[1])])
    maxs = np.array([[audio[i * bucket : (i + 1) * bucket, c].max() for i in range(n)] for c in range(audio.shape[1])])
    return mins, maxs


def test_peaks_match_brute_force_and_pauses_are_zero(tmp_path):
    # 7.5 s + 37 frames: the last bucket is a short one
    store, m = record(tmp_path, seconds=9.0, chunk_seconds=1.3, pause=(2.31, 3.77), transfer_at=7.5 + 37 / RATE)
    ca = CallAudio(store, m)
    seen = []
    wf = compute(ca, progress=seen.append)
    ref = decode_call(store, m)
    mins, maxs = brute_force(ref, RATE // 100)
    assert wf.mins.shape == (2, -(-m.frames // 160))
    np.testing.assert_array_equal(wf.mins, mins)
    np.testing.assert_array_equal(wf.maxs, maxs)
    a, b = round(2.31 * RATE) // 160 + 1, round(3.77 * RATE) // 160
    assert not wf.mins[:, a:b].any() and not wf.maxs[:, a:b].any()
    assert wf.maxs[:, 50:100].min() > 0.25  # the tones
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    assert [mk.kind for mk in wf.marks] == ["pause", "end"]


def test_cached_file_is_reused_without_reading_the_store(tmp_path):
    store, m = record(tmp_path, seconds=4.0, chunk_seconds=1.0, pause=None)
    cache = tmp_path / "cache"
    first = load_or_compute(CallAudio(store, m), cache)
    path = cache_path(CallAudio(store, m), cache)
    assert path.exists() and not list(cache.glob("*.part*"))
    counting = CountingStore(store)
    again = load_or_compute(CallAudio(counting, m), cache)
    assert counting.gets == []
    np.testing.assert_array_equal(first.mins, again.mins)
    np.testing.assert_array_equal(first.maxs, again.maxs)
    assert again.marks == first.marks


def test_a_damaged_cache_file_is_recomputed(tmp_path):
    store, m = record(tmp_path, seconds=3.0, chunk_seconds=1.0, pause=None)
    cache = tmp_path / "cache"
    first = load_or_compute(CallAudio(store, m), cache)
    path = cache_path(CallAudio(store, m), cache)
    path.write_bytes(b"not a zip")
    again = load_or_compute(CallAudio(store, m), cache)
    np.testing.assert_array_equal(first.maxs, again.maxs)
    assert np.load(path)["maxs"].shape == first.maxs.shape
