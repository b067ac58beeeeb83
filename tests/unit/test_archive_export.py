"""``archive.export_call``: whole call or a range of its timeline, as WAV, FLAC or Ogg Opus.

Calls come from the real recorder pipeline into a folder store. FLAC-recorded calls are
compared sample for sample with ``archive.decode_call`` (the whole-call reference). Laziness
is checked by counting ``store.get`` calls through a thin wrapper around the real FolderStore
(the wrapper only records and delegates), and by the size of the ``.part`` file at each get.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from callrec_desktop.archive import ArchiveError, ExportRangeError, decode_call, export_call
from callrec_desktop.core.timeline import EventSource
from callrec_desktop.storage.layout import chunk_key
from tests.support import players
from tests.support.old_recordings import FAMILY255_PAUSE, family255_store
from tests.support.recording import RATE, band_db, finish, pipeline, settings, two_tones

PAUSE = (2.3, 3.7)


def record(tmp_path, codec="flac", seconds=8.0, chunk_seconds=1.0, pause=PAUSE):
    p = pipeline(tmp_path, two_tones(seconds), settings(codec, chunk_seconds=chunk_seconds))
    p.recorder.start_call("01443 425002", "Council Tax", source=EventSource.SCRIPT, at_frame=0)
    if pause:
        p.recorder.start_payment(source=EventSource.SCRIPT, at_frame=round(pause[0] * RATE))
        p.recorder.end_payment(source=EventSource.SCRIPT, at_frame=round(pause[1] * RATE))
    p.recorder.end_call(source=EventSource.SCRIPT, at_frame=round((seconds - 0.5) * RATE))
    [m] = finish(p)
    return p.store, m


@pytest.fixture(scope="module")
def flac_call(tmp_path_factory):
    return record(tmp_path_factory.mktemp("flac"))


class RecordingStore:
    """Delegates to a real store; records every ``get`` with the size of ``watch`` (if it exists) then."""

    def __init__(self, inner, watch):
        self.inner = inner
        self.description = inner.description
        self.watch = watch
        self.gets: list[tuple[str, int]] = []

    def get(self, key):
        self.gets.append((key, self.watch.stat().st_size if self.watch.exists() else -1))
        return self.inner.get(key)

    def put(self, *a, **k):
        return self.inner.put(*a, **k)

    def list(self, prefix):
        return self.inner.list(prefix)


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_range_export_equals_the_slice_of_the_whole_call_across_a_pause_and_chunk_boundary(flac_call, tmp_path, suffix):
    store, m = flac_call
    ref = decode_call(store, m)
    start, end = 1.5, 4.25  # chunk boundaries at 2 s, pause 2.3..3.7 s inside
    out = tmp_path / f"range{suffix}"
    assert export_call(store, m.call_id, out, start_seconds=start, end_seconds=end).call_id == m.call_id
    back, rate = sf.read(out, dtype="float32", always_2d=True)
    a, b = round(start * RATE), round(end * RATE)
    assert rate == RATE and back.shape == (b - a, 2)
    np.testing.assert_array_equal(back, ref[a:b])  # exact: 16-bit in, 16-bit out
    pa, pb = round(PAUSE[0] * RATE) - a, round(PAUSE[1] * RATE) - a
    assert not back[pa:pb].any() and back[:pa].any() and back[pb:].any()
    assert not out.with_name(out.name + ".part").exists()


def test_whole_call_and_open_ended_ranges_are_clamped_to_the_call(flac_call, tmp_path):
    store, m = flac_call
    ref = decode_call(store, m)
    export_call(store, m.call_id, tmp_path / "whole.flac")
    np.testing.assert_array_equal(sf.read(tmp_path / "whole.flac", dtype="float32", always_2d=True)[0], ref)
    export_call(store, m.call_id, tmp_path / "tail.flac", start_seconds=6.0, end_seconds=1e6)
    np.testing.assert_array_equal(sf.read(tmp_path / "tail.flac", dtype="float32", always_2d=True)[0], ref[6 * RATE:])
    export_call(store, m.call_id, tmp_path / "head.flac", start_seconds=-3, end_seconds=0.5)
    np.testing.assert_array_equal(sf.read(tmp_path / "head.flac", dtype="float32", always_2d=True)[0], ref[: RATE // 2])


@pytest.mark.parametrize("start, end", [(5.0, 5.0), (5.0, 2.0), (7.5, None), (100.0, 200.0), (None, 0.0),
                                        (float("nan"), 2.0)])
def test_bad_ranges_are_clear_errors_and_leave_no_file(flac_call, tmp_path, start, end):
    store, m = flac_call
    out = tmp_path / "bad.flac"
    with pytest.raises(ExportRangeError) as info:
        export_call(store, m.call_id, out, start_seconds=start, end_seconds=end)
    assert isinstance(info.value, ArchiveError)
    text = str(info.value)
    assert m.call_id in text
    if start is not None and start == start:
        assert f"{start:g} s" in text
    if end is not None:
        assert f"{end:g} s" in text
    if start == start:
        assert f"the call is {m.frames / RATE:g} s long" in text
    assert list(tmp_path.iterdir()) == []


def test_a_missing_chunk_fails_the_export_and_leaves_no_file(tmp_path):
    store, m = record(tmp_path / "rec")
    (tmp_path / "rec" / "store" / chunk_key(m.call_id, m.chunks[-1].name)).unlink()
    out = tmp_path / "out.flac"
    with pytest.raises(ArchiveError, match=f"chunk {m.chunks[-1].seq} is missing"):
        export_call(store, m.call_id, out, start_seconds=1.0)
    assert not out.exists() and not out.with_name("out.flac.part").exists()


# What the README promises a pause gives in each export format (README "Export", measured on
# tones, noise, speech-like noise and square waves up to full scale, pauses anywhere): WAV and
# FLAC exact zeros; Opus, encoded from exact zeros, decodes to at most 2 sixteen-bit steps
# (-84 dBFS) except the codec's fade-out of the last recorded sound (measured up to 71 ms) at
# the pause's start and the lead-in of the first sound after it (up to 10 ms) at its end.
OPUS_PAUSE_FADE_S, OPUS_PAUSE_LEAD_S, OPUS_PAUSE_MAX = 0.080, 0.015, 2 / 32768


@pytest.mark.parametrize("player", players.PLAYERS)
def test_opus_export_opens_in_ordinary_players_keeping_the_parties_apart(flac_call, tmp_path, player):
    """An Opus export is Ogg Opus, channel mapping family 1 with two uncoupled streams, and
    ffmpeg, opusdec and GStreamer each decode it to the range's exact length with the agent's
    tone left, the caller's right, and the payment pause as the README says."""
    if not players.have(player):
        pytest.skip(f"{player} not installed (scripts/setup.sh installs it)")
    store, m = flac_call
    out = tmp_path / "range.opus"
    export_call(store, m.call_id, out, start_seconds=0.5, end_seconds=7.0)
    info = subprocess.run(["opusinfo", str(out)], capture_output=True, text=True)
    assert "Channel Mapping Family: 1 Map: [0, 1]" in info.stdout, info.stdout + info.stderr
    assert "Streams: 2, Coupled: 0" in info.stdout, info.stdout
    back = players.decode(player, out, RATE, tmp=tmp_path)
    assert back.shape == (round(6.5 * RATE), 2)
    speech = back[round(0.2 * RATE) : round(1.6 * RATE)]  # before the pause (1.8 s into the export)
    agent, caller = speech[:, 0], speech[:, 1]
    assert band_db(agent, 440) - band_db(agent, 1250) > 30  # 440 Hz tone on the agent channel only
    assert band_db(caller, 1250) - band_db(caller, 440) > 30  # 1250 Hz tone on the caller channel only
    pa, pb = (round((t - 0.5) * RATE) for t in PAUSE)
    quiet = back[pa + round(OPUS_PAUSE_FADE_S * RATE) : pb - round(OPUS_PAUSE_LEAD_S * RATE)]
    assert np.abs(quiet).max() <= OPUS_PAUSE_MAX * 1.001, np.abs(quiet).max() * 32768
    assert np.abs(back[pb : pb + RATE // 10]).max() > 0.2  # and the call resumes after it


def test_each_export_format_gives_what_the_readme_says_over_a_pause(tmp_path):
    """The README's sentence on pauses, per format, on an Opus-recorded call (lossy chunks, so
    the audio around the pause is as busy as it gets): WAV and FLAC are exact zeros over the
    whole pause; Opus is at most 2 steps of 16 bits outside its fade-out and lead-in."""
    store, m = record(tmp_path / "rec", codec="opus")
    a, b = (round(t * RATE) for t in PAUSE)
    for suffix in (".wav", ".flac"):
        export_call(store, m.call_id, tmp_path / f"x{suffix}")
        back, _ = sf.read(tmp_path / f"x{suffix}", dtype="int16", always_2d=True)
        assert not back[a:b].any() and back[a - 160 : a].any() and back[b : b + 160].any(), suffix
    export_call(store, m.call_id, tmp_path / "x.opus")
    back, _ = sf.read(tmp_path / "x.opus", dtype="float32", always_2d=True)
    quiet = back[a + round(OPUS_PAUSE_FADE_S * RATE) : b - round(OPUS_PAUSE_LEAD_S * RATE)]
    assert np.abs(quiet).max() <= OPUS_PAUSE_MAX * 1.001


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".opus"])
def test_an_old_family_255_call_still_exports_in_every_format(tmp_path, suffix):
    """A call stored with channel mapping family 255 (tests/data/family255) exports as before:
    WAV and FLAC equal its decode sample for sample, pause exact zeros; Opus comes out as
    family 1, which opusdec opens (it refuses the stored chunks themselves)."""
    store, m = family255_store(tmp_path)
    ref = decode_call(store, m)
    out = tmp_path / f"old{suffix}"
    export_call(store, m.call_id, out)
    a, b = (round(t * RATE) for t in FAMILY255_PAUSE)
    if suffix == ".opus":
        if not players.have("opusdec"):
            pytest.skip("opusdec not installed (scripts/setup.sh installs it)")
        back = players.decode("opusdec", out, RATE, tmp=tmp_path)
        assert back.shape == ref.shape
        for lo, hi in [(0.2, 1.9), (4.0, 5.4)]:
            x = back[round(lo * RATE) : round(hi * RATE)]
            assert band_db(x[:, 0], 440) - band_db(x[:, 0], 1250) > 20
            assert band_db(x[:, 1], 1250) - band_db(x[:, 1], 440) > 20
        quiet = back[a + round(OPUS_PAUSE_FADE_S * RATE) : b - round(OPUS_PAUSE_LEAD_S * RATE)]
        assert np.abs(quiet).max() <= OPUS_PAUSE_MAX * 1.001
    else:
        back, rate = sf.read(out, dtype="int16", always_2d=True)
        assert rate == RATE
        np.testing.assert_array_equal(back, np.clip(np.rint(ref * 32768), -32768, 32767).astype(np.int16))
        assert not back[a:b].any() and back[:a].any() and back[b:].any()


def test_a_30_chunk_call_is_read_lazily_in_order_while_the_file_grows(tmp_path):
    store, m = record(tmp_path / "rec", seconds=30.5, chunk_seconds=1.0, pause=None)
    assert len(m.chunks) == 30
    out = tmp_path / "long.wav"
    part = out.with_name(out.name + ".part")
    counting = RecordingStore(store, part)
    export_call(counting, m.call_id, out)
    chunk_gets = [(key, size) for key, size in counting.gets if "/audio/" in key or key.startswith("audio/")]
    assert [key for key, _ in chunk_gets] == [chunk_key(m.call_id, c.name) for c in m.chunks]  # each once, in order
    sizes = [size for _, size in chunk_gets]
    assert sizes == sorted(sizes)
    # the last chunk is fetched only after most of the call is already written out
    assert sizes[-1] >= 44 + 2 * 2 * 20 * RATE, sizes
    assert sf.info(out).frames == m.frames
